"""`spindle demo --example flights`: the declared flights days through the whole loop, served.

The interface scripts rely on: ``--json`` prints ``{"days": [{"date", "validation", "gate",
"serving_version", "metrics": {system: {metric: value}}}, ...], "serving": {"requests",
"errors", "version"}}``, the same shape as the shop's demo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
DAYS = 3


def test_the_flights_demo_trains_gates_pushes_and_serves(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spindle"), "demo", "--example", "flights", "--days", str(DAYS),
         "--dir", str(tmp_path / "fl"), "--json"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
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
