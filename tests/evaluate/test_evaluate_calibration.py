"""Calibration and score shift are judged against production, with its noise, never a constant."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from spindle.core import EvaluationConfig
from spindle.evaluate import (
    EvaluationReport,
    GateReason,
    SystemScores,
    evaluate_scores,
    expected_calibration_error,
    sigmoid,
)

CONFIG = {"metric": "auc", "max_regression": 0.02, "max_calibration_error": 0.05}


@dataclass
class Shop:
    """Binary holdout: users with a true purchase logit; labels drawn from it."""

    labels: np.ndarray
    users: np.ndarray
    truth: np.ndarray
    rng: np.random.Generator

    def model(self, noise: float = 0.3, bias: float = 0.0) -> np.ndarray:
        """Logits of a model that learnt the truth up to ``noise``, off by ``bias``."""
        return self.truth + bias + self.rng.normal(scale=noise, size=self.truth.size)


def make_shop(n_rows: int = 6000, seed: int = 0) -> Shop:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 1500, n_rows)
    truth = rng.normal(size=n_rows) - 1.0
    labels = (rng.uniform(size=n_rows) < sigmoid(truth)).astype(float)
    return Shop(labels, users, truth, rng)


def gate(
    shop: Shop, candidate: np.ndarray, production: np.ndarray | None, **config: object
) -> EvaluationReport:
    systems = [SystemScores("candidate", candidate)]
    if production is not None:
        systems.append(SystemScores("production", production))
    return evaluate_scores(
        "binary",
        shop.labels,
        shop.users,
        systems,
        EvaluationConfig.model_validate({**CONFIG, **config}),
    )


def reason(report: EvaluationReport, check: str) -> GateReason:
    (found,) = [r for r in report.reasons if r.check == check]
    return found


@pytest.mark.parametrize("seed", range(4))
def test_candidate_as_calibrated_as_production_passes(seed: int) -> None:
    # a retrain of the same quality: its ECE differs from production's by noise only
    shop = make_shop(seed=seed)
    report = gate(shop, shop.model(), shop.model())
    calibration = reason(report, "calibration")
    assert report.decision == "pass", [r.line() for r in report.failures]
    assert calibration.passed and calibration.baseline is not None
    assert calibration.interval is not None
    assert calibration.interval[0] < calibration.interval[1]
    assert "production" in calibration.message


def test_significantly_worse_calibrated_candidate_is_blocked() -> None:
    shop = make_shop()
    production = shop.model()
    inflated = production + 1.2  # same ranking, every probability too high
    report = gate(shop, inflated, production)

    calibration = reason(report, "calibration")
    assert not calibration.passed and report.decision == "block"
    assert [r.check for r in report.failures] == ["calibration"]  # the AUC is unchanged
    assert calibration.candidate == pytest.approx(
        expected_calibration_error(shop.labels, sigmoid(inflated))
    )
    assert calibration.baseline == pytest.approx(
        expected_calibration_error(shop.labels, sigmoid(production))
    )
    assert calibration.interval is not None and calibration.interval[0] > 0.05
    assert "blocked" in calibration.message and "max_calibration_error" in calibration.message
    # the distribution moved a lot too, but a shift alone is evidence, never a block
    shift = reason(report, "score_shift")
    assert shift.passed and shift.level == "warn" and shift.candidate > 1.0


def test_worse_calibration_within_the_margin_passes() -> None:
    shop = make_shop(n_rows=20000, seed=5)
    production = shop.model()
    report = gate(shop, production + 0.25, production)
    calibration = reason(report, "calibration")
    assert calibration.interval is not None and calibration.interval[0] > 0  # significant
    assert calibration.candidate - calibration.baseline < 0.05  # type: ignore[operator]
    assert calibration.passed and "within the tolerance" in calibration.message
    # a tighter margin blocks the same candidate
    tight = gate(shop, production + 0.25, production, max_calibration_error=0.01)
    assert not reason(tight, "calibration").passed


def test_candidate_no_worse_than_a_miscalibrated_production_ships() -> None:
    # the example's case: production itself has an ECE far above 0.05; an equal candidate ships
    shop = make_shop(seed=2)
    production, candidate = shop.model(bias=1.0), shop.model(bias=1.0)
    assert expected_calibration_error(shop.labels, sigmoid(production)) > 0.1
    report = gate(shop, candidate, production)
    assert reason(report, "calibration").passed
    assert report.decision == "pass", [r.line() for r in report.failures]


def test_without_production_calibration_warns_and_never_blocks() -> None:
    shop = make_shop()
    report = gate(shop, shop.model(bias=1.2), None)
    calibration = reason(report, "calibration")
    assert calibration.candidate > 0.05
    assert calibration.passed and calibration.level == "warn"
    assert "no production to compare with" in calibration.message
    assert report.decision == "pass"
    shift = reason(report, "score_shift")
    assert shift.passed and shift.level == "pass"
    assert shift.message == "not checked: no production to compare with"
    # a well calibrated first version: no warning, still said to be uncompared
    healthy = reason(gate(shop, shop.model(), None), "calibration")
    assert healthy.level == "pass" and "no production to compare with" in healthy.message


def test_calibration_does_not_apply_to_a_ranker() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(300), 10)
    relevance = rng.normal(size=3000)
    labels = (rng.uniform(size=3000) < sigmoid(2 * relevance - 2)).astype(float)
    production = 2 * relevance - 2 + rng.normal(scale=0.3, size=3000)
    report = evaluate_scores(
        "ranking",
        labels,
        groups,
        [SystemScores("candidate", production + 3.0), SystemScores("production", production)],
        EvaluationConfig(metric="ndcg@10", max_calibration_error=0.05, max_slice_gap=None),
    )
    assert "calibration" not in {r.check for r in report.reasons}
    assert "ece" not in report.metrics["candidate"]
    assert report.decision == "pass", [r.line() for r in report.failures]
    assert reason(report, "score_shift").level == "warn"


def test_score_shift_warns_only_beyond_productions_own_noise() -> None:
    # on a small holdout, production against a resample of itself already moves the PSI by
    # more than a tight bound: a healthy retrain is within that noise, a real shift is not
    shop = make_shop(n_rows=300, seed=7)
    production = shop.model()
    healthy = reason(gate(shop, shop.model(), production, max_score_psi=0.001), "score_shift")
    assert healthy.level == "pass"
    assert healthy.threshold is not None and healthy.threshold > 0.001  # the noise, not the bound
    assert "own PSI noise" in healthy.message
    shifted = reason(gate(shop, production + 2.0, production, max_score_psi=0.001), "score_shift")
    assert shifted.level == "warn" and shifted.candidate > shifted.threshold  # type: ignore[operator]
