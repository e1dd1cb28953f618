"""The systems the gate compares, prepared once: float scores, probabilities, metrics, pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spindle.core import DataError
from spindle.evaluate._bootstrap import Interval, paired_bootstrap
from spindle.evaluate._holdout import Holdout
from spindle.evaluate._metrics import (
    BoolArray,
    FloatArray,
    auc,
    expected_calibration_error,
    log_loss,
    mrr,
    ndcg_at_k,
    sigmoid,
)
from spindle.evaluate._report import SystemScores

HIGHER_IS_BETTER = {"ndcg@10": True, "mrr": True, "auc": True, "log_loss": False, "ece": False}
"""Direction of every metric the gate reports."""


@dataclass(frozen=True, eq=False)
class Scored:
    """A system's scores as floats, with probabilities when it has a meaningful log loss."""

    name: str
    scores: FloatArray
    probs: FloatArray | None
    finite: bool

    def subset(self, mask: BoolArray) -> Scored:
        probs = None if self.probs is None else self.probs[mask]
        return Scored(self.name, self.scores[mask], probs, self.finite)


def prepare_system(system: SystemScores, n_rows: int, model_names: tuple[str, ...]) -> Scored:
    """Check a system's scores against the holdout and derive its probabilities, if any.

    Systems named in ``model_names`` (candidate, baseline) emit logits unless
    ``SystemScores.logits`` says otherwise; other systems are probabilities only when in [0, 1].
    """
    try:
        scores = np.asarray(system.scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"scores of system {system.name!r} are not numeric: {exc}") from exc
    if scores.shape != (n_rows,):
        raise DataError(
            f"system {system.name!r} has scores of shape {scores.shape}; expected ({n_rows},), "
            "one per holdout row"
        )
    finite = bool(np.isfinite(scores).all())
    logits = system.logits if system.logits is not None else system.name in model_names
    probs: FloatArray | None = None
    if finite and logits:
        probs = sigmoid(scores)
    elif finite and ((scores >= 0) & (scores <= 1)).all():
        probs = scores
    return Scored(system.name, scores, probs, finite)


def system_metrics(holdout: Holdout, system: Scored) -> dict[str, float]:
    """Every metric of the task for one system; empty when its scores are not finite."""
    if not system.finite:
        return {}
    values: dict[str, float] = {}
    if holdout.task == "ranking":
        values["ndcg@10"] = ndcg_at_k(holdout.labels, system.scores, holdout.groups, k=10)
        values["mrr"] = mrr(holdout.labels, system.scores, holdout.groups)
    values["auc"] = auc(holdout.positive, system.scores)
    if system.probs is not None:
        values["log_loss"] = log_loss(holdout.positive, system.probs)
        if holdout.task == "binary":
            values["ece"] = expected_calibration_error(holdout.positive, system.probs)
    return values


def paired_interval(
    metric: str, holdout: Holdout, cand: Scored, base: Scored, seed: int, n_resamples: int
) -> Interval | None:
    """Bootstrap candidate - baseline on ``metric``, resampling queries / users / rows."""
    if metric == "ndcg@10":
        return paired_bootstrap(
            ndcg_at_k, holdout.labels, cand.scores, base.scores, holdout.groups, n_resamples, seed
        )
    if metric == "auc":
        return paired_bootstrap(
            auc, holdout.positive, cand.scores, base.scores, holdout.groups, n_resamples, seed
        )
    if cand.probs is None or base.probs is None:
        return None
    return paired_bootstrap(
        log_loss, holdout.positive, cand.probs, base.probs, holdout.groups, n_resamples, seed
    )
