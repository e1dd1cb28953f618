"""The Arrow as-of join (``_asof.py``) gives exactly DuckDB's ASOF join: values, nulls, types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spindle.features import _asof, bounded_connection, pit_join
from spindle.features._asof import asof_join, asof_unsupported
from spindle.features._pit import AsofSide, create_joined, in_memory

T0 = dt.datetime(2026, 1, 1)
US = dt.timedelta(microseconds=1)


def _both(
    events: pa.Table,
    features: pa.Table,
    keys: Sequence[str],
    columns: Sequence[str],
    ttl_s: int | None,
    event_time: str = "ts",
) -> tuple[pa.Table, pa.Table]:
    """DuckDB's join (sorted by event_id) and the Arrow join (in the events' order)."""
    con = duckdb.connect()
    con.register("ev", events)
    con.register("ft", features)
    ref = pit_join(con, "ev", "ft", keys, columns, ttl_s, event_time=event_time, engine="duckdb")
    expected = ref.read_all().sort_by("event_id")
    # the tables as DuckDB exports them, the inputs pit_join's Arrow engine reads
    ev = con.sql("SELECT * FROM ev").to_arrow_table()
    ft = con.sql("SELECT * FROM ft").to_arrow_table()
    con.close()
    assert asof_unsupported(ev.schema, ft.schema, keys, event_time) is None
    got = asof_join(ev, ft, keys, columns, ttl_s, event_time)
    assert got["event_id"].to_pylist() == events["event_id"].to_pylist()  # order kept
    return expected, got.sort_by("event_id")


def _ts(seconds: Sequence[float | None], tz: str | None = None) -> pa.Array:
    values = [None if s is None else T0 + dt.timedelta(seconds=s) for s in seconds]
    return pa.array(values, pa.timestamp("us", tz=tz))


keys_st = st.sampled_from(["int", "string", "composite"])
key_value = st.one_of(st.none(), st.integers(0, 3))
# times in microseconds on a coarse grid, so that ties and age == TTL are drawn often
time_value = st.one_of(st.none(), st.integers(0, 40).map(lambda t: t * 500_000))


def _key_columns(kind: str, values: list[tuple[int | None, int | None]]) -> dict[str, pa.Array]:
    first = [a for a, _ in values]
    if kind == "int":
        return {"k": pa.array(first, pa.int64())}
    if kind == "string":
        return {"k": pa.array([None if a is None else f"k{a}" for a in first], pa.string())}
    return {
        "k": pa.array([None if a is None else f"k{a}" for a in first], pa.string()),
        "j": pa.array([b for _, b in values], pa.int32()),
    }


@settings(max_examples=120, deadline=None)
@given(
    kind=keys_st,
    events=st.lists(st.tuples(key_value, key_value, time_value), max_size=40),
    features=st.lists(
        st.tuples(key_value, key_value, time_value, st.floats(-5, 5)),
        max_size=40,
        unique_by=lambda r: (r[0], r[1], r[2]),  # DuckDB picks any of duplicate rows
    ),
    ttl_s=st.one_of(st.none(), st.integers(0, 20)),
    tz=st.sampled_from([None, "UTC", "Europe/Paris"]),
    threads=st.sampled_from([1, 2, 3]),
)
def test_arrow_join_is_duckdbs_join(
    kind: str,
    events: list[tuple[int | None, int | None, int | None]],
    features: list[tuple[int | None, int | None, int | None, float]],
    ttl_s: int | None,
    tz: str | None,
    threads: int,
) -> None:
    """Random keys (int, string, composite; nulls), times (ties, nulls, age == TTL), time
    zones and TTLs: the Arrow join gives DuckDB's rows exactly, types included, whether its
    row-wise steps run in one thread or split over several (ranges of a few rows here)."""
    saved = _asof.THREADS, _asof._BLOCK_ROWS
    _asof.THREADS, _asof._BLOCK_ROWS = threads, 4
    try:
        _check_join(kind, events, features, ttl_s, tz)
    finally:
        _asof.THREADS, _asof._BLOCK_ROWS = saved


def _check_join(
    kind: str,
    events: list[tuple[int | None, int | None, int | None]],
    features: list[tuple[int | None, int | None, int | None, float]],
    ttl_s: int | None,
    tz: str | None,
) -> None:
    ev = pa.table(
        {
            "event_id": pa.array(range(len(events)), pa.int64()),
            **_key_columns(kind, [(a, b) for a, b, _ in events]),
            "ts": _ts([None if t is None else t / 1e6 for _, _, t in events], tz),
        }
    )
    ft = pa.table(
        {
            **_key_columns(kind, [(a, b) for a, b, _, _ in features]),
            "feature_ts": _ts([None if t is None else t / 1e6 for _, _, t, _ in features], tz),
            "x__v1": pa.array([x for *_, x in features], pa.float64()),
            "n__v1": pa.array([len(features) - i for i in range(len(features))], pa.int32()),
        }
    )
    keys = ["k", "j"] if kind == "composite" else ["k"]
    expected, got = _both(ev, ft, keys, ["x__v1", "n__v1"], ttl_s)
    assert got.schema == expected.schema
    assert got.equals(expected)


def test_ties_and_ttl_edges() -> None:
    """An event at a row's exact time takes it; a row exactly TTL old is kept, a microsecond
    older is not; a null key or time never matches; a key absent from the features is null."""
    ev = pa.table(
        {
            "event_id": pa.array([0, 1, 2, 3, 4, 5], pa.int64()),
            "k": pa.array([1, 1, 1, None, 1, 9], pa.int64()),
            "ts": pa.array(
                [T0, *(T0 + dt.timedelta(seconds=10) + d for d in (0 * US, US)), T0, None, T0],
                pa.timestamp("us"),
            ),
        }
    )
    ft = pa.table(
        {
            "k": pa.array([1, None], pa.int64()),
            "feature_ts": pa.array([T0, T0], pa.timestamp("us")),
            "x__v1": [1.0, 2.0],
        }
    )
    expected, got = _both(ev, ft, ["k"], ["x__v1"], 10)
    assert got.equals(expected)
    assert got["x__v1"].to_pylist() == [1.0, 1.0, None, None, None, None]
    ages = got["feature_age_s"].to_pylist()
    assert ages[:2] == [0.0, 10.0]
    assert ages[2] == pytest.approx(10.000001)  # DuckDB's epoch difference, in doubles
    assert ages[3:] == [None, None, None]


@pytest.mark.parametrize("side", ["events", "features", "both"])
def test_empty_sides(side: str) -> None:
    ev = pa.table(
        {"event_id": pa.array([0, 1], pa.int64()), "k": ["a", "b"], "ts": _ts([5.0, 6.0])}
    )
    ft = pa.table({"k": ["a"], "feature_ts": _ts([1.0]), "x__v1": pa.array([3], pa.int16())})
    if side in ("events", "both"):
        ev = ev.slice(0, 0)
    if side in ("features", "both"):
        ft = ft.slice(0, 0)
    expected, got = _both(ev, ft, ["k"], ["x__v1"], None)
    assert got.schema == expected.schema
    assert got.equals(expected)


def test_wide_keys_and_times_are_ranked_not_overflowed() -> None:
    """Keys spanning the int64 range and times centuries apart: the composite key would
    overflow, so ids and times are ranked; the join is still DuckDB's."""
    big = 2**62
    ev = pa.table(
        {
            "event_id": pa.array(range(4), pa.int64()),
            "a": pa.array([-big, big, -big, 7], pa.int64()),
            "b": pa.array([big, -big, big, 7], pa.int64()),
            "ts": pa.array(
                [dt.datetime(1, 1, 2), dt.datetime(9999, 1, 1), dt.datetime(2100, 1, 1), T0],
                pa.timestamp("us"),
            ),
        }
    )
    ft = pa.table(
        {
            "a": pa.array([-big, big, 7], pa.int64()),
            "b": pa.array([big, -big, 7], pa.int64()),
            "feature_ts": pa.array(
                [dt.datetime(1800, 1, 1), dt.datetime(1700, 1, 1), T0], pa.timestamp("us")
            ),
            "x__v1": [1.0, 2.0, 3.0],
        }
    )
    expected, got = _both(ev, ft, ["a", "b"], ["x__v1"], None)
    assert got.equals(expected)
    assert got["x__v1"].to_pylist() == [None, 2.0, 1.0, 3.0]


