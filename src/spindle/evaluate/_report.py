"""The gate's decision as data: the systems compared, one reason per check, the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from spindle.core import Evaluation, GateDecision, Verdict, sha256_json

if TYPE_CHECKING:
    from spindle.evaluate._spread import ReplicaSpread

METRIC_ORDER = (
    "ndcg@10",
    "mrr",
    "recall@10",
    "auc",
    "pr_auc",
    "accuracy",
    "macro_f1",
    "log_loss",
    "ece",
    "rmse",
    "mae",
    "r2",
)
"""Column order of metrics in tables and dicts."""


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True, eq=False)
class SystemScores:
    """One system's scores for every holdout row.

    Attributes:
        name: e.g. ``"candidate"``, ``"production"``, ``"popularity"``, ``"oracle"``.
        scores: one score per holdout row, aligned with the labels (for multiclass, one row
            of class probabilities or logits per holdout row, ``[rows, classes]``).
        logits: whether ``scores`` are logits (probabilities = sigmoid(scores)). ``None`` (the
            default) means: the candidate and the baseline are models emitting logits; any other
            system is a reference (popularity counts, true probabilities) whose scores are used as
            probabilities only when all lie in [0, 1], and otherwise get no log loss/ECE.
            For multiclass, a model's rows that are not already probabilities get a softmax.
    """

    name: str
    scores: npt.NDArray[Any]
    logits: bool | None = None


@dataclass(frozen=True)
class GateReason:
    """The outcome of one gate check, with its evidence.

    Attributes:
        check: ``sanity_finite``, ``sanity_variance``, ``sanity_metric``, ``sanity_labels``,
            ``min_metric``,
            ``regression``, ``slice_regression``, ``slice_disparity``, ``calibration``,
            ``score_shift``, ``slice_coverage``, ``replica_spread`` (evidence only: the
            std of the metric over the seed replicas, their range as ``interval`` and the
            noise allowance as ``threshold``) or ``feature_health``.
        passed: False blocks the candidate.
        metric: the metric checked (``"scores"`` for the sanity checks on raw scores).
        slice: the slice key (``"column=value"``; the column for ``slice_coverage``), or None
            for the whole holdout.
        candidate: the candidate's value.
        baseline: the baseline's value, when there is one.
        interval: paired bootstrap interval of candidate - baseline, when computed (for
            ``slice_disparity``: of how much the candidate widens the baseline's slice gap).
        threshold: the limit the check applied (tolerance, floor, minimum std).
        message: one readable sentence with the numbers; starts with ``WARN:`` for warnings.
        warning: passed, but worth a human look (never blocks).
    """

    check: str
    passed: bool
    metric: str
    slice: str | None
    candidate: float
    baseline: float | None
    interval: tuple[float, float] | None
    threshold: float | None
    message: str
    warning: bool = False

    @property
    def level(self) -> Verdict:
        """``fail`` (blocks), ``warn`` (passed, flagged) or ``pass``."""
        if not self.passed:
            return "fail"
        return "warn" if self.warning else "pass"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (undefined numbers become ``None``)."""
        interval = None
        if self.interval is not None:
            interval = [_json_float(self.interval[0]), _json_float(self.interval[1])]
        return {
            "check": self.check,
            "level": self.level,
            "passed": self.passed,
            "metric": self.metric,
            "slice": self.slice,
            "candidate": _json_float(self.candidate),
            "baseline": _json_float(self.baseline),
            "interval": interval,
            "threshold": _json_float(self.threshold),
            "message": self.message,
        }

    def line(self) -> str:
        """One line for logs and the ``Evaluation`` artifact, e.g. ``[FAIL] regression ...``."""
        where = f" [{self.slice}]" if self.slice else ""
        message = self.message.removeprefix("WARN: ")
        return f"[{self.level.upper()}] {self.check} {self.metric}{where}: {message}"


def _clean_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {s: {m: _json_float(v) for m, v in values.items()} for s, values in metrics.items()}


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of every system overall and per slice, and the gate's decision with reasons.

    ``metrics`` maps system -> metric -> value; ``slices`` maps a slice key such as
    ``"user__country__v1=DE"`` -> system -> metric -> value. Undefined metrics are ``nan`` here
    and ``None`` in ``to_dict()``. ``decision`` is ``"block"`` when any reason failed.
    ``spread`` holds the seed replicas' spread (empty without replicas): every metric overall,
    the primary metric per slice. ``intervals`` holds each system's own bootstrap percentile
    interval of the primary metric on the whole holdout (system -> (lower, upper)).
    """

    task: str
    metrics: dict[str, dict[str, float]] = field(hash=False)
    slices: dict[str, dict[str, dict[str, float]]] = field(hash=False)
    decision: GateDecision
    reasons: tuple[GateReason, ...]
    n_groups: int
    n_rows: int
    candidate: str = "candidate"
    baseline: str | None = None
    primary_metric: str = ""
    skipped_slices: dict[str, int] = field(default_factory=dict, hash=False)
    spread: tuple[ReplicaSpread, ...] = ()
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict, hash=False)

    @property
    def failures(self) -> tuple[GateReason, ...]:
        """The reasons that block the candidate."""
        return tuple(r for r in self.reasons if not r.passed)

    @property
    def warnings(self) -> tuple[GateReason, ...]:
        """The reasons that passed but are flagged for a human."""
        return tuple(r for r in self.reasons if r.passed and r.warning)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (``json.dumps`` works; NaN becomes ``None``)."""
        return {
            "task": self.task,
            "decision": self.decision,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "primary_metric": self.primary_metric,
            "n_groups": self.n_groups,
            "n_rows": self.n_rows,
            "metrics": _clean_metrics(self.metrics),
            "slices": {key: _clean_metrics(value) for key, value in self.slices.items()},
            "skipped_slices": dict(self.skipped_slices),
            "reasons": [reason.to_dict() for reason in self.reasons],
            "replica_spread": [spread.to_dict() for spread in self.spread],
            "intervals": {s: [lo, hi] for s, (lo, hi) in self.intervals.items()},
        }

    def to_evaluation(self, model: str, version: int, holdout_date: str, uri: str) -> Evaluation:
        """Return the ``Evaluation`` artifact of this report (content hash of ``to_dict()``).

        Undefined metric values are left out of the artifact's metrics.
        """
        metrics = {
            system: {m: float(v) for m, v in values.items() if math.isfinite(v)}
            for system, values in self.metrics.items()
        }
        return Evaluation(
            model=model,
            version=version,
            holdout_date=holdout_date,
            uri=uri,
            content_hash=sha256_json(self.to_dict()),
            decision=self.decision,
            metrics=metrics,
            reasons=tuple(reason.line() for reason in self.reasons),
        )


def _system_order(report: EvaluationReport, systems: list[str]) -> list[str]:
    first = [s for s in (report.candidate, report.baseline) if s is not None and s in systems]
    return first + [s for s in systems if s not in first]


def format_report(report: EvaluationReport, slice_key: str | None = None) -> list[list[str]]:
    """Return table rows (header first): one row per system, one column per metric.

    Args:
        report: the report to show.
        slice_key: a key of ``report.slices`` to show that slice instead of the whole holdout.

    Example:
        rows = format_report(report)  # [["system", "ndcg@10", ...], ["candidate", "0.4210", ...]]
    """
    table = report.metrics if slice_key is None else report.slices[slice_key]
    present = {m for values in table.values() for m in values}
    columns = [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))
    rows = [["system", *columns]]
    for system in _system_order(report, list(table)):
        values = table[system]
        cells = []
        for metric in columns:
            value = values.get(metric)
            cells.append("-" if value is None or not np.isfinite(value) else f"{value:.4f}")
        rows.append([system, *cells])
    return rows
