"""The framework-neutral trainer contract, and how a config picks its implementation.

A ``Trainer`` turns model inputs (``spindle.features.Transform`` output) and labels into a
model version directory holding ``model.onnx`` (the serving artifact, inputs by name as in
the ``InputSpec``, float32 ``score``: the logit ``[N]``, a regression's value ``[N]`` or a
multiclass model's logits ``[N, K]``, by the spec's head), its weights in the framework's own
non-pickled format, and ``input_spec.json``; and it scores inputs from such a directory.
``TorchTrainer`` (the ranker, recipes, checkpoints, DDP) is the default; ``SklearnTrainer``
(logistic regression) proves the contract with a second framework. Both are checked by the
same contract tests (``tests/train/test_protocol.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from spindle.core import TrainingConfig
from spindle.train._export import predict
from spindle.train._spec import InputSpec
from spindle.train._train import TrainResult, train_model


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
        this framework."""
        ...


class TorchTrainer:
    """The PyTorch ranker (``train_model``: sync or DDP recipe by ``config.workers``)."""

    framework = "torch"

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

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return predict(out_dir, inputs)


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
        return TorchTrainer()
    module, name = path.split(":")
    trainer: Trainer = getattr(importlib.import_module(module), name)()
    return trainer
