"""The command line: init, simulate, ingest, validate with --json, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

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
