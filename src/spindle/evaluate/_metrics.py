"""Evaluation metrics on score arrays: NDCG, MRR, recall@k, AUC, log loss, calibration error.

Metrics of the other tasks (regression, multiclass, PR-AUC) are in ``_pointwise``.

Every metric is vectorised NumPy (sorting and ``bincount``, no per-row Python) and checked
against scikit-learn in the tests. Conventions shared by all of them:

- Inputs are 1-D arrays of equal length; NaN or inf in labels or scores raises ``ValueError``.
- A metric that is undefined on its input (no positive label, a single class, no rows) returns
  ``nan`` without a warning; callers decide what an undefined metric means.
- Ranking metrics group rows into result lists by ``groups`` (any sortable ids; ``None`` means
  one list). Within a list, rows are ordered by descending score and **ties are broken by position
  in the input** (the earlier row ranks higher), so a metric never depends on sort internals.
  Each system costs one sort of its scores, shared by NDCG, MRR and AUC (``RankedLists``).
  scikit-learn's ``ndcg_score`` instead averages over tied orderings; the two agree when there
  are no ties.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

LOG_LOSS_EPS = 1e-7
"""Default clipping of probabilities in ``log_loss``: a confident miss costs at most ~16.1."""


def sigmoid(x: npt.ArrayLike) -> FloatArray:
    """Return the logistic function of ``x`` without overflow warnings (``scipy.special.expit``).

    Example:
        >>> sigmoid([0.0]).tolist()
        [0.5]
    """
    return np.asarray(expit(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def _finite_1d(name: str, values: npt.ArrayLike, n: int | None = None) -> FloatArray:
    """Return ``values`` as a finite 1-D float64 array of length ``n`` (when given), else raise."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but labels have {n}; pass aligned arrays")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"{name} contains {bad.size} NaN/inf value(s) (first at row {int(bad[0])}); "
            "metrics are only defined on finite values"
        )
    return arr


def _encode_groups(groups: npt.ArrayLike | None, n: int) -> tuple[npt.NDArray[Any], IntArray]:
    """Return (sorted distinct group ids, dense group index 0..G-1 of every row)."""
    if groups is None:
        return np.zeros(min(n, 1), dtype=np.int64), np.zeros(n, dtype=np.intp)
    arr = np.asarray(groups)
    if arr.shape != (n,):
        raise ValueError(f"groups must be a 1-D array of {n} ids, got shape {arr.shape}")
    try:
        ids, inverse = np.unique(arr, return_inverse=True)
    except TypeError as exc:  # e.g. None mixed with strings in an object array
        raise ValueError(f"groups must be comparable ids (ints or strings): {exc}") from exc
    return ids, np.asarray(inverse, dtype=np.intp).reshape(-1)


class RankedLists:
    """Rows of every result list ordered once by descending score; NDCG@k and MRR per list.

    Build it with dense group indices ``gid`` in ``0..n_groups-1``. Values come back per group
    index for the groups that have a positive label, in increasing group index order.
    """

    def __init__(
        self, labels: FloatArray, scores: FloatArray, gid: IntArray, n_groups: int
    ) -> None:
        n = scores.shape[0]
        # one stable sort by descending score keeps tied rows in input order: the documented
        # tie-break; a second sort on the unique key (group, that position) groups the lists
        self.by_score = np.asarray(np.argsort(-scores, kind="stable"), dtype=np.intp)
        position = np.empty(n, dtype=np.int64)
        position[self.by_score] = np.arange(n, dtype=np.int64)
        self.order = np.asarray(np.argsort(gid.astype(np.int64) * n + position), dtype=np.intp)
        counts = np.bincount(gid, minlength=n_groups)
        starts = np.cumsum(counts) - counts
        self.rank = np.arange(n, dtype=np.intp) - starts[gid[self.order]]
        self.labels, self.gid, self.n_groups = labels, gid, n_groups

    def ndcg(self, k: int) -> tuple[IntArray, FloatArray]:
        """(group indices, NDCG@k) of the groups with a positive label."""
        top = self.rank < k
        rows = self.order[top]
        gains = self.labels[rows] / np.log2(self.rank[top] + 2.0)
        dcg = np.bincount(self.gid[rows], weights=gains, minlength=self.n_groups)
        ideal = _ideal_dcg(self.labels, self.gid, self.n_groups, k)
        valid = np.flatnonzero(ideal > 0)
        return valid, np.asarray(dcg[valid] / ideal[valid], dtype=np.float64)

    def mrr(self) -> tuple[IntArray, FloatArray]:
        """(group indices, reciprocal rank of the first positive) of groups with a positive."""
        positive = self.labels[self.order] > 0
        group_of_positive = self.gid[self.order][positive]
        # rows are sorted by group then rank, so the first positive of a group is its best one
        hit_groups, first = np.unique(group_of_positive, return_index=True)
        reciprocal = 1.0 / (self.rank[positive][first] + 1.0)
        return np.asarray(hit_groups, dtype=np.intp), np.asarray(reciprocal, dtype=np.float64)

    def recall(self, k: int) -> tuple[IntArray, FloatArray]:
        """(group indices, share of the group's positive rows ranked in its top ``k``)."""
        positive = (self.labels[self.order] > 0).astype(np.float64)
        g = self.gid[self.order]
        found = np.bincount(g, weights=positive * (self.rank < k), minlength=self.n_groups)
        relevant = np.bincount(g, weights=positive, minlength=self.n_groups)
        valid = np.flatnonzero(relevant > 0)
        return valid, np.asarray(found[valid] / relevant[valid], dtype=np.float64)


