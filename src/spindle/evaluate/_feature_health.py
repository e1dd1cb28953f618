"""Feature health on the holdout: a pinned feature that is all null, constant or moved.

A model trained on a broken feature (a join that nulls it, a computation that returns one
value) loses quality, and the regression check sees that; this check says *which* feature
broke. Each candidate pin is profiled on the holdout rows and, when production pins another
version of the same feature, compared with it on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.evaluate._checks import population_stability_index
from spindle.evaluate._report import GateReason

MAX_NULL_SHARE_RISE = 0.5
"""A candidate pin with this much larger a share of null rows than production's version blocks."""
FEATURE_PSI_WARN = 1.0
"""A numeric pin whose distribution moved this far (PSI) from production's version is flagged."""


@dataclass(frozen=True, eq=False)
class FeatureValues:
    """A pinned feature's values on the holdout rows, next to production's pin of it.

    Attributes:
        ref: the candidate's pin, e.g. ``"product.price_usd@2"``.
        values: one value per holdout row (Arrow or NumPy; null or NaN = missing).
        baseline_ref: production's pin of the same feature (another version, or the same
            one), or None when production does not pin it (or there is no production).
        baseline_values: production's pin's values on the same rows; None when the pin is the
            same as the candidate's (nothing to compare) or unknown.
    """

    ref: str
    values: Any
    baseline_ref: str | None = None
    baseline_values: Any = None


@dataclass(frozen=True)
class _Profile:
    n: int
    null_share: float
    distinct: int
    numeric: np.ndarray | None

    def describe(self) -> str:
        return f"{self.null_share:.0%} null, {self.distinct} distinct values"


def _profile(values: Any) -> _Profile:
    column = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([pa.array(values)])
    n = len(column)
    missing = column.null_count
    numeric = None
    kind = column.type
    if pa.types.is_floating(kind):
        missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        dense = column.drop_null().to_numpy().astype(np.float64)
        numeric = dense[np.isfinite(dense)]
        distinct = int(np.unique(numeric).size)
    elif pa.types.is_null(kind):  # all values None: Arrow has no distinct count of nulls
        distinct = 0
    else:
        distinct = int(pc.count_distinct(column.drop_null()).as_py())
    return _Profile(n, missing / n if n else 0.0, distinct, numeric)


def _reason(
    ref: str,
    passed: bool,
    warning: bool,
    value: float,
    base: float | None,
    message: str,
    threshold: float | None = MAX_NULL_SHARE_RISE,
) -> GateReason:
    return GateReason(
        check="feature_health",
        passed=passed,
        metric=ref,
        slice=None,
        candidate=value,
        baseline=base,
        interval=None,
        threshold=threshold,
        message=("WARN: " if warning else "") + message,
        warning=warning,
    )


def _check(feature: FeatureValues) -> GateReason | None:
    """The reason for one pin when something is wrong with it, else None."""
    cand = _profile(feature.values)
    ref, same = feature.ref, feature.baseline_ref == feature.ref
    base = None if feature.baseline_values is None or same else _profile(feature.baseline_values)
    vs = f"; production's {feature.baseline_ref}: {base.describe()}" if base is not None else ""
    dead = cand.null_share >= 1.0 or cand.distinct <= 1
    if dead:
        what = "null on every holdout row" if cand.null_share >= 1.0 else "constant"
        message = f"{ref} is {what} ({cand.describe()} over {cand.n} rows){vs}"
        if same:  # production reads the very same column: a data problem of the day, not the model
            return _reason(ref, True, True, cand.null_share, None, message)
        if base is not None and (base.null_share >= 1.0 or base.distinct <= 1):
            return _reason(ref, True, True, cand.null_share, base.null_share, message)
        if base is None and cand.null_share < 1.0:  # e.g. no discount at all that day
            return _reason(ref, True, True, cand.null_share, None, message)
        message += ": the feature is broken (a computation or join bug); the model cannot use it"
        base_share = None if base is None else base.null_share
        return _reason(ref, False, False, cand.null_share, base_share, message)
    if base is None:
        return None
    rise = cand.null_share - base.null_share
    if rise > MAX_NULL_SHARE_RISE:
        message = (
            f"{ref} is null on {cand.null_share:.0%} of holdout rows vs {base.null_share:.0%} for "
            f"{feature.baseline_ref} (+{rise:.0%} > {MAX_NULL_SHARE_RISE:.0%}): a join or "
            "computation of the new version loses values"
        )
        return _reason(ref, False, False, cand.null_share, base.null_share, message)
    if cand.numeric is not None and base.numeric is not None and base.numeric.size > 0:
        psi = population_stability_index(base.numeric, cand.numeric)
        if psi > FEATURE_PSI_WARN:
            message = (
                f"{ref} moved from {feature.baseline_ref} (PSI {psi:.2f} > {FEATURE_PSI_WARN:g}; "
                f"mean {float(cand.numeric.mean()):.4g} vs {float(base.numeric.mean()):.4g}): "
                "intended by the new version? check units and joins"
            )
            return _reason(ref, True, True, psi, None, message, FEATURE_PSI_WARN)
    return None


def feature_health_reasons(features: Sequence[FeatureValues]) -> list[GateReason]:
    """One reason per unhealthy pin (FAIL or WARN), or one passing summary when all are healthy.

    A pin FAILs when it is null on every holdout row or constant while production's version of
    the same feature is not (or production does not pin it and it is all null), or when its
    share of null rows exceeds production's version's by more than ``MAX_NULL_SHARE_RISE``.
    A numeric pin whose distribution moved from production's version by a PSI above
    ``FEATURE_PSI_WARN`` is a WARN (a new version may change units on purpose). A pin that
    production reads too (same version) is never blocking: that is the day's data, which data
    validation judges.

    Example:
        >>> feature_health_reasons([FeatureValues("product.price_usd@2", [None, None])])[0].passed
        False
    """
    reasons = [r for r in (_check(f) for f in features) if r is not None]
    if reasons or not features:
        return reasons
    summary = f"{len(features)} pinned features are populated and vary on the holdout"
    changed = [f.ref for f in features if f.baseline_ref not in (None, f.ref)]
    if changed:
        summary += f" (new versions vs production: {', '.join(changed)})"
    return [_reason("features", True, False, float(len(features)), None, summary, None)]
