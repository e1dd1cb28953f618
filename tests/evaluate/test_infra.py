"""Infra validation's verdict: served scores against the training-time model, latency, memory."""

from __future__ import annotations

import numpy as np
import pytest

from spindle.evaluate import MAX_ABS_DIFF, CanaryMeasurement, infra_verdict, score_difference

FITS = CanaryMeasurement(cpu_p99_ms=2.0, p99_ms=3.0, peak_rss_mb=150.0)


def _judge(served: np.ndarray, expected: np.ndarray, measured: CanaryMeasurement = FITS):
    return infra_verdict(served, expected, measured, latency_budget_ms=5.0, max_rss_mb=200.0)


def test_agreeing_scores_within_budget_pass() -> None:
    expected = np.linspace(-3, 3, 50)
    verdict = _judge(expected + MAX_ABS_DIFF / 2, expected)
    assert verdict.passed and verdict.failures == ()
    assert verdict.max_abs_diff == pytest.approx(MAX_ABS_DIFF / 2)


def test_the_tolerance_is_relative_above_one() -> None:
    minutes = np.array([0.5, 120.0, 900.0])  # a regression's values
    assert score_difference(minutes * (1 + 5e-6), minutes)[1]  # 4.5e-3 minutes off, 5e-6 relative
    assert not score_difference(minutes + 0.01, minutes)[1]  # 1e-2 off at 0.5


@pytest.mark.parametrize(
    ("served", "expected", "diff"),
    [
        (np.array([0.0, 1.0 + 1e-3]), np.array([0.0, 1.0]), 1e-3),  # too far
        (np.array([0.0, np.nan]), np.array([0.0, 1.0]), None),  # not finite
        (np.zeros((4, 3)), np.zeros(4), 0.0),  # another shape (a head of another width)
    ],
)
def test_disagreeing_scores_fail_naming_the_difference(
    served: np.ndarray, expected: np.ndarray, diff: float | None
) -> None:
    verdict = _judge(served, expected)
    assert not verdict.passed and len(verdict.failures) == 1
    assert "differ from the training-time model" in verdict.failures[0]
    assert f"on {len(served)} canary rows" in verdict.failures[0]
    if diff is not None:
        assert verdict.max_abs_diff == pytest.approx(diff, rel=1e-6)


def test_multiclass_scores_are_compared_per_class() -> None:
    expected = np.zeros((5, 3))
    served = expected.copy()
    served[4, 2] = 2e-5
    diff, agree = score_difference(served, expected)
    assert not agree and diff == pytest.approx(2e-5)


def test_latency_and_memory_budgets_each_fail_with_their_key() -> None:
    scores = np.zeros(3)
    slow = CanaryMeasurement(cpu_p99_ms=7.5, p99_ms=30.0, peak_rss_mb=150.0)
    verdict = _judge(scores, scores, slow)
    assert not verdict.passed
    assert verdict.failures == (
        "p99 latency of a request 7.5 ms of CPU (30.0 ms wall) exceeds serving.latency_budget_ms 5",
    )
    big = CanaryMeasurement(cpu_p99_ms=7.5, p99_ms=8.0, peak_rss_mb=512.0)
    failures = _judge(scores + 1.0, scores, big).failures
    assert len(failures) == 3 and "serving.max_rss_mb 200" in failures[2]


def test_a_canary_with_no_rows_is_judged_on_its_budgets_only() -> None:
    empty = np.zeros(0)
    assert _judge(empty, empty).passed
    assert score_difference(empty, empty) == (0.0, True)
