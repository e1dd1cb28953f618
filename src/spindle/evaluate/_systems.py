"""The systems the gate compares, each scored on one holdout (or slice): metrics and pairs.

A ``Scored`` system sorts its scores once per holdout; NDCG@10, MRR, recall@10, AUC and the
paired NDCG bootstrap all reuse that sort and the per-query NDCG values. Regression and
multiclass systems are measured with the task registry (``_tasks``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from spindle.core import ConfigError, DataError
from spindle.evaluate._bootstrap import (
    Interval,
    paired_bootstrap,
    paired_bootstrap_means,
)
from spindle.evaluate._holdout import Holdout
from spindle.evaluate._labels import validate_labels, validate_predictions
from spindle.evaluate._metrics import (
    BoolArray,
    FloatArray,
    RankedLists,
    SortedScores,
    auc,
    expected_calibration_error,
    log_loss,
    sigmoid,
)
from spindle.evaluate._pointwise import CLASS_SUM_TOLERANCE, average_precision
from spindle.evaluate._report import SystemScores
from spindle.evaluate._tasks import (
    TASK_METRICS,
    metric_estimates,
    metric_values,
    paired_metric_interval,
)

NDCG_K = 10
HIGHER_IS_BETTER = {
    "ndcg@10": True,
    "mrr": True,
    "recall@10": True,
    "auc": True,
    "pr_auc": True,
    "log_loss": False,
    "ece": False,
    "accuracy": True,
    "macro_f1": True,
    "rmse": False,
    "mae": False,
    "r2": True,
}
"""Direction of every metric the gate reports (log loss is lower-is-better in every task)."""
GATE_METRICS: dict[str, tuple[str, ...]] = {
    task: tuple(spec.key(NDCG_K) for spec in specs) for task, specs in TASK_METRICS.items()
}
GATE_METRICS["ranking"] += ("auc", "log_loss")  # of the relevant / not relevant split
"""The metrics the gate can judge a model of each task on (``evaluation.metric``)."""


def check_metric(task: str, metric: str) -> None:
    """Raise ``ConfigError`` when ``evaluation.metric`` does not fit ``task``, naming what does."""
    if metric in GATE_METRICS.get(task, ()):
        return
    fits = [t for t, names in GATE_METRICS.items() if metric in names]
    where = f"{metric} is a metric of {' and '.join(fits)} models; " if fits else ""
    raise ConfigError(
        "evaluation.metric",
        [f"{where}a {task} model is judged on one of {', '.join(GATE_METRICS.get(task, ()))}"],
    )


@dataclass(frozen=True, eq=False)
class Scored:
    """A system's scores on one holdout, with probabilities when it has a meaningful log loss."""

    name: str
    holdout: Holdout
    scores: FloatArray
    probs: FloatArray | None
    finite: bool

    def subset(self, mask: BoolArray, part: Holdout) -> Scored:
        """The same system on ``part``, the rows of ``mask``."""
        probs = None if self.probs is None else self.probs[mask]
        return Scored(self.name, part, self.scores[mask], probs, self.finite)

    @cached_property
    def lists(self) -> RankedLists:
        h = self.holdout
        return RankedLists(h.labels, self.scores, h.unit, h.n_units)

    @cached_property
    def ndcg_values(self) -> FloatArray:
        """NDCG@10 of every query with a positive label, in query order (aligned across systems)."""
        return self.lists.ndcg(NDCG_K)[1]

    def metrics(self) -> dict[str, float]:
        """Every metric of the task; empty when the scores are not finite."""
        if not self.finite:
            return {}
        h = self.holdout
        if h.task in ("regression", "multiclass"):
            predictions = self.scores if h.task == "regression" else self.probs
            if predictions is None:
                return {}
            return metric_values(h.task, h.labels, predictions, h.unit, h.n_units, NDCG_K)
        values: dict[str, float] = {}
        if h.task == "ranking":
            ndcg, mrr = self.ndcg_values, self.lists.mrr()[1]
            recall = self.lists.recall(NDCG_K)[1]
            values["ndcg@10"] = float(ndcg.mean()) if ndcg.size else float("nan")
            values["mrr"] = float(mrr.mean()) if mrr.size else float("nan")
            values["recall@10"] = float(recall.mean()) if recall.size else float("nan")
            ranked = SortedScores(self.scores, ascending=self.lists.by_score[::-1])
            positive = h.positive[ranked.order]
            values["auc"] = ranked.auc(positive, 1.0 - positive)
        else:
            values["auc"] = auc(h.positive, self.scores)
            values["pr_auc"] = average_precision(h.positive, self.scores)
        if self.probs is not None:
            values["log_loss"] = log_loss(h.positive, self.probs)
            if h.task == "binary":
                values["ece"] = expected_calibration_error(h.positive, self.probs)
        return values


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=np.float64)


