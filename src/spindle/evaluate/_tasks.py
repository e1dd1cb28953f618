"""The metrics of every task, and ``evaluate_task``: each metric with paired bootstrap intervals.

``TASK_METRICS`` says, per task, which metrics apply, which way is better, what predictions they
need and what the bootstrap resamples. A metric that does not fit a task is simply not in its
tuple, so it is never computed for it (calibration is binary-only; NDCG needs result lists).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from spindle.core import DataError
from spindle.evaluate._bootstrap import Interval, _check_settings, _json_float, _summarise
from spindle.evaluate._labels import (
    TaskName,
    check_task,
    group_index,
    validate_labels,
    validate_predictions,
)
from spindle.evaluate._metrics import FloatArray, IntArray, RankedLists
from spindle.evaluate._pointwise import (
    ACCURACY,
    BINARY_LOG_LOSS,
    ECE,
    MACRO_F1,
    MAE,
    MULTICLASS_LOG_LOSS,
    R2,
    RMSE,
    Additive,
    SortedRows,
)
from spindle.evaluate._resample import (
    AdditiveValues,
    RankValues,
    Resampled,
    full_value,
    resample_all,
)

Needs = Literal["scores", "probabilities", "class_probabilities", "values"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a task.

    Attributes:
        name: the metric's key in reports; ``@k`` is replaced by the cut-off (``ndcg@10``).
        higher_is_better: its direction.
        needs: ``scores`` (any finite score per row), ``probabilities`` (in [0, 1]; a system
            whose scores are not is not measured on it), ``class_probabilities`` (``[rows, K]``)
            or ``values`` (regression predictions).
        resample: ``rows`` (rows, or the optional group key such as a user id, are the
            bootstrap units) or ``groups`` (result lists with a relevant row are the units).
    """

    name: str
    higher_is_better: bool
    needs: Needs
    resample: Literal["rows", "groups"]

    def key(self, k: int) -> str:
        """The metric's name with the cut-off filled in."""
        return self.name.replace("@k", f"@{k}")


def _spec(name: str, higher: bool, needs: Needs, resample: str = "rows") -> MetricSpec:
    return MetricSpec(name, higher, needs, "groups" if resample == "groups" else "rows")


TASK_METRICS: dict[TaskName, tuple[MetricSpec, ...]] = {
    "binary": (
        _spec("auc", True, "scores"),
        _spec("pr_auc", True, "scores"),
        _spec("log_loss", False, "probabilities"),
        _spec("ece", False, "probabilities"),
    ),
    "multiclass": (
        _spec("accuracy", True, "class_probabilities"),
        _spec("log_loss", False, "class_probabilities"),
        _spec("macro_f1", True, "class_probabilities"),
    ),
    "ranking": (
        _spec("ndcg@k", True, "scores", "groups"),
        _spec("mrr", True, "scores", "groups"),
        _spec("recall@k", True, "scores", "groups"),
    ),
    "regression": (
        _spec("rmse", False, "values"),
        _spec("mae", False, "values"),
        _spec("r2", True, "values"),
    ),
}
"""The metrics of every task, in report order."""

_ADDITIVE: dict[tuple[str, str], Additive] = {
    ("binary", "log_loss"): BINARY_LOG_LOSS,
    ("binary", "ece"): ECE,
    ("multiclass", "accuracy"): ACCURACY,
    ("multiclass", "log_loss"): MULTICLASS_LOG_LOSS,
    ("multiclass", "macro_f1"): MACRO_F1,
    ("regression", "rmse"): RMSE,
    ("regression", "mae"): MAE,
    ("regression", "r2"): R2,
}


@dataclass(frozen=True)
class MetricEstimate:
    """A metric of one system with its bootstrap percentile interval."""

    value: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: _json_float(v) for k, v in vars(self).items()}


