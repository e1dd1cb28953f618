"""A view run every few hours (``view: {sql, every: 1h}``): the SQL runs as of each hour of the
day, each run seeing only the rows known at its own cutoff, and its rows are feature rows from
that cutoff on.

Checked on the flights example's ``origin_traffic`` (each airport's departures of the last two
hours, as of each hour) and ``carrier_traffic`` (the same per airline and airport): every hour's row equals a hand-written query over the raw flights of
that hour; recomputing a day after later days were ingested gives the same rows (no run reads
its future); a training set joins each departure to the row of its own scheduled hour; the
online store serves the last hour of the day; bad declarations are one clear error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from tests.flights_helpers import delay_rows, ingested_flights, one_view

from spindle.core import ConfigError, FeatureError, Workspace, load_sources, open_dataset
from spindle.features import FeatureRegistry, OnlineStore
from spindle.features._compute import compute_group

DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]
COLUMNS = (
    "origin_traffic__departures_2h__v1",
    "origin_traffic__dep_delay_2h__v1",
    "origin_traffic__late_share_2h__v1",
)

# The view's meaning written out by hand for one cutoff H: the departures that had left in the
# two hours before H, among the flights scheduled before H.
_BY_HAND = """
WITH d AS (
  SELECT origin, dep_delay,
         time_hour + to_minutes(CAST(minute + 1 + greatest(dep_delay, 0) AS BIGINT)) AS left_at
  FROM raw WHERE time_hour < $h AND dep_delay IS NOT NULL
)
SELECT a.origin, count(d.origin), avg(d.dep_delay), avg((d.dep_delay > 15)::DOUBLE)
FROM (SELECT DISTINCT origin FROM raw
      WHERE time_hour < $h AND time_hour >= $h - INTERVAL 7 DAY) a
LEFT JOIN d ON d.origin = a.origin AND d.left_at >= $h - INTERVAL 2 HOUR AND d.left_at < $h
GROUP BY a.origin ORDER BY a.origin
"""


_CONSTANT = "  - {name: x, version: 1, dtype: float64, sql: '1', encoding: {kind: numeric}}\n"
_LAT = "  - {name: x, version: 1, dtype: float64, sql: lat, encoding: {kind: numeric}}\n"


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ingested_flights(tmp_path_factory.mktemp("flights-every"), DAYS)


def _registry(ws: Path) -> FeatureRegistry:
    return FeatureRegistry.load(ws / "features", load_sources(ws))


def test_each_hour_is_the_sql_as_of_that_hour(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    view = open_dataset(tables / "features" / "origin_traffic").to_table()
    con = duckdb.connect()
    con.register("raw", open_dataset(tables / "raw" / "flights").to_table())
    con.register("view", view)
    checked = 0
    for day in DAYS[1:]:
        for hour in range(24):
            at = dt.datetime.fromisoformat(day) + dt.timedelta(hours=hour)
            expected = con.execute(_BY_HAND, {"h": at}).fetchall()
            got = con.execute(
                f"SELECT origin, {', '.join(COLUMNS)} FROM view WHERE feature_ts = $h "
                "ORDER BY origin",
                {"h": at},
            ).fetchall()
            assert got == expected, at
            checked += sum(1 for row in got if row[1])
    assert checked > 100  # most hours have departures at each of the three airports
    days = con.execute("SELECT date, count(DISTINCT feature_ts) FROM view GROUP BY 1").fetchall()
    assert sorted(days)[1:] == [(DAYS[1], 24), (DAYS[2], 24)]


def test_the_airlines_hours_add_up_to_the_airports(flights: Path) -> None:
    """carrier_traffic is the same SQL per (carrier, origin), a composite key: at every hour
    its departures summed over the airlines are the airport's."""
    tables = flights / ".spindle" / "tables"
    con = duckdb.connect()
    con.register("airport", open_dataset(tables / "features" / "origin_traffic").to_table())
    con.register("airline", open_dataset(tables / "features" / "carrier_traffic").to_table())
    rows = con.execute(
        "SELECT a.origin, a.feature_ts, a.origin_traffic__departures_2h__v1, "
        "sum(c.carrier_traffic__departures_2h__v1) FROM airport a JOIN airline c "
        "ON c.origin = a.origin AND c.feature_ts = a.feature_ts GROUP BY ALL"
    ).fetchall()
    assert len(rows) >= 3 * 24 * 2 and all(r[2] == r[3] for r in rows)  # days 2 and 3 whole
    assert sum(r[2] for r in rows) > 1000


def test_a_day_recomputed_later_is_the_same(flights: Path) -> None:
    """Day 2 was computed when it was ingested; recomputed now that day 3 is in the table too,
    its rows are the same: no hour's run saw a flight scheduled after it."""
    ws = Workspace.load(flights)
    stored = open_dataset(ws.tables_dir / "features" / "origin_traffic").to_table()
    stored = stored.filter(pa.compute.equal(stored.column("date"), DAYS[1])).drop_columns(["date"])
    again = compute_group(ws.tables_dir, _registry(flights), "origin_traffic", DAYS[1])
    assert again.select(stored.column_names).equals(stored)
    assert again.num_rows == 3 * 24


