"""The point-in-time join against brute force on random data (property-based)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from spindle.features import pit_join

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


@settings(max_examples=40, deadline=None)
@given(events=events_st, features=features_st, ttl=st.integers(0, 60))
def test_pit_join_matches_brute_force(
    events: list[tuple[int, int]], features: list[tuple[int, int, float, float]], ttl: int
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
    got = pit_join(con, "events", "features", "entity", ["x__v2"], ttl).read_all()
    con.close()
    assert got.num_rows == len(events)  # every event kept, none duplicated
    assert "x__v1" not in got.column_names  # only the pinned version
    rows = sorted(zip(got["event_id"].to_pylist(), got["x__v2"].to_pylist(), strict=True))
    assert rows == _brute(events, features, ttl)
