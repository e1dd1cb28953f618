"""Evaluation: metrics, paired bootstrap intervals, slices, and the noise-aware gate.

Scoring models is the caller's job: pass one score array per system (candidate, production,
popularity, oracle, ...) and ``evaluate_scores`` returns an ``EvaluationReport`` with metrics
overall and per slice and the gate's decision with one reason per check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
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

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "EvaluationReport": "spindle.evaluate._report",
    "FEATURE_PSI_WARN": "spindle.evaluate._feature_health",
    "FeatureValues": "spindle.evaluate._feature_health",
    "GateReason": "spindle.evaluate._report",
    "HIGHER_IS_BETTER": "spindle.evaluate._systems",
    "Interval": "spindle.evaluate._bootstrap",
    "MAX_NULL_SHARE_RISE": "spindle.evaluate._feature_health",
    "METRIC_ORDER": "spindle.evaluate._report",
    "MIN_SCORE_STD": "spindle.evaluate._gate",
    "MISSING_VALUE": "spindle.evaluate._holdout",
    "REPLICA_NOISE_FACTOR": "spindle.evaluate._spread",
    "ReplicaSpread": "spindle.evaluate._spread",
    "SLICE_TOLERANCE_FACTOR": "spindle.evaluate._gate",
    "SystemScores": "spindle.evaluate._report",
    "auc": "spindle.evaluate._metrics",
    "evaluate_scores": "spindle.evaluate._gate",
    "expected_calibration_error": "spindle.evaluate._metrics",
    "feature_health_reasons": "spindle.evaluate._feature_health",
    "format_report": "spindle.evaluate._report",
    "log_loss": "spindle.evaluate._metrics",
    "mrr": "spindle.evaluate._metrics",
    "ndcg_at_k": "spindle.evaluate._metrics",
    "paired_bootstrap": "spindle.evaluate._bootstrap",
    "paired_bootstrap_means": "spindle.evaluate._bootstrap",
    "per_group_mrr": "spindle.evaluate._metrics",
    "per_group_ndcg": "spindle.evaluate._metrics",
    "population_stability_index": "spindle.evaluate._checks",
    "replica_spread": "spindle.evaluate._spread",
    "sigmoid": "spindle.evaluate._metrics",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


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
