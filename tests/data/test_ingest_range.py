"""`spindle ingest` over a range: every day tried and reported, no raw data, future days, undo."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from prometheus_client import CollectorRegistry, generate_latest
from tests.conftest import make_workspace
from typer.testing import CliRunner

from spindle import Context, PipelineCollector
from spindle.cli import app
from spindle.core import open_dataset
from spindle.orchestrate import day_verdict, freshness_report

runner = CliRunner()


@pytest.fixture(scope="module")
def raw_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated days, nothing ingested (tests copy it before writing)."""
    return make_workspace(tmp_path_factory.mktemp("raw") / "ws", days=3, scale=0.1)


@pytest.fixture
def ws(raw_ws: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(raw_ws, target, symlinks=True)
    return target


def _ingest(ws: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["ingest", *args, "-w", str(ws)])
    return result.exit_code, result.stdout, result.stderr


def _rows(ws: Path, table: str, day: str, version: int | None = None) -> int:
    dataset = open_dataset(ws / ".spindle" / "tables" / table, version)
    return dataset.count_rows(filter=pc.field("date") == day)


def _rows_metric(ctx: Context) -> set[str]:
    """The days ``spindle_ingested_rows`` reports."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(ctx.store))
    text = generate_latest(registry).decode()
    return set(re.findall(r'spindle_ingested_rows\{date="([^"]+)"\}', text))


def test_a_range_tries_every_day_and_reports_each(ws: Path) -> None:
    for file in (ws / "raw" / "searches" / "date=2026-01-02").glob("*.parquet"):
        file.write_bytes(b"PAR1 this is not parquet" * 40)  # an unreadable export
    code, out, err = _ingest(ws, "--since", "2026-01-01", "--until", "2026-01-03", "--json")
    assert code == 1, err
    days = {d["date"]: d for d in json.loads(out)}
    assert list(days) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert days["2026-01-01"]["status"] == days["2026-01-03"]["status"] == "ingested"
    assert days["2026-01-03"]["rows_ingested"] > 0  # the day after the broken one was loaded
    assert days["2026-01-02"]["status"] == "failed"
    error = days["2026-01-02"]["error"]
    assert "searches" in error and "cannot be read as parquet" in error, error
    assert "nothing of the day was written" in error
    assert "1 of 3 day(s) not ingested: 2026-01-02" in err
    with Context.open(ws) as ctx:
        failed = ctx.store.runs(step="ingest", status="failed")
        assert [r.date for r in failed] == ["2026-01-02"]
        assert day_verdict(ctx, "2026-01-02") is None


def test_a_day_without_raw_data_says_so_and_records_nothing(ws: Path) -> None:
    code, out, _ = _ingest(ws, "--date", "2026-01-09", "--json")
    assert code == 1
    [day] = json.loads(out)
    assert day["status"] == "failed" and "no raw data for 2026-01-09" in day["error"]
    # where each declared source was looked for
    assert "searches at raw/searches/date={date}/*.parquet" in day["error"]
    assert "fx_rates at raw/fx_rates/date={date}/*.parquet" in day["error"]
    with Context.open(ws) as ctx:
        assert not [r for r in ctx.store.runs(limit=None) if r.date == "2026-01-09"]
        assert not ctx.store.find_artifacts("ingest", date="2026-01-09")


def test_a_future_day_is_refused_unless_allowed(ws: Path) -> None:
    code, out, _ = _ingest(ws, "--date", "2099-01-01", "--json")
    assert code == 1
    assert "is in the future" in json.loads(out)[0]["error"]
    code, out, _ = _ingest(ws, "--date", "2099-01-01", "--allow-future", "--json")
    assert code == 1  # allowed, and then there is no raw data for it
    assert "no raw data for 2099-01-01" in json.loads(out)[0]["error"]


def test_a_first_day_without_events_validates_without_crashing(ws: Path) -> None:
    shutil.rmtree(ws / "raw" / "impressions" / "date=2026-01-01")
    code, out, err = _ingest(ws, "--since", "2026-01-01", "--until", "2026-01-02", "--json")
    assert code == 0, err
    days = json.loads(out)
    assert days[0]["missing_sources"] == ["impressions"] and days[0]["validation"] == "fail"
    assert days[1]["status"] == "ingested" and days[1]["validation"] in ("pass", "warn")
    result = runner.invoke(app, ["validate", "--date", "2026-01-01", "-w", str(ws)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_undo_removes_the_day_keeps_history_and_allows_a_real_reingest(ws: Path) -> None:
    assert _ingest(ws, "--since", "2026-01-01", "--until", "2026-01-03")[0] == 0
    rows_before = _rows(ws, "raw/searches", "2026-01-03")
    with Context.open(ws) as ctx:
        now_before = freshness_report(ctx)[0]["now"]
    assert rows_before > 0
    code, out, err = _ingest(ws, "--undo", "--date", "2026-01-03", "--reason", "bad export")
    assert code == 0, err
    assert "undid the ingest of 2026-01-03" in out
    assert _rows(ws, "raw/searches", "2026-01-03") == 0
    assert _rows(ws, "features/user", "2026-01-03") == 0
    assert _rows(ws, "raw/searches", "2026-01-02") > 0  # other days untouched
    # Delta time travel still reads the removed rows at the version before the undo
    latest = DeltaTable(str(ws / ".spindle/tables/raw/searches")).version()
    assert _rows(ws, "raw/searches", "2026-01-03", latest - 1) == rows_before
    with Context.open(ws) as ctx:
        assert day_verdict(ctx, "2026-01-03") is None  # no longer ingested
        undo = ctx.store.runs(step="ingest_undo", status="succeeded")
        assert [r.date for r in undo] == ["2026-01-03"] and undo[0].params["reason"] == "bad export"
        assert now_before == "2026-01-04T00:00:00"
        assert _rows_metric(ctx) == {"2026-01-01", "2026-01-02"}  # the undone day is not shown
        assert freshness_report(ctx)[0]["now"] == "2026-01-03T00:00:00"  # day 3 is no data now
    again = _ingest(ws, "--undo", "--date", "2026-01-03")
    assert again[0] == 1 and "undone already" in again[2]
    validated = runner.invoke(app, ["validate", "--date", "2026-01-03", "-w", str(ws)])
    assert validated.exit_code == 1 and "had its ingest undone" in validated.stderr
    code, out, _ = _ingest(ws, "--date", "2026-01-03", "--json")
    assert code == 0
    [day] = json.loads(out)
    assert day["skipped"] is False  # ingested again, not skipped as done
    assert _rows(ws, "raw/searches", "2026-01-03") == rows_before
    with Context.open(ws) as ctx:
        assert day_verdict(ctx, "2026-01-03") in ("pass", "warn")
        assert _rows_metric(ctx) == {"2026-01-01", "2026-01-02", "2026-01-03"}
    assert _ingest(ws, "--undo", "--date", "2026-01-03")[0] == 0  # a re-ingested day undoes again
    assert _rows(ws, "raw/searches", "2026-01-03") == 0


def test_files_no_source_reads_are_said_never_silently_ignored(ws: Path) -> None:
    """An export spindle does not know (a new table, a CSV dropped beside the Parquet) is
    listed as unread with a warning; a day made only of such files is 'no raw data' naming them."""
    (ws / "raw" / "orders").mkdir()
    (ws / "raw" / "orders" / "2026-01-01.csv").write_text("order_id,amount\no1,3.5\n")
    (ws / "raw" / "searches" / "date=2026-01-01" / "extra.csv").write_text("a\n1\n")
    code, out, err = _ingest(ws, "--date", "2026-01-01", "--json")
    assert code == 0, err
    (day,) = json.loads(out)
    assert day["unread_files"] == ["orders/2026-01-01.csv", "searches/date=2026-01-01/extra.csv"]
    code, _, err = _ingest(ws, "--date", "2026-01-02")
    assert code == 0 and "not read" not in err  # a day with only known files: no warning
    code, _, err = _ingest(ws, "--date", "2026-01-01")
    assert "warning:" in err and "orders/2026-01-01.csv" in " ".join(err.split())
    (ws / "raw" / "orders" / "2026-01-05.csv").write_text("order_id,amount\no2,1.0\n")
    code, out, err = _ingest(ws, "--date", "2026-01-05", "--allow-future", "--json")
    assert code == 1, err
    (day,) = json.loads(out)
    assert "spindle does not read: orders/2026-01-05.csv" in day["error"]
    with Context.open(ws) as ctx:  # nothing recorded for the day nobody could read
        assert not [r for r in ctx.store.runs(step="ingest") if r.date == "2026-01-05"]
