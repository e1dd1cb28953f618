"""Paired bootstrap: coverage of the true difference, determinism, and equal fast/slow paths."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from spindle.evaluate import (
    Interval,
    auc,
    log_loss,
    mrr,
    ndcg_at_k,
    paired_bootstrap,
    paired_bootstrap_means,
    per_group_ndcg,
    sigmoid,
)


def _binormal(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores with a known population AUC: Phi(shift / sqrt(2)) for unit-variance noise."""
    labels = rng.integers(0, 2, n)
    a = labels * 1.0 + rng.normal(size=n)
    b = labels * 0.5 + rng.normal(size=n)
    return labels, a, b


def test_auc_interval_covers_the_true_difference() -> None:
    true_delta = norm.cdf(1.0 / math.sqrt(2)) - norm.cdf(0.5 / math.sqrt(2))
    intervals = []
    for trial in range(40):
        labels, a, b = _binormal(np.random.default_rng(1000 + trial), 1000)
        iv = paired_bootstrap(auc, labels, a, b, None, n_resamples=200, seed=trial)
        assert iv.lower <= iv.estimate <= iv.upper
        intervals.append(iv)
    _assert_calibrated(intervals, true_delta)


def _assert_calibrated(intervals: list[Interval], true_delta: float) -> None:
    """Covers the truth about as often as promised, and is not merely wide to do so."""
    covered = np.mean([iv.lower <= true_delta <= iv.upper for iv in intervals])
    # nominal 95%; the percentile bootstrap runs a little under at these sizes (~93%)
    assert covered >= 0.8
    half_width = np.mean([(iv.upper - iv.lower) / 2 for iv in intervals])
    spread = 1.96 * np.std([iv.estimate for iv in intervals])
    assert 0.6 * spread < half_width < 1.6 * spread


def _ranking_sample(
    rng: np.random.Generator, n_groups: int, size: int = 10
) -> tuple[np.ndarray, ...]:
    groups = np.repeat(np.arange(n_groups), size)
    relevance = rng.normal(size=n_groups * size)
    labels = (rng.uniform(size=relevance.size) < sigmoid(2 * relevance - 2)).astype(float)
    a = relevance + rng.normal(scale=0.5, size=relevance.size)
    b = relevance + rng.normal(scale=1.5, size=relevance.size)
    return labels, a, b, groups


def test_ndcg_interval_covers_the_population_difference() -> None:
    labels, a, b, groups = _ranking_sample(np.random.default_rng(99), 40_000)
    true_delta = ndcg_at_k(labels, a, groups) - ndcg_at_k(labels, b, groups)
    intervals = []
    for trial in range(40):
        labels, a, b, groups = _ranking_sample(np.random.default_rng(trial), 300)
        intervals.append(paired_bootstrap(ndcg_at_k, labels, a, b, groups, seed=trial))
    assert true_delta > 0.05
    _assert_calibrated(intervals, true_delta)


def test_same_seed_same_interval_and_other_seed_differs() -> None:
    labels, a, b = _binormal(np.random.default_rng(0), 800)
    first = paired_bootstrap(auc, labels, a, b, None, seed=7)
    again = paired_bootstrap(auc, labels, a, b, None, seed=7)
    other = paired_bootstrap(auc, labels, a, b, None, seed=8)
    assert first == again
    assert (first.lower, first.upper) != (other.lower, other.upper)
    assert first.estimate == other.estimate == auc(labels, a) - auc(labels, b)
    assert first.value_a == auc(labels, a)
    assert first.n_resamples == 200
    assert first.n_units == 800
    json.dumps(first.to_dict(), allow_nan=False)


def test_identical_systems_give_a_zero_interval() -> None:
    labels, a, _, groups = _ranking_sample(np.random.default_rng(1), 200)
    iv = paired_bootstrap(ndcg_at_k, labels, a, a.copy(), groups)
    assert (iv.estimate, iv.lower, iv.upper, iv.p_below_zero) == (0.0, 0.0, 0.0, 0.0)
    assert not iv.significant


def test_clearly_better_system_is_significant() -> None:
    labels, a, b, groups = _ranking_sample(np.random.default_rng(2), 400)
    iv = paired_bootstrap(ndcg_at_k, labels, a, b, groups)
    assert iv.lower > 0
    assert iv.significant
    assert iv.p_below_zero == 0.0
    worse = paired_bootstrap(mrr, labels, b, a, groups)
    assert worse.upper < 0
    assert worse.p_below_zero == 1.0


