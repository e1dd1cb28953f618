"""The verdict of infra validation: does the served model agree with training and fit its budget?

``spindle push`` (``orchestrate``) serves a version in a canary process on real requests of its
day and scores the same rows with the trainer's own ``predict``. The verdict is this module's:
the served scores must match the training-time ones within ``MAX_ABS_DIFF`` (relative to the
score's size when that is above 1, as a regression's values in minutes are) on every row and
class, with the same shape and all finite; the p99 service time (CPU time: the serving runtime
is single-threaded, and wall time on a shared machine says more about the neighbours) within
the latency budget; the canary's peak RSS within the memory budget. Pure: arrays and numbers
in, verdict out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_ABS_DIFF = 1e-5
"""Largest allowed |serving score - training-time score| on a canary row (relative above 1)."""


@dataclass(frozen=True)
class CanaryMeasurement:
    """What the canary measured: service times (ms) and its peak memory (MB)."""

    cpu_p99_ms: float
    p99_ms: float
    peak_rss_mb: float


@dataclass(frozen=True)
class InfraVerdict:
    """``passed`` with its evidence: the largest score difference and one reason per failure."""

    passed: bool
    max_abs_diff: float
    failures: tuple[str, ...]


def score_difference(
    served: npt.NDArray[np.floating], expected: npt.NDArray[np.floating]
) -> tuple[float, bool]:
    """The largest difference of ``served`` from ``expected`` and whether they agree.

    Args:
        served: the serving runtime's scores (``[N]`` or ``[N, K]``).
        expected: the training-time scores of the same rows.

    Returns:
        ``(difference, agree)``: the largest |served - expected| (divided by |expected| where
        that is above 1; 0.0 for no rows or a shape mismatch) and whether the shapes match,
        every served score is finite and the difference is within ``MAX_ABS_DIFF``.

    Example:
        >>> score_difference(np.array([0.5, 200.0]), np.array([0.5, 200.001]))[1]
        True
    """
    served = np.asarray(served, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if served.shape != expected.shape:
        return 0.0, False
    scale = np.maximum(1.0, np.abs(expected))
    diff = float((np.abs(served - expected) / scale).max()) if served.size else 0.0
    finite = bool(np.isfinite(served).all())
    return diff, finite and not diff > MAX_ABS_DIFF


def infra_verdict(
    served: npt.NDArray[np.floating],
    expected: npt.NDArray[np.floating],
    measured: CanaryMeasurement,
    *,
    latency_budget_ms: float,
    max_rss_mb: float,
) -> InfraVerdict:
    """Judge a canary: scores against the training-time model, p99 CPU time, peak RSS.

    Args:
        served: the canary's scores of its rows.
        expected: the training-time model's scores of the same rows.
        measured: the canary's service times and memory.
        latency_budget_ms: ``serving.latency_budget_ms`` (judges the p99 CPU time).
        max_rss_mb: ``serving.max_rss_mb``.

    Returns:
        The verdict; ``failures`` says why it failed (empty when it passed).

    Example:
        >>> v = infra_verdict(np.zeros(3), np.zeros(3), CanaryMeasurement(2.0, 3.0, 300.0),
        ...                   latency_budget_ms=5.0, max_rss_mb=200.0)
        >>> v.passed, v.failures[0][:30]
        (False, 'peak RSS of the serving proces')
    """
    diff, agree = score_difference(served, expected)
    failures = []
    if not agree:
        failures.append(
            f"serving scores differ from the training-time model by up to {diff:.3g} "
            f"(> {MAX_ABS_DIFF:g}) on {len(np.asarray(served))} canary rows: the export or the "
            "serving feature path disagrees with training"
        )
    if measured.cpu_p99_ms > latency_budget_ms:
        failures.append(
            f"p99 latency of a request {measured.cpu_p99_ms:.1f} ms of CPU "
            f"({measured.p99_ms:.1f} ms wall) exceeds serving.latency_budget_ms "
            f"{latency_budget_ms:g}"
        )
    if measured.peak_rss_mb > max_rss_mb:
        failures.append(
            f"peak RSS of the serving process {measured.peak_rss_mb:.0f} MB exceeds "
            f"serving.max_rss_mb {max_rss_mb:g}"
        )
    return InfraVerdict(not failures, diff, tuple(failures))
