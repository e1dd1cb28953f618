"""The speed check's training: one window at two parallelisms, scored on one holdout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from train_runs import Stop, stop_after
from train_tables import DEFINITIONS, MODEL, QUICK, rows

from spindle.core import FeatureError
from spindle.train import train_at_two_parallelisms

# bounded staleness (one process) against its half, synchronous: no worker processes
FAST = QUICK.model_copy(update={"max_staleness_steps": 1})
SLOW = FAST.model_copy(update={"max_staleness_steps": 0})


def _train(scratch: Path, progress_for: Any) -> Any:
    """Both runs on 400 training rows and a 120-row holdout, in ``scratch``."""
    return train_at_two_parallelisms(
        rows(400, 0),
        rows(120, 1),
        DEFINITIONS,
        MODEL,
        FAST,
        SLOW,
        scratch,
        progress_for=progress_for,
    )


def test_trains_both_runs_scores_the_holdout_and_removes_its_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    heard: list[str] = []

    def progress_for(name: str, training: object) -> None:
        heard.append(name)

    runs = _train(scratch, progress_for)
    assert heard == ["fast", "slow"]
    for scores in (runs.fast_scores, runs.slow_scores):
        assert scores.dtype == np.float64 and scores.shape == (120,)
        assert np.isfinite(scores).all()
    assert runs.labels.shape == (120,) and runs.groups is None
    assert runs.fast.examples == runs.slow.examples == 400
    assert not scratch.exists()


def test_a_run_that_fails_midway_still_removes_the_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    seen: list[str] = []

    def progress_for(name: str, training: object) -> Callable[[int, int], None] | None:
        if name == "fast":
            return None
        crash = stop_after(3)

        def on_step(done: int, total: int) -> None:
            seen.extend(sorted(p.name for p in scratch.iterdir()))
            crash(done, total)

        return on_step

    with pytest.raises(Stop):  # the slow run dies at its third step, as a crash would
        _train(scratch, progress_for)
    assert "fast" in seen  # the first run's model was there when the second failed
    assert not scratch.exists()


def test_a_holdout_without_a_feature_is_refused_and_leaves_no_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "fast-ckpt").mkdir(parents=True)  # a killed check's leftovers
    holdout = rows(120, 1).drop_columns([DEFINITIONS[1].column])
    with pytest.raises(FeatureError, match=DEFINITIONS[1].column):
        train_at_two_parallelisms(rows(400, 0), holdout, DEFINITIONS, MODEL, FAST, SLOW, scratch)
    assert not scratch.exists()
