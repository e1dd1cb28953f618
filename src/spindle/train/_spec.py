"""InputSpec: the shapes of the model inputs, and the check that arrays honour them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spindle.core import TrainingError

INPUT_NAMES: tuple[str, ...] = ("cat", "text", "dense")


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

    def __post_init__(self) -> None:
        problems = []
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
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, the inverse of ``from_dict``."""
        return {
            "cat_cardinalities": list(self.cat_cardinalities),
            "text_vocab_size": self.text_vocab_size,
            "n_text": self.n_text,
            "text_len": self.text_len,
            "n_dense": self.n_dense,
        }

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
