"""The speed check's verdict for every task (evaluate/_speed.py)."""

from __future__ import annotations

import numpy as np

from spindle.evaluate import speed_verdict

RNG = np.random.default_rng(9)


def test_regression_a_better_slow_run_means_training_too_fast() -> None:
    y = RNG.normal(size=2000)
    slow, fast = y + RNG.normal(scale=0.1, size=2000), y + RNG.normal(scale=1.0, size=2000)
    verdict = speed_verdict("regression", "rmse", y, fast, slow, (4, 2))
    assert verdict.verdict == "training too fast"
    assert verdict.interval.upper < 0  # rmse: lower is better, slow − fast below zero
    assert "rmse at parallelism 2" in verdict.reason and "significantly better" in verdict.reason


def test_multiclass_runs_that_agree_are_ok() -> None:
    y = RNG.integers(0, 3, size=1500)
    logits = np.eye(3)[y] * 2 + RNG.normal(size=(1500, 3))
    verdict = speed_verdict("multiclass", "accuracy", y, logits, logits.copy(), (2, 1))
    assert verdict.verdict == "ok" and verdict.interval.estimate == 0


def test_a_collapsed_fast_run_is_too_fast_whatever_the_interval() -> None:
    y = np.array([0.0, 1.0] * 200)
    verdict = speed_verdict("binary", "log_loss", y, np.zeros(400), np.zeros(400) + 1e-9, (2, 1))
    assert verdict.verdict == "training too fast" and "collapsed" in verdict.reason
