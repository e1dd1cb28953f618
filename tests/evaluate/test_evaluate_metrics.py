"""Metrics against scikit-learn (the reference) and independent per-row Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import ndcg_score, roc_auc_score

from spindle.evaluate import (
    auc,
    expected_calibration_error,
    log_loss,
    mrr,
    ndcg_at_k,
    per_group_mrr,
    per_group_ndcg,
    sigmoid,
)

# -- strategies: ranking holdouts with small integer scores, so ties are frequent -------------

group_sizes = st.lists(st.integers(1, 12), min_size=1, max_size=8)


@st.composite
def ranking_holdouts(
    draw: st.DrawFn, tied: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = draw(group_sizes)
    n = sum(sizes)
    labels = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), dtype=float)
    if tied:
        values = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    else:
        values = draw(st.permutations(list(range(n))))
    scores = np.array(values, dtype=float) / 7.0
    # interleave groups so rows of one list are not contiguous in the input
    groups = np.repeat(np.arange(len(sizes)) * 10 + 3, sizes)
    order = np.array(draw(st.permutations(list(range(n)))), dtype=int)
    return labels[order], scores[order], groups[order]


def _tie_broken(scores: np.ndarray) -> np.ndarray:
    """Distinct scores that rank like the documented rule: by score, then input position."""
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    out = np.empty(len(scores))
    out[ranked] = -np.arange(len(scores), dtype=float)
    return out


def _sklearn_ndcg_per_group(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int
) -> dict[int, float]:
    values: dict[int, float] = {}
    for g in np.unique(groups):
        y, s = labels[groups == g], _tie_broken(scores[groups == g])
        if y.sum() == 0:
            continue
        values[int(g)] = 1.0 if len(y) == 1 else float(ndcg_score([y], [s], k=k))
    return values


@settings(max_examples=100, deadline=None)
@given(ranking_holdouts(tied=True), st.integers(1, 12))
def test_ndcg_matches_sklearn_with_ties_broken_by_input_position(
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray], k: int
) -> None:
    labels, scores, groups = holdout
    expected = _sklearn_ndcg_per_group(labels, scores, groups, k)

    ids, values = per_group_ndcg(labels, scores, groups, k=k)

    assert ids.tolist() == sorted(expected)
    np.testing.assert_allclose(values, [expected[g] for g in ids], rtol=1e-12, atol=1e-12)
    if expected:
        assert ndcg_at_k(labels, scores, groups, k=k) == pytest.approx(
            np.mean(list(expected.values())), abs=1e-12
        )
    else:
        assert math.isnan(ndcg_at_k(labels, scores, groups, k=k))


@settings(max_examples=50, deadline=None)
@given(ranking_holdouts(tied=False), st.integers(1, 12))
def test_ndcg_matches_sklearn_directly_without_ties(
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray], k: int
) -> None:
    labels, scores, groups = holdout
    for g in np.unique(groups):
        y, s = labels[groups == g], scores[groups == g]
        if y.sum() == 0 or len(y) < 2:
            continue
        ours = ndcg_at_k(y, s, None, k=k)
        assert ours == pytest.approx(ndcg_score([y], [s], k=k), abs=1e-12)


def test_ndcg_tie_break_follows_input_order() -> None:
    # the relevant item first in the input wins the tie; moved second it loses it
    assert ndcg_at_k([1, 0], [0.5, 0.5], None) == 1.0
    assert ndcg_at_k([0, 1], [0.5, 0.5], None) == pytest.approx(1 / math.log2(3))


def test_ndcg_uses_graded_gains_linearly_and_truncates_at_k() -> None:
    labels, scores = np.array([0, 3, 1, 2]), np.array([0.9, 0.8, 0.7, 0.1])
    assert ndcg_at_k(labels, scores, None, k=2) == pytest.approx(
        ndcg_score([labels], [scores], k=2)
    )
    assert ndcg_at_k(labels, scores, None) == pytest.approx(ndcg_score([labels], [scores]))


def test_ndcg_is_nan_without_positive_labels_and_rejects_bad_input() -> None:
    assert math.isnan(ndcg_at_k([0, 0, 0], [1, 2, 3], [1, 1, 2]))
    assert math.isnan(ndcg_at_k([], [], []))
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k([1, 0], [np.nan, 1.0], [1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        ndcg_at_k([-1, 1], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="rows"):
        ndcg_at_k([1, 0], [0.1], [1, 1])
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k([1, 0], [0.1, 0.2], [1, 1], k=0)


def test_groups_may_be_strings() -> None:
    ids, values = per_group_ndcg([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2], np.array(["b", "b", "a", "a"]))
    assert ids.tolist() == ["a", "b"]
    assert values.tolist() == pytest.approx([1 / math.log2(3), 1.0])


@settings(max_examples=80, deadline=None)
@given(ranking_holdouts(tied=True))
def test_mrr_matches_a_per_row_reference(
    holdout: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    labels, scores, groups = holdout
    expected = {}
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        ranked = sorted(rows, key=lambda i: (-scores[i], i))
        hits = [r for r, i in enumerate(ranked) if labels[i] > 0]
        if hits:
            expected[g] = 1.0 / (hits[0] + 1)

    ids, values = per_group_mrr(labels, scores, groups)

    assert dict(zip(ids.tolist(), values.tolist(), strict=True)) == pytest.approx(expected)
    if expected:
        assert mrr(labels, scores, groups) == pytest.approx(np.mean(list(expected.values())))


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-3, 3)), min_size=1, max_size=60),
    st.floats(0.01, 10.0),
)
def test_auc_matches_sklearn_including_ties(pairs: list[tuple[int, int]], scale: float) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float) * scale
    if len(set(labels.tolist())) < 2:
        assert math.isnan(auc(labels, scores))
    else:
        assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_on_random_continuous_scores() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 5000)
    scores = labels * 0.7 + rng.normal(size=5000)
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # positive means label > 0, so graded labels work
    assert auc(labels * 3, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auc_single_class_is_nan_and_nan_raises() -> None:
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert math.isnan(auc([], []))
    with pytest.raises(ValueError, match="NaN"):
        auc([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        auc([0, np.nan], [0.2, 0.3])


def test_log_loss_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 1000)
    probs = rng.uniform(0.01, 0.99, 1000)
    assert log_loss(labels, probs) == pytest.approx(sk_log_loss(labels, probs), rel=1e-12)
    ones = np.ones(10, dtype=int)
    assert log_loss(ones, probs[:10]) == pytest.approx(
        sk_log_loss(ones, probs[:10], labels=[0, 1]), rel=1e-12
    )


def test_log_loss_clips_and_validates() -> None:
    assert log_loss([1, 0], [0.0, 1.0], eps=1e-7) == pytest.approx(-math.log(1e-7))
    assert math.isnan(log_loss([], []))
    with pytest.raises(ValueError, match="sigmoid"):
        log_loss([1, 0], [2.0, -1.0])
    with pytest.raises(ValueError, match="labels"):
        log_loss([2, 0], [0.5, 0.5])


def test_expected_calibration_error_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(7)
    probs = rng.uniform(0, 1, 2000)
    probs[:5] = 1.0
    labels = (rng.uniform(0, 1, 2000) < probs**1.5).astype(int)
    bins = 10
    expected = 0.0
    for b in range(bins):
        upper = probs <= (b + 1) / bins if b == bins - 1 else probs < (b + 1) / bins
        in_bin = (probs >= b / bins) & upper
        if in_bin.any():
            gap = labels[in_bin].mean() - probs[in_bin].mean()
            expected += in_bin.mean() * abs(gap)
    assert expected_calibration_error(labels, probs, bins=bins) == pytest.approx(expected)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0


def test_sigmoid_is_stable_and_exact() -> None:
    x = np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0])
    out = sigmoid(x)  # no overflow warning (warnings are errors)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[1:4], 1 / (1 + np.exp(-x[1:4])))
    assert out[0] == 0.0
    assert out[-1] == 1.0
