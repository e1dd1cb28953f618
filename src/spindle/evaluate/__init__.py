"""Evaluation: metrics, paired bootstrap intervals, slices, and the noise-aware gate.

``TASK_METRICS`` lists the metrics of every task (binary, regression, multiclass, ranking);
``evaluate_task`` computes them for several systems with paired bootstrap intervals.

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
    from spindle.evaluate._infra import (
        MAX_ABS_DIFF,
        CanaryMeasurement,
        InfraVerdict,
        infra_verdict,
        score_difference,
    )
    from spindle.evaluate._labels import TASKS, validate_labels, validate_predictions
    from spindle.evaluate._metrics import (
        auc,
        expected_calibration_error,
        log_loss,
        mrr,
        ndcg_at_k,
        per_group_mrr,
        per_group_ndcg,
        per_group_recall,
        recall_at_k,
        sigmoid,
    )
    from spindle.evaluate._pointwise import (
        accuracy,
        average_precision,
        macro_f1,
        mae,
        multiclass_log_loss,
        r2,
        rmse,
    )
    from spindle.evaluate._prediction_diff import PredictionDiff, prediction_difference
    from spindle.evaluate._report import (
        METRIC_ORDER,
        EvaluationReport,
        GateReason,
        SystemScores,
        format_report,
    )
    from spindle.evaluate._speed import SpeedVerdict, model_predictions, speed_verdict
    from spindle.evaluate._spread import REPLICA_NOISE_FACTOR, ReplicaSpread, replica_spread
    from spindle.evaluate._systems import GATE_METRICS, HIGHER_IS_BETTER
    from spindle.evaluate._tasks import (
        TASK_METRICS,
        MetricEstimate,
        MetricSpec,
        TaskEvaluation,
        evaluate_task,
    )

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "CanaryMeasurement": "spindle.evaluate._infra",
    "InfraVerdict": "spindle.evaluate._infra",
    "MAX_ABS_DIFF": "spindle.evaluate._infra",
    "infra_verdict": "spindle.evaluate._infra",
    "score_difference": "spindle.evaluate._infra",
    "EvaluationReport": "spindle.evaluate._report",
    "FEATURE_PSI_WARN": "spindle.evaluate._feature_health",
    "FeatureValues": "spindle.evaluate._feature_health",
    "GateReason": "spindle.evaluate._report",
    "GATE_METRICS": "spindle.evaluate._systems",
    "HIGHER_IS_BETTER": "spindle.evaluate._systems",
    "Interval": "spindle.evaluate._bootstrap",
    "MAX_NULL_SHARE_RISE": "spindle.evaluate._feature_health",
    "METRIC_ORDER": "spindle.evaluate._report",
    "MIN_SCORE_STD": "spindle.evaluate._gate",
    "MISSING_VALUE": "spindle.evaluate._holdout",
    "MetricEstimate": "spindle.evaluate._tasks",
    "MetricSpec": "spindle.evaluate._tasks",
    "REPLICA_NOISE_FACTOR": "spindle.evaluate._spread",
    "SpeedVerdict": "spindle.evaluate._speed",
    "model_predictions": "spindle.evaluate._speed",
    "speed_verdict": "spindle.evaluate._speed",
    "ReplicaSpread": "spindle.evaluate._spread",
    "SLICE_TOLERANCE_FACTOR": "spindle.evaluate._gate",
    "SystemScores": "spindle.evaluate._report",
    "TASKS": "spindle.evaluate._labels",
    "TASK_METRICS": "spindle.evaluate._tasks",
    "TaskEvaluation": "spindle.evaluate._tasks",
    "accuracy": "spindle.evaluate._pointwise",
    "auc": "spindle.evaluate._metrics",
    "average_precision": "spindle.evaluate._pointwise",
    "evaluate_scores": "spindle.evaluate._gate",
    "evaluate_task": "spindle.evaluate._tasks",
    "expected_calibration_error": "spindle.evaluate._metrics",
    "feature_health_reasons": "spindle.evaluate._feature_health",
    "format_report": "spindle.evaluate._report",
    "log_loss": "spindle.evaluate._metrics",
    "macro_f1": "spindle.evaluate._pointwise",
    "mae": "spindle.evaluate._pointwise",
    "mrr": "spindle.evaluate._metrics",
    "multiclass_log_loss": "spindle.evaluate._pointwise",
    "ndcg_at_k": "spindle.evaluate._metrics",
    "PredictionDiff": "spindle.evaluate._prediction_diff",
    "prediction_difference": "spindle.evaluate._prediction_diff",
    "paired_bootstrap": "spindle.evaluate._bootstrap",
    "paired_bootstrap_means": "spindle.evaluate._bootstrap",
    "per_group_mrr": "spindle.evaluate._metrics",
    "per_group_ndcg": "spindle.evaluate._metrics",
    "per_group_recall": "spindle.evaluate._metrics",
    "population_stability_index": "spindle.evaluate._checks",
    "r2": "spindle.evaluate._pointwise",
    "recall_at_k": "spindle.evaluate._metrics",
    "replica_spread": "spindle.evaluate._spread",
    "rmse": "spindle.evaluate._pointwise",
    "sigmoid": "spindle.evaluate._metrics",
    "validate_labels": "spindle.evaluate._labels",
    "validate_predictions": "spindle.evaluate._labels",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "FEATURE_PSI_WARN",
    "GATE_METRICS",
    "HIGHER_IS_BETTER",
    "MAX_ABS_DIFF",
    "MAX_NULL_SHARE_RISE",
    "METRIC_ORDER",
    "MIN_SCORE_STD",
    "MISSING_VALUE",
    "REPLICA_NOISE_FACTOR",
    "SLICE_TOLERANCE_FACTOR",
    "TASKS",
    "TASK_METRICS",
    "CanaryMeasurement",
    "EvaluationReport",
    "FeatureValues",
    "GateReason",
    "InfraVerdict",
    "Interval",
    "MetricEstimate",
    "MetricSpec",
    "PredictionDiff",
    "ReplicaSpread",
    "SpeedVerdict",
    "SystemScores",
    "TaskEvaluation",
    "accuracy",
    "auc",
    "average_precision",
    "evaluate_scores",
    "evaluate_task",
    "expected_calibration_error",
    "feature_health_reasons",
    "format_report",
    "infra_verdict",
    "log_loss",
    "macro_f1",
    "mae",
    "model_predictions",
    "mrr",
    "multiclass_log_loss",
    "ndcg_at_k",
    "paired_bootstrap",
    "paired_bootstrap_means",
    "per_group_mrr",
    "per_group_ndcg",
    "per_group_recall",
    "population_stability_index",
    "prediction_difference",
    "r2",
    "recall_at_k",
    "replica_spread",
    "rmse",
    "score_difference",
    "sigmoid",
    "speed_verdict",
    "validate_labels",
    "validate_predictions",
]
