"""Train one window at two parallelisms and score one holdout: the speed check's training.

``train_at_two_parallelisms`` fits the feature transform on the training rows, encodes them and
the holdout once, and trains two runs from scratch through each config's ``Trainer`` (the
configured parallelism and half of it, same data, transform and seed), then scores the holdout
with each. ``train_files_at_two_parallelisms`` does the same from the two Parquet files: above
``training.in_memory_max_rows`` rows, with a trainer that streams, it holds neither whole (the
transform is fitted from a stream of the training set and both runs stream it, as
``fit_version`` does; the holdout is scored a batch at a time, and only its labels, groups and
scores are kept); below, it reads both and calls ``train_at_two_parallelisms``. Neither knows a
workspace, registry or runner: ``orchestrate.speed_check`` resolves the window and the configs,
and the verdict is ``spindle.evaluate.speed_verdict``'s. Nothing is kept: both models live in a
scratch directory that is removed on return, or on error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import FeatureError, ModelConfig, TrainingConfig, TrainingSet
from spindle.features import FeatureDefinition, Transform
from spindle.train._examples import encode_examples, labels_and_groups
from spindle.train._version import STREAM_READ_ROWS

if TYPE_CHECKING:  # the frameworks load when the runs train, not when this is imported
    from spindle.train._protocol import StreamingTrainer
    from spindle.train._train import TrainResult

StepCallback = Callable[[int, int], None]
RunName = Literal["fast", "slow"]
ProgressFor = Callable[[RunName, TrainingConfig], StepCallback | None]


@dataclass(frozen=True)
class ParallelismRuns:
    """Two trainings of one window scored on one holdout (``fast``: configured, ``slow``: half).

    Attributes:
        fast_scores, slow_scores: each run's raw outputs per holdout row (float64; logits,
            values for regression), as ``speed_verdict`` takes them.
        fast, slow: each run's ``TrainResult`` (throughput, CPU seconds, final loss).
        labels: the holdout's labels.
        groups: the holdout's group ids (None without a group key).
        streamed: whether both runs streamed the training set from its Parquet file and the
            holdout was scored a batch at a time (``train_files_at_two_parallelisms``).
        notes: why a training set above ``in_memory_max_rows`` was held in memory after all.
    """

    fast_scores: npt.NDArray[np.float64]
    slow_scores: npt.NDArray[np.float64]
    fast: TrainResult
    slow: TrainResult
    labels: np.ndarray
    groups: np.ndarray | None
    streamed: bool = False
    notes: tuple[str, ...] = ()


def train_at_two_parallelisms(
    table: pa.Table,
    holdout: pa.Table,
    definitions: list[FeatureDefinition],
    config: ModelConfig,
    fast: TrainingConfig,
    slow: TrainingConfig,
    scratch: Path,
    *,
    progress_for: ProgressFor | None = None,
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


def train_files_at_two_parallelisms(
    trainset: TrainingSet,
    holdout: Path,
    definitions: list[FeatureDefinition],
    config: ModelConfig,
    fast: TrainingConfig,
    slow: TrainingConfig,
    scratch: Path,
    *,
    progress_for: ProgressFor | None = None,
) -> ParallelismRuns:
    """``train_at_two_parallelisms`` from the Parquet files, streamed when the set is large.

    Above ``fast.in_memory_max_rows`` rows, when each run's trainer streams its config (and
    DDP ranks can each stream a shard of the file's row groups), neither file is held whole:
    the transform is fitted from a stream of the training set and shared, each run streams
    the file (``StreamingTrainer.train_stream``, as ``fit_version`` does), and the holdout is
    scored a batch at a time through each trainer's ``predict``; only the holdout's labels,
    groups and scores (one value per row) are kept. Otherwise both files are read and trained
    in memory exactly as ``train_at_two_parallelisms`` does (``notes`` say why a set above the
    bound was held after all).

    Args:
        trainset: the training set, its ``uri`` a local Parquet file.
        holdout: the holdout's local Parquet file.
        definitions, config, fast, slow, scratch, progress_for: as
            ``train_at_two_parallelisms``.

    Returns:
        Both runs' holdout scores and results, the holdout's labels and groups, and whether
        they were streamed.

    Raises:
        DataError, FeatureError, TrainingError: as ``train_at_two_parallelisms``.

    Example:
        >>> runs = train_files_at_two_parallelisms(
        ...     trainset, Path("holdout.parquet"), definitions, cfg, cfg.training, half, scratch
        ... )  # doctest: +SKIP
        >>> runs.streamed == (trainset.rows > cfg.training.in_memory_max_rows)  # doctest: +SKIP
        True
    """
    path = Path(trainset.uri)
    runs: tuple[tuple[RunName, TrainingConfig], ...] = (("fast", fast), ("slow", slow))
    notes: tuple[str, ...] = ()
    if trainset.rows > fast.in_memory_max_rows:
        trainers = _streaming_trainers(path, runs)
        if not isinstance(trainers, str):
            return _train_streamed(
                trainset, holdout, definitions, config, runs, trainers, scratch, progress_for
            )
        notes = (trainers,)
    table, held = pq.read_table(path), pq.read_table(holdout)
    in_memory = train_at_two_parallelisms(
        table, held, definitions, config, fast, slow, scratch, progress_for=progress_for
    )
    return replace(in_memory, notes=notes)


def _streaming_trainers(
    path: Path, runs: tuple[tuple[RunName, TrainingConfig], ...]
) -> list[StreamingTrainer] | str:
    """Each run's trainer, when every one streams the file; else why the set is held whole
    (the trainer trains in memory, or DDP ranks cannot each stream a shard, see
    ``fit_version``)."""
    from spindle.train._protocol import streams, trainer_for
    from spindle.train._shard import split_problem

    trainers: list[StreamingTrainer] = []
    for name, training in runs:
        trainer = trainer_for(training)
        if training.workers > 1:
            problem = split_problem(
                path, training.seed, training.workers, training.epochs, training.batch_size
            )
            if problem is not None:
                return f"held in memory by every rank of the {name} run: {problem}"
        if streams(trainer, training):
            trainers.append(trainer)
        else:
            return (
                f"held in memory: framework {training.framework} does not stream a training "
                "set from Parquet"
            )
    return trainers


def _train_streamed(
    trainset: TrainingSet,
    holdout: Path,
    definitions: list[FeatureDefinition],
    config: ModelConfig,
    runs: tuple[tuple[RunName, TrainingConfig], ...],
    trainers: list[StreamingTrainer],
    scratch: Path,
    progress_for: ProgressFor | None,
) -> ParallelismRuns:
    """Both runs streamed from ``trainset``'s file, each scored on ``holdout`` batch by batch."""
    from spindle.train._version import streamed_inputs

    try:
        buffer_rows = runs[0][1].stream_buffer_rows
        transform, data, spec = streamed_inputs(trainset, definitions, config, buffer_rows)
        _check_holdout_columns(transform, holdout)  # before two trainings, not after
        wanted = [c for c in (config.label, config.group_key) if c]
        holdout_labels, groups = labels_and_groups(pq.read_table(holdout, columns=wanted), config)
        scores, results = [], []
        for (name, training), trainer in zip(runs, trainers, strict=True):
            out = scratch / name
            shutil.rmtree(out, ignore_errors=True)
            results.append(
                trainer.train_stream(
                    data,
                    spec,
                    training,
                    out,
                    checkpoint_dir=scratch / f"{name}-ckpt",
                    progress=None if progress_for is None else progress_for(name, training),
                )
            )
            scores.append(_score_file(trainer, out, transform, holdout))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ParallelismRuns(
        scores[0], scores[1], results[0], results[1], holdout_labels, groups, streamed=True
    )


def _check_holdout_columns(transform: Transform, holdout: Path) -> None:
    """Raise FeatureError when the holdout lacks a column the transform reads."""
    names = pq.read_schema(holdout).names
    missing = [c for c in transform.columns() if c not in names]
    if missing:
        raise FeatureError(f"{holdout}: the holdout lacks columns {missing}; it has {names}")


def _score_file(
    trainer: StreamingTrainer, out: Path, transform: Transform, holdout: Path
) -> npt.NDArray[np.float64]:
    """The model in ``out``'s scores of every holdout row, ``STREAM_READ_ROWS`` at a time
    (only the columns the transform reads; one batch's inputs held at once)."""
    source = pq.ParquetFile(holdout)
    columns = list(dict.fromkeys(transform.columns()))
    parts = [
        trainer.predict(out, transform.transform(pa.Table.from_batches([batch])))
        for batch in source.iter_batches(batch_size=STREAM_READ_ROWS, columns=columns)
        if batch.num_rows
    ]
    return np.concatenate(parts).astype(np.float64)
