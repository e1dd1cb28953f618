"""Paired bootstrap: a confidence interval for metric(system a) - metric(system b) on one holdout.

Both systems are scored on the *same* resampled units (queries for ranking; rows or users for
binary tasks), so the noise they share cancels and the interval is much narrower than two
independent intervals would suggest. Resampling units rather than rows keeps correlated rows (one
user's impressions, one query's result list) together.

Four paths, same statistics:

- per-group metrics (NDCG, MRR, or any ``per_group`` function): the per-group values are computed
  once per system and resampling only averages group deltas (fully vectorised);
- ``log_loss``: per-row losses are summed per unit once; a resample is a ratio of sums
  (fully vectorised);
- ``auc``: scores are sorted once; each resample is a weighted AUC from cumulative sums in
  score order (no sort per resample);
- the additive metrics of ``_pointwise`` (ECE, RMSE, MAE, R², accuracy, multiclass log loss,
  macro-F1) and ``average_precision``: sums per unit once, then a matrix product per chunk of
  draws (``_resample``);
- any other ``metric_fn(labels, scores) -> float``: the resampled rows are gathered and the
  metric recomputed, ``n_resamples`` times.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from spindle.evaluate._metrics import (
    LOG_LOSS_EPS,
    BoolArray,
    FloatArray,
    IntArray,
    SortedScores,
    _encode_groups,
    _log_loss_terms,
    auc,
    log_loss,
    mrr,
    ndcg_at_k,
    per_group_mrr,
    per_group_ndcg,
)
from spindle.evaluate._resample import VECTORISED, vectorised_deltas

PerGroupFn = Callable[..., tuple[npt.NDArray[Any], FloatArray]]
"""``per_group(labels, scores, groups) -> (group ids, values)``; the metric is the values' mean."""

_MAX_DRAWS_PER_CHUNK = 4_000_000  # bounds memory of the vectorised group resampling (~32 MB)


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Interval:
    """Paired bootstrap estimate of ``metric(a) - metric(b)``.

    Attributes:
        estimate: the point difference on the full holdout, ``value_a - value_b``.
        lower, upper: percentile interval of the resampled differences at ``confidence``.
        p_below_zero: share of resamples with a difference < 0 (a one-sided, p-value-like number:
            small means a is reliably not worse than b; near 1 means a is reliably worse).
        confidence: the interval's nominal coverage, e.g. 0.95.
        n_resamples: resamples used (those where the metric was undefined are left out).
        value_a, value_b: the metric of each system on the full holdout.
        n_units: number of resampling units (groups, or rows when no groups were given).
    """

    estimate: float
    lower: float
    upper: float
    p_below_zero: float
    confidence: float
    n_resamples: int
    value_a: float
    value_b: float
    n_units: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (False when undefined)."""
        return self.upper < 0 or self.lower > 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (undefined numbers become ``None``)."""
        return {
            "estimate": _json_float(self.estimate),
            "lower": _json_float(self.lower),
            "upper": _json_float(self.upper),
            "p_below_zero": _json_float(self.p_below_zero),
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "value_a": _json_float(self.value_a),
            "value_b": _json_float(self.value_b),
            "n_units": self.n_units,
        }


