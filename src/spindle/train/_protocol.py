"""The framework-neutral trainer contract, and how a config picks its implementation.

A ``Trainer`` turns model inputs (``spindle.features.Transform`` output) and labels into a
model version directory holding ``model.onnx`` (the serving artifact, inputs by name as in
the ``InputSpec``, float32 ``score``: the logit ``[N]``, a regression's value ``[N]`` or a
multiclass model's logits ``[N, K]``, by the spec's head), its weights in the framework's own
non-pickled format, and ``input_spec.json``; and it scores inputs from such a directory in
its own framework (the training-time answer infra validation compares the served one with).
A trainer that can also stream a training set from its Parquet file, never holding it whole,
is a ``StreamingTrainer`` (``streams`` says whether it will for a config); the others are
given the set in memory. ``TorchTrainer`` (the ranker, recipes, checkpoints, DDP) is the
default; ``SklearnTrainer`` (logistic regression) proves the contract with a second framework.
Both are checked by the same contract tests (``tests/train/test_protocol.py``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeGuard, runtime_checkable

import numpy as np
import pyarrow as pa

from spindle.core import ServingError, TrainingConfig, TrainingError, read_package
from spindle.train._spec import InputSpec
from spindle.train._train import TrainResult, train_model
from spindle.train._train_stream import train_from_parquet

PREDICT_ROWS = 65_536
"""Rows scored per forward pass by ``TorchTrainer.predict`` (bounds its memory)."""


@dataclass(frozen=True)
class ParquetData:
    """A training set to stream from its Parquet file (see ``StreamingTrainer``).

    Attributes:
        path: the Parquet file of raw rows.
        encode: maps an Arrow table of rows to ``(inputs, labels)`` (a fitted transform and
            the label column).
        data_id: identifies the file's contents and the encoding (part of the run's
            fingerprint: checkpoints of other data are never resumed).
        columns: the columns ``encode`` reads (and the weight column); the others are never read.
        weight_column: the column of example weights (None: unweighted).
        buffer_rows: the shuffle buffer, in rows (memory).
    """

    path: Path
    encode: Callable[[pa.Table], tuple[dict[str, np.ndarray], np.ndarray]]
    data_id: str
    columns: list[str]
    weight_column: str | None = None
    buffer_rows: int = 262_144


class Trainer(Protocol):
    """What the train step needs of a framework."""

    framework: str

    def train(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        weights: np.ndarray | None = None,
    ) -> TrainResult:
        """Train (resuming this run's checkpoints, or warm starting from ``base_dir``) and
        write the model version directory ``out_dir`` atomically; call ``progress`` with
        ``(steps done, total steps)`` as training advances. ``weights`` (float32 ``[N]``,
        finite, >= 0, not all zero) weight each row's loss; None weights every row the same."""
        ...

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 scores of the model in ``out_dir`` (``[N]``, or ``[N, K]`` multiclass), in
        this framework (not through ``model.onnx``: infra validation compares the two)."""
        ...


@runtime_checkable
class StreamingTrainer(Trainer, Protocol):
    """A trainer that can also train on a Parquet file streamed, never held whole in memory."""

    def can_stream(self, config: TrainingConfig) -> bool:
        """Whether a run of ``config`` can stream (torch and custom: always, with one worker or
        DDP ranks that each stream their shard; sklearn and LightGBM: never)."""
        ...

    def train_stream(
        self,
        data: ParquetData,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrainResult:
        """``train`` on ``data`` read batch by batch (same contract, same directory)."""
        ...


def streams(trainer: Trainer, config: TrainingConfig) -> TypeGuard[StreamingTrainer]:
    """Whether ``trainer`` streams a training set of ``config`` (else it is given in memory).

    Example:
        >>> streams(trainer_for(TrainingConfig(framework="sklearn")), TrainingConfig())
        False
    """
    return isinstance(trainer, StreamingTrainer) and trainer.can_stream(config)


class TorchTrainer:
    """The PyTorch ranker (``train_model``: sync or DDP recipe by ``config.workers``).

    ``config`` is the training config its versions were trained with: ``predict`` rebuilds
    the model from it (without one, from the config in the version's manifest).
    """

    framework = "torch"

    def __init__(self, config: TrainingConfig | None = None) -> None:
        self.config = config

    def train(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        weights: np.ndarray | None = None,
    ) -> TrainResult:
        return train_model(
            inputs,
            labels,
            spec,
            config,
            out_dir,
            checkpoint_dir=checkpoint_dir,
            base_weights=base_dir,
            progress=progress,
            weights=weights,
        )

    def can_stream(self, config: TrainingConfig) -> bool:
        return True  # one process, or DDP ranks that each stream their shard

    def train_stream(
        self,
        data: ParquetData,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrainResult:
        return train_from_parquet(
            data.path,
            data.encode,
            spec,
            config,
            out_dir,
            checkpoint_dir=checkpoint_dir,
            data_id=data.data_id,
            base_weights=base_dir,
            buffer_rows=data.buffer_rows,
            columns=data.columns,
            progress=progress,
            weight_column=data.weight_column,
        )

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The torch model's answer (its weights, not ``model.onnx``), in chunks of rows.

        Raises:
            TrainingError: no training config to rebuild the model from (neither given nor in
                a manifest of ``out_dir``), or the weights do not fit it.
        """
        import torch

        from spindle.train._model import build_model  # the Ranker, or a custom module
        from spindle.train._warm_start import SPEC_FILE, load_weights

        spec = InputSpec.from_dict(json.loads((Path(out_dir) / SPEC_FILE).read_text()))
        model = build_model(spec, self._config_of(Path(out_dir)))
        try:
            model.load_state_dict(load_weights(Path(out_dir)))
        except RuntimeError as error:
            raise TrainingError(f"{out_dir}: the weights do not fit the config: {error}") from None
        model.eval()
        rows = len(next(iter(inputs.values()))) if inputs else 0
        parts = []
        with torch.no_grad():
            for start in range(0, max(rows, 1), PREDICT_ROWS):
                chunk = {
                    name: torch.from_numpy(np.ascontiguousarray(a[start : start + PREDICT_ROWS]))
                    for name, a in inputs.items()
                }
                parts.append(model.served(**chunk).numpy())
        return np.asarray(np.concatenate(parts), dtype=np.float32)

    def _config_of(self, out_dir: Path) -> TrainingConfig:
        if self.config is not None:
            return self.config
        try:
            training = (read_package(out_dir).get("config") or {}).get("training")
        except ServingError:  # no manifest: a trainer's scratch directory
            training = None
        if training is None:
            raise TrainingError(
                f"{out_dir}: TorchTrainer.predict needs the training config the model was "
                "trained with (none given, none in a manifest); get the trainer with "
                "trainer_for(config)"
            )
        return TrainingConfig.model_validate(training)


# The families other than torch, by import path: each library loads only when its family is
# used (scikit-learn, LightGBM and onnxmltools cost seconds of import).
_FAMILIES = {
    "sklearn": "spindle.train._sklearn:SklearnTrainer",
    "lightgbm": "spindle.train._lightgbm:LightGBMTrainer",
    "custom": "spindle.train._custom:CustomTrainer",
}


def trainer_for(config: TrainingConfig) -> Trainer:
    """The trainer of ``config.framework`` (``torch`` and ``tabular_nn`` are one family)."""
    path = _FAMILIES.get(config.framework)
    if path is None:
        return TorchTrainer(config)
    module, name = path.split(":")
    family = getattr(importlib.import_module(module), name)
    # a custom module's trainer rebuilds the user's class from the config to score in torch
    trainer: Trainer = family(config) if config.framework == "custom" else family()
    return trainer