@pytest.mark.parametrize(
    ("event_type", "feature_type", "key_type"),
    [
        (pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.int64()),  # mixed time zones
        (pa.timestamp("ns"), pa.timestamp("ns"), pa.int64()),
        (pa.timestamp("us"), pa.timestamp("us"), pa.float64()),  # NaN = NaN in DuckDB
    ],
)
def test_types_it_does_not_compare_exactly_run_in_duckdb(
    event_type: pa.DataType, feature_type: pa.DataType, key_type: pa.DataType
) -> None:
    ev = pa.table(
        {
            "event_id": pa.array([0, 1], pa.int64()),
            "k": pa.array([1, 2], key_type),
            "ts": pa.array([T0 + dt.timedelta(hours=1), T0], event_type),
        }
    )
    ft = pa.table(
        {"k": pa.array([1], key_type), "feature_ts": pa.array([T0], feature_type), "x__v1": [1.0]}
    )
    assert asof_unsupported(ev.schema, ft.schema, ["k"], "ts") is not None
    con = duckdb.connect()
    con.register("ev", ev)
    con.register("ft", ft)
    ref = pit_join(con, "ev", "ft", "k", ["x__v1"], None, engine="duckdb").read_all()
    got = pit_join(con, "ev", "ft", "k", ["x__v1"], None, engine="arrow").read_all()
    assert got.sort_by("event_id").equals(ref.sort_by("event_id"))
    with pytest.raises(ValueError, match="cannot join these inputs exactly"):
        asof_join(ev, ft, ["k"], ["x__v1"], None)