def _ideal_dcg(labels: FloatArray, gid: IntArray, n_groups: int, k: int) -> FloatArray:
    """DCG@k of every group's best ordering; only positive rows have gains, so sort only those."""
    rows = np.flatnonzero(labels > 0)
    order = rows[np.lexsort((-labels[rows], gid[rows]))]
    g = gid[order]
    counts = np.bincount(g, minlength=n_groups)
    rank = np.arange(order.shape[0]) - (np.cumsum(counts) - counts)[g]
    top = rank < k
    gains = labels[order][top] / np.log2(rank[top] + 2.0)
    return np.asarray(np.bincount(g[top], weights=gains, minlength=n_groups), dtype=np.float64)


def _ranking_inputs(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, npt.NDArray[Any], IntArray]:
    y = _finite_1d("labels", labels)
    if (y < 0).any():
        raise ValueError("ranking labels are gains and must be >= 0 (0 = not relevant)")
    s = _finite_1d("scores", scores, y.shape[0])
    ids, gid = _encode_groups(groups, y.shape[0])
    return y, s, ids, gid


def per_group_ndcg(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None, k: int = 10
) -> tuple[npt.NDArray[Any], FloatArray]:
    """Return NDCG@k of every result list that has at least one positive label.

    Args:
        labels: graded relevance (gain) per row, >= 0; gains are used linearly as in scikit-learn.
        scores: model scores per row; higher ranks first, ties broken by input position.
        groups: result-list id per row (e.g. search id); ``None`` means one list.
        k: rank cut-off, >= 1; both DCG and the ideal DCG are truncated at ``k``.

    Returns:
        (group ids, NDCG values), aligned and sorted by group id. Lists without a positive label
        have no ideal ranking and are left out.

    Raises:
        ValueError: misaligned arrays, NaN/inf, negative labels or ``k < 1``.

    Example:
        >>> ids, vals = per_group_ndcg([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2], [7, 7, 8, 8])
        >>> ids.tolist(), vals.round(4).tolist()
        ([7, 8], [1.0, 0.6309])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y, s, ids, gid = _ranking_inputs(labels, scores, groups)
    index, values = RankedLists(y, s, gid, ids.shape[0]).ndcg(k)
    return ids[index], values


def ndcg_at_k(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None, k: int = 10
) -> float:
    """Return the mean NDCG@k over result lists with at least one positive label.

    Ties in ``scores`` are broken by input position (see the module docstring); ``nan`` when no
    list has a positive label. See ``per_group_ndcg`` for arguments.

    Example:
        >>> round(ndcg_at_k([1, 0, 0, 1], [0.9, 0.1, 0.8, 0.2], [7, 7, 8, 8]), 4)
        0.8155
    """
    _, values = per_group_ndcg(labels, scores, groups, k)
    return float(values.mean()) if values.size else float("nan")


def per_group_mrr(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None
) -> tuple[npt.NDArray[Any], FloatArray]:
    """Return the reciprocal rank of the first positive row (label > 0) of every list that has one.

    Same conventions as ``per_group_ndcg``: ties broken by input position, lists without a
    positive are left out, results sorted by group id.
    """
    y, s, ids, gid = _ranking_inputs(labels, scores, groups)
    index, values = RankedLists(y, s, gid, ids.shape[0]).mrr()
    return ids[index], values


def mrr(labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None) -> float:
    """Return the mean reciprocal rank of the first positive row over lists that have one.

    Example:
        >>> mrr([0, 1, 1, 0], [0.9, 0.1, 0.8, 0.2], [7, 7, 8, 8])
        0.75
    """
    _, values = per_group_mrr(labels, scores, groups)
    return float(values.mean()) if values.size else float("nan")


def per_group_recall(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None, k: int = 10
) -> tuple[npt.NDArray[Any], FloatArray]:
    """Return recall@k of every result list with a positive row: positives in the top k / positives.

    Same conventions as ``per_group_ndcg`` (ties broken by input position, lists without a
    positive left out, results sorted by group id).

    Example:
        >>> ids, vals = per_group_recall([1, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], [7, 7, 7, 8], k=2)
        >>> ids.tolist(), vals.tolist()
        ([7, 8], [0.5, 1.0])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y, s, ids, gid = _ranking_inputs(labels, scores, groups)
    index, values = RankedLists(y, s, gid, ids.shape[0]).recall(k)
    return ids[index], values


