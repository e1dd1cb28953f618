"""The anomaly checks of data validation: each compares one day with its healthy history.

Every check returns :class:`Anomaly` records (never raises): expected (the median of the
history days, robust to one bad day in the window), observed, severity and a message that
says what to do. History is the trailing window of days that passed validation.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np

from spindle.core import ValidationConfig, Verdict


def scipy_stats() -> Any:
    """``scipy.stats``, imported when a test is first run (0.3-0.8 s that a no-op rerun and
    the CLI's start-up do not pay)."""
    from scipy import stats

    return stats


@dataclass(frozen=True)
class Anomaly:
    """One finding, with the evidence a user needs to act on it."""

    kind: str
    source: str
    severity: Verdict
    message: str
    column: str | None = None
    slice: str | None = None
    expected: float | None = None
    observed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The anomaly as JSON-ready fields."""
        return {k: getattr(self, k) for k in _FIELDS}


_FIELDS = ("kind", "source", "column", "slice", "expected", "observed", "severity", "message")

# The fixed thresholds (chosen on the simulator: a healthy week raises none; every fault trips
# one); those a workspace may change are in validation.yaml (core.ValidationConfig).
SLICE_MIN_SHARE = 0.02
# Slice shares, tested both ways every day (family-wise alpha after Bonferroni over the day's
# slices): FAIL when the change is large, WARN when moderate, nothing below the WARN floor.
SHARE_ALPHA_FAIL, SHARE_ALPHA_WARN = 1e-3, 1e-2
SHARE_REL_FAIL, SHARE_ABS_FAIL = 0.3, 0.08
SHARE_REL_WARN, SHARE_ABS_WARN = 0.2, 0.05
BIAS_P_VALUE = 1e-3


def row_count(
    source: str,
    observed: int,
    past: list[int],
    config: ValidationConfig | None = None,
    usual: str = "usual",
) -> list[Anomaly]:
    """A day with far fewer (missing data) or far more (duplicates) rows than usual.

    Args:
        source: the source, for the message.
        observed: today's rows.
        past: the reference days' rows (the usual is their median).
        config: the thresholds (validation.yaml ``volume``; None: the defaults).
        usual: how the message names the usual count (e.g. "usual saturday").

    Returns:
        A ``row_count_drop`` or ``row_count_jump`` anomaly, or nothing.
    """
    volume = (config or ValidationConfig()).volume
    if len(past) < 2:
        return []
    expected = float(statistics.median(past))
    ratio = observed / expected if expected else 1.0
    # Small sources are noisy: a drop must also be unlikely as chance (Poisson) to count.
    p_value = float(scipy_stats().poisson.cdf(observed, expected))
    if ratio < volume.drop_warn and p_value < 0.01:
        severity: Verdict = (
            "fail" if ratio < volume.drop_fail and p_value < BIAS_P_VALUE else "warn"
        )
        return [
            Anomaly(
                "row_count_drop",
                source,
                severity,
                f"{source}: {observed} rows, {ratio:.0%} of the {usual} {expected:.0f}; "
                "see missing_data_bias for whether the loss is random or in some slices",
                expected=expected,
                observed=float(observed),
            )
        ]
    if ratio > volume.jump_warn:
        return [
            Anomaly(
                "row_count_jump",
                source,
                "warn",
                f"{source}: {observed} rows, {ratio:.0%} of the {usual} {expected:.0f} "
                "(duplicates or a replay?)",
                expected=expected,
                observed=float(observed),
            )
        ]
    return []


def slice_shares(
    dims: dict[tuple[str, str], tuple[dict[str, int], list[dict[str, int]], float]],
) -> list[Anomaly]:
    """Every slice's share of the day vs its median share over the reference, both ways.

    Runs every day, whatever the row count: a slice that grows (one slice's share doubling) is
    flagged as well as one that shrinks or vanishes. Each slice gets a two-sided binomial test of
    today's count against the reference share, on counts divided by the cluster size (rows per
    independent unit: one user may make many rows); the p-values of all slices tested that
    day are Bonferroni-corrected together (as the gate's slice intervals are). A significant
    change is a FAIL when large (``SHARE_REL_FAIL`` relative or ``SHARE_ABS_FAIL`` absolute) and
    a WARN when moderate (``SHARE_REL_WARN`` / ``SHARE_ABS_WARN``); smaller ones are not alarms.

    Args:
        dims: per (source, dimension), today's counts by slice, the reference days' counts by
            slice, and the cluster size.
    """
    tested: list[tuple[float, str, str, str, int, float, float]] = []
    for (source, dimension), (today, past, cluster) in sorted(dims.items()):
        total = sum(today.values())
        if len(past) < 2 or not total:
            continue
        units = max(round(total / max(cluster, 1.0)), 1)
        for key in sorted({k for day in past for k in day}):
            expected = float(
                statistics.median(day.get(key, 0) / max(sum(day.values()), 1) for day in past)
            )
            if expected < SLICE_MIN_SHARE or expected >= 1.0:
                continue
            count = today.get(key, 0)
            observed = count / total
            hits = min(round(observed * units), units)
            p_value = float(scipy_stats().binomtest(hits, units, expected).pvalue)
            tested.append((p_value, source, dimension, key, count, expected, observed))
    found = []
    for p_value, source, dimension, key, count, expected, observed in tested:
        p_adjusted = min(1.0, p_value * len(tested))
        change = observed - expected
        relative = abs(change) / expected
        large = relative >= SHARE_REL_FAIL or abs(change) >= SHARE_ABS_FAIL
        moderate = relative >= SHARE_REL_WARN or abs(change) >= SHARE_ABS_WARN
        if large and p_adjusted < SHARE_ALPHA_FAIL:
            severity: Verdict = "fail"
        elif moderate and p_adjusted < SHARE_ALPHA_WARN:
            severity = "warn"
        else:
            continue
        label = f"{dimension}={key}"
        day_rows = sum(dims[(source, dimension)][0].values())
        evidence = (
            f"{count} rows, ~{expected * day_rows:.0f} expected; binomial p={p_value:.1e}, "
            f"{p_adjusted:.1e} after Bonferroni over the {len(tested)} slices tested today"
        )
        if count == 0:
            kind = "slice_vanished"
            message = (
                f"slice {label} vanished from {source}: 0 rows, usually {expected:.1%} ({evidence}). "
                "Check the export for a format change or a filter; training on this day would "
                "under-represent the slice."
            )
        elif change < 0:
            kind = "slice_shrunk"
            message = (
                f"slice {label} of {source} shrank to {observed:.1%} from a usual {expected:.1%} "
                f"({evidence}): missing data concentrated in one slice biases training."
            )
        else:
            kind = "slice_grew"
            message = (
                f"slice {label} of {source} grew to {observed:.1%} from a usual {expected:.1%} "
                f"({evidence}): duplicated or replayed rows of one slice, or a real change (then "
                "`spindle validate accept` the day)."
            )
        found.append(
            Anomaly(
                kind,
                source,
                severity,
                message,
                column=dimension,
                slice=label,
                expected=expected,
                observed=observed,
            )
        )
    return found


def missing_data_bias(
    source: str,
    observed_rows: int,
    expected_rows: float,
    slices: dict[str, tuple[dict[str, int], list[dict[str, int]]]],
    cluster_size: float = 1.0,
    severity: Verdict = "fail",
) -> Anomaly:
    """Is a loss of rows random, or concentrated in slices? A chi-square test per dimension.

    Args:
        source: the source that lost rows.
        observed_rows: today's rows.
        expected_rows: the usual rows.
        slices: per dimension, today's counts by slice and the history's counts by slice.
        cluster_size: rows per independent unit (one user may make many rows); counts are
            divided by it so the test does not mistake clustering for concentration.
        severity: of a concentrated loss (the drop's own: a moderate drop that is concentrated
            but trips no slice-share test is a WARN, e.g. a holiday's lighter schedule).

    Returns:
        The finding: concentrated (names the slice) or random (a WARN).
    """
    worst: tuple[float, str, str, float, float] | None = None
    for dimension, (today, past) in slices.items():
        keys = sorted({k for day in past for k in day})
        if len(keys) < 2 or not today:
            continue
        expected_share = np.array(
            [statistics.median(d.get(k, 0) / max(sum(d.values()), 1) for d in past) for k in keys]
        )
        expected_share = np.maximum(expected_share, 1e-9)
        expected_share /= expected_share.sum()
        counts = np.array([today.get(k, 0) for k in keys], dtype=float) / max(cluster_size, 1.0)
        p_value = float(scipy_stats().chisquare(counts, counts.sum() * expected_share).pvalue)
        gap = counts / max(counts.sum(), 1) - expected_share
        k = int(np.argmin(gap))
        if worst is None or p_value < worst[0]:
            worst = (
                p_value,
                dimension,
                keys[k],
                float(expected_share[k]),
                float(counts[k] / max(counts.sum(), 1)),
            )
    lost = 1 - observed_rows / expected_rows if expected_rows else 0.0
    if worst is not None and worst[0] < BIAS_P_VALUE:
        p_value, dimension, key, expected, observed = worst
        return Anomaly(
            "missing_data_bias",
            source,
            severity,
            f"{source} lost {lost:.0%} of its usual rows and the loss is concentrated: slice "
            f"{dimension}={key} holds {observed:.1%} of today's rows against a usual {expected:.1%} "
            f"(chi-square p={p_value:.1e}). A model trained on this day would see too few of them: "
            "fix the export of that slice and re-ingest, or leave the day out.",
            column=dimension,
            slice=f"{dimension}={key}",
            expected=expected,
            observed=observed,
        )
    p_text = f" (chi-square p={worst[0]:.2f}, no slice stands out)" if worst else ""
    return Anomaly(
        "missing_data_bias",
        source,
        "warn",
        f"{source} lost {lost:.0%} of its usual rows, spread evenly across slices{p_text}: the loss "
        "looks random (late or partial delivery). Training on it is unbiased but smaller; wait "
        "for late data and re-ingest, or accept the smaller day.",
        expected=expected_rows,
        observed=float(observed_rows),
    )


def psi(expected: np.ndarray, observed: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    e = (expected + 0.5) / (expected.sum() + 0.5 * len(expected))
    o = (observed + 0.5) / (observed.sum() + 0.5 * len(observed))
    return float(np.sum((o - e) * np.log(o / e)))


def distribution_shift(
    source: str,
    column: str,
    today: np.ndarray,
    past: np.ndarray,
    label: bool = False,
    config: ValidationConfig | None = None,
) -> list[Anomaly]:
    """PSI of today's binned values against the pooled history (bins from history deciles).

    Args:
        source: the source of the column.
        column: the column.
        today: today's counts per bin.
        past: the reference days' counts per bin, pooled.
        label: the column is a label (a shift is a ``label_shift``).
        config: the thresholds (validation.yaml ``drift``; None: the defaults).

    Returns:
        A ``distribution_shift`` or ``label_shift`` anomaly, or nothing.
    """
    drift = (config or ValidationConfig()).drift
    if today.sum() < drift.min_rows or past.sum() < drift.min_rows:
        return []
    value = psi(past, today)
    # PSI of two samples of one distribution is ~ (bins - 1) * (1/n + 1/m): small days are noisy,
    # so the thresholds never sit below a few times that.
    noise = (len(today) - 1) * (1 / today.sum() + 1 / past.sum())
    warn_at, fail_at = max(drift.psi_warn, 2.5 * noise), max(drift.psi_fail, 4 * noise)
    if value < warn_at:
        return []
    severity: Verdict = "fail" if value >= fail_at else "warn"
    what = "label distribution" if label else "distribution"
    advice = (
        "the labels no longer mean what they did (a logging or attribution change?): do not "
        "train on this day until it is explained"
        if label
        else "check the producer for a unit, format or population change"
    )
    return [
        Anomaly(
            "label_shift" if label else "distribution_shift",
            source,
            severity,
            f"{source}.{column}: {what} shifted, PSI {value:.2f} against the history "
            f"(warn >= {warn_at:.2f}, fail >= {fail_at:.2f} at these row counts); {advice}",
            column=column,
            expected=0.0,
            observed=value,
        )
    ]


def null_rate(
    source: str, column: str, observed: float, past: list[float], jump: float = 0.05
) -> list[Anomaly]:
    """A column that is suddenly much more often null than in its history.

    Args:
        source: the source of the column.
        column: the column.
        observed: today's null rate.
        past: the reference days' null rates.
        jump: the rise over the usual rate that is a WARN (four times it: a FAIL).

    Returns:
        A ``null_rate`` anomaly, or nothing.
    """
    if len(past) < 2:
        return []
    expected = float(statistics.median(past))
    if observed - expected <= jump or observed < 2 * expected:
        return []
    return [
        Anomaly(
            "null_rate",
            source,
            "fail" if observed - expected > 4 * jump else "warn",
            f"{source}.{column}: {observed:.1%} nulls, usually {expected:.1%}; "
            "a producer stopped filling it",
            column=column,
            expected=expected,
            observed=observed,
        )
    ]


def label_rate(
    source: str,
    observed: float,
    past: list[float],
    what: str,
    bounds: tuple[float, float] = (0.6, 1.6),
) -> list[Anomaly]:
    """The share of positive labels far from its history.

    Args:
        source: the source (or check) the rate is of.
        observed: today's rate.
        past: the reference days' rates.
        what: the rate in words, for the message.
        bounds: the ratios to the usual rate that are normal (outside: a FAIL).

    Returns:
        A ``label_rate`` anomaly, or nothing.
    """
    if len(past) < 2 or not all(math.isfinite(p) for p in past):
        return []
    expected = float(statistics.median(past))
    if expected <= 0:
        return []
    ratio = observed / expected
    if bounds[0] <= ratio <= bounds[1]:
        return []
    return [
        Anomaly(
            "label_rate",
            source,
            "fail",
            f"{what} is {observed:.3%}, {ratio:.0%} of the usual {expected:.3%}: the label "
            "changed meaning or is being logged wrongly; do not train on this day until explained",
            expected=expected,
            observed=observed,
        )
    ]
