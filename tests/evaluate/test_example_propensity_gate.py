"""The example's binary model ships: purchase_propensity passes its gate on healthy simulated days.

Its calibration is judged against production's own ECE (not a constant), and ``models show``
names the failed checks of a blocked version. ``e2e``: it runs the daily loop for four days
(~30 s here, scale 0.3): ``pytest -m e2e tests/evaluate/test_example_propensity_gate.py``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.orchestrate import Context

MODEL = "purchase_propensity"


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i - 1)).isoformat()


@pytest.mark.e2e
def test_purchase_propensity_ships_on_healthy_days(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=5)
    with Context.open(root) as ctx:
        spindle.ingest(ctx, _day(1))
        spindle.validate(ctx, _day(1))
        reports = {i: spindle.run_day(ctx, MODEL, _day(i)) for i in range(2, 6)}
        for i, report in reports.items():
            assert report.gate == "pass", (i, report.gate_reasons)
            assert report.serving_version == report.version
        last = reports[5].version
        assert last is not None
        _, details = spindle.evaluate_version(ctx, MODEL, last, _day(5))
        (calibration,) = [r for r in details["reasons"] if r["check"] == "calibration"]
        # judged against the version that served when day 5 began, with an interval
        assert calibration["baseline"] is not None and calibration["interval"] is not None
        assert "vs production" in calibration["message"]

        strict, _ = spindle.evaluate_version(
            ctx, MODEL, last, _day(5), overrides=["evaluation.min_metric=0.99"]
        )
        assert strict.decision == "block"
        view = spindle.model_report(ctx, MODEL)
    (entry,) = [v for v in view["versions"] if v["version"] == last]
    assert entry["verdict"] == "block"
    assert entry["block_reasons"] == list(strict.reasons)
    assert any("fails the required at least 0.99" in r for r in entry["block_reasons"])
    assert all(not v["block_reasons"] for v in view["versions"] if v["version"] != last)

    shown = CliRunner().invoke(app, ["models", "show", MODEL, "-w", str(root)])
    assert shown.exit_code == 0, shown.output
    assert f"version {last} blocked ({_day(5)}):" in shown.output
    assert "fails the required at least 0.99" in shown.output
