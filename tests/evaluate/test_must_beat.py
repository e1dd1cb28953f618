"""evaluation.must_beat: the candidate must beat a named baseline beyond the bootstrap noise."""

from __future__ import annotations

import numpy as np

from spindle.core import EvaluationConfig
from spindle.evaluate import SystemScores, evaluate_scores

RNG = np.random.default_rng(4)
N = 4000
TRUTH = RNG.normal(size=N)
LABELS = (TRUTH + RNG.normal(size=N) > 0.8).astype(np.float64)
RATE = TRUTH + RNG.normal(scale=2.0, size=N)  # a weak heuristic of the same signal


def _must_beat(candidate: np.ndarray, names: list[str], production: bool = False):  # type: ignore[no-untyped-def]
    systems = [SystemScores("candidate", candidate), SystemScores("rate", RATE, logits=False)]
    if production:
        systems.append(SystemScores("production", candidate + RNG.normal(scale=0.01, size=N)))
    config = EvaluationConfig(metric="auc", must_beat=names, max_calibration_error=None)
    report = evaluate_scores(
        "binary", LABELS, None, systems, config, baseline="production" if production else None
    )
    return report, [r for r in report.reasons if r.check == "must_beat"]


def test_a_clearly_better_model_beats_the_baseline() -> None:
    report, (reason,) = _must_beat(TRUTH + RNG.normal(scale=0.3, size=N), ["rate"])
    assert reason.passed and reason.interval is not None and reason.interval[0] > 0
    assert "candidate beats rate on auc" in reason.message
    assert report.decision == "pass"


def test_a_model_level_with_the_baseline_is_blocked() -> None:
    report, (reason,) = _must_beat(RATE + RNG.normal(scale=0.05, size=N), ["rate"])
    assert not reason.passed and reason.interval is not None
    assert reason.interval[0] <= 0 <= reason.interval[1]
    assert "does not significantly beat rate" in reason.message
    assert report.decision == "block"


def test_production_is_nothing_to_beat_before_the_first_version() -> None:
    _, (reason,) = _must_beat(TRUTH, ["production"])
    assert reason.passed and "no production version yet" in reason.message
    _, (tied,) = _must_beat(TRUTH, ["production"], production=True)
    assert not tied.passed  # a copy of production within noise does not beat it
