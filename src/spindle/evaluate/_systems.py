"""The systems the gate compares, each scored on one holdout (or slice): metrics and pairs.

A ``Scored`` system sorts its scores once per holdout; NDCG@10, MRR, AUC and the paired NDCG
bootstrap all reuse that sort and the per-query NDCG values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from spindle.core import DataError
from spindle.evaluate._bootstrap import (
    Interval,
    paired_bootstrap,
    paired_bootstrap_means,
)
from spindle.evaluate._holdout import Holdout
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
from spindle.evaluate._report import SystemScores

HIGHER_IS_BETTER = {"ndcg@10": True, "mrr": True, "auc": True, "log_loss": False, "ece": False}
"""Direction of every metric the gate reports."""
NDCG_K = 10


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
        values: dict[str, float] = {}
        if h.task == "ranking":
            ndcg, mrr = self.ndcg_values, self.lists.mrr()[1]
            values["ndcg@10"] = float(ndcg.mean()) if ndcg.size else float("nan")
            values["mrr"] = float(mrr.mean()) if mrr.size else float("nan")
            ranked = SortedScores(self.scores, ascending=self.lists.by_score[::-1])
            positive = h.positive[ranked.order]
            values["auc"] = ranked.auc(positive, 1.0 - positive)
        else:
            values["auc"] = auc(h.positive, self.scores)
        if self.probs is not None:
            values["log_loss"] = log_loss(h.positive, self.probs)
            if h.task == "binary":
                values["ece"] = expected_calibration_error(h.positive, self.probs)
        return values


def prepare_system(system: SystemScores, holdout: Holdout, model_names: tuple[str, ...]) -> Scored:
    """Check a system's scores against the holdout and derive its probabilities, if any.

    Systems named in ``model_names`` (candidate, baseline) emit logits unless
    ``SystemScores.logits`` says otherwise; other systems are probabilities only when in [0, 1].
    """
    try:
        scores = np.asarray(system.scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"scores of system {system.name!r} are not numeric: {exc}") from exc
    if scores.shape != (holdout.n_rows,):
        raise DataError(
            f"system {system.name!r} has scores of shape {scores.shape}; expected "
            f"({holdout.n_rows},), one per holdout row"
        )
    finite = bool(np.isfinite(scores).all())
    logits = system.logits if system.logits is not None else system.name in model_names
    probs: FloatArray | None = None
    if finite and logits:
        probs = sigmoid(scores)
    elif finite and ((scores >= 0) & (scores <= 1)).all():
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
