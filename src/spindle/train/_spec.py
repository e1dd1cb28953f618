"""InputSpec: the shapes of the model inputs, and the check that arrays honour them."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from spindle.core import TrainingError

INPUT_NAMES: tuple[str, ...] = ("cat", "text", "dense")
HEAD_TASKS: tuple[str, ...] = ("binary", "ranking", "regression", "multiclass")


@dataclass(frozen=True)
class InputSpec:
    """Widths and value ranges of the model inputs, as ``spindle.features.Transform`` makes them.

    Args:
        cat_cardinalities: one entry per categorical column; column ``j`` holds ids in
            ``[0, cat_cardinalities[j])``.
        text_vocab_size: word ids of every text column lie in ``[0, text_vocab_size)``; 0 pads.
        n_text: number of text columns (the first two are the query and the item name when
            there are two or more: the model adds their dot product as a relevance feature).
        text_len: words per text column.
        n_dense: number of standardised float columns.
        task: what the model's head predicts (``model.task``): ``binary`` and ``ranking`` one
            logit (logistic loss), ``regression`` one value (squared error), ``multiclass``
            ``classes`` logits (softmax cross-entropy). Set it with ``with_head``.
        classes: the number of classes K of a multiclass head (0 otherwise).
        label_mean, label_std: a regression head learns the standardised label
            ``(y - label_mean) / label_std``; its served output is un-standardised.

    Example:
        >>> InputSpec.from_dict({"cat_cardinalities": [10], "text_vocab_size": 0, "n_text": 0,
        ...                      "text_len": 0, "n_dense": 3}).present_inputs()
        ('cat', 'dense')
    """

    cat_cardinalities: tuple[int, ...] = ()
    text_vocab_size: int = 0
    n_text: int = 0
    text_len: int = 0
    n_dense: int = 0
    task: str = "binary"
    classes: int = 0
    label_mean: float = 0.0
    label_std: float = 1.0

    @property
    def outputs(self) -> int:
        """Width of the head: K for multiclass, else 1."""
        return self.classes if self.task == "multiclass" else 1

    def __post_init__(self) -> None:
        problems = self._head_problems()
        if any(c < 1 for c in self.cat_cardinalities):
            problems.append(f"cat_cardinalities must all be >= 1, got {self.cat_cardinalities}")
        if min(self.text_vocab_size, self.n_text, self.text_len, self.n_dense) < 0:
            problems.append("text_vocab_size, n_text, text_len and n_dense must be >= 0")
        if self.n_text > 0 and (self.text_len < 1 or self.text_vocab_size < 2):
            problems.append(
                f"{self.n_text} text column(s) need text_len >= 1 and text_vocab_size >= 2 "
                f"(id 0 is padding), got text_len={self.text_len}, "
                f"text_vocab_size={self.text_vocab_size}"
            )
        if not self.present_inputs():
            problems.append("the spec has no inputs at all (no cat, text or dense columns)")
        if problems:
            raise TrainingError("invalid InputSpec: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> InputSpec:
        """Build a spec from its JSON form (``Transform.input_spec()`` or ``input_spec.json``)."""
        return cls(
            cat_cardinalities=tuple(int(c) for c in value.get("cat_cardinalities", ())),
            text_vocab_size=int(value.get("text_vocab_size", 0)),
            n_text=int(value.get("n_text", 0)),
            text_len=int(value.get("text_len", 0)),
            n_dense=int(value.get("n_dense", 0)),
            task=str(value.get("task", "binary")),
            classes=int(value.get("classes", 0)),
            label_mean=float(value.get("label_mean", 0.0)),
            label_std=float(value.get("label_std", 1.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, the inverse of ``from_dict`` (a binary head adds no keys: the form,
        and so run fingerprints, of binary and ranking models are what they always were)."""
        value: dict[str, Any] = {
            "cat_cardinalities": list(self.cat_cardinalities),
            "text_vocab_size": self.text_vocab_size,
            "n_text": self.n_text,
            "text_len": self.text_len,
            "n_dense": self.n_dense,
        }
        if self.task == "regression":
            value |= {"task": self.task, "label_mean": self.label_mean}
            value["label_std"] = self.label_std
        elif self.task == "multiclass":
            value |= {"task": self.task, "classes": self.classes}
        return value

    def _head_problems(self) -> list[str]:
        """What is wrong with the head fields (empty when nothing)."""
        if self.task not in HEAD_TASKS:
            return [f"task must be one of {', '.join(HEAD_TASKS)}, got {self.task!r}"]
        if self.task == "multiclass" and self.classes < 2:
            return [f"a multiclass head needs classes >= 2, got {self.classes}"]
        if not (math.isfinite(self.label_mean) and math.isfinite(self.label_std)):
            return ["label_mean and label_std must be finite"]
        if self.label_std <= 0:
            return [f"label_std must be > 0, got {self.label_std}"]
        return []

    def present_inputs(self) -> tuple[str, ...]:
        """The input names that exist for this spec, in the order ``cat``, ``text``, ``dense``."""
        widths = {"cat": len(self.cat_cardinalities), "text": self.n_text, "dense": self.n_dense}
        return tuple(name for name in INPUT_NAMES if widths[name] > 0)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per present input, its shape without the batch dimension."""
        all_shapes = {
            "cat": (len(self.cat_cardinalities),),
            "text": (self.n_text, self.text_len),
            "dense": (self.n_dense,),
        }
        return {name: all_shapes[name] for name in self.present_inputs()}


_DTYPES = {"cat": np.int64, "text": np.int64, "dense": np.float32}


def check_inputs(inputs: dict[str, np.ndarray], spec: InputSpec) -> int:
    """Check keys, dtypes, shapes and id ranges of ``inputs`` against ``spec``; return the rows.

    Non-finite dense values are not checked here: the training loop checks every batch, so the
    error names the epoch, step and rows where training met them.

    Raises:
        TrainingError: listing every problem found.
    """
    expected = spec.shapes()
    problems = []
    if set(inputs) != set(expected):
        problems.append(f"inputs have keys {sorted(inputs)}, the spec expects {sorted(expected)}")
    rows = {name: int(inputs[name].shape[0]) for name in expected if name in inputs}
    if len(set(rows.values())) > 1:
        problems.append(f"inputs disagree on the number of rows: {rows}")
    for name, shape in expected.items():
        array = inputs.get(name)
        if array is None:
            continue
        if array.dtype != _DTYPES[name]:
            problems.append(f"inputs[{name!r}] has dtype {array.dtype}, expected {_DTYPES[name]}")
        if tuple(array.shape[1:]) != shape or array.ndim != len(shape) + 1:
            problems.append(f"inputs[{name!r}] has shape {array.shape}, expected [N, {shape}]")
    if problems:
        raise TrainingError("inputs do not match the InputSpec: " + "; ".join(problems))
    if "cat" in inputs:
        for column, cardinality in enumerate(spec.cat_cardinalities):
            _check_ids(inputs["cat"][:, column], cardinality, f"inputs['cat'] column {column}")
    if "text" in inputs:
        _check_ids(inputs["text"], spec.text_vocab_size, "inputs['text']")
    return next(iter(rows.values()), 0)


def _check_ids(ids: np.ndarray, size: int, where: str) -> None:
    if ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= size:
        flat = ids.reshape(ids.shape[0], -1)
        bad = np.flatnonzero(((flat < 0) | (flat >= size)).any(axis=1))
        raise TrainingError(
            f"{where} has ids outside [0, {size}) (min {low}, max {high}), first in row "
            f"{int(bad[0])}; the transform and the InputSpec disagree: refit the transform or "
            "rebuild the spec from it"
        )


def with_head(
    spec: InputSpec, task: str, labels: np.ndarray, classes: int | None = None
) -> InputSpec:
    """``spec`` with the head of ``task``, sized and scaled from the training labels.

    ``binary`` and ``ranking``: the spec unchanged (one logit). ``regression``: the labels'
    mean and standard deviation (1 when they are constant) standardise what the head learns.
    ``multiclass``: K = ``classes`` when given, else the largest label + 1 (labels are class
    indices 0..K-1; the K is recorded in ``input_spec.json`` and the ONNX output ``[N, K]``).

    Raises:
        TrainingError: an unknown task, or multiclass labels that are not class indices
            (naming the first bad row).
    """
    if task in ("binary", "ranking"):
        return spec
    if task == "regression":
        values = labels.astype(np.float64)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else 0.0
        std = float(finite.std()) if finite.size else 1.0
        return replace(spec, task=task, label_mean=mean, label_std=std if std > 0 else 1.0)
    if task == "multiclass":
        check_class_labels(labels, classes)
        found = int(labels.max()) + 1 if labels.size else 0
        return replace(spec, task=task, classes=classes if classes is not None else max(found, 2))
    raise TrainingError(f"task must be one of {', '.join(HEAD_TASKS)}, got {task!r}")


def check_class_labels(labels: np.ndarray, classes: int | None) -> None:
    """Multiclass labels are whole numbers in ``[0, classes)`` (any >= 0 when None).

    Raises:
        TrainingError: naming the first bad row and its value.
    """
    high = classes if classes is not None else np.inf
    bad = np.flatnonzero(~np.isfinite(labels) | (labels < 0) | (labels >= high) | (labels % 1 != 0))
    if bad.size:
        where = f"[0, {classes})" if classes is not None else "0, 1, 2, ..."
        raise TrainingError(
            f"multiclass labels must be class indices {where}; {bad.size} are not (first: row "
            f"{int(bad[0])} = {labels[bad[0]]}); map the label column to class numbers in the "
            "examples SQL"
        )


def check_labels(labels: np.ndarray, rows: int, spec: InputSpec) -> None:
    """Labels fit the head: 0/1 (binary, ranking), finite (regression), class indices.

    Raises:
        TrainingError: labels that are not float32 ``[rows]``, or the first bad label.
    """
    if labels.dtype != np.float32 or labels.shape != (rows,):
        raise TrainingError(
            f"labels must be float32 [{rows}] (one per input row), got {labels.dtype} "
            f"{labels.shape}"
        )
    if spec.task == "multiclass":
        check_class_labels(labels, spec.classes)
        return
    if spec.task == "regression":
        bad = np.flatnonzero(~np.isfinite(labels))
        if bad.size:
            raise TrainingError(
                f"regression labels must be finite; {bad.size} are not (first: row "
                f"{int(bad[0])} = {labels[bad[0]]}); drop or fill those rows in the examples SQL"
            )
        return
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        raise TrainingError(
            f"labels must be 0 or 1; {bad.size} are not (first: row {int(bad[0])} = "
            f"{labels[bad[0]]})"
        )
