"""Metrics of one prediction per row: PR-AUC, regression (RMSE, MAE, R²), multiclass.

Every additive metric is written once, as per-unit sums (``*_stats``) and a function of their
totals (``*_combine``): the plain metric combines the sums over all rows, and the bootstrap
(``_resample``) combines resampled totals ``draws @ stats``, so both compute the same thing.
Conventions are those of ``_metrics``: NaN/inf inputs raise ``ValueError``; a metric undefined
on its input (no rows, constant labels for R², no positive for PR-AUC) returns ``nan``.
Multiclass predictions are class probabilities of shape ``[rows, classes]``; the predicted class
is the most probable one (ties: the lowest class index, as ``np.argmax``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spindle.evaluate._metrics import (
    LOG_LOSS_EPS,
    FloatArray,
    IntArray,
    _finite_1d,
    _log_loss_terms,
)

CLASS_SUM_TOLERANCE = 1e-4
"""How far a row of class probabilities may sum from 1 (rows are renormalised within it)."""

StatsFn = Callable[[FloatArray, npt.NDArray[np.float64], IntArray, int], FloatArray]
"""``stats(labels, predictions, unit, n_units) -> [n_units, m]`` sums per resampling unit."""
CombineFn = Callable[[FloatArray], FloatArray]
"""``combine(totals[..., m]) -> metric[...]`` from (resampled) totals of the unit sums."""


@dataclass(frozen=True)
class Additive:
    """A metric computed from sums over rows: ``combine(sum of stats over units)``."""

    stats: StatsFn
    combine: CombineFn

    def value(self, labels: FloatArray, predictions: npt.NDArray[np.float64]) -> float:
        """The metric on all rows (each row its own unit)."""
        n = labels.shape[0]
        sums = self.stats(labels, predictions, np.zeros(n, dtype=np.intp), 1)
        return float(self.combine(sums[0]))


def _by_unit(columns: list[FloatArray], unit: IntArray, n_units: int) -> FloatArray:
    """Sum each per-row column over the rows of every unit: ``[n_units, len(columns)]``."""
    return np.stack([np.bincount(unit, weights=c, minlength=n_units) for c in columns], axis=1)


def _one_hot_by_unit(index: IntArray, width: int, unit: IntArray, n_units: int) -> FloatArray:
    """Count rows per (unit, index): ``[n_units, width]``."""
    flat = np.bincount(unit * width + index, minlength=n_units * width)
    return np.asarray(flat.reshape(n_units, width), dtype=np.float64)


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, ``nan`` where the denominator is 0 (no rows drawn)."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


# -- binary probabilities -------------------------------------------------------------------

ECE_BINS = 10
"""Equal-width probability bins of the expected calibration error."""


def _log_loss_stats(
    y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int
) -> FloatArray:
    return _by_unit([_log_loss_terms(y, p), np.ones_like(y)], unit, n)


def _ece_stats(y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int) -> FloatArray:
    """Per unit: labels and probabilities summed per bin, and the row count ``[n, 2 bins + 1]``."""
    index = np.minimum((p * ECE_BINS).astype(np.intp), ECE_BINS - 1)
    flat = unit * ECE_BINS + index
    y_sums = np.bincount(flat, weights=y, minlength=n * ECE_BINS).reshape(n, ECE_BINS)
    p_sums = np.bincount(flat, weights=p, minlength=n * ECE_BINS).reshape(n, ECE_BINS)
    rows = np.bincount(unit, minlength=n).astype(np.float64)[:, None]
    return np.concatenate([y_sums, p_sums, rows], axis=1)


def _ece_combine(t: FloatArray) -> FloatArray:
    gap = np.abs(t[..., :ECE_BINS] - t[..., ECE_BINS : 2 * ECE_BINS]).sum(axis=-1)
    return _ratio(gap, t[..., -1])


BINARY_LOG_LOSS = Additive(_log_loss_stats, lambda t: _ratio(t[..., 0], t[..., 1]))
"""``log_loss`` as unit sums (same clipping)."""
ECE = Additive(_ece_stats, _ece_combine)
"""``expected_calibration_error`` with ``ECE_BINS`` bins as unit sums."""


# -- regression -------------------------------------------------------------------------------


def _regression_inputs(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> tuple[FloatArray, ...]:
    y = _finite_1d("labels", labels)
    return y, _finite_1d("predictions", predictions, y.shape[0])


def _sq_stats(y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int) -> FloatArray:
    return _by_unit([(y - p) ** 2, np.ones_like(y)], unit, n)


def _abs_stats(y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int) -> FloatArray:
    return _by_unit([np.abs(y - p), np.ones_like(y)], unit, n)


def _r2_stats(y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int) -> FloatArray:
    # centred on the holdout mean: the total sum of squares is shift-invariant, and centring
    # avoids the cancellation of sum(y^2) - sum(y)^2 / n for labels far from 0
    c = y - (y.mean() if y.size else 0.0)
    return _by_unit([(y - p) ** 2, c, c * c, np.ones_like(y)], unit, n)


def _r2_combine(t: FloatArray) -> FloatArray:
    total = t[..., 2] - _ratio(t[..., 1] ** 2, t[..., 3])
    scale = np.maximum(t[..., 2], 1e-300)
    # labels constant on the rows (to rounding): R² is undefined
    return 1.0 - _ratio(t[..., 0], np.where(total > 1e-12 * scale, total, 0.0))


RMSE = Additive(_sq_stats, lambda t: np.sqrt(_ratio(t[..., 0], t[..., 1])))
MAE = Additive(_abs_stats, lambda t: _ratio(t[..., 0], t[..., 1]))
R2 = Additive(_r2_stats, _r2_combine)


def rmse(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> float:
    """Return the root mean squared error (``nan`` for no rows).

    Example:
        >>> rmse([1.0, 2.0], [1.0, 4.0]).__round__(4)
        1.4142
    """
    return RMSE.value(*_regression_inputs(labels, predictions))


def mae(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> float:
    """Return the mean absolute error (``nan`` for no rows).

    Example:
        >>> mae([1.0, 2.0], [1.0, 4.0])
        1.0
    """
    return MAE.value(*_regression_inputs(labels, predictions))


def r2(labels: npt.ArrayLike, predictions: npt.ArrayLike) -> float:
    """Return the coefficient of determination R² (``nan`` when the labels are constant).

    Matches ``sklearn.metrics.r2_score`` where it is defined (scikit-learn returns 0 or 1 for
    constant labels instead).

    Example:
        >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
        0.5
    """
    return R2.value(*_regression_inputs(labels, predictions))


# -- multiclass -------------------------------------------------------------------------------


def class_inputs(labels: npt.ArrayLike, probs: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate multiclass labels (classes 0..K-1) and class probabilities ``[rows, K]``.

    Returns:
        (labels as float64, probabilities with every row renormalised to sum 1).

    Raises:
        ValueError: naming the first bad row: a label that is not a class index, a probability
            outside [0, 1], NaN/inf, or a row that does not sum to 1 (within 1e-4).
    """
    y = _finite_1d("labels", labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[1] < 2:
        raise ValueError(
            f"class probabilities must have shape [{y.shape[0]}, classes >= 2], got {p.shape}"
        )
    k = p.shape[1]
    bad = np.flatnonzero((y != np.round(y)) | (y < 0) | (y >= k))
    if bad.size:
        raise ValueError(
            f"labels must be class indices 0..{k - 1}; row {bad[0]} is {float(y[bad[0]])!r}"
        )
    bad = np.flatnonzero(~(np.isfinite(p) & (p >= 0) & (p <= 1)).all(axis=1))
    if bad.size:
        raise ValueError(f"class probabilities must be finite and in [0, 1]; row {bad[0]} is not")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > CLASS_SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"class probabilities must sum to 1 per row; row {bad[0]} sums to {sums[bad[0]]:.6g} "
            "(apply softmax to logits first)"
        )
    return y, p / sums[:, None]


