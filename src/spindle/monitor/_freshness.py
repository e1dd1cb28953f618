"""Freshness SLO and efficiency arithmetic: pure functions of figures the coordinator gathers.

A model's data age is the time since the end of the data its serving version saw (the version
trained for day D saw data up to D 00:00). Waiting for the age alone to cross the tolerance is
too late: fixing anything then takes the time to notice (the next scheduled run) plus a retrain.
So the state turns ``warn`` when age + expected recovery reaches ``WARN_SHARE`` of the
tolerance and ``critical`` when it reaches the tolerance (before the SLO is broken), and
``violated`` after. ``orchestrate`` reads the records (serving version, schedule, run times)
and calls these; nothing here opens a store.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any, Literal

WARN_SHARE = 0.75
THROUGHPUT_DROP = 0.5
#: The figures of a trained version that ``status`` shows as its efficiency.
EFFICIENCY_KEYS = (
    "examples",
    "examples_per_s",
    "cpu_s",
    "m_examples_per_cpu_s",
    "utilisation",
    "peak_rss_mb",
)

State = Literal["ok", "warn", "critical", "violated"]


def freshness_state(
    age_h: float | None, recovery_h: float, tolerance_h: float
) -> tuple[State, str]:
    """The SLO state of a model and why.

    Args:
        age_h: hours since the end of the serving version's data; None when none serves.
        recovery_h: hours to notice a failure (the schedule's interval) plus to retrain.
        tolerance_h: the model's ``schedule.freshness_tolerance_hours``.

    Returns:
        ``(state, message)``.

    Example:
        >>> freshness_state(10.0, 30.0, 48.0)
        ('warn', 'age 10.0 h + recovery 30.0 h is 83% of the tolerance')
    """
    if age_h is None:
        return "critical", "no version is serving: requests get the fallback"
    if age_h >= tolerance_h:
        return "violated", f"data age {age_h:.1f} h exceeds the tolerance {tolerance_h:.0f} h"
    spent = age_h + recovery_h
    if spent >= tolerance_h:
        return "critical", (
            f"age {age_h:.1f} h + recovery {recovery_h:.1f} h reaches the tolerance "
            f"{tolerance_h:.0f} h: a failure now could not be fixed in time"
        )
    if spent >= WARN_SHARE * tolerance_h:
        return "warn", (
            f"age {age_h:.1f} h + recovery {recovery_h:.1f} h is "
            f"{100 * spent / tolerance_h:.0f}% of the tolerance"
        )
    return "ok", f"age {age_h:.1f} h + recovery {recovery_h:.1f} h within {tolerance_h:.0f} h"


def throughput_alert(rates: Sequence[float]) -> str | None:
    """An alert when the newest training throughput fell below ``THROUGHPUT_DROP`` of the
    slowest recent one.

    Args:
        rates: examples/s of the latest successful training runs, newest first (zeros and
            unknowns already left out); fewer than four: no judgement.

    Example:
        >>> throughput_alert([100.0, 400.0, 420.0, 410.0]) is not None
        True
    """
    if len(rates) < 4:
        return None
    last, history = rates[0], list(rates[1:])
    if last < THROUGHPUT_DROP * min(history):
        return (
            f"training throughput {last:,.0f} ex/s is below the recent range "
            f"({min(history):,.0f}-{max(history):,.0f}, median {statistics.median(history):,.0f})"
        )
    return None


def efficiency(version: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The efficiency figures of a trained version (``EFFICIENCY_KEYS``; None where absent)."""
    return {"version": version} | {k: metrics.get(k) for k in EFFICIENCY_KEYS}
