"""The freshness SLO arithmetic at its boundaries (monitor/_freshness.py)."""

from __future__ import annotations

import pytest

from spindle.monitor._freshness import (
    EFFICIENCY_KEYS,
    WARN_SHARE,
    efficiency,
    freshness_state,
    throughput_alert,
)


@pytest.mark.parametrize(
    ("age_h", "recovery_h", "state"),
    [
        (None, 1.0, "critical"),  # nothing serves
        (48.0, 0.0, "violated"),  # at the tolerance: broken
        (47.9, 0.1, "critical"),  # age + recovery reaches it: too late to fix a failure
        (47.0, 0.9, "warn"),
        (WARN_SHARE * 48 - 10, 10.0, "warn"),  # exactly 75%
        (WARN_SHARE * 48 - 10.01, 10.0, "ok"),
    ],
)
def test_states_count_the_recovery_time(age_h: float | None, recovery_h: float, state: str) -> None:
    got, message = freshness_state(age_h, recovery_h, 48.0)
    assert got == state, message
    assert message


def test_a_throughput_drop_needs_a_history_and_half_the_slowest() -> None:
    assert throughput_alert([10.0, 400.0, 420.0]) is None  # too few runs to judge
    assert throughput_alert([201.0, 400.0, 420.0, 410.0]) is None
    alert = throughput_alert([199.0, 400.0, 420.0, 410.0])
    assert alert is not None and "199 ex/s" in alert and "400-420" in alert


def test_efficiency_names_every_figure() -> None:
    got = efficiency(3, {"examples": 10, "cpu_s": 2.5, "other": 1})
    assert got["version"] == 3 and got["examples"] == 10 and got["cpu_s"] == 2.5
    assert set(got) == {"version", *EFFICIENCY_KEYS} and got["peak_rss_mb"] is None
