"""The gate on regression and multiclass models, and only the checks that fit each task."""

from __future__ import annotations

import numpy as np
import pytest

from spindle.core import ConfigError, DataError, EvaluationConfig
from spindle.evaluate import (
    GATE_METRICS,
    HIGHER_IS_BETTER,
    TASK_METRICS,
    EvaluationReport,
    SystemScores,
    evaluate_scores,
    rmse,
)

FOCUSED = {"max_slice_gap": None, "max_regression": 0.02}


def _config(metric: str, **extra: object) -> EvaluationConfig:
    return EvaluationConfig.model_validate(FOCUSED | extra | {"metric": metric})


def _checks(report: EvaluationReport) -> set[str]:
    return {r.check for r in report.reasons}


def _regression(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 800, n)
    truth = rng.normal(size=n) * 2.0 + 10.0
    labels = truth + rng.normal(size=n)
    return labels, truth, users


def _regression_gate(
    candidate: np.ndarray, production: np.ndarray, **extra: object
) -> EvaluationReport:
    labels, _, users = _regression()
    systems = [SystemScores("candidate", candidate), SystemScores("production", production)]
    return evaluate_scores("regression", labels, users, systems, _config("rmse", **extra))


def test_regression_blocks_a_clearly_worse_model_and_passes_retrain_noise() -> None:
    labels, truth, _ = _regression()
    rng = np.random.default_rng(1)
    production = truth + rng.normal(scale=0.3, size=truth.size)
    worse_scores = truth + rng.normal(scale=1.5, size=truth.size)
    worse = _regression_gate(worse_scores, production)
    assert worse.decision == "block"
    regression = next(r for r in worse.reasons if r.check == "regression")
    assert regression.metric == "rmse" and not regression.passed
    assert regression.candidate == pytest.approx(rmse(labels, worse_scores))
    assert regression.baseline == pytest.approx(rmse(labels, production))
    retrain = _regression_gate(truth + rng.normal(scale=0.3, size=truth.size), production)
    assert retrain.decision == "pass", [r.line() for r in retrain.failures]
    assert set(retrain.metrics["candidate"]) == {"rmse", "mae", "r2"}


def test_regression_gets_no_calibration_or_label_check() -> None:
    _, truth, _ = _regression()
    report = _regression_gate(truth + 0.1, truth - 0.1, max_calibration_error=0.05)
    assert "calibration" not in _checks(report)
    assert "sanity_labels" not in _checks(report)
    assert "score_shift" in _checks(report)  # one value per row: the PSI fits


def test_regression_metric_must_fit_the_task() -> None:
    labels, truth, _ = _regression()
    with pytest.raises(
        ConfigError,
        match=r"auc is a metric of binary and ranking models; a "
        r"regression model is judged on one of rmse, mae, r2",
    ):
        evaluate_scores(
            "regression", labels, None, [SystemScores("candidate", truth)], _config("auc")
        )


def _multiclass(seed: int = 0, n: int = 3000, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, k)) * 1.5
    p = np.exp(truth) / np.exp(truth).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return labels, truth


def test_multiclass_gate_on_log_loss_with_logits_softmaxed() -> None:
    labels, truth = _multiclass()
    rng = np.random.default_rng(2)
    production = truth + rng.normal(scale=0.2, size=truth.shape)

    def gate(candidate: np.ndarray, metric: str = "log_loss") -> EvaluationReport:
        systems = [SystemScores("candidate", candidate), SystemScores("production", production)]
        return evaluate_scores("multiclass", labels, None, systems, _config(metric))

    retrain = gate(truth + rng.normal(scale=0.2, size=truth.shape))
    assert retrain.decision == "pass", [r.line() for r in retrain.failures]
    assert set(retrain.metrics["candidate"]) == {"accuracy", "log_loss", "macro_f1"}
    assert {"calibration", "score_shift", "sanity_labels"}.isdisjoint(_checks(retrain))
    shuffled = gate(truth[rng.permutation(truth.shape[0])], metric="macro_f1")
    assert shuffled.decision == "block"
    assert [r.check for r in shuffled.failures] == ["regression"]
    # probabilities (rows summing to 1) are used as they are
    probs = np.exp(truth) / np.exp(truth).sum(axis=1, keepdims=True)
    as_probs = gate(probs)
    assert as_probs.metrics["candidate"]["log_loss"] == pytest.approx(
        gate(truth).metrics["candidate"]["log_loss"]
    )


