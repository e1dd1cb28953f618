"""The gate on the simulator: label faults are blocked with the right reason (slow: trains daily).

Run with ``pytest -m slow tests/orchestrate/test_gate_simulated.py``; the 14-day false-block
study is ``benchmarks/gate_false_blocks.py`` (figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace

import spindle
from spindle.orchestrate import Context

pytestmark = pytest.mark.slow
MODEL = "search_ranker"


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i - 1)).isoformat()


def test_label_flip_days_are_blocked_and_never_served(tmp_path: Path) -> None:
    """Day 5's candidate (trained on healthy days) is judged on flipped labels: the gate refuses
    to judge (``sanity_labels``); data validation keeps flipped days out of later training."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    faults = ("label_flip@5", "label_flip@6", "label_flip@7")
    root = make_workspace(tmp_path / "ws", days=7, faults=faults)
    with Context.open(root) as ctx:
        reports = {i: spindle.run_day(ctx, MODEL, _day(i)) for i in range(1, 8)}
    for i in (2, 3, 4):  # healthy days
        assert reports[i].gate == "pass", reports[i].gate_reasons
    assert reports[5].gate == "block"
    assert any("contradict the ground truth" in r for r in reports[5].gate_reasons)
    for i in (6, 7):  # windows with flipped days: validation refuses to train on them
        assert reports[i].version is None and "ValidationFailed" in (reports[i].error or "")
    assert reports[7].serving_version == reports[4].version  # nothing judged on flips serves
