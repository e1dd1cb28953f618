"""The holdout the gate judges on: validated labels, resampling units, and slices of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import DataError
from spindle.evaluate._labels import TaskName, check_task, group_index, validate_labels
from spindle.evaluate._metrics import BoolArray, FloatArray, IntArray

Task: TypeAlias = TaskName
SliceValues: TypeAlias = npt.ArrayLike | pa.Array | pa.ChunkedArray
MISSING_VALUE = "<missing>"
"""Slice value shown for null/NaN entries of a slice column."""


@dataclass(frozen=True, eq=False)
class Holdout:
    """Labels of the holdout rows with their resampling units.

    ``groups`` are the raw ids (queries for ranking; users or ``None`` = rows otherwise) and
    ``unit`` their dense index, so slices can count units without re-sorting.
    """

    task: Task
    labels: FloatArray
    groups: npt.NDArray[Any] | None
    unit: IntArray
    n_units: int

    @property
    def n_rows(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def positive(self) -> FloatArray:
        """1.0 for rows with a positive label (any gain > 0), else 0.0."""
        return (self.labels > 0).astype(np.float64)

    def subset(self, mask: BoolArray) -> Holdout:
        """The rows of ``mask``, with their units re-indexed densely."""
        kept, unit = np.unique(self.unit[mask], return_inverse=True)
        return Holdout(
            task=self.task,
            labels=self.labels[mask],
            groups=None if self.groups is None else self.groups[mask],
            unit=np.asarray(unit, dtype=np.intp).reshape(-1),
            n_units=int(kept.shape[0]),
        )


def build_holdout(task: str, labels: npt.ArrayLike, groups: npt.ArrayLike | None) -> Holdout:
    """Validate labels and groups for ``task`` (``validate_labels``) and index the units.

    Raises:
        DataError: one line naming the task and the first bad row, or what is wrong with groups.
        ValueError: an unknown task.
    """
    kind = check_task(task)
    y = validate_labels(kind, labels, groups)
    if groups is None:
        n = y.shape[0]
        return Holdout(kind, y, None, np.arange(n, dtype=np.intp), n)
    ids, unit = group_index(groups, y.shape[0])
    return Holdout(kind, y, np.asarray(groups), unit, int(ids.shape[0]))


@dataclass(frozen=True)
class SliceColumn:
    """A slice column encoded once: the key of every value and each row's value index."""

    column: str
    keys: tuple[str, ...]
    index: IntArray

    def mask(self, value_index: int) -> BoolArray:
        return np.asarray(self.index == value_index, dtype=np.bool_)

    def unit_counts(self, holdout: Holdout) -> IntArray:
        """Number of distinct resampling units (queries, users or rows) per slice value."""
        pairs = np.unique(self.index.astype(np.int64) * holdout.n_units + holdout.unit)
        counts = np.bincount(pairs // holdout.n_units, minlength=len(self.keys))
        return np.asarray(counts, dtype=np.intp)


def _as_arrow(values: SliceValues) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    # from_pandas=True turns NaN into null, so missing floats and None form one slice
    return pa.array(np.asarray(values), from_pandas=True)


def encode_slice(column: str, values: SliceValues, n_rows: int) -> SliceColumn:
    """Encode one slice column; keys are ``"column=value"`` sorted by value, nulls last."""
    try:
        array = _as_arrow(values)
        encoded = array.dictionary_encode()
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise DataError(
            f"slice column {column!r} cannot be read as one value per row: {exc}"
        ) from exc
    if len(array) != n_rows:
        raise DataError(f"slice column {column!r} has {len(array)} rows but the holdout {n_rows}")
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    raw_index = pc.fill_null(encoded.indices, len(names)).to_numpy(zero_copy_only=False)
    order = sorted(range(len(names)), key=lambda i: names[i])
    remap = np.empty(len(names) + 1, dtype=np.intp)
    remap[order] = np.arange(len(names))
    remap[len(names)] = len(names)
    index = remap[np.asarray(raw_index, dtype=np.intp)]
    keys = [f"{column}={names[i]}" for i in order]
    if encoded.null_count:
        keys.append(f"{column}={MISSING_VALUE}")
    return SliceColumn(column, tuple(keys), index)


def encode_slices(
    slice_columns: Mapping[str, SliceValues] | None, n_rows: int
) -> list[SliceColumn]:
    """Encode every given slice column, in column-name order."""
    given = dict(slice_columns or {})
    return [encode_slice(name, given[name], n_rows) for name in sorted(given)]
