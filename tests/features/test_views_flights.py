"""A feature view of a second example: flights routes, keyed by two columns (origin, dest),
with a trailing 7-day window over an event source and a dimension joined in. `spindle ingest`
computes it and materialises it in the online store, keyed by both columns, with no code
naming flights anywhere but the workspace's YAML."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import open_dataset
from spindle.features import FeatureRegistry, OnlineStore

DAYS = ["2013-01-05", "2013-01-06", "2013-01-07"]
ROUTE = """group: route
owner: ops@example
entity: {name: route, keys: [origin, dest]}
sources: [flights, airports]
ttl: 2d
view:
  sql: |
    SELECT f.origin, f.dest, count(*) AS flights_7d, avg(f.arr_delay) AS arr_delay_7d,
           any_value(a.name) AS dest_name
    FROM flights f LEFT JOIN (SELECT DISTINCT faa, name FROM airports) a ON a.faa = f.dest
    WHERE f.time_hour >= cutoff - INTERVAL 7 DAY
    GROUP BY f.origin, f.dest
  keep: [dest_name]
features:
  - {name: flights_7d, version: 1, dtype: int64, sql: flights_7d, encoding: {kind: numeric}}
  - {name: arr_delay_7d, version: 1, dtype: float64, sql: arr_delay_7d, encoding: {kind: numeric}}
"""


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("flights") / "ws"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(ws), "--example", "flights"]).exit_code == 0
    (ws / "features").mkdir(exist_ok=True)
    (ws / "features" / "route.yaml").write_text(ROUTE)
    result = runner.invoke(app, ["ingest", "--since", DAYS[0], "--until", DAYS[-1], "-w", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


def test_route_view_counts_the_trailing_week_before_each_cutoff(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    raw = open_dataset(tables / "raw" / "flights").to_table().to_pandas()
    table = open_dataset(tables / "features" / "route").to_table().to_pandas()
    # nothing was ingested before the first day, so its 00:00 cutoff sees no flight at all
    assert sorted(table["date"].unique()) == DAYS[1:]
    for day in DAYS[1:]:
        cutoff = pd.Timestamp(day)
        week = raw[
            (raw["time_hour"] >= cutoff - pd.Timedelta(days=7)) & (raw["time_hour"] < cutoff)
        ]
        expected = week.groupby(["origin", "dest"]).size()
        got = table[table["date"] == day].set_index(["origin", "dest"])["route__flights_7d__v1"]
        assert len(got) == len(expected) > 50
        assert (got.sort_index() == expected.sort_index()).all(), day
    first = table[table["date"] == DAYS[0]]["route__flights_7d__v1"].sum()
    assert first == (raw["time_hour"] < pd.Timestamp(DAYS[0])).sum()  # nothing later


def test_route_rows_are_in_the_online_store_by_both_keys(flights: Path) -> None:
    tables = flights / ".spindle" / "tables"
    registry = FeatureRegistry.load(flights / "features")
    assert registry.views()["route"].keys == ("origin", "dest")
    last = open_dataset(tables / "features" / "route").to_table().to_pandas()
    last = last[last["date"] == DAYS[-1]].set_index(["origin", "dest"])
    store = OnlineStore(flights / ".spindle" / "online.db")
    try:
        assert store.watermark("route") == DAYS[-1]
        row = store.get("route", ("JFK", "LAX"))
        assert row is not None
        assert row["route__flights_7d__v1"] == last.loc[("JFK", "LAX"), "route__flights_7d__v1"]
        assert row["dest_name"] == "Los Angeles Intl"
        rows = store.rows("route", [("EWR", "NOWHERE"), ("LGA", "ATL"), ("JFK", "LAX")])
        assert list(zip(rows["origin"].to_pylist(), rows["dest"].to_pylist(), strict=True)) == [
            ("LGA", "ATL"),
            ("JFK", "LAX"),
        ]
        held = store.backend.read("route")
        assert held is not None and held.num_rows == len(last)
    finally:
        store.close()
