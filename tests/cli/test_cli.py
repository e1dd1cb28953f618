"""The command line: init, simulate, ingest, validate with --json, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spindle.cli import app

runner = CliRunner()


def test_init_simulate_ingest_validate(tmp_path: Path) -> None:
    ws = tmp_path / "shop"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    result = runner.invoke(
        app, ["simulate", "--days", "2", "--scale", "0.1", "-w", str(ws), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"]["impressions"] > 0
    result = runner.invoke(
        app, ["ingest", "--since", "2026-01-01", "--until", "2026-01-02", "-w", str(ws), "--json"]
    )
    assert result.exit_code == 0, result.output
    days = json.loads(result.stdout)
    assert [d["date"] for d in days] == ["2026-01-01", "2026-01-02"]
    assert all(d["validation"] in ("pass", "warn") for d in days)  # ingest validates too
    result = runner.invoke(app, ["validate", "--date", "2026-01-02", "-w", str(ws), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verdict"] in ("pass", "warn")


def test_errors_are_clear_and_exit_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "-w", str(tmp_path)])
    assert result.exit_code == 1
    assert "spindle init" in result.output and "Traceback" not in result.output
    ws = tmp_path / "shop"
    runner.invoke(app, ["init", str(ws)])
    again = runner.invoke(app, ["init", str(ws)])
    assert again.exit_code == 1 and "exists already" in again.output
    bad = runner.invoke(
        app,
        [
            "train",
            "search_ranker",
            "--date",
            "2026-01-02",
            "--set",
            "training.epochs=0",
            "-w",
            str(ws),
        ],
    )
    assert bad.exit_code == 1 and "training.epochs" in bad.output


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised workspace with two simulated days, nothing ingested."""
    ws = tmp_path_factory.mktemp("cli") / "shop"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    result = runner.invoke(app, ["simulate", "--days", "2", "--scale", "0.1", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["validate", "--date", "2026-13-01"], "--date '2026-13-01' is not a day"),
        (["ingest", "--since", "2026-01-01", "--until", "2026-1-3"], "--until '2026-1-3'"),
        (["ingest", "--date", "2026-02-30"], "day is out of range for month"),
        (["run", "search_ranker", "--date", "20260101"], "expected YYYY-MM-DD"),
        (["train", "search_ranker", "--date", "2026-02-30"], "--date '2026-02-30'"),
        (["evaluate", "search_ranker", "--version", "1", "--date", "yesterday"], "--date"),
        (["run-all", "--date", "2026-00-10"], "--date '2026-00-10'"),
        (["catch-up", "--since", "2026-01-32"], "--since '2026-01-32'"),
        (["status", "--now", "noon"], "--now 'noon' is not a time"),
        (["simulate", "--days", "1", "--start", "2026-1-1"], "--start '2026-1-1' is not a day"),
        (["push", "search_ranker", "--version", "9"], "no model 'search_ranker'"),
        (
            ["train", "search_ranker", "--date", "2026-01-02", "--set", "training.epochs=abc"],
            "--set training.epochs=abc: Input should be a valid integer",
        ),
        (["ingest", "--undo", "--date", "2026-01-02"], "2026-01-02 was never ingested"),
        (["validate", "--date", "2026-01-02"], "2026-01-02 was never ingested"),
        (["run-all", "--date", "2026-01-02", "--executor", "spark"], "unknown executor 'spark'"),
    ],
)
def test_bad_input_is_one_clear_line(simulated: Path, args: list[str], says: str) -> None:
    result = runner.invoke(app, [*args, "-w", str(simulated)])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0] and lines[0].startswith("error: ")
    assert "line " not in lines[0]  # an override is named, never a line of the YAML file
