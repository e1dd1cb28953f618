"""A training set's rows as what a trainer takes: labels, group ids, example weights, the spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spindle.core import DataError, ModelConfig, TrainingConfig
from spindle.train._spec import InputSpec, with_head

if TYPE_CHECKING:  # the frameworks load when a trainer trains, not when this is imported
    from spindle.features import Transform
    from spindle.train._protocol import Trainer
    from spindle.train._train import TrainResult


@dataclass(frozen=True)
class EncodedExamples:
    """A table's rows encoded for a trainer (``encode_examples``).

    Attributes:
        inputs: the transform's arrays, by input name.
        labels: float32 ``[N]`` (see ``labels_and_groups``).
        weights: float32 ``[N]`` example weights, or None (see ``example_weights``).
        spec: the input spec with the task's head (see ``model_spec``).
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    weights: np.ndarray | None
    spec: InputSpec

    def train(
        self,
        trainer: Trainer,
        training: TrainingConfig,
        out: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrainResult:
        """Train ``trainer`` on these rows into ``out`` (``Trainer.train``, weights included)."""
        return trainer.train(
            self.inputs,
            self.labels,
            self.spec,
            training,
            out,
            checkpoint_dir=checkpoint_dir,
            base_dir=base_dir,
            progress=progress,
            weights=self.weights,
        )


def encode_examples(table: pa.Table, transform: Transform, cfg: ModelConfig) -> EncodedExamples:
    """Encode ``table``'s rows with a fitted ``transform``: inputs, labels, weights and spec.

    Args:
        table: the rows (a training set).
        transform: the feature transform, fitted on them or reused from a base version.
        cfg: the model config (label, task, example weights).

    Returns:
        What ``Trainer.train`` takes.

    Raises:
        FeatureError: a feature column missing from ``table``.
        DataError, TrainingError: as ``labels_and_groups`` and ``model_spec``.
    """
    inputs = transform.transform(table)
    labels, _ = labels_and_groups(table, cfg)
    weights = example_weights(table, cfg)
    return EncodedExamples(inputs, labels, weights, model_spec(cfg, transform.input_spec(), labels))


def example_weights(table: pa.Table, cfg: ModelConfig) -> np.ndarray | None:
    """The rows' float32 example weights (``examples.weight``; None when not declared).

    The training set was checked when it was built (finite, >= 0, not all zero); the
    trainers check the float32 values again.

    Args:
        table: the rows (a training set or holdout).
        cfg: the model config naming the weight column.

    Returns:
        float32 ``[N]``, or None.
    """
    column = cfg.examples.weight
    if column is None:
        return None
    values = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32)


def labels_and_groups(table: pa.Table, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows' float32 labels (0/1, values, or class indices by ``cfg.task``; a null is NaN,
    which the trainer and the gate refuse by row) and, with a ``group_key``, group ids.

    Args:
        table: the rows.
        cfg: the model config (label, task, group key).

    Returns:
        The labels ``[N]`` and the group ids ``[N]`` (None without a group key).

    Raises:
        DataError: the label column is not numeric (naming it, its type and the fix).
    """
    labels = _labels(table, cfg)
    groups = None
    if cfg.group_key:
        groups = _group_ids(table.column(cfg.group_key))
    return labels, groups


def _group_ids(column: pa.ChunkedArray) -> np.ndarray:
    """Each row's group as the rank of its key among the sorted distinct keys (what
    ``np.unique(..., return_inverse=True)`` gives), found in Arrow: a day's 5M string keys as
    Python objects cost more than the rest of the holdout's labels."""
    if column.null_count:  # the old way, which names the problem
        _, inverse = np.unique(column.to_numpy(zero_copy_only=False), return_inverse=True)
        return np.asarray(inverse)
    encoded = column.combine_chunks().dictionary_encode()
    order = np.asarray(pc.array_sort_indices(encoded.dictionary), dtype=np.int64)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]


def _labels(table: pa.Table, cfg: ModelConfig) -> np.ndarray:
    column = table.column(cfg.label)
    try:
        values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise DataError(
            f"model {cfg.name}: label column {cfg.label!r} is {column.type}, a {cfg.task} label "
            f"must be a number{' (a class index 0..K-1)' if cfg.task == 'multiclass' else ''}: "
            "convert it in the examples SQL"
        ) from None
    return np.asarray(values, dtype=np.float32)


def model_spec(cfg: ModelConfig, transform_spec: dict[str, Any], labels: np.ndarray) -> InputSpec:
    """The spec a model of ``cfg.task`` trains with: the transform's inputs and the task's head
    (regression: the labels' mean and spread; multiclass: K from the labels), see ``with_head``.

    Args:
        cfg: the model config (its task).
        transform_spec: ``Transform.input_spec()``.
        labels: the training labels.

    Returns:
        The input spec with its head.

    Raises:
        TrainingError: multiclass labels that are not class indices.
    """
    return with_head(InputSpec.from_dict(transform_spec), cfg.task, labels)


def model_spec_from_file(cfg: ModelConfig, transform_spec: dict[str, Any], path: Path) -> InputSpec:
    """``model_spec`` for a training set streamed from Parquet: reads only its label column.

    Raises:
        DataError, TrainingError: as ``labels_and_groups`` and ``model_spec``.
    """
    return model_spec(cfg, transform_spec, _labels(pq.read_table(path, columns=[cfg.label]), cfg))
