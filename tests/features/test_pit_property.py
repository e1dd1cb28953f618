"""The point-in-time join against brute force on random data (property-based)."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from hypothesis import given, settings
from hypothesis import strategies as st

from spindle.core import ModelConfig, SourceDeclaration
from spindle.features import EncodingSpec, FeatureDefinition, _asof, build_rows, pit_join

T0 = dt.datetime(2026, 1, 1)
times = st.integers(min_value=0, max_value=50)
events_st = st.lists(st.tuples(st.integers(0, 3), times), min_size=1, max_size=40)
features_st = st.lists(
    st.tuples(st.integers(0, 3), times, st.floats(-5, 5), st.floats(-5, 5)),
    max_size=30,
    unique_by=lambda r: (r[0], r[1]),
)


def _brute(
    events: list[tuple[int, int]], features: list[tuple[int, int, float, float]], ttl: int
) -> list[tuple[int, float | None]]:
    out = []
    for i, (key, t) in enumerate(events):
        past = [f for f in features if f[0] == key and f[1] <= t]
        best = max(past, key=lambda f: f[1]) if past else None
        value = best[3] if best is not None and t - best[1] <= ttl else None
        out.append((i, value))
    return out


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
@settings(max_examples=40, deadline=None)
@given(events=events_st, features=features_st, ttl=st.integers(0, 60))
def test_pit_join_matches_brute_force(
    engine: str,
    events: list[tuple[int, int]],
    features: list[tuple[int, int, float, float]],
    ttl: int,
) -> None:
    ev = pa.table(
        {
            "event_id": list(range(len(events))),
            "entity": [k for k, _ in events],
            "ts": pa.array([T0 + dt.timedelta(seconds=t) for _, t in events], pa.timestamp("us")),
        }
    )
    ft = pa.table(
        {
            "entity": pa.array([f[0] for f in features], pa.int64()),
            "feature_ts": pa.array(
                [T0 + dt.timedelta(seconds=f[1]) for f in features], pa.timestamp("us")
            ),
            "x__v1": pa.array([f[2] for f in features], pa.float64()),
            "x__v2": pa.array([f[3] for f in features], pa.float64()),
        }
    )
    con = duckdb.connect()
    con.register("events", ev)
    con.register("features", ft)
    got = pit_join(con, "events", "features", "entity", ["x__v2"], ttl, engine=engine).read_all()
    con.close()
    assert got.num_rows == len(events)  # every event kept, none duplicated
    assert "x__v1" not in got.column_names  # only the pinned version
    rows = sorted(zip(got["event_id"].to_pylist(), got["x__v2"].to_pylist(), strict=True))
    assert rows == _brute(events, features, ttl)


# --- training sets of random declared examples and views (build_rows end to end) -------------

DAY0 = dt.datetime(2026, 3, 1)
HOUR = 3600
# two keys on an hourly grid, dense enough that a feature row an hour after an example (a
# one-hour leak) is drawn in most examples
event_rows = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 5 * 24 - 1), st.booleans()),
    min_size=20,
    max_size=60,
)
feature_rows = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 5 * 24), st.floats(-5, 5)),
    min_size=40,
    max_size=80,
    unique_by=lambda r: (r[0], r[1]),
)


def _events_source() -> SourceDeclaration:
    return SourceDeclaration.model_validate(
        {
            "name": "events",
            "location": "raw/events/date={date}/*.parquet",
            "format": "parquet",
            "event_time": {"column": "ts"},
            "columns": {"id": "int64", "key": "string", "ts": "timestamp", "y": "bool"},
            "provenance": {"origin": "test"},
        }
    )


def _view(ttl_s: int) -> FeatureDefinition:
    return FeatureDefinition(
        group="thing",
        name="x",
        version=1,
        owner="test",
        description="x",
        dtype="float64",
        tags=(),
        sql="x",
        encoding=EncodingSpec(kind="numeric"),
        entity="thing",
        entity_keys=("key",),
        ttl_s=ttl_s,
        view_sql="SELECT key, x FROM events",
    )


def _model(delay_h: int) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "m",
            "owner": "o",
            "team": "t",
            "task": "binary",
            "features": ["thing.x@1"],
            "examples": {
                # asks for every event, and the latest event ever: spindle must hide the future
                "sql": "SELECT id, key, ts, y, (SELECT max(ts) FROM events) AS seen FROM events",
                "sources": ["events"],
                "event_time": "ts",
                "label": "y",
                "label_delay": f"{delay_h}h",
            },
        }
    )


def _write(
    root: Path, events: list[tuple[int, int, bool]], feats: list[tuple[int, int, float]]
) -> None:
    ts = [DAY0 + dt.timedelta(hours=h) for _, h, _ in events]
    write_deltalake(
        str(root / "raw" / "events"),
        pa.table(
            {
                "id": pa.array(range(len(events)), pa.int64()),
                "key": [f"k{k}" for k, _, _ in events],
                "ts": pa.array(ts, pa.timestamp("us")),
                "y": [y for _, _, y in events],
                "date": [t.date().isoformat() for t in ts],
            }
        ),
        partition_by=["date"],
    )
    write_deltalake(
        str(root / "features" / "thing"),
        pa.table(
            {
                "key": pa.array([f"k{k}" for k, _, _ in feats], pa.string()),
                "thing__x__v1": pa.array([x for _, _, x in feats], pa.float64()),
                "feature_ts": pa.array(
                    [DAY0 + dt.timedelta(hours=h) for _, h, _ in feats], pa.timestamp("us")
                ),
            }
        ),
    )


@pytest.mark.parametrize("engine", ["duckdb", "arrow"])
@settings(max_examples=25, deadline=None)
@given(
    events=event_rows,
    feats=feature_rows,
    ttl_h=st.integers(0, 72),
    delay_h=st.integers(0, 60),
    days=st.sets(st.integers(0, 3), min_size=1),
)
def test_training_set_of_declared_examples_never_leaks(
    engine: str,
    events: list[tuple[int, int, bool]],
    feats: list[tuple[int, int, float]],
    ttl_h: int,
    delay_h: int,
    days: set[int],
) -> None:
    """Random events, feature rows, TTL, label delay and days (gaps included): every example
    of the chosen days with a mature label is kept once, with the value of the latest feature
    row at or before its event time within the TTL, and no source row from after the cutoff is
    visible to the examples SQL."""
    dates = tuple(sorted((DAY0 + dt.timedelta(days=d)).date().isoformat() for d in days))
    cutoff = DAY0 + dt.timedelta(days=max(days) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        tables = Path(tmp) / "tables"
        _write(tables, events, feats)
        default, _asof.ENGINE = _asof.ENGINE, engine  # where training sets join their views
        try:
            rows = build_rows(
                tables,
                _model(delay_h),
                [_view(ttl_h * HOUR)],
                dates,
                sources={"events": _events_source()},
            )
        finally:
            _asof.ENGINE = default
    expected, immature = {}, 0
    for i, (key, hour, _) in enumerate(events):
        ts = DAY0 + dt.timedelta(hours=hour)
        if ts.date().isoformat() not in dates:
            continue
        if ts + dt.timedelta(hours=delay_h) > cutoff:
            immature += 1
            continue
        past = [f for f in feats if f[0] == key and f[1] <= hour]
        best = max(past, key=lambda f: f[1]) if past else None
        fresh = best is not None and hour - best[1] <= ttl_h
        expected[i] = best[2] if fresh and best is not None else None
    table = rows.table
    got = dict(zip(table["id"].to_pylist(), table["thing__x__v1"].to_pylist(), strict=True))
    assert got == expected
    assert table.num_rows == len(expected)  # none lost, none duplicated
    assert rows.immature_examples == immature
    assert all(seen < cutoff for seen in table["seen"].to_pylist())
    ages = [a for a in table["thing_feature_age_s"].to_pylist() if a is not None]
    assert all(a >= 0 for a in ages)  # never a feature row from after the example
    assert table["ts"].to_pylist() == sorted(table["ts"].to_pylist())