def test_pit_join_runs_in_arrow_only_in_memory(tmp_path: Path) -> None:
    """An in-memory connection joins in Arrow (events in their order); a spilling one stays
    DuckDB's (its tables live in a file); both give the same rows."""
    ev = pa.table(
        {
            "event_id": pa.array(range(200, 0, -1), pa.int64()),
            "k": pa.array([i % 7 for i in range(200)], pa.int64()),
            "ts": _ts([float(i) for i in range(200)]),
        }
    )
    ft = pa.table(
        {
            "k": pa.array([i % 7 for i in range(50)], pa.int64()),
            "feature_ts": _ts([float(4 * i) for i in range(50)]),
            "x__v1": [float(i) for i in range(50)],
        }
    )
    results = []
    for con in (duckdb.connect(), bounded_connection(tmp_path / "spill", 256)):
        con.register("ev_arrow", ev)
        con.register("ft_arrow", ft)
        con.execute("CREATE TABLE ev AS SELECT * FROM ev_arrow")
        con.execute("CREATE TABLE ft AS SELECT * FROM ft_arrow")
        results.append((in_memory(con), pit_join(con, "ev", "ft", "k", ["x__v1"], 5).read_all()))
        con.close()
    (memory, fast), (spilled, slow) = results
    assert memory and not spilled
    assert fast["event_id"].to_pylist() == ev["event_id"].to_pylist()
    assert fast.equals(slow.sort_by([("event_id", "descending")]))


def test_create_joined_makes_duckdbs_table() -> None:
    """Two sides, kept columns (not nulled past the TTL) and a filtered events relation: the
    table created from the Arrow join has DuckDB's columns, types and rows."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE e AS SELECT i AS id, 'u' || (i % 5) AS u, i % 3 AS p, "
        "TIMESTAMP '2026-01-01' + to_seconds(i * 7) AS ts, i % 4 <> 0 AS ok FROM range(300) t(i)"
    )
    con.execute(
        "CREATE TABLE fu AS SELECT 'u' || (i % 5) AS u, TIMESTAMP '2026-01-01' + "
        "to_seconds(i * 11) AS feature_ts, i * 1.5 AS a__v1, 'c' || i AS kept FROM range(150) t(i)"
    )
    con.execute(
        "CREATE TABLE fp AS SELECT i % 3 AS p, TIMESTAMP '2026-01-01' + to_seconds(i * 13) "
        "AS feature_ts, i::INTEGER AS b__v1 FROM range(90) t(i)"
    )
    sql = (
        "SELECT e.id, e.u, e.p, e.ts, v0.kept, CASE WHEN epoch(e.ts) - epoch(v0.feature_ts) <= 30 "
        "THEN v0.a__v1 END AS a__v1, epoch(e.ts) - epoch(v0.feature_ts) AS u_age, "
        "v1.b__v1, epoch(e.ts) - epoch(v1.feature_ts) AS p_age FROM e "
        "ASOF LEFT JOIN fu v0 ON e.u = v0.u AND e.ts >= v0.feature_ts "
        "ASOF LEFT JOIN fp v1 ON e.p = v1.p AND e.ts >= v1.feature_ts WHERE e.ok"
    )
    sides = [
        AsofSide("fu", ("u",), ("a__v1",), 30, "u_age", ("kept",)),
        AsofSide("fp", ("p",), ("b__v1",), None, "p_age"),
    ]
    events = "(SELECT id, u, p, ts FROM e WHERE ok)"
    assert create_joined(con, "rows", sql, events, sides, "ts")
    got = con.sql("SELECT * FROM rows ORDER BY id")
    expected = con.sql(f"SELECT * FROM ({sql}) ORDER BY id")
    assert got.types == expected.types
    assert got.fetchall() == expected.fetchall()
    # a side whose key has another type than the events': nothing created, DuckDB's turn
    con.execute("CREATE TABLE fp2 AS SELECT p::VARCHAR AS p, feature_ts, b__v1 FROM fp")
    bad = [AsofSide("fp2", ("p",), ("b__v1",), None, "p_age")]
    assert not create_joined(con, "rows2", sql, events, bad, "ts")
    assert con.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'rows2'"
    ).fetchall() == [(0,)]


def test_create_joined_after_an_unfinished_result() -> None:
    """A training set's connection is left with an unfinished result (a ``fetchone``): the
    Arrow join still runs (it must not fall back to DuckDB for that)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE e AS SELECT 1 AS k, TIMESTAMP '2026-01-01 01:00' AS ts")
    con.execute("CREATE TABLE f AS SELECT 1 AS k, TIMESTAMP '2026-01-01' AS feature_ts, 2.5 AS x")
    con.execute("SELECT * FROM range(10)").fetchone()
    sql = (
        "SELECT e.*, f.x, epoch(e.ts) - epoch(f.feature_ts) AS age FROM e "
        "ASOF LEFT JOIN f ON e.k = f.k AND e.ts >= f.feature_ts"
    )
    assert create_joined(con, "rows", sql, "e", [AsofSide("f", ("k",), ("x",), None, "age")], "ts")
    assert con.sql("SELECT * FROM rows").fetchall() == con.sql(sql).fetchall()