def test_a_departure_joins_the_row_of_its_scheduled_hour(flights: Path) -> None:
    ws = Workspace.load(flights)
    rows = delay_rows(flights, DAYS[1])
    assert rows.num_rows > 200
    con = duckdb.connect()
    con.register("rows", rows)
    con.register("raw", open_dataset(ws.tables_dir / "raw" / "flights").to_table())
    mismatched = 0
    hours = con.execute("SELECT DISTINCT time_hour FROM rows ORDER BY 1").fetchall()
    for (hour,) in hours:
        expected = dict(
            (origin, values) for origin, *values in con.execute(_BY_HAND, {"h": hour}).fetchall()
        )
        for origin, *values in con.execute(
            f"SELECT origin, {', '.join(COLUMNS)} FROM rows WHERE time_hour = $h", {"h": hour}
        ).fetchall():
            mismatched += values != expected[origin]
    assert mismatched == 0 and len(hours) > 5
    ages = rows.column("origin_traffic_feature_age_s").to_pylist()
    assert set(ages) == {0}  # every departure's own scheduled hour, never a later one


def test_the_online_store_serves_the_last_hour_of_the_day(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    view = open_dataset(tables / "features" / "origin_traffic").to_table().to_pandas()
    last = view[view["feature_ts"] == dt.datetime.fromisoformat(DAYS[-1]) + dt.timedelta(hours=23)]
    assert len(last) == 3
    store = OnlineStore(flights / ".spindle" / "online.db")
    try:
        for _, row in last.iterrows():
            served = store.get("origin_traffic", row["origin"])
            assert served is not None
            assert served[COLUMNS[0]] == row[COLUMNS[0]]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        ("  every: 7h\n  sql: SELECT faa FROM airports", "must divide a day"),
        ("  every: 30s\n  sql: SELECT faa FROM airports", "at least a minute apart"),
        ("  every: 1h\n  from: flights", "belongs to a view with `sql`"),
        ("  lookback: 1d\n  from: flights", "belongs to a view with `sql`"),
        ("  lookback: 0s\n  sql: SELECT faa FROM airports", "must be a positive duration"),
    ],
)
def test_a_bad_every_is_one_clear_error(
    flights: Path, tmp_path: Path, view: str, expected: str
) -> None:
    features = one_view(tmp_path / "features", f"{view}\n", _CONSTANT, sources="airports")
    with pytest.raises(ConfigError) as caught:
        FeatureRegistry.load(features, load_sources(flights))
    assert expected in str(caught.value) and "v.yaml" in str(caught.value)


@pytest.mark.parametrize("every", ["", "  every: 6h\n"])
def test_a_run_sees_only_its_lookback(flights: Path, tmp_path: Path, every: str) -> None:
    """``lookback: 1d``: each run's SQL sees the flights of the day before its cutoff and no
    earlier ones (read once per day from the partitions that can hold them); a source
    without an event time (airports) stays whole."""
    features = tmp_path / "features"
    features.mkdir()
    (features / "seen.yaml").write_text(
        "group: seen\nowner: me\nentity: {name: airport, keys: [origin]}\n"
        f"sources: [flights, airports]\nview:\n{every}  lookback: 1d\n  sql: |\n"
        "    SELECT origin, count(*) AS n, min(time_hour) AS first,\n"
        "           (SELECT count(*) FROM airports) AS airports\n"
        "    FROM flights GROUP BY origin\n"
        "features:\n"
        "  - {name: n, version: 1, dtype: int64, sql: n, encoding: {kind: numeric}}\n"
        "  - {name: airports, version: 1, dtype: int64, sql: airports, encoding: {kind: numeric}}\n"
    )
    registry = FeatureRegistry.load(features, load_sources(flights))
    tables = flights / ".spindle" / "tables"
    rows = compute_group(tables, registry, "seen", DAYS[2]).to_pylist()
    con = duckdb.connect()
    con.register("raw", open_dataset(tables / "raw" / "flights").to_table())
    (airports,) = con.execute(
        "SELECT count(*) FROM read_parquet($p)",
        {"p": [str(f) for f in (tables / "raw" / "airports").rglob("*.parquet")]},
    ).fetchone() or (0,)
    assert len(rows) == 3 * (4 if every else 1)
    for row in rows:
        at = row["feature_ts"]
        (expected,) = con.execute(
            "SELECT count(*) FROM raw WHERE origin = $o AND time_hour < $h "
            "AND time_hour >= $h - INTERVAL 1 DAY",
            {"o": row["origin"], "h": at},
        ).fetchone() or (0,)
        assert row["seen__n__v1"] == expected > 0, at
        assert row["seen__airports__v1"] == airports > 1000


def test_a_view_may_not_return_the_cutoff_column(flights: Path, tmp_path: Path) -> None:
    view = "  every: 6h\n  sql: SELECT faa, cutoff AS spindle_cutoff FROM airports\n"
    features = one_view(tmp_path / "features", view, _CONSTANT, sources="airports")
    registry = FeatureRegistry.load(features, load_sources(flights))
    tables = flights / ".spindle" / "tables"
    with pytest.raises(FeatureError, match=r"returns a column 'spindle_cutoff'.*rename it"):
        compute_group(tables, registry, "v", DAYS[1])


def test_how_often_and_how_far_back_a_view_runs_are_part_of_its_fingerprint(
    flights: Path, tmp_path: Path
) -> None:
    prints = {}
    for every in ("", "  every: 1d\n", "  every: 6h\n", "  every: 1h\n", "  lookback: 7d\n"):
        view = f"{every}  sql: SELECT faa, lat FROM airports\n"
        features = one_view(tmp_path / f"f{len(prints)}", view, _LAT, sources="airports")
        registry = FeatureRegistry.load(features, load_sources(flights))
        prints[every.strip()] = registry.definitions["v.x@1"].fingerprint
    assert prints[""] == prints["every: 1d"]  # a daily view, whether said or not
    assert len({prints[""], prints["every: 6h"], prints["every: 1h"], prints["lookback: 7d"]}) == 4