def _accuracy_stats(
    y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int
) -> FloatArray:
    correct = (np.argmax(p, axis=1) == y).astype(np.float64)
    return _by_unit([correct, np.ones_like(y)], unit, n)


def _mc_log_loss_stats(
    y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int
) -> FloatArray:
    picked = p[np.arange(y.shape[0]), y.astype(np.intp)]
    loss = -np.log(np.clip(picked, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS))
    return _by_unit([loss, np.ones_like(y)], unit, n)


def _f1_stats(y: FloatArray, p: npt.NDArray[np.float64], unit: IntArray, n: int) -> FloatArray:
    """Per unit and class: true positives, false positives, false negatives ``[n, 3K]``."""
    k = p.shape[1]
    truth, predicted = y.astype(np.intp), np.asarray(np.argmax(p, axis=1), dtype=np.intp)
    hit = truth == predicted
    tp = _one_hot_by_unit(truth[hit], k, unit[hit], n)
    fp = _one_hot_by_unit(predicted[~hit], k, unit[~hit], n)
    fn = _one_hot_by_unit(truth[~hit], k, unit[~hit], n)
    return np.concatenate([tp, fp, fn], axis=1)


def _f1_combine(t: FloatArray) -> FloatArray:
    k = t.shape[-1] // 3
    tp, fp, fn = t[..., :k], t[..., k : 2 * k], t[..., 2 * k :]
    denominator = 2 * tp + fp + fn
    f1 = _ratio(2 * tp, denominator)
    # classes that occur neither as truth nor as prediction are left out, as in scikit-learn
    present = (denominator > 0).sum(axis=-1)
    return _ratio(np.where(denominator > 0, f1, 0.0).sum(axis=-1), present.astype(np.float64))


