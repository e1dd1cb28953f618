"""The gate blocks a bad model, lets noise through, and records its evidence per check and slice."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from spindle.core import ConfigError, DataError, Evaluation, EvaluationConfig
from spindle.evaluate import (
    EvaluationReport,
    GateReason,
    SystemScores,
    evaluate_scores,
    format_report,
    ndcg_at_k,
    population_stability_index,
    sigmoid,
)

COUNTRIES = np.array(["DE", "FR", "US", "GB", "NL"])
FOCUSED = {"max_calibration_error": None, "max_score_psi": None, "max_slice_gap": None}
"""The optional checks off: the synthetic models here are not calibrated, most tests are about
other checks; the tests of the optional checks turn them on."""


@dataclass
class Ranking:
    """A synthetic search holdout with a known true relevance per row."""

    labels: np.ndarray
    groups: np.ndarray
    relevance: np.ndarray
    country: np.ndarray  # per row, constant within a query
    rng: np.random.Generator

    def model(self, noise: float) -> np.ndarray:
        """Logits of a model that learnt the relevance up to ``noise``."""
        return 2 * self.relevance - 2.5 + self.rng.normal(scale=noise, size=self.relevance.size)


def make_ranking(n_groups: int = 400, size: int = 20, seed: int = 0) -> Ranking:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups) * 7 + 1000, size)
    relevance = rng.normal(size=n_groups * size)
    labels = (rng.uniform(size=relevance.size) < sigmoid(2 * relevance - 2.5)).astype(float)
    per_query = rng.choice(5, size=n_groups, p=[0.1, 0.3, 0.3, 0.27, 0.03])
    return Ranking(labels, groups, relevance, COUNTRIES[np.repeat(per_query, size)], rng)


def gate(
    data: Ranking,
    candidate: np.ndarray,
    production: np.ndarray | None,
    **config: object,
) -> EvaluationReport:
    systems = [SystemScores("candidate", candidate)]
    if production is not None:
        systems.append(SystemScores("production", production))
    return evaluate_scores(
        "ranking",
        data.labels,
        data.groups,
        systems,
        EvaluationConfig.model_validate({"metric": "ndcg@10", **FOCUSED, **config}),
        slice_columns={"user__country__v1": data.country},
    )


def reason(report: EvaluationReport, check: str, slice_key: str | None = None) -> GateReason:
    (found,) = [r for r in report.reasons if r.check == check and r.slice == slice_key]
    return found


def test_clearly_worse_candidate_is_blocked() -> None:
    data = make_ranking()
    report = gate(data, -data.relevance, data.model(0.3))

    assert report.decision == "block"
    regression = reason(report, "regression")
    assert not regression.passed
    assert regression.interval is not None
    assert regression.interval[1] < 0
    assert regression.candidate < regression.baseline - 0.5  # type: ignore[operator]
    assert "blocked" in regression.message
    assert report.failures[0] == regression  # then every slice, each worse too
    assert {r.check for r in report.failures[1:]} == {"slice_regression"}


def test_same_model_with_tiny_noise_passes() -> None:
    data = make_ranking()
    production = data.model(0.3)
    candidate = production + data.rng.normal(scale=1e-3, size=production.size)

    report = gate(data, candidate, production)

    assert report.decision == "pass"
    assert reason(report, "regression").passed
    assert report.failures == ()


@pytest.mark.parametrize("seed", range(5))
def test_retraining_noise_is_not_a_regression(seed: int) -> None:
    # two models of equal quality that differ by their own noise: the gate must not block
    data = make_ranking(seed=seed)
    report = gate(data, data.model(0.5), data.model(0.5))
    assert report.decision == "pass", [r.line() for r in report.failures]


def test_small_true_regression_within_tolerance_passes() -> None:
    data = make_ranking(n_groups=1500, seed=3)
    production = data.model(0.3)
    report = gate(data, data.model(0.9), production, max_regression=0.05)
    regression = reason(report, "regression")
    assert regression.interval is not None and regression.interval[1] < 0  # significant
    assert regression.passed
    assert "within the tolerance" in regression.message
    assert report.decision == "pass"


def test_nan_scores_block() -> None:
    data = make_ranking()
    candidate = data.model(0.3)
    candidate[[5, 17]] = [np.nan, np.inf]

    report = gate(data, candidate, data.model(0.3))

    assert report.decision == "block"
    finite = reason(report, "sanity_finite")
    assert not finite.passed
    assert finite.candidate == 2.0
    assert report.metrics["candidate"] == {}
    assert "ndcg@10" in report.metrics["production"]
    json.dumps(report.to_dict(), allow_nan=False)


def test_constant_scores_block() -> None:
    data = make_ranking()
    report = gate(data, np.full(data.labels.size, 0.3), None)
    assert report.decision == "block"
    assert not reason(report, "sanity_variance").passed
    assert reason(report, "regression").passed


@pytest.mark.parametrize("baseline", ["production", None])
def test_no_baseline_passes(baseline: str | None) -> None:
    data = make_ranking()
    report = evaluate_scores(
        "ranking",
        data.labels,
        data.groups,
        [SystemScores("candidate", data.model(0.3))],
        EvaluationConfig(**FOCUSED),
        baseline=baseline,
    )
    assert report.decision == "pass"
    assert report.baseline is None
    assert reason(report, "regression").message == "no production version yet"


def test_min_metric_is_an_absolute_floor() -> None:
    data = make_ranking()
    candidate = data.model(0.3)
    value = ndcg_at_k(data.labels, candidate, data.groups)

    low = gate(data, candidate, None, min_metric=value - 0.01)
    high = gate(data, candidate, None, min_metric=value + 0.01)

    assert low.decision == "pass"
    assert reason(low, "min_metric").passed
    assert high.decision == "block"
    floor = reason(high, "min_metric")
    assert (floor.passed, floor.candidate, floor.threshold) == (False, value, value + 0.01)


def test_log_loss_lower_is_better() -> None:
    data = make_ranking()
    calibrated = 2 * data.relevance - 2.5
    overconfident = 4 * calibrated  # same ranking, far worse probabilities

    worse = gate(data, overconfident, calibrated, metric="log_loss")
    better = gate(data, calibrated, overconfident, metric="log_loss")

    assert worse.decision == "block"
    assert reason(worse, "regression").interval[0] > 0  # type: ignore[index]
    assert worse.metrics["candidate"]["log_loss"] > worse.metrics["production"]["log_loss"]
    assert better.decision == "pass"
    assert "significantly better" in reason(better, "regression").message


def test_baseline_with_nan_scores_is_not_compared_but_flagged() -> None:
    data = make_ranking()
    production = data.model(0.3)
    production[0] = np.nan
    report = gate(data, data.model(0.3), production)
    regression = reason(report, "regression")
    assert report.decision == "pass"
    assert regression.level == "warn"
    assert regression.message.startswith("WARN:")
    assert report.metrics["production"] == {}


def test_slice_metrics_are_computed_per_slice() -> None:
    data = make_ranking()
    candidate, production = data.model(0.3), data.model(0.3)

    report = gate(data, candidate, production)

    assert sorted(report.slices) == [f"user__country__v1={c}" for c in ("DE", "FR", "GB", "US")]
    assert list(report.skipped_slices) == ["user__country__v1=NL"]  # < 30 queries
    for country in ("DE", "FR", "GB", "US"):
        rows = data.country == country
        values = report.slices[f"user__country__v1={country}"]
        expected = ndcg_at_k(data.labels[rows], candidate[rows], data.groups[rows])
        assert values["candidate"]["ndcg@10"] == pytest.approx(expected)
        assert values["production"]["auc"] == pytest.approx(
            roc_auc_score(data.labels[rows], production[rows])
        )
        assert reason(report, "slice_regression", f"user__country__v1={country}").passed
    n_queries = len(np.unique(data.groups[data.country == "NL"]))
    assert report.skipped_slices["user__country__v1=NL"] == n_queries


def test_slice_regression_blocks() -> None:
    data = make_ranking(n_groups=600)
    production = data.model(0.3)
    candidate = np.where(data.country == "DE", -production, production + 1e-3)

    report = gate(data, candidate, production, max_regression=0.1)

    assert report.decision == "block"
    (flagged,) = report.failures
    assert (flagged.check, flagged.slice) == ("slice_regression", "user__country__v1=DE")
    assert "on this slice: blocked" in flagged.message
    assert flagged.threshold == pytest.approx(0.2)
    assert flagged.interval is not None and flagged.interval[1] < -0.2
    assert reason(report, "regression").passed  # the whole holdout alone would have passed


def _disparate(data: Ranking, production: np.ndarray) -> np.ndarray:
    """A candidate that is good everywhere but ranks at random for DE."""
    noise = data.rng.normal(size=production.size)
    return np.where(data.country == "DE", noise, data.model(0.05))


def test_slice_disparity_blocks_a_new_gap_and_flags_an_old_one() -> None:
    data = make_ranking(n_groups=600)
    production = data.model(0.3)
    candidate = _disparate(data, production)

    report = gate(data, candidate, None, max_slice_gap=0.05)  # no baseline: the gap alone
    flagged = reason(report, "slice_disparity", "user__country__v1=DE")
    assert not flagged.passed and "blocked" in flagged.message
    assert flagged.candidate == pytest.approx(
        report.slices["user__country__v1=DE"]["candidate"]["ndcg@10"]
    )
    assert reason(report, "slice_disparity", "user__country__v1=FR").passed

    # production had the same gap: a pre-existing disparity is flagged, not blocked
    old = gate(
        data, candidate, _disparate(data, production), max_slice_gap=0.05, max_regression=0.1
    )
    kept = reason(old, "slice_disparity", "user__country__v1=DE")
    assert kept.passed and kept.level == "warn" and "pre-existing" in kept.message
    assert kept.baseline is not None
    # off with null
    assert not [r for r in gate(data, candidate, None).reasons if r.check == "slice_disparity"]


def test_calibration_is_binary_only_and_score_shift_warns() -> None:
    # (calibration has its own tests in test_evaluate_calibration.py)
    data = make_ranking()
    production = data.model(0.3)
    healthy = gate(data, data.model(0.3), production, max_calibration_error=0.05, max_score_psi=0.2)
    assert healthy.decision == "pass", [r.line() for r in healthy.failures]
    assert reason(healthy, "score_shift").level == "pass"
    assert "calibration" not in {r.check for r in healthy.reasons}  # a ranker's ECE: not applied
    shifted = production + 3.0  # same ranking, every probability inflated
    report = gate(data, shifted, production, max_calibration_error=0.05, max_score_psi=0.2)
    assert report.decision == "pass"  # a shift alone never blocks: it is judged by the others
    shift = reason(report, "score_shift")
    assert shift.candidate > 0.2 and shift.level == "warn" and "shifted" in shift.message


def test_population_stability_index_is_zero_for_equal_and_large_for_shifted() -> None:
    x = np.random.default_rng(1).normal(size=5000)
    assert population_stability_index(x, x) == pytest.approx(0.0)
    assert population_stability_index(x, x + 0.05) < 0.05
    assert population_stability_index(x, x + 2.0) > 1.0


def test_confidence_widens_the_interval() -> None:
    data = make_ranking()
    candidate, production = data.model(0.35), data.model(0.3)
    narrow = reason(gate(data, candidate, production, confidence=0.8), "regression").interval
    wide = reason(gate(data, candidate, production, confidence=0.99), "regression").interval
    assert narrow is not None and wide is not None
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_missing_values_form_their_own_slice_and_missing_columns_warn() -> None:
    data = make_ranking()
    country = data.country.astype(object)
    country[data.country == "DE"] = None
    report = evaluate_scores(
        "ranking",
        data.labels,
        data.groups,
        [SystemScores("candidate", data.model(0.3))],
        EvaluationConfig(slices=["user__country__v1", "product__product_type__v1"], **FOCUSED),
        slice_columns={"user__country__v1": country},
    )
    assert "user__country__v1=<missing>" in report.slices
    coverage = reason(report, "slice_coverage", "product__product_type__v1")
    assert coverage.level == "warn"
    assert report.decision == "pass"


def test_binary_task_metrics_and_user_level_units() -> None:
    rng = np.random.default_rng(11)
    users = rng.integers(0, 500, 6000)
    truth = rng.normal(size=6000)
    labels = (rng.uniform(size=6000) < sigmoid(truth - 1)).astype(float)
    candidate = truth - 1 + rng.normal(scale=0.3, size=6000)
    systems = [
        SystemScores("candidate", candidate),
        SystemScores("production", -candidate),
        SystemScores("oracle", sigmoid(truth - 1)),
    ]
    report = evaluate_scores(
        "binary",
        labels,
        users,
        systems,
        EvaluationConfig(metric="auc", max_regression=0.02, **FOCUSED),
    )

    assert report.n_groups == 500
    assert report.n_rows == 6000
    values = report.metrics["candidate"]
    assert set(values) == {"auc", "pr_auc", "log_loss", "ece"}
    assert values["auc"] == pytest.approx(roc_auc_score(labels, candidate))
    assert values["log_loss"] == pytest.approx(sk_log_loss(labels, sigmoid(candidate)))
    assert set(report.metrics["oracle"]) == {"auc", "pr_auc", "log_loss", "ece"}
    assert report.decision == "pass"
    assert "significantly better" in reason(report, "regression").message
    flipped = evaluate_scores(
        "binary",
        labels,
        None,
        [SystemScores("candidate", -candidate), SystemScores("production", candidate)],
        EvaluationConfig(metric="auc", **FOCUSED),
    )
    assert flipped.decision == "block"
    assert reason(flipped, "regression").interval is not None


def test_reference_systems_get_log_loss_only_when_probabilities() -> None:
    data = make_ranking()
    popularity = data.rng.integers(0, 500, data.labels.size).astype(float)
    systems = [
        SystemScores("candidate", data.model(0.3)),
        SystemScores("popularity", popularity),
        SystemScores("oracle", sigmoid(2 * data.relevance - 2.5)),
        SystemScores("logit_baseline", data.model(1.0), logits=True),
    ]
    report = evaluate_scores(
        "ranking", data.labels, data.groups, systems, EvaluationConfig(**FOCUSED)
    )
    assert set(report.metrics["popularity"]) == {"ndcg@10", "mrr", "recall@10", "auc"}
    assert set(report.metrics["oracle"]) == {"ndcg@10", "mrr", "recall@10", "auc", "log_loss"}
    assert "log_loss" in report.metrics["logit_baseline"]
    assert report.metrics["oracle"]["ndcg@10"] > report.metrics["popularity"]["ndcg@10"]


def test_report_is_json_deterministic_and_becomes_an_artifact() -> None:
    data = make_ranking()
    candidate, production = data.model(0.3), data.model(0.3)

    first = gate(data, candidate, production)
    second = gate(data, candidate, production)

    assert first.to_dict() == second.to_dict()
    payload = json.loads(json.dumps(first.to_dict(), allow_nan=False))
    assert payload["decision"] == "pass"
    assert payload["reasons"][0]["level"] == "pass"
    artifact = first.to_evaluation("search_ranker", 3, "2026-01-08", "file:///e.json")
    assert isinstance(artifact, Evaluation)
    assert artifact.decision == "pass"
    assert artifact.reasons[0].startswith("[PASS] sanity_finite")
    assert artifact.content_hash == second.to_evaluation("x", 1, "d", "u").content_hash
    rows = format_report(first)
    assert rows[0] == ["system", "ndcg@10", "mrr", "recall@10", "auc", "log_loss"]
    assert [row[0] for row in rows[1:]] == ["candidate", "production"]
    assert format_report(first, "user__country__v1=FR")[1][0] == "candidate"


def test_bad_inputs_raise_clear_errors() -> None:
    data = make_ranking(n_groups=40)
    ok = [SystemScores("candidate", data.model(0.3))]
    config = EvaluationConfig()
    with pytest.raises(DataError, match="need a group key"):
        evaluate_scores("ranking", data.labels, None, ok, config)
    with pytest.raises(DataError, match="one per holdout row"):
        evaluate_scores(
            "ranking", data.labels, data.groups, [SystemScores("candidate", np.ones(3))], config
        )
    with pytest.raises(DataError, match="ranking labels: row 0 is nan"):
        evaluate_scores("ranking", np.full(data.labels.size, np.nan), data.groups, ok, config)
    with pytest.raises(DataError, match="0 or 1"):
        evaluate_scores("binary", data.labels * 2, None, ok, EvaluationConfig(metric="auc"))
    with pytest.raises(ConfigError, match="ranking"):
        evaluate_scores("binary", data.labels, None, ok, config)
    with pytest.raises(ValueError, match="unique"):
        evaluate_scores("ranking", data.labels, data.groups, ok + ok, config)
    with pytest.raises(ValueError, match="no system named"):
        evaluate_scores("ranking", data.labels, data.groups, ok, config, candidate="new")
    with pytest.raises(DataError, match="rows"):
        evaluate_scores(
            "ranking", data.labels, data.groups, ok, config, slice_columns={"c": np.ones(2)}
        )


def test_undefined_metric_blocks() -> None:
    data = make_ranking(n_groups=40)
    report = evaluate_scores(
        "ranking",
        np.zeros(data.labels.size),
        data.groups,
        [SystemScores("candidate", data.model(0.3))],
        EvaluationConfig(**FOCUSED),
    )
    assert report.decision == "block"
    assert not reason(report, "sanity_metric").passed
    assert math.isnan(report.metrics["candidate"]["ndcg@10"])
    assert report.to_dict()["metrics"]["candidate"]["ndcg@10"] is None