def test_fast_auc_path_equals_recomputing_on_gathered_rows() -> None:
    labels, a, b = _binormal(np.random.default_rng(4), 500)
    a = np.round(a, 1)  # ties
    users = np.random.default_rng(5).integers(0, 120, 500)
    for groups in (None, users):
        fast = paired_bootstrap(auc, labels, a, b, groups, n_resamples=100, seed=3)
        slow = paired_bootstrap(
            lambda y, s: auc(y, s), labels, a, b, groups, n_resamples=100, seed=3
        )
        assert fast.estimate == slow.estimate
        assert fast.lower == pytest.approx(slow.lower, abs=1e-12)
        assert fast.upper == pytest.approx(slow.upper, abs=1e-12)
        assert fast.p_below_zero == slow.p_below_zero


def test_fast_log_loss_path_matches_recomputing_on_gathered_rows() -> None:
    labels, a, b = _binormal(np.random.default_rng(9), 2000)
    probs_a, probs_b = sigmoid(a), sigmoid(b - 0.5)
    users = np.random.default_rng(10).integers(0, 300, 2000)
    for groups in (None, users):
        fast = paired_bootstrap(log_loss, labels, probs_a, probs_b, groups, n_resamples=400)
        slow = paired_bootstrap(
            lambda y, p: log_loss(y, p), labels, probs_a, probs_b, groups, n_resamples=400
        )
        partial = paired_bootstrap(
            functools.partial(log_loss, eps=1e-7), labels, probs_a, probs_b, groups, 400
        )
        assert fast == partial
        assert fast.estimate == slow.estimate
        # different random streams: the two intervals agree to bootstrap noise
        width = slow.upper - slow.lower
        assert fast.lower == pytest.approx(slow.lower, abs=0.15 * width)
        assert fast.upper == pytest.approx(slow.upper, abs=0.15 * width)


def test_resampling_users_widens_the_interval_when_rows_of_a_user_correlate() -> None:
    rng = np.random.default_rng(6)
    users = np.repeat(np.arange(100), 30)
    user_effect = rng.normal(size=100)[users]  # system a is good for some users, bad for others
    labels = rng.integers(0, 2, users.size)
    a = labels * 0.6 + 2.0 * user_effect * (labels - 0.5) + rng.normal(size=users.size)
    b = labels * 0.6 + rng.normal(size=users.size)
    probs_a, probs_b = sigmoid(a), sigmoid(b)
    by_row = paired_bootstrap(log_loss, labels, probs_a, probs_b, None)
    by_user = paired_bootstrap(log_loss, labels, probs_a, probs_b, users)
    assert by_user.n_units == 100
    assert by_row.n_units == 3000
    assert by_user.upper - by_user.lower > 1.5 * (by_row.upper - by_row.lower)


def test_ndcg_partial_and_explicit_per_group_agree() -> None:
    labels, a, b, groups = _ranking_sample(np.random.default_rng(8), 150)
    via_partial = paired_bootstrap(functools.partial(ndcg_at_k, k=3), labels, a, b, groups)
    explicit = paired_bootstrap(
        functools.partial(ndcg_at_k, k=3),
        labels,
        a,
        b,
        groups,
        per_group=functools.partial(per_group_ndcg, k=3),
    )
    assert via_partial == explicit
    assert via_partial.estimate == pytest.approx(
        ndcg_at_k(labels, a, groups, k=3) - ndcg_at_k(labels, b, groups, k=3)
    )


def test_bootstrap_of_per_query_values_equals_the_ndcg_path() -> None:
    labels, a, b, groups = _ranking_sample(np.random.default_rng(12), 150)
    _, values_a = per_group_ndcg(labels, a, groups)
    _, values_b = per_group_ndcg(labels, b, groups)
    assert paired_bootstrap_means(values_a, values_b, seed=4) == paired_bootstrap(
        ndcg_at_k, labels, a, b, groups, seed=4
    )
    with pytest.raises(ValueError, match="aligned"):
        paired_bootstrap_means(values_a, values_b[:-1])


def test_undefined_metric_gives_nan_interval_without_warnings() -> None:
    iv = paired_bootstrap(auc, [1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], None)
    assert math.isnan(iv.estimate)
    assert math.isnan(iv.lower)
    assert not iv.significant
    assert iv.to_dict()["lower"] is None
    no_positive = paired_bootstrap(ndcg_at_k, [0, 0], [0.1, 0.2], [0.2, 0.1], [1, 1])
    assert math.isnan(no_positive.upper)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="needs groups"):
        paired_bootstrap(ndcg_at_k, [1, 0], [0.1, 0.2], [0.2, 0.1], None)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(auc, [1, 0], [0.1, 0.2], [0.2, 0.1], None, confidence=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(auc, [1, 0], [0.1, 0.2], [0.2, 0.1], None, n_resamples=0)
    with pytest.raises(ValueError, match="NaN"):
        paired_bootstrap(auc, [1, 0], [0.1, np.nan], [0.2, 0.1], None)