ACCURACY = Additive(_accuracy_stats, lambda t: _ratio(t[..., 0], t[..., 1]))
MULTICLASS_LOG_LOSS = Additive(_mc_log_loss_stats, lambda t: _ratio(t[..., 0], t[..., 1]))
MACRO_F1 = Additive(_f1_stats, _f1_combine)


def accuracy(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Return the share of rows whose most probable class is the label.

    Example:
        >>> accuracy([0, 1, 2], [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]).__round__(4)
        0.6667
    """
    return ACCURACY.value(*class_inputs(labels, probs))


def multiclass_log_loss(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Return the mean cross-entropy of the label's class probability (clipped to 1e-7).

    Example:
        >>> round(multiclass_log_loss([0, 1], [[0.8, 0.2], [0.4, 0.6]]), 4)
        0.367
    """
    return MULTICLASS_LOG_LOSS.value(*class_inputs(labels, probs))


def macro_f1(labels: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """Return the unweighted mean F1 over classes that occur as label or prediction.

    Matches ``sklearn.metrics.f1_score(labels, probs.argmax(1), average="macro")``.

    Example:
        >>> round(macro_f1([0, 0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]), 4)
        0.7333
    """
    return MACRO_F1.value(*class_inputs(labels, probs))


# -- precision-recall -------------------------------------------------------------------------


class SortedRows:
    """Rows sorted once by descending score, tied scores in runs; AUC and AP for row weights.

    ``auc`` and ``average_precision`` take weights of shape ``[..., rows]`` in ``order`` (each
    leading index one resample), so many resamples are computed in one vectorised pass.
    """

    def __init__(self, scores: FloatArray, positive: FloatArray) -> None:
        self.order = np.asarray(np.argsort(-scores, kind="stable"), dtype=np.intp)
        ordered = scores[self.order]
        new_value = np.ones(ordered.shape[0], dtype=bool)
        new_value[1:] = ordered[1:] != ordered[:-1]
        self.starts = np.flatnonzero(new_value)
        self.positive = positive[self.order]

    def _runs(self, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Positive and negative weight per run of tied scores, in descending score order."""
        if self.starts.size == 0:
            empty = np.zeros((*weights.shape[:-1], 0))
            return empty, empty
        w_pos = weights * self.positive
        if self.starts.size == self.order.size:  # all scores distinct: every run is one row
            return w_pos, weights - w_pos
        return (
            np.add.reduceat(w_pos, self.starts, axis=-1),
            np.add.reduceat(weights - w_pos, self.starts, axis=-1),
        )

    def average_precision(self, weights: FloatArray) -> FloatArray:
        """Sum over thresholds of (recall gained) x (precision there), as scikit-learn."""
        pos, neg = self._runs(weights)
        tps, fps = np.cumsum(pos, axis=-1), np.cumsum(neg, axis=-1)
        total = tps[..., -1] if tps.shape[-1] else np.zeros(tps.shape[:-1])
        precision = _ratio(tps, tps + fps)
        gained = np.where(pos > 0, pos * np.nan_to_num(precision), 0.0).sum(axis=-1)
        return _ratio(gained, total)

    def auc(self, weights: FloatArray) -> FloatArray:
        """Share of (positive, negative) pairs ordered correctly, ties counting one half."""
        pos, neg = self._runs(weights)
        below = neg.sum(axis=-1, keepdims=True) - np.cumsum(neg, axis=-1) + 0.5 * neg
        return _ratio((pos * below).sum(axis=-1), pos.sum(axis=-1) * neg.sum(axis=-1))


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Return the average precision (PR-AUC) of ``scores`` for ``labels > 0``.

    Matches ``sklearn.metrics.average_precision_score`` including tied scores: the sum over
    distinct thresholds of the recall gained times the precision at that threshold.

    Returns:
        The average precision, or ``nan`` when there is no positive label.

    Raises:
        ValueError: misaligned arrays or NaN/inf.

    Example:
        >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.8333
    """
    y = _finite_1d("labels", labels)
    s = _finite_1d("scores", scores, y.shape[0])
    rows = SortedRows(s, (y > 0).astype(np.float64))
    return float(rows.average_precision(np.ones(y.shape[0])))