def _class_probabilities(system: SystemScores, scores: FloatArray, model: bool) -> FloatArray:
    """Class probabilities of a multiclass system (softmax of a model's logits)."""
    sums_to_one = bool((np.abs(scores.sum(axis=1) - 1.0) <= CLASS_SUM_TOLERANCE).all())
    in_range = bool(((scores >= 0) & (scores <= 1)).all())
    logits = (
        system.logits if system.logits is not None else model and not (sums_to_one and in_range)
    )
    values = _softmax(scores) if logits else scores
    return validate_predictions("multiclass", system.name, values, scores.shape[0])


def prepare_system(system: SystemScores, holdout: Holdout, model_names: tuple[str, ...]) -> Scored:
    """Check a system's scores against the holdout and derive its probabilities, if any.

    Systems named in ``model_names`` (candidate, baseline) emit logits unless
    ``SystemScores.logits`` says otherwise; other systems are probabilities only when in [0, 1].
    """
    try:
        scores = np.asarray(system.scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"scores of system {system.name!r} are not numeric: {exc}") from exc
    multiclass = holdout.task == "multiclass"
    if scores.shape[:1] != (holdout.n_rows,) or scores.ndim != (2 if multiclass else 1):
        expected = f"({holdout.n_rows}, classes)" if multiclass else f"({holdout.n_rows},)"
        raise DataError(
            f"system {system.name!r} has scores of shape {scores.shape}; expected "
            f"{expected}, one per holdout row"
        )
    if multiclass:  # every label must be one of the classes this system predicts
        validate_labels("multiclass", holdout.labels, n_classes=scores.shape[1])
    finite = bool(np.isfinite(scores).all())
    model = system.name in model_names
    logits = system.logits if system.logits is not None else model
    probs: FloatArray | None = None
    if not finite or holdout.task == "regression":
        pass
    elif multiclass:
        probs = _class_probabilities(system, scores, model)
    elif logits:
        probs = sigmoid(scores)
    elif ((scores >= 0) & (scores <= 1)).all():
        probs = scores
    return Scored(system.name, holdout, scores, probs, finite)


def paired_interval(
    metric: str,
    cand: Scored,
    base: Scored,
    seed: int,
    n_resamples: int,
    confidence: float = 0.95,
) -> Interval | None:
    """Bootstrap candidate - baseline on ``metric``, resampling queries / users / rows.

    None when the metric cannot be computed for both (no probabilities for log loss).
    """
    h = cand.holdout
    if h.task in ("regression", "multiclass") or metric not in ("ndcg@10", "auc", "log_loss"):
        return _task_interval(metric, cand, base, seed, n_resamples, confidence)
    if metric == "ndcg@10":
        return paired_bootstrap_means(
            cand.ndcg_values, base.ndcg_values, n_resamples, seed, confidence
        )
    units = None if h.groups is None else h.unit  # dense ids: same units, no re-encoding cost
    if metric == "auc":
        return paired_bootstrap(
            auc, h.positive, cand.scores, base.scores, units, n_resamples, seed, confidence
        )
    if cand.probs is None or base.probs is None:
        return None
    return paired_bootstrap(
        log_loss, h.positive, cand.probs, base.probs, units, n_resamples, seed, confidence
    )


def system_intervals(
    metric: str,
    systems: Mapping[str, Scored],
    seed: int,
    n_resamples: int,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Each system's own bootstrap percentile interval of ``metric`` on the holdout (the band
    drawn around its line over days), resampling queries / users / rows as the gate does; a
    system with non-finite scores, or that the metric does not apply to, is left out."""
    finite = {name: s for name, s in systems.items() if s.finite}
    if not finite:
        return {}
    h = next(iter(finite.values())).holdout
    spec = next((s for s in TASK_METRICS[h.task] if s.key(NDCG_K) == metric), None)
    if spec is None:
        return {}
    needs_probs = spec.needs in ("probabilities", "class_probabilities")
    predictions = {
        name: p
        for name, s in finite.items()
        if (p := (s.probs if needs_probs else s.scores)) is not None
    }
    labels = h.positive if h.task == "binary" else h.labels
    units = None if h.groups is None else h.unit
    found = metric_estimates(
        h.task, metric, labels, predictions, units, h.n_units, NDCG_K, n_resamples, seed, confidence
    )
    return {
        name: (e.lower, e.upper)
        for name, e in found.items()
        if math.isfinite(e.lower) and math.isfinite(e.upper)
    }


def _task_interval(
    metric: str, cand: Scored, base: Scored, seed: int, n_resamples: int, confidence: float
) -> Interval | None:
    """The registry's paired interval (``paired_metric_interval``) on the holdout's units."""
    h = cand.holdout
    spec = next(s for s in TASK_METRICS[h.task] if s.key(NDCG_K) == metric)
    if spec.needs in ("probabilities", "class_probabilities"):
        if cand.probs is None or base.probs is None:
            return None
        pair = (cand.probs, base.probs)
    else:
        pair = (cand.scores, base.scores)
    units = None if h.groups is None else h.unit
    labels = h.positive if h.task == "binary" else h.labels
    return paired_metric_interval(
        h.task, metric, labels, pair, units, h.n_units, NDCG_K, n_resamples, seed, confidence
    )
