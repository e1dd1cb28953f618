"""Build a model version from a training set: transform, encode, train, package (the train stage).

``fit_version`` fits the feature transform (or reuses the base version's), encodes the rows,
and trains through the config's ``Trainer`` (streaming the Parquet file when the trainer can
and the set is above ``training.in_memory_max_rows``) into a scratch directory;
``write_version`` writes the version directory atomically: the trained files, the transform
and the manifest (lineage, metrics, notes, environment). Neither knows of a workspace, a
registry or a runner: the caller resolves the inputs (``VersionPlan``), reserves the version
number between the two calls and records the run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    MODEL_FILE,
    TRANSFORM_FILE,
    ModelConfig,
    TrainingSet,
    atomic_directory,
    code_version,
    package_version,
    read_transform_text,
    sha256_json,
    transform_file,
    write_package,
)
from spindle.features import FeatureDefinition, Transform
from spindle.train._examples import encode_examples, model_spec_from_file

if TYPE_CHECKING:  # the frameworks load when a version is fitted, not when this is imported
    from spindle.train._protocol import ParquetData, StreamingTrainer, Trainer
    from spindle.train._spec import InputSpec
    from spindle.train._train import TrainResult

_PACKAGES = ("torch", "numpy", "pyarrow", "duckdb", "deltalake", "onnx", "onnxruntime", "spindle")
STREAM_READ_ROWS = 65_536
"""Rows per batch when a transform is fitted from a stream of the training set."""

Phase = Callable[[int, str], None]


@dataclass(frozen=True)
class VersionPlan:
    """What a version is built from, resolved by the caller.

    Attributes:
        config, config_hash, effective: the model config, its hash and its effective form
            (``--set`` overrides applied), as the manifest records them.
        definitions: the resolved feature definitions of ``config.features``.
        trainset: the materialised training set (Parquet).
        date: the day the version is trained for.
        base_version, base_dir: the version warm-started from and its directory (None: from
            scratch); its transform is reused.
        why: why this base (the manifest's ``why``).
        left_out: the window's days left out, each with why.
    """

    config: ModelConfig
    config_hash: str
    effective: dict[str, Any]
    definitions: list[FeatureDefinition]
    trainset: TrainingSet
    date: str
    base_version: int | None = None
    base_dir: Path | None = None
    why: str = ""
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class FittedVersion:
    """A trained model in its scratch directory, not yet a version.

    Attributes:
        scratch: the trainer's output directory (model, weights, input spec).
        transform_json: the feature transform it was trained with.
        result: the trainer's result.
        framework: the trainer's framework.
        streamed: whether the training set was streamed from Parquet.
    """

    scratch: Path
    transform_json: str
    result: TrainResult
    framework: str
    streamed: bool

    def metrics(self) -> dict[str, Any]:
        """The training metrics a version's manifest and registry record carry (with DDP
        ranks streaming their shards, ``ranks``: each one's ``ShardRead.to_dict()``, i.e. the
        row groups it read per epoch, rows read and trained, peak rows held, peak RSS)."""
        result = self.result
        return {
            "examples": result.examples,
            "examples_per_s": result.examples_per_s,
            "cpu_s": result.cpu_s,
            "m_examples_per_cpu_s": result.m_examples_per_cpu_s,
            "utilisation": result.utilisation,
            "peak_rss_mb": result.peak_rss_mb,
            "final_loss": result.final_loss,
            "seconds": result.seconds,
            "workers": result.workers,
            "streamed": self.streamed,
            "peak_rows_held": result.peak_rows_held,
            # DDP ranks that streamed their shards: what each read, trained on and held
            **({"ranks": [s.to_dict() for s in result.shards]} if result.shards else {}),
        }


def fit_version(
    plan: VersionPlan,
    scratch: Path,
    checkpoints: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    phase: Phase | None = None,
) -> FittedVersion:
    """Fit (or reuse) the transform, encode the training set and train into ``scratch``.

    Args:
        plan: the resolved inputs.
        scratch: an empty directory for the trainer's output.
        checkpoints: this run's checkpoint directory (a rerun resumes from it).
        progress: hears ``(steps done, total steps)``.
        phase: hears the phase before the first step (``2``, what).

    Returns:
        The trained model, not yet packaged (see ``write_version``).

    Raises:
        DataError: a label column that is not numeric.
        TrainingError: the trainer's errors (empty or non-finite inputs, a failed export).
    """
    from spindle.train._protocol import streams, trainer_for

    cfg = plan.config
    trainer = trainer_for(cfg.training)
    problem = None
    if plan.trainset.rows > cfg.training.in_memory_max_rows and streams(trainer, cfg.training):
        problem = _shard_problem(plan)
        if problem is None:
            if phase is not None:
                phase(2, "streaming the training set from Parquet")
            transform, result = _train_streamed(trainer, plan, scratch, checkpoints, progress)
            return FittedVersion(scratch, transform.to_json(), result, trainer.framework, True)
    transform, result = _train_in_memory(trainer, plan, scratch, checkpoints, progress, phase)
    if problem is not None:  # said in the version's notes: it was not streamed, and why
        result = replace(result, notes=(*result.notes, f"held in memory by every rank: {problem}"))
    return FittedVersion(scratch, transform.to_json(), result, trainer.framework, False)


def _shard_problem(plan: VersionPlan) -> str | None:
    """Why DDP ranks cannot each stream a shard of the training set's row groups (None: they
    can, or there is one worker); then every rank holds the whole set, as before streaming."""
    training = plan.config.training
    if training.workers == 1:
        return None
    from spindle.train._shard import split_problem

    epochs = training.warm_start_epochs if plan.base_dir is not None else training.epochs
    uri = Path(plan.trainset.uri)
    return split_problem(uri, training.seed, training.workers, epochs, training.batch_size)


def _transform(plan: VersionPlan, table: pa.Table) -> Transform:
    if plan.base_dir is not None:
        return Transform.from_json(read_transform_text(plan.base_dir))
    return Transform.fit(table, plan.definitions)


def _train_in_memory(
    trainer: Trainer,
    plan: VersionPlan,
    scratch: Path,
    checkpoints: Path,
    progress: Callable[[int, int], None] | None,
    phase: Phase | None,
) -> tuple[Transform, TrainResult]:
    cfg = plan.config
    table = pq.read_table(plan.trainset.uri)
    transform = _transform(plan, table)
    examples = encode_examples(table, transform, cfg)
    del table  # the encoded arrays are what training needs; free the raw rows
    if phase is not None:
        workers = cfg.training.workers
        phase(2, f"starting {workers} workers" if workers > 1 else "starting")
    result = examples.train(
        trainer,
        cfg.training,
        scratch,
        checkpoint_dir=checkpoints,
        base_dir=plan.base_dir,
        progress=progress,
    )
    return transform, result


def _train_streamed(
    trainer: StreamingTrainer,
    plan: VersionPlan,
    scratch: Path,
    checkpoints: Path,
    progress: Callable[[int, int], None] | None,
) -> tuple[Transform, TrainResult]:
    """Fit (or reuse) the transform from a stream of the file, then train streaming it."""
    cfg = plan.config
    base = None
    if plan.base_dir is not None:
        base = Transform.from_json(read_transform_text(plan.base_dir))
    transform, data, spec = streamed_inputs(
        plan.trainset, plan.definitions, cfg, cfg.training.stream_buffer_rows, base
    )
    result = trainer.train_stream(
        data,
        spec,
        cfg.training,
        scratch,
        checkpoint_dir=checkpoints,
        base_dir=plan.base_dir,
        progress=progress,
    )
    return transform, result


def streamed_inputs(
    trainset: TrainingSet,
    definitions: list[FeatureDefinition],
    config: ModelConfig,
    buffer_rows: int,
    transform: Transform | None = None,
) -> tuple[Transform, ParquetData, InputSpec]:
    """What a streamed training of ``trainset``'s file needs: the transform (``transform``, or
    fitted from a stream of the file), the file's batches encoded by it, and the model spec.

    Args:
        trainset: the training set; its ``uri`` a local Parquet file.
        definitions: the feature definitions the transform is fitted for.
        config: the model config (label, example weights, task).
        buffer_rows: the shuffle buffer (``training.stream_buffer_rows``).
        transform: a transform to reuse (a warm start's); None fits one.
    """
    from spindle.train._protocol import ParquetData
    from spindle.train._shard import TransformEncoder

    path = Path(trainset.uri)
    if transform is None:
        columns = sorted({d.column for d in definitions})
        batches = pq.ParquetFile(path).iter_batches(batch_size=STREAM_READ_ROWS, columns=columns)
        transform = Transform.fit_batches(batches, definitions)
    data = ParquetData(
        path,
        TransformEncoder(transform.to_json(), config.label),  # travels to DDP ranks as well
        sha256_json({"trainset": trainset.content_hash, "transform": transform.to_json()}),
        columns=sorted({*transform.columns(), config.label}),
        weight_column=config.examples.weight,
        buffer_rows=buffer_rows,
    )
    return transform, data, model_spec_from_file(config, transform.input_spec(), path)


def copy_trained_files(
    scratch: Path, weights_name: str, transform_json: str, dest: Path
) -> list[str]:
    """Copy a trained model (ONNX, weights, input spec) from ``scratch`` into ``dest`` with its
    transform.

    Returns:
        The names of the files, for the manifest (``write_package``).
    """
    names = (MODEL_FILE, weights_name, "input_spec.json")
    for name in names:
        shutil.copy2(scratch / name, dest / name)
    transform_file(dest).write_text(transform_json)
    return [*names, TRANSFORM_FILE]


def write_version(
    plan: VersionPlan, fitted: FittedVersion, version: int, dest: Path
) -> dict[str, str]:
    """Write the version directory ``dest`` atomically (trained files, transform, manifest).

    Args:
        plan: what the version was built from.
        fitted: the trained model (``fit_version``).
        version: its version number (reserved by the caller).
        dest: the directory to create (must not exist).

    Returns:
        The manifest's files (name -> sha256).
    """
    with atomic_directory(dest) as tmp:
        result = fitted.result
        names = copy_trained_files(
            fitted.scratch, result.weights_path.name, fitted.transform_json, tmp
        )
        return write_package(tmp, _manifest(plan, fitted, version), names).files


def _manifest(plan: VersionPlan, fitted: FittedVersion, version: int) -> dict[str, Any]:
    cfg, trainset, result = plan.config, plan.trainset, fitted.result
    return {
        "model": cfg.name,
        "version": version,
        "date": plan.date,
        "base_version": plan.base_version,
        "why": plan.why,
        "config_hash": plan.config_hash,
        "config": plan.effective,
        "features": cfg.features,
        "training_set": {
            "id": trainset.id,
            "dates": list(trainset.dates),
            "rows": trainset.rows,
            "table_versions": trainset.table_versions,
            "retractions": list(trainset.retractions),
        },
        "left_out_days": list(plan.left_out),
        "example_weight": cfg.examples.weight,
        "notes": version_notes(cfg, result),
        "metrics": fitted.metrics(),
        "weights_sha256": result.weights_sha256,
        "framework": fitted.framework,
        "servable": True,  # every trainer writes a verified model.onnx
        "workers": result.workers,
        "resumed_from_step": result.resumed_from_step,
        "hardware": {"machine": platform.machine(), "cpus": os.cpu_count()},
        "seed": cfg.training.seed,
        "threads": cfg.training.threads,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "code_version": code_version(),
        "packages": _packages(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def version_notes(cfg: ModelConfig, result: TrainResult) -> list[str]:
    """The trainer's notes, after one saying whether (and by what) the examples were weighted.

    Returns:
        The notes, first the weighting one.
    """
    weight = cfg.examples.weight
    first = (
        f"examples weighted by column {weight!r}: the training loss is their weighted mean "
        "(evaluation metrics are unweighted)"
        if weight is not None
        else "examples unweighted"
    )
    return [first, *result.notes]


def _packages() -> dict[str, str]:
    return {name: package_version(name) for name in _PACKAGES}