def test_multiclass_constant_prediction_blocks_and_bad_inputs_are_clear() -> None:
    labels, truth = _multiclass(n=500)
    constant = np.tile([0.4, 0.3, 0.2, 0.1], (500, 1))
    report = evaluate_scores(
        "multiclass", labels, None, [SystemScores("candidate", constant)], _config("accuracy")
    )
    assert "sanity_variance" in [r.check for r in report.failures]
    with pytest.raises(
        DataError, match=r"multiclass labels: row 0 is \d\.5, expected an integer class"
    ):
        evaluate_scores(
            "multiclass",
            labels + 0.5,
            None,
            [SystemScores("candidate", truth)],
            _config("accuracy"),
        )
    with pytest.raises(DataError, match=r"expected \(500, classes\)"):
        evaluate_scores(
            "multiclass",
            labels,
            None,
            [SystemScores("candidate", truth[:, 0])],
            _config("accuracy"),
        )
    with pytest.raises(DataError, match=r"below 3 \(the classes predicted\)|class indices 0\.\.2"):
        evaluate_scores(
            "multiclass",
            labels,
            None,
            [SystemScores("candidate", truth[:, :3])],
            _config("accuracy"),
        )


@pytest.mark.parametrize(
    ("task", "metric"), [("binary", "pr_auc"), ("ranking", "mrr"), ("ranking", "recall@10")]
)
def test_new_metrics_of_binary_and_ranking_are_gated(task: str, metric: str) -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(500), 20)  # longer than k = 10: recall@10 can miss
    truth = rng.normal(size=groups.size)
    labels = (rng.uniform(size=groups.size) < 1 / (1 + np.exp(-(2 * truth - 2)))).astype(float)
    production = truth + rng.normal(scale=0.3, size=truth.size)
    key = groups if task == "ranking" else None
    for candidate, decision in (
        (truth + rng.normal(scale=0.3, size=truth.size), "pass"),
        (rng.normal(size=truth.size), "block"),
    ):
        systems = [SystemScores("candidate", candidate), SystemScores("production", production)]
        report = evaluate_scores(
            task, labels, key, systems, _config(metric, max_calibration_error=None)
        )
        regression = next(r for r in report.reasons if r.check == "regression")
        assert regression.metric == metric and regression.interval is not None
        assert report.decision == decision, [r.line() for r in report.failures]


def test_gate_metrics_cover_every_task_metric_with_its_direction() -> None:
    for task, specs in TASK_METRICS.items():
        for spec in specs:
            assert spec.key(10) in GATE_METRICS[task]
            assert HIGHER_IS_BETTER[spec.key(10)] is spec.higher_is_better


@pytest.mark.parametrize(
    ("task", "metric"),
    [("ranking", "ndcg@10"), ("binary", "auc"), ("binary", "log_loss"), ("regression", "rmse")],
)
def test_the_report_holds_each_systems_own_interval_of_the_gated_metric(
    task: str, metric: str
) -> None:
    """Every system (candidate, production, a baseline) gets its own bootstrap interval of the
    primary metric around its value, narrower on more units: the dashboard's band per line."""
    rng = np.random.default_rng(3)

    def report(n: int) -> EvaluationReport:
        groups = np.repeat(np.arange(n // 10), 10)
        truth = rng.normal(size=n)
        labels = truth + rng.normal(size=n) if task == "regression" else (truth > 0.8) * 1.0
        systems = [
            SystemScores("candidate", truth + rng.normal(scale=0.5, size=n)),
            SystemScores("production", truth + rng.normal(scale=1.0, size=n)),
            SystemScores("popularity", rng.random(n), logits=False),
        ]
        config = _config(metric)
        return evaluate_scores(task, labels, groups, systems, config, reference=None)

    small, large = report(2000), report(20000)
    assert set(small.intervals) == {"candidate", "production", "popularity"}
    for system, (lower, upper) in small.intervals.items():
        assert lower < small.metrics[system][metric] < upper
        wide, narrow = upper - lower, large.intervals[system][1] - large.intervals[system][0]
        assert narrow < wide
    assert small.to_dict()["intervals"]["candidate"] == list(small.intervals["candidate"])
