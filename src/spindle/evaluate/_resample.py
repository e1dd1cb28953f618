"""One set of bootstrap draws shared by every metric and system of a task (paired by design).

A draw is a with-replacement sample of the resampling units (rows, users or result lists),
held as counts per unit; a chunk of draws is a ``[draws, units]`` matrix. Each metric of each
system turns a chunk into metric values without a Python loop over draws:

- an additive metric (``Additive``: log loss, ECE, RMSE, MAE, R², accuracy, macro-F1, and the
  per-list means NDCG@k / MRR / recall@k) is ``combine(counts @ unit_sums)``, one matrix product;
- a rank metric over all rows (AUC, PR-AUC) spreads the counts to rows in score order and runs
  cumulative sums along each draw (``SortedRows``).

Because every system sees the same counts, ``value(a) - value(b)`` per draw is the paired
bootstrap of the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from spindle.evaluate._metrics import (
    FloatArray,
    IntArray,
    _binary_probabilities,
    _finite_1d,
    expected_calibration_error,
)
from spindle.evaluate._pointwise import (
    ACCURACY,
    ECE,
    MACRO_F1,
    MAE,
    MULTICLASS_LOG_LOSS,
    R2,
    RMSE,
    Additive,
    CombineFn,
    SortedRows,
    _regression_inputs,
    accuracy,
    average_precision,
    class_inputs,
    macro_f1,
    mae,
    multiclass_log_loss,
    r2,
    rmse,
)

MAX_DRAW_CELLS = 262_144
"""Upper bound of draws x units (or x rows) held at once (2 MB of float64): the rank metrics
make several passes over a chunk, which are memory-bound once it leaves the CPU cache."""


@dataclass(frozen=True)
class AdditiveValues:
    """A metric of one system as sums per unit: ``combine(counts @ sums)`` per draw."""

    sums: FloatArray
    combine: CombineFn

    def __call__(self, counts: FloatArray) -> FloatArray:
        return np.asarray(self.combine(counts @ self.sums), dtype=np.float64)


@dataclass(frozen=True)
class RankValues:
    """AUC or PR-AUC of one system: unit counts spread to its rows in descending score order."""

    rows: SortedRows
    unit_in_order: IntArray
    metric: Callable[[SortedRows, FloatArray], FloatArray]

    def __call__(self, counts: FloatArray) -> FloatArray:
        return np.asarray(self.metric(self.rows, counts[:, self.unit_in_order]), dtype=np.float64)


Resampled = AdditiveValues | RankValues
"""Metric values of one system for a chunk of draws ``[draws, units] -> [draws]``."""


def draw_chunks(
    n_units: int, n_resamples: int, rng: np.random.Generator, width: int
) -> Iterator[FloatArray]:
    """Yield ``[draws, n_units]`` count matrices, ``n_resamples`` draws in all.

    ``width`` is the widest per-draw array a consumer builds (units, or rows for rank metrics):
    chunks are sized so that draws x width stays under ``MAX_DRAW_CELLS``.
    """
    chunk = max(1, MAX_DRAW_CELLS // max(width, n_units, 1))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        drawn = rng.integers(0, n_units, size=(size, n_units))
        drawn += (np.arange(size) * n_units)[:, None]
        counts = np.bincount(drawn.reshape(-1), minlength=size * n_units)
        yield counts.reshape(size, n_units).astype(np.float64)


def full_value(values: Resampled, n_units: int) -> float:
    """The metric on the holdout as it is (every unit drawn once)."""
    return float(values(np.ones((1, n_units)))[0])


def resample_all(
    values: Mapping[str, Mapping[str, Resampled]],
    n_units: int,
    width: int,
    n_resamples: int,
    seed: int,
) -> dict[str, dict[str, FloatArray]]:
    """Every metric of every system on the same ``n_resamples`` draws of ``n_units`` units.

    Args:
        values: metric -> system -> its resampled form.
        n_units: number of resampling units.
        width: widest per-draw array (see ``draw_chunks``).
        n_resamples: number of draws.
        seed: seed of the draws; equal inputs and seed give equal outputs.

    Returns:
        metric -> system -> ``[n_resamples]`` values (``nan`` where undefined on a draw).
    """
    out = {m: {s: np.empty(n_resamples) for s in systems} for m, systems in values.items()}
    start = 0
    for counts in draw_chunks(n_units, n_resamples, np.random.default_rng(seed), width):
        stop = start + counts.shape[0]
        for metric, systems in values.items():
            for system, resampled in systems.items():
                out[metric][system][start:stop] = resampled(counts)
        start = stop
    return out


def _finite_pair(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = _finite_1d("labels", labels)
    return y, _finite_1d("scores", scores, y.shape[0])


VECTORISED: dict[Callable[..., float], tuple[Additive | None, Callable[..., Any]]] = {
    expected_calibration_error: (ECE, _binary_probabilities),
    rmse: (RMSE, _regression_inputs),
    mae: (MAE, _regression_inputs),
    r2: (R2, _regression_inputs),
    accuracy: (ACCURACY, class_inputs),
    multiclass_log_loss: (MULTICLASS_LOG_LOSS, class_inputs),
    macro_f1: (MACRO_F1, class_inputs),
    average_precision: (None, _finite_pair),
}
"""Row metrics ``paired_bootstrap`` resamples here: (unit-sum form, or None for PR-AUC; the
metric's own input check)."""


def vectorised_deltas(
    metric_fn: Callable[..., float],
    labels: npt.NDArray[Any],
    predictions: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    unit: IntArray | None,
    n_units: int,
    n_resamples: int,
    seed: int,
) -> FloatArray:
    """metric(a) - metric(b) per draw of units, for a metric of ``VECTORISED``."""
    additive, check = VECTORISED[metric_fn]
    y, pa = check(labels, predictions[0])
    pb = check(labels, predictions[1])[1]
    index = np.arange(y.shape[0], dtype=np.intp) if unit is None else unit
    forms: dict[str, Resampled] = {}
    for name, p in (("a", pa), ("b", pb)):
        if additive is not None:
            forms[name] = AdditiveValues(additive.stats(y, p, index, n_units), additive.combine)
        else:
            rows = SortedRows(p, (y > 0).astype(np.float64))
            forms[name] = RankValues(rows, index[rows.order], SortedRows.average_precision)
    draws = resample_all({"m": forms}, n_units, y.shape[0], n_resamples, seed)["m"]
    return draws["a"] - draws["b"]