def recall_at_k(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: npt.ArrayLike | None, k: int = 10
) -> float:
    """Return the mean recall@k over result lists with a positive row (``nan`` when none).

    Example:
        >>> recall_at_k([1, 1, 0, 1], [0.9, 0.1, 0.8, 0.2], [7, 7, 7, 8], k=2)
        0.75
    """
    _, values = per_group_recall(labels, scores, groups, k)
    return float(values.mean()) if values.size else float("nan")


class SortedScores:
    """Scores sorted once, so AUC can be recomputed for many row weightings (the bootstrap).

    AUC is the Mann-Whitney statistic: the weighted share of (positive, negative) pairs ranked
    correctly, a tie counting one half, which is exactly scikit-learn's ``roc_auc_score``.
    Weights are passed in ``order`` (ascending score), so each AUC is a few sequential passes.
    ``ascending`` may pass a ready ascending order (any order of tied scores works).
    """

    def __init__(self, scores: FloatArray, ascending: IntArray | None = None) -> None:
        self.order = np.argsort(scores) if ascending is None else ascending
        ordered = scores[self.order]
        new_value = np.ones(ordered.shape[0], dtype=bool)
        new_value[1:] = ordered[1:] != ordered[:-1]
        # first row of every run of equal scores; None when all scores differ (the fast path)
        self.starts = None if new_value.all() else np.flatnonzero(new_value)

    def auc(self, w_pos: FloatArray, w_neg: FloatArray) -> float:
        """AUC when sorted row i weighs ``w_pos[i]`` as a positive, ``w_neg[i]`` as a negative."""
        total = float(w_pos.sum()) * float(w_neg.sum())
        if total <= 0:
            return float("nan")
        if self.starts is not None:  # aggregate tied rows into one value each
            w_pos = np.add.reduceat(w_pos, self.starts)
            w_neg = np.add.reduceat(w_neg, self.starts)
        # negative weight strictly below each value, plus half of the ties at that value
        below_or_tied = np.cumsum(w_neg) - 0.5 * w_neg
        return float(np.dot(w_pos, below_or_tied)) / total


def auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Return the ROC AUC of ``scores`` for ``labels > 0`` (rank-based; ties count one half).

    Matches ``sklearn.metrics.roc_auc_score`` including tied scores.

    Returns:
        The AUC, or ``nan`` when the labels hold a single class (AUC is undefined).

    Raises:
        ValueError: misaligned arrays or NaN/inf in labels or scores.

    Example:
        >>> auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y = _finite_1d("labels", labels)
    s = _finite_1d("scores", scores, y.shape[0])
    ranked = SortedScores(s)
    positive = (y[ranked.order] > 0).astype(np.float64)
    return ranked.auc(positive, 1.0 - positive)


def _binary_probabilities(
    labels: npt.ArrayLike, probs: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    y = _finite_1d("labels", labels)
    p = _finite_1d("probs", probs, y.shape[0])
    if ((y < 0) | (y > 1)).any():
        raise ValueError("labels must be in [0, 1] (0/1 outcomes)")
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probs must be probabilities in [0, 1]; apply sigmoid() to logits first")
    return y, p


def log_loss(labels: npt.ArrayLike, probs: npt.ArrayLike, eps: float = LOG_LOSS_EPS) -> float:
    """Return the mean binary cross-entropy of ``probs`` (clipped to [eps, 1 - eps]).

    Returns ``nan`` for no rows. Raises ``ValueError`` for labels outside [0, 1], probabilities
    outside [0, 1] (pass ``sigmoid(logits)``), NaN/inf or misaligned arrays.

    Example:
        >>> round(log_loss([1, 0], [0.8, 0.4]), 4)
        0.367
    """
    terms = _log_loss_terms(labels, probs, eps)
    return float(terms.mean()) if terms.size else float("nan")


def _log_loss_terms(
    labels: npt.ArrayLike, probs: npt.ArrayLike, eps: float = LOG_LOSS_EPS
) -> FloatArray:
    """Return the cross-entropy of every row; ``log_loss`` is their mean (same validation)."""
    y, p = _binary_probabilities(labels, probs)
    p = np.clip(p, eps, 1.0 - eps)
    return np.asarray(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)), dtype=np.float64)


def expected_calibration_error(
    labels: npt.ArrayLike, probs: npt.ArrayLike, bins: int = 10
) -> float:
    """Return the expected calibration error over ``bins`` equal-width probability bins.

    ECE = sum over bins of (rows in bin / rows) * |mean label - mean probability|; a probability
    of exactly 1 falls in the last bin. ``nan`` for no rows.

    Example:
        >>> expected_calibration_error([1, 0, 1, 0], [0.9, 0.1, 0.6, 0.4], bins=2)
        0.25
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    y, p = _binary_probabilities(labels, probs)
    if y.shape[0] == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(np.intp), bins - 1)
    gap = np.bincount(index, weights=y, minlength=bins) - np.bincount(
        index, weights=p, minlength=bins
    )
    # (n_b / n) * |sum_y / n_b - sum_p / n_b| == |sum_y - sum_p| / n: no empty-bin division
    return float(np.abs(gap).sum() / y.shape[0])
