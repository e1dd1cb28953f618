"""The point-in-time join on a composite entity key, a named event-time column and no TTL."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from spindle.features import pit_join


def test_composite_keys_match_on_every_key_and_never_take_a_later_row() -> None:
    day = dt.datetime(2026, 1, 1)
    events = pa.table(
        {
            "a": ["x", "x", "y", "x"],
            "b": [1, 2, 1, 1],
            "happened_at": [day + dt.timedelta(days=d) for d in (1, 1, 1, 30)],
        }
    )
    features = pa.table(
        {
            "a": ["x", "x", "y", "x"],
            "b": [1, 2, 1, 1],
            "feature_ts": [day, day, day + dt.timedelta(days=2), day + dt.timedelta(days=3)],
            "f__v1": [10.0, 20.0, 30.0, 40.0],
        }
    )
    con = duckdb.connect()
    con.register("ev", events)
    con.register("ft", features)
    rows = pit_join(con, "ev", "ft", ["a", "b"], ["f__v1"], None, event_time="happened_at")
    got = rows.read_all().sort_by(
        [("happened_at", "ascending"), ("a", "ascending"), ("b", "ascending")]
    )
    # (x,1)@day1 -> 10; (x,2)@day1 -> 20; (y,1)@day1: its only row is from day 2 -> null;
    # (x,1)@day30 -> the day-3 row, 27 days old, kept since there is no TTL.
    assert got.column("f__v1").to_pylist() == [10.0, 20.0, None, 40.0]
    assert got.column("feature_age_s").to_pylist()[-1] == 27 * 86400
    capped = pit_join(con, "ev", "ft", ["a", "b"], ["f__v1"], 86400, event_time="happened_at")
    assert sorted(capped.read_all().column("f__v1").to_pylist(), key=str) == [
        10.0,
        20.0,
        None,
        None,
    ]