@dataclass(frozen=True)
class TaskEvaluation:
    """Every metric of a task for every system, with intervals, and paired deltas.

    Attributes:
        task: the task evaluated.
        reference: the system the deltas are taken against.
        metrics: metric -> system -> ``MetricEstimate`` (left out where a metric does not apply
            to a system, e.g. log loss of scores that are not probabilities).
        deltas: metric -> system -> paired ``Interval`` of system - reference.
        higher_is_better: metric -> its direction.
        n_units: resampling units (rows, users, or result lists with a relevant row).
        n_resamples, confidence: of the bootstrap.
    """

    task: str
    reference: str
    metrics: dict[str, dict[str, MetricEstimate]]
    deltas: dict[str, dict[str, Interval]]
    higher_is_better: dict[str, bool]
    n_units: int
    n_resamples: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (undefined numbers become ``None``)."""
        return {
            "task": self.task,
            "reference": self.reference,
            "n_units": self.n_units,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "higher_is_better": dict(self.higher_is_better),
            "metrics": {m: {s: e.to_dict() for s, e in v.items()} for m, v in self.metrics.items()},
            "deltas": {m: {s: i.to_dict() for s, i in v.items()} for m, v in self.deltas.items()},
        }


@dataclass(frozen=True)
class _Units:
    """The bootstrap units of a holdout: a dense unit per row and how many there are."""

    unit: IntArray
    n_units: int
    lists: IntArray | None = None  # ranking: the result lists that have a relevant row


def _units(task: TaskName, labels: FloatArray, unit: IntArray | None, n_units: int) -> _Units:
    """The bootstrap units from a dense unit index per row (``None``: every row its own)."""
    if unit is None:
        n = labels.shape[0]
        return _Units(np.arange(n, dtype=np.intp), n)
    if task != "ranking":
        return _Units(unit, n_units)
    relevant = np.flatnonzero(np.bincount(unit, weights=labels > 0, minlength=n_units) > 0)
    return _Units(unit, n_units, np.asarray(relevant, dtype=np.intp))


def _n_units(units: _Units) -> int:
    return units.n_units if units.lists is None else int(units.lists.shape[0])


def _resampled(
    task: TaskName, spec: MetricSpec, labels: FloatArray, pred: FloatArray, units: _Units, k: int
) -> Resampled | None:
    """The metric of one system in resampled form; None when it does not apply to the system."""
    if spec.needs == "probabilities" and not ((pred >= 0) & (pred <= 1)).all():
        return None
    if units.lists is not None:  # ranking: per-list values, the relevant lists are the units
        ranked = RankedLists(labels, pred, units.unit, units.n_units)
        return AdditiveValues(_per_list_sums(ranked, spec.name, k, units.lists), _mean)
    additive = _ADDITIVE.get((task, spec.name))
    if additive is not None:
        return AdditiveValues(
            additive.stats(labels, pred, units.unit, units.n_units), additive.combine
        )
    rows = SortedRows(pred, (labels > 0).astype(np.float64))
    metric = SortedRows.auc if spec.name == "auc" else SortedRows.average_precision
    return RankValues(rows, units.unit[rows.order], metric)


def _mean(totals: FloatArray) -> FloatArray:
    out = np.full(totals.shape[:-1], np.nan)
    np.divide(totals[..., 0], totals[..., 1], out=out, where=totals[..., 1] > 0)
    return out


def _estimate(value: float, draws: FloatArray, confidence: float) -> MetricEstimate:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0 or not math.isfinite(value):
        return MetricEstimate(value, float("nan"), float("nan"))
    alpha = 1.0 - confidence
    lower, upper = np.quantile(finite, [alpha / 2, 1.0 - alpha / 2])
    return MetricEstimate(value, float(lower), float(upper))


def _per_list_sums(ranked: RankedLists, name: str, k: int, lists: IntArray) -> FloatArray:
    """``[value, 1]`` of every relevant result list (``lists``), in list order."""
    if name == "ndcg@k":
        index, values = ranked.ndcg(k)
    elif name == "mrr":
        index, values = ranked.mrr()
    else:
        index, values = ranked.recall(k)
    full = np.zeros(ranked.n_groups)
    full[index] = values
    return np.stack([full[lists], np.ones(lists.shape[0])], axis=1)


def _predictions(
    task: TaskName, labels: FloatArray, predictions: Mapping[str, npt.ArrayLike]
) -> dict[str, FloatArray]:
    checked = {
        name: validate_predictions(task, name, values, labels.shape[0])
        for name, values in predictions.items()
    }
    if task == "multiclass":
        widths = {name: p.shape[1] for name, p in checked.items()}
        if len(set(widths.values())) > 1:
            raise DataError(f"multiclass systems predict different numbers of classes: {widths}")
        validate_labels(task, labels, n_classes=next(iter(widths.values())))
    return checked


def evaluate_task(
    task: str,
    labels: npt.ArrayLike,
    predictions: Mapping[str, npt.ArrayLike],
    *,
    groups: npt.ArrayLike | None = None,
    reference: str | None = None,
    k: int = 10,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> TaskEvaluation:
    """Every metric of ``task`` for every system, with bootstrap intervals and paired deltas.

    All systems and metrics are computed on the same bootstrap draws of the same units, so the
    delta of a system against ``reference`` is a paired bootstrap interval (``Interval``).

    Args:
        task: ``binary``, ``regression``, ``multiclass`` or ``ranking`` (``TASK_METRICS``).
        labels: one label per row, validated for the task (``validate_labels``).
        predictions: system name -> predictions (see ``MetricSpec.needs``): scores or
            probabilities per row for binary and ranking, values for regression, class
            probabilities ``[rows, K]`` for multiclass.
        groups: the group key per row: result lists for ranking (required), otherwise an
            optional resampling unit such as a user id (rows when ``None``).
        reference: the system deltas are taken against (default: the first one).
        k: cut-off of NDCG@k and recall@k.
        n_resamples, seed, confidence: of the bootstrap; equal inputs give equal results.

    Returns:
        A ``TaskEvaluation``.

    Raises:
        DataError: bad labels, group key or predictions (one line naming the row or system).
        ValueError: an unknown task or reference, no systems, or bad bootstrap settings.

    Example:
        >>> result = evaluate_task("regression", [1.0, 2.0, 3.0, 4.0],
        ...                        {"new": [1.1, 2.0, 2.9, 4.2], "old": [2.0, 2.0, 2.0, 2.0]},
        ...                        reference="old")
        >>> round(result.deltas["rmse"]["new"].estimate, 4)
        -1.1023
    """
    name = check_task(task)
    _check_settings(n_resamples, confidence)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not predictions:
        raise ValueError("no systems to evaluate: pass at least one system's predictions")
    ref = reference if reference is not None else next(iter(predictions))
    if ref not in predictions:
        raise ValueError(f"reference {ref!r} is not among the systems {sorted(predictions)}")
    y = validate_labels(name, labels, groups)
    preds = _predictions(name, y, predictions)
    if groups is None:
        units = _units(name, y, None, 0)
    else:
        ids, unit = group_index(groups, y.shape[0])
        units = _units(name, y, unit, int(ids.shape[0]))
    n_units = _n_units(units)
    if n_units == 0:
        raise DataError("ranking labels: no result list has a relevant row (label > 0)")
    specs = TASK_METRICS[name]
    forms: dict[str, dict[str, Resampled]] = {}
    for spec in specs:
        forms[spec.key(k)] = {
            system: form
            for system, p in preds.items()
            if (form := _resampled(name, spec, y, p, units, k)) is not None
        }
    draws = resample_all(forms, n_units, y.shape[0], n_resamples, seed)
    metrics: dict[str, dict[str, MetricEstimate]] = {}
    deltas: dict[str, dict[str, Interval]] = {}
    for metric, systems in forms.items():
        values = {s: full_value(form, n_units) for s, form in systems.items()}
        metrics[metric] = {s: _estimate(values[s], draws[metric][s], confidence) for s in systems}
        if ref not in systems:
            continue
        deltas[metric] = {
            s: _summarise(
                values[s], values[ref], draws[metric][s] - draws[metric][ref], confidence, n_units
            )
            for s in systems
            if s != ref
        }
    return TaskEvaluation(
        task=name,
        reference=ref,
        metrics=metrics,
        deltas=deltas,
        higher_is_better={spec.key(k): spec.higher_is_better for spec in specs},
        n_units=n_units,
        n_resamples=n_resamples,
        confidence=confidence,
    )


def metric_values(
    task: TaskName,
    labels: FloatArray,
    predictions: FloatArray,
    unit: IntArray | None = None,
    n_units: int = 0,
    k: int = 10,
) -> dict[str, float]:
    """Every metric of ``task`` for one system's (validated) predictions on the whole holdout.

    Metrics needing probabilities are left out when the predictions are not in [0, 1].
    """
    units = _units(task, labels, unit, n_units)
    values: dict[str, float] = {}
    for spec in TASK_METRICS[task]:
        form = _resampled(task, spec, labels, predictions, units, k)
        if form is not None:
            values[spec.key(k)] = full_value(form, _n_units(units))
    return values


def _metric_forms(
    task: TaskName,
    metric: str,
    labels: FloatArray,
    predictions: Mapping[str, FloatArray],
    unit: IntArray | None,
    n_units: int,
    k: int,
) -> tuple[_Units, dict[str, Resampled | None]]:
    """The bootstrap units and each system's ``metric`` in resampled form (None where the
    metric does not apply to its predictions).

    Raises:
        ValueError: ``metric`` is not a metric of ``task``.
    """
    spec = next((s for s in TASK_METRICS[task] if s.key(k) == metric), None)
    if spec is None:
        raise ValueError(f"{metric!r} is not a metric of a {task} task")
    units = _units(task, labels, unit, n_units)
    return units, {n: _resampled(task, spec, labels, p, units, k) for n, p in predictions.items()}


def metric_estimates(
    task: TaskName,
    metric: str,
    labels: FloatArray,
    predictions: Mapping[str, FloatArray],
    unit: IntArray | None,
    n_units: int,
    k: int = 10,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, MetricEstimate]:
    """``metric`` of each system with its own bootstrap percentile interval, all systems on the
    same draws of the same units; a system the metric does not apply to is left out.

    Raises:
        ValueError: ``metric`` is not a metric of ``task``.
    """
    units, found = _metric_forms(task, metric, labels, predictions, unit, n_units, k)
    n = _n_units(units)
    forms = {name: form for name, form in found.items() if form is not None}
    if not forms or n == 0:
        return {}
    draws = resample_all({metric: forms}, n, labels.shape[0], n_resamples, seed)
    return {
        name: _estimate(full_value(form, n), draws[metric][name], confidence)
        for name, form in forms.items()
    }


def paired_metric_interval(
    task: TaskName,
    metric: str,
    labels: FloatArray,
    predictions: tuple[FloatArray, FloatArray],
    unit: IntArray | None,
    n_units: int,
    k: int = 10,
    n_resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval | None:
    """Paired bootstrap ``Interval`` of ``metric`` (a key of the task's metrics) a - b.

    Returns ``None`` when the metric does not apply to one of the two prediction arrays.

    Raises:
        ValueError: ``metric`` is not a metric of ``task``.
    """
    pair = dict(zip("ab", predictions, strict=True))
    units, found = _metric_forms(task, metric, labels, pair, unit, n_units, k)
    forms = [found["a"], found["b"]]
    if forms[0] is None or forms[1] is None:
        return None
    n = _n_units(units)
    if n == 0:
        nan = float("nan")
        return _summarise(nan, nan, np.empty(0), confidence, 0)
    draws = resample_all(
        {metric: {"a": forms[0], "b": forms[1]}}, n, labels.shape[0], n_resamples, seed
    )
    a, b = full_value(forms[0], n), full_value(forms[1], n)
    return _summarise(a, b, draws[metric]["a"] - draws[metric]["b"], confidence, n)
