"""Seed replicas: the gate reports the run-to-run spread and lets a regression inside it pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.evaluate.test_evaluate_gate import FOCUSED, Ranking, make_ranking, reason

from spindle.core import EvaluationConfig
from spindle.evaluate import (
    REPLICA_NOISE_FACTOR,
    EvaluationReport,
    ReplicaSpread,
    SystemScores,
    evaluate_scores,
)


def gate_with_replicas(
    data: Ranking, candidate: np.ndarray, production: np.ndarray, replicas: list[np.ndarray]
) -> EvaluationReport:
    names = [f"replica_{i + 1}" for i in range(len(replicas))]
    systems = [SystemScores("candidate", candidate), SystemScores("production", production)]
    systems += [SystemScores(n, s) for n, s in zip(names, replicas, strict=True)]
    return evaluate_scores(
        "ranking",
        data.labels,
        data.groups,
        systems,
        EvaluationConfig.model_validate({"metric": "ndcg@10", "max_regression": 0.01, **FOCUSED}),
        slice_columns={"user__country__v1": data.country},
        replicas=names,
    )


@pytest.fixture(scope="module")
def data() -> Ranking:
    return make_ranking(n_groups=1500, seed=3)


def test_regression_inside_the_replica_spread_does_not_block(data: Ranking) -> None:
    production, candidate = data.model(0.3), data.model(0.9)
    # retrains of this candidate land anywhere from production's quality to much worse
    noisy = gate_with_replicas(data, candidate, production, [data.model(0.3), data.model(1.6)])
    tight = gate_with_replicas(
        data, candidate, production, [candidate + 1e-4 * data.rng.normal(size=candidate.size)]
    )

    spread = reason(noisy, "replica_spread")
    regression = reason(noisy, "regression")
    assert regression.interval is not None and regression.interval[1] < 0  # significant
    assert regression.baseline is not None
    drop = regression.baseline - regression.candidate
    assert 0.01 < drop < spread.threshold  # beyond max_regression, inside 2 x std
    assert regression.passed and "within the tolerance" in regression.message
    assert regression.threshold == pytest.approx(REPLICA_NOISE_FACTOR * spread.candidate)
    assert spread.warning and "widened" in spread.message  # noise > max_regression: flagged
    assert noisy.decision == "pass", [r.line() for r in noisy.failures]

    # the same regression with a tight spread (a retrain reproduces it) blocks
    assert not reason(tight, "regression").passed
    assert "max_regression 0.01: blocked" in reason(tight, "regression").message
    assert tight.decision == "block"


def test_spread_is_reported_overall_and_per_slice(data: Ranking) -> None:
    candidate = data.model(0.5)
    replicas = [data.model(0.5), data.model(0.5)]
    report = gate_with_replicas(data, candidate, data.model(0.5), replicas)

    overall = {s.metric: s for s in report.spread if s.slice is None}
    assert {"ndcg@10", "mrr", "auc", "log_loss"} <= set(overall)
    ndcg = overall["ndcg@10"]
    values = [report.metrics[n]["ndcg@10"] for n in ("candidate", "replica_1", "replica_2")]
    assert ndcg.k == 3 and ndcg.values == pytest.approx(values)
    assert ndcg.std == pytest.approx(float(np.std(values, ddof=1)))
    assert all(math.isfinite(v) for v in overall["log_loss"].values)  # replicas emit logits
    assert (ndcg.low, ndcg.high) == (min(values), max(values))
    sliced = [s for s in report.spread if s.slice is not None]
    assert {s.slice for s in sliced} == set(report.slices)
    assert all(s.metric == "ndcg@10" and s.k == 3 for s in sliced)

    as_json = report.to_dict()["replica_spread"]
    assert as_json[0]["k"] == 3 and as_json[0]["systems"] == ["candidate", "replica_1", "replica_2"]
    assert reason(report, "replica_spread").interval == (ndcg.low, ndcg.high)


def test_no_replicas_no_spread(data: Ranking) -> None:
    production = data.model(0.3)
    report = evaluate_scores(
        "ranking",
        data.labels,
        data.groups,
        [SystemScores("candidate", production), SystemScores("production", production)],
        EvaluationConfig.model_validate({"metric": "ndcg@10", **FOCUSED}),
    )
    assert report.spread == () and report.to_dict()["replica_spread"] == []
    assert not [r for r in report.reasons if r.check == "replica_spread"]


def test_spread_of_one_value_has_no_noise() -> None:
    spread = ReplicaSpread("ndcg@10", None, ("candidate",), (0.5,))
    assert math.isnan(spread.std) and spread.noise == 0.0 and spread.tolerance(0.02) == 0.02


def test_unknown_replica_is_refused(data: Ranking) -> None:
    with pytest.raises(ValueError, match="replica"):
        evaluate_scores(
            "ranking",
            data.labels,
            data.groups,
            [SystemScores("candidate", data.model(0.3))],
            EvaluationConfig(),
            replicas=["replica_1"],
        )
