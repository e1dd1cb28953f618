"""Task metrics against scikit-learn, their paired bootstrap, and label validation per task."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from spindle.core import DataError
from spindle.evaluate import (
    TASK_METRICS,
    TASKS,
    accuracy,
    auc,
    average_precision,
    evaluate_task,
    expected_calibration_error,
    log_loss,
    macro_f1,
    mae,
    mrr,
    multiclass_log_loss,
    ndcg_at_k,
    paired_bootstrap,
    per_group_recall,
    r2,
    recall_at_k,
    rmse,
    validate_labels,
    validate_predictions,
)

# -- the metrics against scikit-learn -----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=1, max_size=40))
def test_average_precision_matches_sklearn_with_ties(rows: list[tuple[int, int]]) -> None:
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows]) / 4.0
    if labels.sum() == 0:
        assert math.isnan(average_precision(labels, scores))
        return
    assert average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.normal(size=200) * 3 + 1e6  # far from 0: R² must not lose precision
    predictions = labels + rng.normal(size=200)
    assert rmse(labels, predictions) == pytest.approx(
        skm.root_mean_squared_error(labels, predictions), rel=1e-12
    )
    assert mae(labels, predictions) == pytest.approx(
        skm.mean_absolute_error(labels, predictions), rel=1e-12
    )
    assert r2(labels, predictions) == pytest.approx(skm.r2_score(labels, predictions), abs=1e-9)


def test_r2_is_undefined_for_constant_labels() -> None:
    assert math.isnan(r2([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]))


@pytest.mark.parametrize("seed", range(8))
def test_multiclass_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    labels = rng.integers(0, k, size=int(rng.integers(5, 80)))
    probs = rng.dirichlet(np.ones(k), size=labels.size)
    predicted = probs.argmax(axis=1)
    assert accuracy(labels, probs) == pytest.approx(skm.accuracy_score(labels, predicted))
    assert macro_f1(labels, probs) == pytest.approx(
        skm.f1_score(labels, predicted, average="macro", zero_division=0.0)
    )
    assert multiclass_log_loss(labels, probs) == pytest.approx(
        skm.log_loss(labels, probs, labels=list(range(k))), rel=1e-9
    )


def test_multiclass_rows_summing_near_one_are_renormalised_and_others_refused() -> None:
    probs = np.array([[0.7, 0.3], [0.2, 0.8]], dtype=np.float32)  # float32 softmax rounding
    assert accuracy([0, 1], probs) == 1.0
    with pytest.raises(ValueError, match=r"row 1 sums to 1\.2"):
        accuracy([0, 1], [[0.5, 0.5], [0.4, 0.8]])


def _recall_reference(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int) -> float:
    values = []
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        ranked = sorted(rows, key=lambda i: (-scores[i], i))  # ties: input position
        relevant = labels[rows] > 0
        if relevant.any():
            values.append(sum(labels[i] > 0 for i in ranked[:k]) / relevant.sum())
    return float(np.mean(values)) if values else float("nan")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 4)), max_size=60))
def test_recall_at_k_matches_a_row_by_row_reference(rows: list[tuple[int, int, int]]) -> None:
    if not rows:
        return
    labels, scores, groups = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    for k in (1, 3):
        expected = _recall_reference(labels, scores, groups, k)
        got = recall_at_k(labels, scores, groups, k)
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_per_group_recall_leaves_out_lists_without_a_relevant_row() -> None:
    ids, values = per_group_recall([0, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [1, 1, 2, 2], k=1)
    assert ids.tolist() == [2] and values.tolist() == [0.0]


# -- the registry ------------------------------------------------------------------------------


def test_every_task_has_its_metrics_and_only_binary_is_calibrated() -> None:
    names = {task: [m.name for m in TASK_METRICS[task]] for task in TASKS}
    assert names == {
        "binary": ["auc", "pr_auc", "log_loss", "ece"],
        "multiclass": ["accuracy", "log_loss", "macro_f1"],
        "ranking": ["ndcg@k", "mrr", "recall@k"],
        "regression": ["rmse", "mae", "r2"],
    }
    lower = {(t, m.name) for t in TASKS for m in TASK_METRICS[t] if not m.higher_is_better}
    assert lower == {
        ("binary", "log_loss"),
        ("binary", "ece"),
        ("multiclass", "log_loss"),
        ("regression", "rmse"),
        ("regression", "mae"),
    }
    assert all(m.resample == "groups" for m in TASK_METRICS["ranking"])
    assert TASK_METRICS["ranking"][0].key(5) == "ndcg@5"


# -- evaluate_task -----------------------------------------------------------------------------


def _binary(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    good = 1 / (1 + np.exp(-(1.5 * labels - 0.75 + rng.normal(size=n))))
    weak = 1 / (1 + np.exp(-(0.5 * labels - 0.25 + rng.normal(size=n))))
    return labels, good, weak


def test_binary_values_equal_the_plain_metrics() -> None:
    labels, good, weak = _binary(0)
    result = evaluate_task("binary", labels, {"good": good, "weak": weak}, n_resamples=50)
    values = {m: e["good"].value for m, e in result.metrics.items()}
    assert values["auc"] == pytest.approx(skm.roc_auc_score(labels, good), abs=1e-12)
    assert values["pr_auc"] == pytest.approx(skm.average_precision_score(labels, good), abs=1e-12)
    assert values["log_loss"] == pytest.approx(log_loss(labels, good), rel=1e-12)
    assert values["ece"] == pytest.approx(expected_calibration_error(labels, good), rel=1e-9)
    for metric, estimate in result.metrics.items():
        assert estimate["good"].lower <= estimate["good"].value <= estimate["good"].upper, metric


def test_deltas_are_paired_against_the_reference() -> None:
    labels, good, weak = _binary(1)
    result = evaluate_task(
        "binary", labels, {"good": good, "weak": weak}, reference="weak", n_resamples=300, seed=3
    )
    delta = result.deltas["auc"]["good"]
    assert delta.estimate == pytest.approx(auc(labels, good) - auc(labels, weak))
    assert delta.lower > 0  # the better model is significantly better
    assert result.deltas["log_loss"]["good"].upper < 0  # lower is better: a negative delta
    assert "weak" not in result.deltas["auc"]
    # the same statistic as paired_bootstrap (other draws): intervals of similar width
    iv = paired_bootstrap(auc, labels, good, weak, None, n_resamples=300, seed=3)
    assert (delta.upper - delta.lower) == pytest.approx(iv.upper - iv.lower, rel=0.3)
    # pairing: a system against itself has a zero-width interval at 0
    same = evaluate_task("binary", labels, {"a": good, "b": good.copy()}, n_resamples=50)
    assert same.deltas["auc"]["b"].lower == same.deltas["auc"]["b"].upper == 0.0


def test_result_is_deterministic_and_json_able() -> None:
    labels, good, weak = _binary(2, n=500)
    first = evaluate_task("binary", labels, {"good": good, "weak": weak}, n_resamples=40, seed=9)
    again = evaluate_task("binary", labels, {"good": good, "weak": weak}, n_resamples=40, seed=9)
    assert first.to_dict() == again.to_dict()
    assert json.loads(json.dumps(first.to_dict()))["deltas"]["auc"]["weak"]["n_units"] == 500


def test_scores_that_are_not_probabilities_get_no_probability_metrics() -> None:
    labels, good, _ = _binary(3, n=400)
    logits = np.log(good / (1 - good))
    result = evaluate_task("binary", labels, {"probs": good, "logits": logits}, n_resamples=20)
    assert set(result.metrics["log_loss"]) == {"probs"}
    assert set(result.metrics["auc"]) == {"probs", "logits"}
    assert result.deltas["auc"]["logits"].estimate == pytest.approx(0.0)


def test_user_ids_as_units_widen_the_interval_of_correlated_rows() -> None:
    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(300), 10)
    effect = np.repeat(rng.normal(size=300), 10)  # each user's error is shared by its rows
    labels = effect * 2 + rng.normal(size=3000)
    a, b = labels + effect, labels + rng.normal(size=3000) * 0.1
    by_row = evaluate_task("regression", labels, {"a": a, "b": b}, reference="b", n_resamples=300)
    by_user = evaluate_task(
        "regression", labels, {"a": a, "b": b}, groups=users, reference="b", n_resamples=300
    )
    assert by_user.n_units == 300 and by_row.n_units == 3000
    width = {
        r.n_units: r.deltas["mae"]["a"].upper - r.deltas["mae"]["a"].lower
        for r in (by_row, by_user)
    }
    assert width[300] > 1.5 * width[3000]


def test_regression_interval_covers_the_true_difference() -> None:
    covered = []
    for trial in range(30):
        rng = np.random.default_rng(100 + trial)
        labels = rng.normal(size=800)
        a, b = labels + rng.normal(size=800), labels + 1.2 * rng.normal(size=800)
        result = evaluate_task("regression", labels, {"a": a, "b": b}, reference="b", seed=trial)
        iv = result.deltas["mae"]["a"]
        covered.append(iv.lower <= (1.0 - 1.2) * math.sqrt(2 / math.pi) <= iv.upper)
    assert np.mean(covered) >= 0.8


def test_ranking_resamples_result_lists_with_a_relevant_row() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(400), 8)
    labels = (rng.uniform(size=3200) < 0.15).astype(float)
    good, noise = labels + rng.normal(size=3200), rng.normal(size=3200)
    result = evaluate_task(
        "ranking", labels, {"good": good, "noise": noise}, groups=groups, k=5, reference="noise"
    )
    relevant_lists = np.unique(groups[labels > 0]).size
    assert result.n_units == relevant_lists
    assert set(result.metrics) == {"ndcg@5", "mrr", "recall@5"}
    assert result.metrics["ndcg@5"]["good"].value == pytest.approx(
        ndcg_at_k(labels, good, groups, k=5)
    )
    assert result.metrics["mrr"]["good"].value == pytest.approx(mrr(labels, good, groups))
    assert result.deltas["recall@5"]["good"].lower > 0


def test_multiclass_deltas() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 2000)
    sharp = rng.dirichlet(np.ones(3), 2000)
    sharp[np.arange(2000), labels] += 1.0
    sharp /= sharp.sum(axis=1, keepdims=True)
    flat = np.full((2000, 3), 1 / 3)
    result = evaluate_task("multiclass", labels, {"sharp": sharp, "flat": flat}, reference="flat")
    assert result.metrics["macro_f1"]["sharp"].value == pytest.approx(macro_f1(labels, sharp))
    assert result.deltas["accuracy"]["sharp"].lower > 0
    assert result.deltas["log_loss"]["sharp"].upper < 0


# -- labels and predictions validated per task -------------------------------------------------


@pytest.mark.parametrize(
    ("task", "labels", "groups", "match"),
    [
        ("binary", [0, 1, 2, 1], None, r"binary labels: row 2 is 2\.0, expected 0 or 1"),
        ("binary", [0, "yes", 1], None, r"binary labels: row 1 is 'yes'"),
        ("regression", [1.0, float("nan")], None, r"regression labels: row 1 is nan"),
        ("multiclass", [0, 1, 1.5], None, r"multiclass labels: row 2 is 1\.5"),
        ("multiclass", [0, -1], None, r"multiclass labels: row 1 is -1\.0"),
        ("ranking", [0, 2, -1], [1, 1, 1], r"ranking labels: row 2 is -1\.0"),
        ("ranking", [0, 1], None, r"ranking labels need a group key"),
        ("binary", [0, 1], [1, 2, 3], r"binary group key has shape \(3,\)"),
    ],
)
def test_bad_labels_are_one_line_naming_task_and_row(
    task: str, labels: list[object], groups: list[int] | None, match: str
) -> None:
    with pytest.raises(DataError, match=match) as caught:
        validate_labels(task, labels, groups)
    assert "\n" not in str(caught.value)


def test_multiclass_labels_beyond_the_predicted_classes_are_refused() -> None:
    with pytest.raises(DataError, match=r"row 1 is 3\.0, expected .* below 3"):
        evaluate_task("multiclass", [0, 3], {"m": [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]})


@pytest.mark.parametrize(
    ("task", "predictions", "match"),
    [
        ("regression", [1.0, float("inf")], r"system 'm'.*row 1 is inf"),
        ("binary", [0.5], r"system 'm' has predictions of shape \(1,\); expected \(2,\)"),
        ("multiclass", [[0.5, 0.5], [0.9, 0.3]], r"system 'm'.*row 1 sums to 1\.2"),
        ("multiclass", [0.5, 0.5], r"system 'm'.*shape \[2, classes >= 2\]"),
    ],
)
def test_bad_predictions_name_the_system(task: str, predictions: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        validate_predictions(task, "m", predictions, 2)  # type: ignore[arg-type]


def test_unknown_task_and_reference_are_refused() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        evaluate_task("survival", [1.0], {"m": [1.0]})
    with pytest.raises(ValueError, match="reference 'x' is not among"):
        evaluate_task("regression", [1.0, 2.0], {"m": [1.0, 2.0]}, reference="x")


def _inputs(metric: object, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    if metric in (rmse, mae, r2):
        labels = rng.normal(size=n)
        return labels, labels + rng.normal(size=n), labels + 1.3 * rng.normal(size=n)
    if metric in (accuracy, macro_f1, multiclass_log_loss):
        labels = rng.integers(0, 3, n)
        a, b = rng.dirichlet(np.ones(3), n), rng.dirichlet(np.ones(3), n)
        a[np.arange(n), labels] += 0.5
        return labels, a / a.sum(axis=1, keepdims=True), b
    labels, good, weak = _binary(int(rng.integers(1000)), n)
    return labels, good, weak


@pytest.mark.parametrize(
    "metric",
    [
        expected_calibration_error,
        rmse,
        mae,
        r2,
        accuracy,
        multiclass_log_loss,
        macro_f1,
        average_precision,
    ],
)
def test_paired_bootstrap_vectorised_paths_agree_with_recomputing(metric: object) -> None:
    rng = np.random.default_rng(11)
    labels, a, b = _inputs(metric, rng, 1500)
    users = rng.integers(0, 300, 1500)
    fast = paired_bootstrap(metric, labels, a, b, users, n_resamples=400, seed=1)  # type: ignore[arg-type]
    slow = paired_bootstrap(
        lambda y, s: metric(y, s),
        labels,
        a,
        b,
        users,
        n_resamples=400,
        seed=1,  # type: ignore[operator]
    )
    assert fast.estimate == pytest.approx(slow.estimate, rel=1e-9, abs=1e-12)
    assert fast.n_units == slow.n_units == np.unique(users).size
    assert fast.upper - fast.lower == pytest.approx(slow.upper - slow.lower, rel=0.25)
    assert abs((fast.lower + fast.upper) - (slow.lower + slow.upper)) / 2 < 0.3 * (
        slow.upper - slow.lower
    )
