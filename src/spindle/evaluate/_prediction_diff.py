"""How far two models' scores of the same rows lie apart (a rebuilt version vs its original).

``prediction_difference`` is the pure maths behind ``spindle reproduce``'s ``prediction_diff``:
the largest and mean absolute difference, the Spearman rank correlation, and the overlap of the
two models' top-k (per result list for a ranking task, over all rows otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PredictionDiff", "prediction_difference"]


@dataclass(frozen=True)
class PredictionDiff:
    """The difference between two score arrays of the same rows.

    Attributes:
        rows: rows compared.
        max_abs: the largest absolute difference of a score.
        mean_abs: the mean absolute difference.
        spearman: the Spearman rank correlation of the two (1.0 for equal scores; None when
            either is constant, where no rank correlation is defined).
        top_k: the k of ``top_k_overlap``.
        top_k_overlap: with groups, the mean over result lists of |top-k(a) ∩ top-k(b)| / the
            list's top-k size; without, |top-k(a) ∩ top-k(b)| / k over all rows.
        lists: result lists compared (None without groups).
    """

    rows: int
    max_abs: float
    mean_abs: float
    spearman: float | None
    top_k: int
    top_k_overlap: float
    lists: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The difference as a JSON-able dict."""
        return dict(vars(self))


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average ranks (ties share the mean of their positions), 0-based."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.shape[0], np.float64)
    ranks[order] = np.arange(values.shape[0], dtype=np.float64)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return np.asarray(sums[inverse] / counts[inverse], np.float64)


def _spearman(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float | None:
    if a.shape[0] < 2:
        return None
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if denominator == 0.0:
        return 1.0 if np.array_equal(a, b) else None
    return float((ra * rb).sum() / denominator)


def _top(values: npt.NDArray[np.float64], k: int) -> set[int]:
    """The indices of the k highest values (ties broken by position, the same for both)."""
    order = np.lexsort((np.arange(values.shape[0]), -values))
    return {int(i) for i in order[:k]}


def _overlap(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], k: int) -> float:
    size = min(k, int(a.shape[0]))
    if size == 0:
        return 1.0
    return len(_top(a, size) & _top(b, size)) / size


def _as_rows(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2:  # K outputs per row (multiclass): each row's scores in turn
        return array.reshape(-1)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected scores [N] or [N, K], found shape {array.shape}")
    return array


def prediction_difference(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    groups: npt.ArrayLike | None = None,
    k: int = 10,
) -> PredictionDiff:
    """How far the scores ``b`` lie from ``a`` (the same rows, in the same order).

    Args:
        a: the first model's scores ``[N]`` (``[N, K]`` for K outputs per row: compared entry
            by entry, and the top-k is taken over the rows' largest outputs).
        b: the second model's scores, the same shape.
        groups: the result list of each row (ranking): the top-k overlap is the mean over lists.
        k: the top-k cut-off.

    Returns:
        A ``PredictionDiff``.

    Raises:
        ValueError: shapes differ, k < 1, a score is not finite, or groups has another length.

    Example:
        >>> d = prediction_difference([0.1, 0.5, 0.9], [0.1, 0.6, 0.9], k=1)
        >>> round(d.max_abs, 6), d.spearman, d.top_k_overlap
        (0.1, 1.0, 1.0)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    raw_a, raw_b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if raw_a.shape != raw_b.shape:
        raise ValueError(f"scores of different shapes: {raw_a.shape} and {raw_b.shape}")
    flat_a, flat_b = _as_rows("a", raw_a), _as_rows("b", raw_b)
    if not (np.isfinite(flat_a).all() and np.isfinite(flat_b).all()):
        raise ValueError("scores must be finite to be compared")
    rows = int(raw_a.shape[0]) if raw_a.ndim else 0
    diff = np.abs(flat_a - flat_b)
    max_abs = float(diff.max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    top_a = raw_a.max(axis=1) if raw_a.ndim == 2 else flat_a
    top_b = raw_b.max(axis=1) if raw_b.ndim == 2 else flat_b
    if groups is None:
        overlap, lists = _overlap(top_a, top_b, k), None
    else:
        keys = np.asarray(groups)
        if keys.shape[0] != rows:
            raise ValueError(f"groups has {keys.shape[0]} entries for {rows} rows")
        _, gid = np.unique(keys, return_inverse=True)
        members = np.argsort(gid, kind="stable")
        bounds = np.flatnonzero(np.diff(gid[members])) + 1
        shares = [_overlap(top_a[idx], top_b[idx], k) for idx in np.split(members, bounds)]
        lists = len(shares) if rows else 0
        overlap = float(np.mean(shares)) if rows else 1.0
    return PredictionDiff(
        rows, max_abs, mean_abs, _spearman(flat_a, flat_b), k, float(overlap), lists
    )
