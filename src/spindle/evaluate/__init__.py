"""Evaluation: metrics, paired bootstrap intervals, slices, and the noise-aware gate.

Scoring models is the caller's job: pass one score array per system (candidate, production,
popularity, oracle, ...) and ``evaluate_scores`` returns an ``EvaluationReport`` with metrics
overall and per slice and the gate's decision with one reason per check.
"""

from __future__ import annotations

from spindle.evaluate._bootstrap import Interval, paired_bootstrap, paired_bootstrap_means
from spindle.evaluate._checks import population_stability_index
from spindle.evaluate._gate import MIN_SCORE_STD, SLICE_TOLERANCE_FACTOR, evaluate_scores
from spindle.evaluate._holdout import MISSING_VALUE
from spindle.evaluate._metrics import (
    auc,
    expected_calibration_error,
    log_loss,
    mrr,
    ndcg_at_k,
    per_group_mrr,
    per_group_ndcg,
    sigmoid,
)
from spindle.evaluate._report import (
    METRIC_ORDER,
    EvaluationReport,
    GateReason,
    SystemScores,
    format_report,
)
from spindle.evaluate._systems import HIGHER_IS_BETTER

__all__ = [
    "HIGHER_IS_BETTER",
    "METRIC_ORDER",
    "MIN_SCORE_STD",
    "MISSING_VALUE",
    "SLICE_TOLERANCE_FACTOR",
    "EvaluationReport",
    "GateReason",
    "Interval",
    "SystemScores",
    "auc",
    "evaluate_scores",
    "expected_calibration_error",
    "format_report",
    "log_loss",
    "mrr",
    "ndcg_at_k",
    "paired_bootstrap",
    "paired_bootstrap_means",
    "per_group_mrr",
    "per_group_ndcg",
    "population_stability_index",
    "sigmoid",
]
