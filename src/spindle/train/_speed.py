"""Train one window at two parallelisms and score one holdout: the speed check's training.

``train_at_two_parallelisms`` fits the feature transform on the training rows, encodes them and
the holdout once, and trains two runs from scratch through each config's ``Trainer`` (the
configured parallelism and half of it, same data, transform and seed), then scores the holdout
with each. It knows no workspace, registry or runner: ``orchestrate.speed_check`` resolves the
window and the configs, and the verdict is ``spindle.evaluate.speed_verdict``'s. Nothing is
kept: both models live in a scratch directory that is removed on return, or on error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from spindle.core import ModelConfig, TrainingConfig
from spindle.features import FeatureDefinition, Transform
from spindle.train._examples import encode_examples, labels_and_groups

if TYPE_CHECKING:  # the frameworks load when the runs train, not when this is imported
    from spindle.train._train import TrainResult

StepCallback = Callable[[int, int], None]
RunName = Literal["fast", "slow"]


@dataclass(frozen=True)
class ParallelismRuns:
    """Two trainings of one window scored on one holdout (``fast``: configured, ``slow``: half).

    Attributes:
        fast_scores, slow_scores: each run's raw outputs per holdout row (float64; logits,
            values for regression), as ``speed_verdict`` takes them.
        fast, slow: each run's ``TrainResult`` (throughput, CPU seconds, final loss).
        labels: the holdout's labels.
        groups: the holdout's group ids (None without a group key).
    """

    fast_scores: npt.NDArray[np.float64]
    slow_scores: npt.NDArray[np.float64]
    fast: TrainResult
    slow: TrainResult
    labels: np.ndarray
    groups: np.ndarray | None


def train_at_two_parallelisms(
    table: pa.Table,
    holdout: pa.Table,
    definitions: list[FeatureDefinition],
    config: ModelConfig,
    fast: TrainingConfig,
    slow: TrainingConfig,
    scratch: Path,
    *,
    progress_for: Callable[[RunName, TrainingConfig], StepCallback | None] | None = None,
) -> ParallelismRuns:
    """Train ``table`` with ``fast`` and with ``slow`` from scratch; score ``holdout`` with each.

    Both runs share the transform (fitted on ``table``), the encoded rows, labels, weights and
    the model spec; each trains through ``trainer_for`` its own config into ``scratch/<run>``
    (checkpoints beside it, fingerprinted: a killed check's rerun resumes only the same run).

    Args:
        table: the training rows (a training set).
        holdout: the rows to score (the holdout day's training set).
        definitions: the resolved feature definitions of ``config.features``.
        config: the model config (label, task, group key, example weights).
        fast, slow: the two runs' training configs (the configured one and half of it).
        scratch: a directory of this check's own; removed on return and on error.
        progress_for: gives the callback that hears ``(steps done, total steps)`` of one run
            (``"fast"`` or ``"slow"``, with its config), or None for no progress.

    Returns:
        Both runs' holdout scores and results, and the holdout's labels and groups.

    Raises:
        DataError: a label column that is not numeric.
        FeatureError: a feature column missing from ``table`` or ``holdout``.
        TrainingError: the trainer's errors (empty or non-finite inputs, a failed export).

    Example:
        >>> half = cfg.training.model_copy(update={"workers": 2})  # doctest: +SKIP
        >>> runs = train_at_two_parallelisms(
        ...     table, holdout, definitions, cfg, cfg.training, half, Path("scratch/check")
        ... )  # doctest: +SKIP
        >>> runs.fast_scores.shape == runs.slow_scores.shape == (holdout.num_rows,)  # doctest: +SKIP
        True
    """
    from spindle.train._protocol import trainer_for

    try:
        transform = Transform.fit(table, definitions)
        examples = encode_examples(table, transform, config)
        holdout_inputs = transform.transform(holdout)
        holdout_labels, groups = labels_and_groups(holdout, config)
        runs: tuple[tuple[RunName, TrainingConfig], ...] = (("fast", fast), ("slow", slow))
        scores, results = [], []
        for name, training in runs:
            out = scratch / name
            shutil.rmtree(out, ignore_errors=True)
            trainer = trainer_for(training)
            results.append(
                examples.train(
                    trainer,
                    training,
                    out,
                    checkpoint_dir=scratch / f"{name}-ckpt",
                    progress=None if progress_for is None else progress_for(name, training),
                )
            )
            scores.append(trainer.predict(out, holdout_inputs).astype(np.float64))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ParallelismRuns(scores[0], scores[1], results[0], results[1], holdout_labels, groups)
