"""`spindle demo --example flights`: the declared flights days through the whole loop, served.

The interface scripts rely on: ``--json`` prints ``{"days": [{"date", "validation", "gate",
"serving_version", "metrics": {system: {metric: value}}}, ...], "serving": {"requests",
"errors", "version"}}``, the same shape as the shop's demo. The regression model of arrival
minutes (``delay_minutes``, ``demo.models``) runs beside it, reported under ``models``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
DAYS = 3


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("demo") / "fl"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spindle"), "demo", "--example", "flights", "--days", str(DAYS),
         "--dir", str(directory), "--json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def test_the_flights_demo_trains_gates_pushes_and_serves(report: dict[str, Any]) -> None:
    # the interface: these keys, as the shop's demo prints them
    assert {"days", "serving"} <= set(report)
    for day in report["days"]:
        assert {"date", "validation", "gate", "serving_version", "metrics"} <= set(day)
    assert {"requests", "errors", "version"} <= set(report["serving"])
    assert (report["example"], report["model"], report["metric"]) == (
        "flights",
        "delay",
        "auc",
    )
    days = report["days"]
    assert [d["date"] for d in days] == ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert all(d["validation"] in ("pass", "warn") for d in days)
    trained = days[1:]
    assert all(d["error"] is None and d["gate"] in ("pass", "block") for d in trained)
    last = trained[-1]["metrics"]
    # the declared baseline is scored on the same holdout as the candidate, with the task's metrics
    assert {"candidate", "route_delay_rate"} <= set(last)
    assert 0 < last["route_delay_rate"]["auc"] < 1 and 0 < last["candidate"]["auc"] < 1
    serving = report["serving"]
    assert serving["requests"] > 0 and serving["errors"] == 0 and serving["fallbacks"] == 0
    assert serving["version"] == str(days[-1]["serving_version"])
    assert days[-1]["serving_version"] is not None  # a version was pushed and serves


def test_the_arrival_minutes_model_runs_beside_it_and_answers_minutes(
    report: dict[str, Any],
) -> None:
    minutes = report["models"]["delay_minutes"]
    assert minutes["metric"] == "rmse"
    trained = minutes["days"][1:]
    assert [d["date"] for d in minutes["days"]] == [d["date"] for d in report["days"]]
    assert all(d["error"] is None and d["gate"] in ("pass", "block") for d in trained)
    last = trained[-1]["metrics"]
    # both declared baselines are scored, in minutes, on the same holdout as the candidate
    assert {"candidate", "route_mean_delay", "constant_prior"} <= set(last)
    assert 5 < last["constant_prior"]["rmse"] < 200 and 5 < last["candidate"]["rmse"] < 200
    assert minutes["days"][-1]["serving_version"] is not None  # pushed
    serving = minutes["serving"]
    assert serving["requests"] > 0 and serving["errors"] == 0 and serving["fallbacks"] == 0
    assert serving["version"] == str(minutes["days"][-1]["serving_version"])
    # served values are minutes of delay (a standardized output would sit within a few units)
    values = serving["values"]
    assert -30 < values["mean"] < 90 and values["max"] - values["min"] > 10, values