def _unwrap(metric_fn: Callable[..., float]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(function, keywords) of a keyword-only ``functools.partial``; else (metric_fn, {})."""
    if isinstance(metric_fn, functools.partial) and not metric_fn.args:
        return metric_fn.func, dict(metric_fn.keywords)
    return metric_fn, {}


def _per_group_for(metric_fn: Callable[..., float]) -> PerGroupFn | None:
    """Return the per-group form of ``ndcg_at_k`` / ``mrr`` (or their keyword partials), or None."""
    fn, keywords = _unwrap(metric_fn)
    if fn is ndcg_at_k:
        return functools.partial(per_group_ndcg, **keywords)
    if fn is mrr and not keywords:
        return per_group_mrr
    return None


def _log_loss_eps(metric_fn: Callable[..., float]) -> float | None:
    """The ``eps`` of ``log_loss`` (or of a keyword partial of it), None for other metrics."""
    fn, keywords = _unwrap(metric_fn)
    if fn is log_loss and set(keywords) <= {"eps"}:
        return float(keywords.get("eps", LOG_LOSS_EPS))
    return None


def _summarise(
    value_a: float, value_b: float, deltas: FloatArray, confidence: float, n_units: int
) -> Interval:
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        lower = upper = p_below = float("nan")
    else:
        alpha = 1.0 - confidence
        lower, upper = (float(q) for q in np.quantile(finite, [alpha / 2, 1.0 - alpha / 2]))
        p_below = float(np.mean(finite < 0))
    return Interval(
        estimate=value_a - value_b,
        lower=lower,
        upper=upper,
        p_below_zero=p_below,
        confidence=confidence,
        n_resamples=int(finite.size),
        value_a=value_a,
        value_b=value_b,
        n_units=n_units,
    )


def _resampled_ratios(
    sums: FloatArray, counts: FloatArray | None, n_resamples: int, rng: np.random.Generator
) -> FloatArray:
    """sum(sums[draw]) / sum(counts[draw]) for ``n_resamples`` draws of units with replacement.

    With ``counts=None`` every unit counts once (a mean of unit values). Drawn in chunks so the
    index matrix stays below ``_MAX_DRAWS_PER_CHUNK`` entries.
    """
    n = sums.shape[0]
    out = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // max(n, 1))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        drawn = rng.integers(0, n, size=(size, n))
        total = sums[drawn].sum(axis=1)
        out[start : start + size] = total / (n if counts is None else counts[drawn].sum(axis=1))
    return out


def _means_interval(
    values_a: FloatArray,
    values_b: FloatArray,
    n_resamples: int,
    rng: np.random.Generator,
    confidence: float,
) -> Interval:
    n_units = int(values_a.shape[0])
    if n_units == 0:
        nan = float("nan")
        return _summarise(nan, nan, np.empty(0), confidence, 0)
    deltas = _resampled_ratios(values_a - values_b, None, n_resamples, rng)
    return _summarise(float(values_a.mean()), float(values_b.mean()), deltas, confidence, n_units)


def paired_bootstrap_means(
    values_a: npt.ArrayLike,
    values_b: npt.ArrayLike,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Return the paired bootstrap interval of mean(a) - mean(b) for aligned per-unit values.

    The building block of the per-query path of ``paired_bootstrap``, for callers that already
    hold per-query (or per-user) metric values of two systems, aligned unit by unit.

    Example:
        >>> round(paired_bootstrap_means([0.5, 0.7, 0.9], [0.5, 0.6, 0.7]).estimate, 6)
        0.1
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"values must be two aligned 1-D arrays, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("values contain NaN or inf")
    _check_settings(n_resamples, confidence)
    return _means_interval(a, b, n_resamples, np.random.default_rng(seed), confidence)


def _check_settings(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _grouped_bootstrap(
    per_group: PerGroupFn,
    labels: npt.ArrayLike,
    scores_a: npt.ArrayLike,
    scores_b: npt.ArrayLike,
    groups: npt.ArrayLike,
    n_resamples: int,
    rng: np.random.Generator,
    confidence: float,
) -> Interval:
    ids_a, values_a = per_group(labels, scores_a, groups)
    ids_b, values_b = per_group(labels, scores_b, groups)
    if not np.array_equal(ids_a, ids_b):
        raise ValueError(
            "per_group returned different groups for the two systems; which groups count "
            "must depend on the labels only"
        )
    return _means_interval(values_a, values_b, n_resamples, rng, confidence)


def _draw_weights(
    unit: IntArray | None, n_units: int, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """How often each row is drawn: its unit's count in one with-replacement draw of units."""
    draws = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
    return draws if unit is None else draws[unit]


class _ResampledAuc:
    """One system's AUC under resampling weights; its scores are sorted once, not per resample."""

    def __init__(self, scores: FloatArray, positive: BoolArray, unit: IntArray | None) -> None:
        self.ranked = SortedScores(scores)
        order = self.ranked.order
        self.unit = order if unit is None else unit[order]  # index into the draws, sorted
        self.positive = positive[order].astype(np.float64)
        self.negative = 1.0 - self.positive
        self.positive_rows = np.flatnonzero(positive[order])

    def __call__(self, draws: FloatArray) -> float:
        weights = draws[self.unit]
        if self.ranked.starts is not None:  # tied scores: the general path aggregates ties
            w_pos = weights * self.positive
            return self.ranked.auc(w_pos, weights - w_pos)
        # all scores distinct: the negative weight up to a positive row is strictly below it
        below = np.cumsum(weights * self.negative)
        w_pos = weights[self.positive_rows]
        total = float(w_pos.sum()) * float(below[-1]) if below.size else 0.0
        if total <= 0:
            return float("nan")
        return float(np.dot(w_pos, below[self.positive_rows])) / total


def _auc_deltas(
    y: FloatArray,
    a: FloatArray,
    b: FloatArray,
    unit: IntArray | None,
    n_units: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> FloatArray:
    """AUC(a) - AUC(b) per resample as weighted AUCs over the same drawn units."""
    positive = y > 0
    auc_a, auc_b = _ResampledAuc(a, positive, unit), _ResampledAuc(b, positive, unit)
    deltas = np.empty(n_resamples, dtype=np.float64)
    for i in range(n_resamples):
        draws = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
        draws_f = draws.astype(np.float64)
        deltas[i] = auc_a(draws_f) - auc_b(draws_f)
    return deltas


def _row_bootstrap(
    metric_fn: Callable[..., float],
    labels: npt.ArrayLike,
    scores_a: npt.ArrayLike,
    scores_b: npt.ArrayLike,
    groups: npt.ArrayLike | None,
    n_resamples: int,
    rng: np.random.Generator,
    confidence: float,
) -> Interval:
    y, a, b = np.asarray(labels), np.asarray(scores_a), np.asarray(scores_b)
    value_a, value_b = float(metric_fn(y, a)), float(metric_fn(y, b))  # validates the inputs
    n = y.shape[0]
    unit = None if groups is None else _encode_groups(groups, n)[1]
    n_units = n if unit is None else (int(unit.max()) + 1 if n else 0)
    if not (math.isfinite(value_a) and math.isfinite(value_b)):
        return _summarise(value_a, value_b, np.empty(0), confidence, n_units)
    eps = _log_loss_eps(metric_fn)
    if eps is not None:
        difference = _log_loss_terms(y, a, eps) - _log_loss_terms(y, b, eps)
        index = np.arange(n) if unit is None else unit
        sums = np.bincount(index, weights=difference, minlength=n_units).astype(np.float64)
        rows_per_unit = np.bincount(index, minlength=n_units).astype(np.float64)
        deltas = _resampled_ratios(sums, rows_per_unit, n_resamples, rng)
    elif metric_fn in VECTORISED:
        seed = int(rng.integers(0, 2**63 - 1))
        deltas = vectorised_deltas(metric_fn, y, (a, b), unit, n_units, n_resamples, seed)
    elif metric_fn is auc:
        y_f, a_f, b_f = (np.asarray(v, dtype=np.float64) for v in (y, a, b))
        deltas = _auc_deltas(y_f, a_f, b_f, unit, n_units, n_resamples, rng)
    else:
        deltas = np.empty(n_resamples, dtype=np.float64)
        rows = np.arange(n)
        for i in range(n_resamples):
            picked = np.repeat(rows, _draw_weights(unit, n_units, rng))
            value = float(metric_fn(y[picked], a[picked]))
            deltas[i] = value - float(metric_fn(y[picked], b[picked]))
    return _summarise(value_a, value_b, deltas, confidence, n_units)


def paired_bootstrap(
    metric_fn: Callable[..., float],
    labels: npt.ArrayLike,
    scores_a: npt.ArrayLike,
    scores_b: npt.ArrayLike,
    groups: npt.ArrayLike | None,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    *,
    per_group: PerGroupFn | None = None,
) -> Interval:
    """Return a paired bootstrap interval for ``metric(a) - metric(b)``, resampling ``groups``.

    Args:
        metric_fn: ``ndcg_at_k`` or ``mrr`` (or a keyword ``functools.partial`` of them, e.g.
            ``partial(ndcg_at_k, k=5)``): resampled per query; otherwise a row metric
            ``metric_fn(labels, scores) -> float`` such as ``auc``, ``log_loss`` or
            ``expected_calibration_error`` (pass probabilities as scores for the last two);
            ``average_precision``, ``rmse``, ``mae``, ``r2`` and, with class probabilities
            ``[rows, K]`` as scores, ``accuracy``, ``multiclass_log_loss`` and ``macro_f1``
            are resampled vectorised too.
        labels: labels per row, shared by both systems.
        scores_a, scores_b: the two systems' scores (or probabilities) per row.
        groups: resampling unit per row: query ids for ranking (required there), user ids or
            ``None`` (= rows) for row metrics.
        n_resamples: number of bootstrap resamples.
        seed: seed of the resampling; equal inputs and seed give an equal interval.
        confidence: nominal coverage of the percentile interval, in (0, 1).
        per_group: for a custom grouped metric, ``per_group(labels, scores, groups) -> (ids,
            values)`` whose mean is the metric; enables the per-group path.

    Returns:
        An ``Interval``; all-NaN numbers when the metric is undefined on the holdout.

    Raises:
        ValueError: bad arguments, misaligned arrays, NaN/inf, or a grouped metric without groups.

    Example:
        >>> iv = paired_bootstrap(auc, [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], [0.9, 0.1, 0.2, 0.8],
        ...                       None, n_resamples=50)
        >>> iv.estimate
        0.75
    """
    _check_settings(n_resamples, confidence)
    rng = np.random.default_rng(seed)
    grouped = per_group if per_group is not None else _per_group_for(metric_fn)
    if grouped is None:
        return _row_bootstrap(
            metric_fn, labels, scores_a, scores_b, groups, n_resamples, rng, confidence
        )
    if groups is None:
        raise ValueError("a per-group metric (NDCG, MRR) needs groups: the query id of every row")
    return _grouped_bootstrap(
        grouped, labels, scores_a, scores_b, groups, n_resamples, rng, confidence
    )
