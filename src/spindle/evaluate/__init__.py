"""Evaluation: metrics, paired bootstrap intervals, slices, and the noise-aware gate.

Scoring models is the caller's job: pass one score array per system (candidate, production,
popularity, oracle, ...) and ``evaluate_scores`` returns an ``EvaluationReport`` with metrics
overall and per slice and the gate's decision with one reason per check.
"""

from __future__ import annotations

from spindle.evaluate._bootstrap import Interval, paired_bootstrap, paired_bootstrap_means
from spindle.evaluate._checks import population_stability_index
from spindle.evaluate._feature_health import (
    FEATURE_PSI_WARN,
    MAX_NULL_SHARE_RISE,
    FeatureValues,
    feature_health_reasons,
)
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
from spindle.evaluate._spread import REPLICA_NOISE_FACTOR, ReplicaSpread, replica_spread
from spindle.evaluate._systems import HIGHER_IS_BETTER

__all__ = [
    "FEATURE_PSI_WARN",
    "HIGHER_IS_BETTER",
    "MAX_NULL_SHARE_RISE",
    "METRIC_ORDER",
    "MIN_SCORE_STD",
    "MISSING_VALUE",
    "REPLICA_NOISE_FACTOR",
    "SLICE_TOLERANCE_FACTOR",
    "EvaluationReport",
    "FeatureValues",
    "GateReason",
    "Interval",
    "ReplicaSpread",
    "SystemScores",
    "auc",
    "evaluate_scores",
    "expected_calibration_error",
    "feature_health_reasons",
    "format_report",
    "log_loss",
    "mrr",
    "ndcg_at_k",
    "paired_bootstrap",
    "paired_bootstrap_means",
    "per_group_mrr",
    "per_group_ndcg",
    "population_stability_index",
    "replica_spread",
    "sigmoid",
]
