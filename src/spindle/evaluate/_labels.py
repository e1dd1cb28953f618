"""Labels and predictions checked against the model's task, with a one-line error per problem.

The tasks a model may declare (``task:`` in ``models/NAME.yaml``) and what each needs:

========== ==================================== ===========================================
task       labels                               predictions per system
========== ==================================== ===========================================
binary     0 or 1                               one finite score per row (probabilities in
                                                [0, 1] for log loss and calibration)
regression finite numbers                       one finite value per row
multiclass class indices 0..K-1                 class probabilities ``[rows, K]``
ranking    graded relevance >= 0, a group key   one finite score per row
========== ==================================== ===========================================
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from spindle.core import DataError
from spindle.evaluate._metrics import FloatArray
from spindle.evaluate._pointwise import class_inputs

TaskName: TypeAlias = Literal["binary", "multiclass", "ranking", "regression"]
TASKS: tuple[TaskName, ...] = ("binary", "multiclass", "ranking", "regression")
"""Every task a model may declare."""

_EXPECTED = {
    "binary": "0 or 1",
    "multiclass": "an integer class index >= 0",
    "ranking": "a finite graded relevance >= 0 (0 = not relevant)",
    "regression": "a finite number",
}


def check_task(task: str) -> TaskName:
    """Return ``task`` if it is one of ``TASKS``; raise ``ValueError`` naming them otherwise."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    return task


def _as_float(task: str, labels: npt.ArrayLike) -> FloatArray:
    """Labels as float64; the first non-numeric row is named when the conversion fails."""
    try:
        return np.asarray(labels, dtype=np.float64)
    except (TypeError, ValueError):
        raw = np.asarray(labels, dtype=object).reshape(-1)
        for row, value in enumerate(raw):
            try:
                float(value)
            except (TypeError, ValueError):
                raise DataError(
                    f"{task} labels: row {row} is {value!r}, expected {_EXPECTED[task]}; "
                    "fix the label column of the model's examples"
                ) from None
        raise DataError(f"{task} labels cannot be read as numbers") from None


def _first_bad(task: str, y: FloatArray, bad: npt.NDArray[np.bool_], why: str = "") -> None:
    rows = np.flatnonzero(bad)
    if rows.size:
        row = int(rows[0])
        raise DataError(
            f"{task} labels: row {row} is {float(y[row])!r}, expected {_EXPECTED[task]}{why} "
            f"({rows.size} bad row(s)); fix the label column of the model's examples"
        )


def validate_labels(
    task: str,
    labels: npt.ArrayLike,
    groups: npt.ArrayLike | None = None,
    *,
    n_classes: int | None = None,
) -> FloatArray:
    """Check ``labels`` (and the group key of a ranking task) against ``task``.

    Args:
        task: one of ``TASKS``.
        labels: one label per row.
        groups: the group key per row (result-list ids); required for ranking.
        n_classes: for multiclass, the number of classes the predictions cover (labels must be
            below it); ``None`` checks only that labels are integers >= 0.

    Returns:
        The labels as a 1-D float64 array.

    Raises:
        DataError: one line naming the task and the first bad row (or the missing group key).
        ValueError: an unknown task.

    Example:
        >>> validate_labels("binary", [0, 1, 1]).tolist()
        [0.0, 1.0, 1.0]
    """
    name = check_task(task)
    y = _as_float(name, labels)
    if y.ndim != 1 or y.shape[0] == 0:
        raise DataError(f"{name} labels must be a non-empty 1-D array, got shape {y.shape}")
    finite = np.isfinite(y)
    if name == "binary":
        _first_bad(name, y, ~np.isin(y, (0.0, 1.0)))
    elif name == "regression":
        _first_bad(name, y, ~finite)
    elif name == "multiclass":
        bad = ~finite | (y < 0) | (y != np.round(np.where(finite, y, 0.0)))
        _first_bad(name, y, bad)
        if n_classes is not None:
            _first_bad(name, y, y >= n_classes, f" below {n_classes} (the classes predicted)")
    else:
        _first_bad(name, y, ~finite | (y < 0))
        if groups is None:
            raise DataError(
                "ranking labels need a group key (the result-list id of every row); declare "
                "examples.group_key in the model's YAML"
            )
    if groups is not None and np.shape(groups) != y.shape:
        raise DataError(
            f"{name} group key has shape {np.shape(groups)} but labels have {y.shape}; align them"
        )
    return y


def validate_predictions(
    task: str, system: str, predictions: npt.ArrayLike, n_rows: int
) -> npt.NDArray[np.float64]:
    """Check one system's predictions against ``task``; return them as float64.

    Multiclass rows are renormalised to sum exactly 1 (they must sum to 1 within 1e-4).

    Raises:
        DataError: one line naming the system and what is wrong (shape, NaN/inf, range).
    """
    name = check_task(task)
    try:
        p = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"predictions of system {system!r} are not numeric: {exc}") from None
    if name == "multiclass":
        try:
            return class_inputs(np.zeros(n_rows), p)[1]
        except ValueError as exc:
            raise DataError(f"multiclass predictions of system {system!r}: {exc}") from None
    if p.shape != (n_rows,):
        raise DataError(
            f"system {system!r} has predictions of shape {p.shape}; expected ({n_rows},), one "
            "per row"
        )
    bad = np.flatnonzero(~np.isfinite(p))
    if bad.size:
        raise DataError(
            f"{name} predictions of system {system!r}: row {int(bad[0])} is {float(p[bad[0]])!r} "
            f"({bad.size} NaN/inf value(s)); metrics need finite predictions"
        )
    return p


def group_index(
    groups: npt.ArrayLike, n_rows: int
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """(sorted distinct ids, dense index per row) of a group key; ``DataError`` when not comparable."""
    g = np.asarray(groups)
    if g.shape != (n_rows,):
        raise DataError(f"the group key has shape {g.shape}; expected ({n_rows},)")
    try:
        ids, unit = np.unique(g, return_inverse=True)
    except TypeError as exc:
        raise DataError(f"the group key must be comparable ids (no None mixed in): {exc}") from None
    return ids, np.asarray(unit, dtype=np.intp).reshape(-1)
