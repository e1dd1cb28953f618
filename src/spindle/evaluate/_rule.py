"""The noise-aware rule: block a candidate only where it is significantly worse than production.

A difference candidate - production is judged on its paired bootstrap interval: it blocks only
when the whole interval is on the bad side of zero (significant) AND the point difference is
larger than the tolerance. The regression checks (overall and per slice) and the calibration
check share this rule, each with its own tolerance.
"""

from __future__ import annotations

import math

from spindle.evaluate._bootstrap import Interval
from spindle.evaluate._report import GateReason
from spindle.evaluate._systems import HIGHER_IS_BETTER, Scored, paired_interval


def _verdict(
    significant: bool, too_large: bool, better: bool, tolerance: float, basis: str, on_slice: bool
) -> str:
    if significant and too_large and on_slice:
        return f"significantly worse by more than {basis} ({tolerance:.4g}) on this slice: blocked"
    if significant and too_large:
        return f"significantly worse by more than {basis} {tolerance:.4g}: blocked"
    if significant:
        return f"significantly worse but within the tolerance {tolerance:g}"
    if too_large:
        return f"worse by more than {tolerance:g} but not significant: treated as noise"
    return "significantly better" if better else "no significant difference"


def regression_reason(
    metric: str,
    iv: Interval | None,
    names: tuple[str, str],
    tolerance: float,
    slice_key: str | None,
    min_units: int = 0,
    basis: str = "max_regression",
    check: str | None = None,
) -> GateReason:
    """The noise-aware rule: block only a significant regression larger than ``tolerance``.

    With fewer than ``min_units`` informative units (e.g. queries with a purchase) the
    bootstrap is too coarse to trust: such a regression is flagged, never blocked. ``basis``
    names where the tolerance comes from, for the message; ``check`` the reason's check
    (default ``regression``, or ``slice_regression`` on a slice).
    """
    if check is None:
        check = "regression" if slice_key is None else "slice_regression"
    on_slice = slice_key is not None
    if iv is None or not (math.isfinite(iv.estimate) and math.isfinite(iv.lower)):
        message = f"not compared: {metric} is undefined for {names[0]} or {names[1]} here"
        return GateReason(
            check=check,
            passed=True,
            metric=metric,
            slice=slice_key,
            candidate=float("nan") if iv is None else iv.value_a,
            baseline=None if iv is None else iv.value_b,
            interval=None,
            threshold=tolerance,
            message=message if on_slice else "WARN: " + message,
            warning=not on_slice,
        )
    higher = HIGHER_IS_BETTER[metric]
    regression = -iv.estimate if higher else iv.estimate  # > 0: the candidate is worse
    significant = iv.upper < 0 if higher else iv.lower > 0
    better = iv.lower > 0 if higher else iv.upper < 0
    too_large = regression > tolerance
    few = iv.n_units < min_units
    blocking = significant and too_large and not few
    warning = too_large and not blocking
    numbers = (
        f"{metric} {names[0]} {iv.value_a:.4f} vs {names[1]} {iv.value_b:.4f}: difference "
        f"{iv.estimate:+.4f} ({iv.confidence:.3g} CI {iv.lower:+.4f} to {iv.upper:+.4f}, "
        f"{iv.n_units} units)"
    )
    verdict = _verdict(significant, too_large, better, tolerance, basis, on_slice)
    if significant and too_large and few:
        verdict = (
            f"worse by more than {tolerance:g}, but only {iv.n_units} informative units "
            f"(< {min_units}): too few to block on"
        )
    return GateReason(
        check=check,
        passed=not blocking,
        metric=metric,
        slice=slice_key,
        candidate=iv.value_a,
        baseline=iv.value_b,
        interval=(iv.lower, iv.upper),
        threshold=tolerance,
        message=("WARN: " if warning else "") + f"{numbers}; {verdict}",
        warning=warning,
    )


def must_beat_reason(metric: str, iv: Interval | None, names: tuple[str, str]) -> GateReason:
    """``evaluation.must_beat``: the candidate must be significantly better than ``names[1]``.

    Passes only when the paired interval of candidate - baseline lies wholly on the better side
    of zero (above for a metric where higher is better, below otherwise); a tie, a win inside
    the noise or an undefined metric blocks, and the message says which.

    Example:
        >>> iv = Interval(0.03, 0.01, 0.05, 0.0, 0.95, 200, 0.71, 0.68, 100)
        >>> must_beat_reason("auc", iv, ("candidate", "route_rate")).passed
        True
    """
    cand, base = names
    if iv is None or not (math.isfinite(iv.lower) and math.isfinite(iv.upper)):
        return GateReason(
            check="must_beat",
            passed=False,
            metric=metric,
            slice=None,
            candidate=float("nan") if iv is None else iv.value_a,
            baseline=None if iv is None else iv.value_b,
            interval=None,
            threshold=0.0,
            message=f"{metric} is undefined for {cand} or {base} on this holdout, so {cand} "
            f"cannot show that it beats {base} (evaluation.must_beat)",
        )
    higher = HIGHER_IS_BETTER[metric]
    beats = iv.lower > 0 if higher else iv.upper < 0
    verdict = "beats" if beats else "does not significantly beat"
    return GateReason(
        check="must_beat",
        passed=beats,
        metric=metric,
        slice=None,
        candidate=iv.value_a,
        baseline=iv.value_b,
        interval=(iv.lower, iv.upper),
        threshold=0.0,
        message=f"{cand} {verdict} {base} on {metric}: {iv.value_a:.4f} vs {iv.value_b:.4f}, "
        f"difference {iv.estimate:+.4f} [{iv.lower:+.4f}, {iv.upper:+.4f}] "
        f"({iv.confidence:.0%} paired bootstrap; evaluation.must_beat)",
    )


def must_beat_check(
    metric: str,
    cand: Scored,
    other: Scored | None,
    name: str,
    confidence: float,
    seed: int,
    n_resamples: int,
) -> GateReason:
    """``evaluation.must_beat``'s rule against one named system (a baseline or production;
    ``other`` None when it was not scored: passes only for a model without production yet)."""
    if other is None:
        first = name == "production"  # no production yet: nothing to beat
        return GateReason(
            check="must_beat",
            passed=first,
            metric=metric,
            slice=None,
            candidate=float("nan"),
            baseline=None,
            interval=None,
            threshold=0.0,
            message="no production version yet: nothing to beat"
            if first
            else f"evaluation.must_beat names {name!r}, which was not scored on this holdout",
        )
    iv = paired_interval(metric, cand, other, seed, n_resamples, confidence)
    return must_beat_reason(metric, iv, (cand.name, other.name))
