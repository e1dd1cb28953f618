"""``spindle source infer``: stdout, --out, refusing to overwrite, clear errors."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import load_sources

runner = CliRunner()


def test_source_infer_writes_a_draft_that_loads(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("id,at,amount\n1,2026-01-01T00:00:00,2.5\n2,2026-01-01T01:00:00,3\n")
    result = runner.invoke(
        app, ["source", "infer", str(data), "--name", "orders", "-w", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["name"] == "orders"
    out = tmp_path / "sources/orders.yaml"
    args = [
        "source",
        "infer",
        str(data),
        "--name",
        "orders",
        "--out",
        str(out),
        "-w",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "review" in result.output
    assert load_sources(tmp_path)["orders"].location == "data.csv"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists; choose another --out or pass --force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_source_infer_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["source", "infer", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1
    assert "no such file or folder" in result.output and "Traceback" not in result.output
