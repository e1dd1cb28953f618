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

import numpy as np

from spindle.evaluate._metrics import FloatArray, IntArray
from spindle.evaluate._pointwise import CombineFn, SortedRows

MAX_DRAW_CELLS = 4_000_000
"""Upper bound of draws x units (or x rows) held at once (~32 MB of float64)."""


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
