"""Run-to-run spread: one model retrained with K seeds, every replica scored on the same holdout.

The paired bootstrap measures the holdout's sampling noise; it cannot see the training noise
(seed, data order). Replicas measure it: K models trained with the same config, data and base
version, differing only in ``training.seed``. The standard deviation of a metric across them is
the run-to-run noise of the candidate - baseline difference (the baseline is fixed), so a
regression smaller than ``REPLICA_NOISE_FACTOR`` x that std is within what a retrain moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spindle.evaluate._report import GateReason

REPLICA_NOISE_FACTOR = 2.0
"""A regression must exceed this x the replicas' std of the metric (and max_regression) to block."""


def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class ReplicaSpread:
    """A metric of K seed replicas of the candidate (the candidate first) on one holdout.

    Attributes:
        metric: e.g. ``"ndcg@10"``.
        slice: the slice key, or None for the whole holdout.
        systems: the replicas' system names, the candidate first.
        values: the metric of each replica, in the order of ``systems``.
    """

    metric: str
    slice: str | None
    systems: tuple[str, ...]
    values: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.values)

    @property
    def finite(self) -> tuple[float, ...]:
        return tuple(v for v in self.values if math.isfinite(v))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1) of the defined values; nan with fewer than two."""
        values = self.finite
        return float(np.std(values, ddof=1)) if len(values) >= 2 else float("nan")

    @property
    def low(self) -> float:
        return min(self.finite, default=float("nan"))

    @property
    def high(self) -> float:
        return max(self.finite, default=float("nan"))

    @property
    def noise(self) -> float:
        """The regression a retrain alone can cause: ``REPLICA_NOISE_FACTOR`` x std (0 if unknown)."""
        std = self.std
        return REPLICA_NOISE_FACTOR * std if math.isfinite(std) else 0.0

    def tolerance(self, configured: float) -> float:
        """The larger of the configured tolerance and the replica noise."""
        return max(configured, self.noise)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (undefined numbers become ``None``)."""
        return {
            "metric": self.metric,
            "slice": self.slice,
            "k": self.k,
            "systems": list(self.systems),
            "values": [_clean(v) for v in self.values],
            "std": _clean(self.std),
            "min": _clean(self.low),
            "max": _clean(self.high),
            "noise": self.noise,
        }


def replica_spread(
    metrics: dict[str, dict[str, float]], metric: str, systems: Sequence[str], slice_key: str | None
) -> ReplicaSpread:
    """The spread of ``metric`` over ``systems`` (names in ``metrics``; the candidate first)."""
    values = tuple(float(metrics[name].get(metric, float("nan"))) for name in systems)
    return ReplicaSpread(metric, slice_key, tuple(systems), values)


def spread_reason(spread: ReplicaSpread, max_regression: float) -> GateReason:
    """The spread as gate evidence: always passes; a WARN when the noise exceeds the margin."""
    widened = spread.noise > max_regression
    message = (
        f"{spread.k} seed replicas: {spread.metric} std {spread.std:.4f}, range "
        f"{spread.low:.4f} to {spread.high:.4f} (width {spread.high - spread.low:.4f}); a "
        f"regression blocks only beyond max(max_regression {max_regression:g}, "
        f"{REPLICA_NOISE_FACTOR:g} x std {spread.noise:.4f}) = {spread.tolerance(max_regression):.4f}"
    )
    if widened:
        message = (
            "WARN: "
            + message
            + "; the run-to-run noise is larger than max_regression, which the gate widened"
        )
    return GateReason(
        check="replica_spread",
        passed=True,
        metric=spread.metric,
        slice=spread.slice,
        candidate=spread.std,
        baseline=None,
        interval=(spread.low, spread.high),
        threshold=spread.noise,
        message=message,
        warning=widened,
    )
