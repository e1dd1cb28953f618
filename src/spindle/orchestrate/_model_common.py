"""What the model steps share: config loading, training windows, training sets, history."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    MODEL_FILE,
    TRANSFORM_FILE,
    DataError,
    ModelConfig,
    TableVersion,
    TrainingSet,
    ValidationFailed,
    sha256_json,
    transform_file,
)
from spindle.features import FeatureDefinition, pin_versions, stream_rows, training_tables
from spindle.orchestrate._context import Context
from spindle.orchestrate._verdicts import day_verdict

if TYPE_CHECKING:
    from spindle.train import InputSpec


@dataclass(frozen=True)
class LoadedConfig:
    config: ModelConfig
    config_hash: str
    effective: dict[str, Any]
    definitions: list[FeatureDefinition]


def load_config(ctx: Context, model: str, overrides: list[str] | None = None) -> LoadedConfig:
    """Load and validate a model config (with ``--set`` overrides) and resolve its features.

    Raises:
        ConfigError: the config is invalid.
    """
    config, effective = ctx.workspace.model_config(model, overrides)
    return LoadedConfig(config, sha256_json(effective), effective, ctx.features.resolve(config))


def _day(date: str, offset: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=offset)).isoformat()


def training_window(
    ctx: Context, cfg: ModelConfig, date: str, days: int | None = None
) -> tuple[list[str], list[str]]:
    """Days before ``date`` to train on, and the gaps left out (each with why).

    A gap is a day of the window, on or after the first validated day of the workspace, that
    was never ingested and validated or whose validation FAILed (days before the first one are
    simply before history began). A window with a gap is refused unless the model config sets
    ``training.allow_gaps: true``, in which case the gaps are skipped and listed.

    Raises:
        ValidationFailed: the window has a FAIL-level gap and the config does not allow gaps
            (lists every gap and the two ways out).
    """
    span = days if days is not None else cfg.training.window_days
    first = first_validated_day(ctx)
    chosen, gaps = [], []
    for i in range(span, 0, -1):
        day = _day(date, -i)
        verdict = day_verdict(ctx, day)
        if verdict is None and (first is None or day < first):
            continue  # before the workspace's history starts: not a gap
        if verdict is None or verdict == "fail":
            gaps.append(
                f"{day} ({'not ingested/validated' if verdict is None else 'failed validation'})"
            )
        else:
            chosen.append(day)
    if gaps and not cfg.training.allow_gaps:
        raise ValidationFailed(
            f"{cfg.name} for {date}: the training window {_day(date, -span)}..{_day(date, -1)} has "
            f"FAIL-level gaps: {', '.join(gaps)}. Fix and re-ingest those days (see `spindle "
            "validate --date D`), or set `training.allow_gaps: true` in the model config "
            "(or `--set training.allow_gaps=true`) to train without them."
        )
    return chosen, gaps


def first_validated_day(ctx: Context) -> str | None:
    """The earliest day with a recorded validation report (None before any)."""
    days = [
        str(r.properties["date"])
        for r in ctx.store.find_artifacts("validation_report")
        if r.properties.get("date")
    ]
    return min(days) if days else None


def model_dir(ctx: Context, model: str, version: int) -> Path:
    return ctx.workspace.artifacts_dir / "models" / model / str(version)


def fresh_scratch(path: Path) -> Path:
    """An empty scratch directory for a trainer's output (a crashed attempt's is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def copy_trained_files(
    scratch: Path, weights_name: str, transform_json: str, dest: Path
) -> list[str]:
    """Copy a trained model (ONNX, weights, input spec) from ``scratch`` into ``dest`` with its
    transform; return the names of the files, for the manifest (``write_package``)."""
    names = (MODEL_FILE, weights_name, "input_spec.json")
    for name in names:
        shutil.copy2(scratch / name, dest / name)
    transform_file(dest).write_text(transform_json)
    return [*names, TRANSFORM_FILE]


def build_training_set(
    ctx: Context, loaded: LoadedConfig, dates: list[str], purpose: str = "train"
) -> TrainingSet:
    """Materialise the point-in-time-correct rows of ``dates`` as Parquet (a recorded step).

    The model's examples are built as of the end of the last day of ``dates`` (the cutoff, see
    :func:`spindle.features.stream_rows`): for a training window (the days before the run's
    date) nothing from the run's date on is seen, for a holdout day nothing after that day.
    """
    cfg = loaded.config
    tables = training_tables(cfg, loaded.definitions)
    versions = pin_versions(ctx.workspace.tables_dir, tables)
    identity = {
        "dates": sorted(dates),
        "tables": versions,
        "features": cfg.features,
        "task": cfg.task,
        "examples": cfg.examples.model_dump(),
        "purpose": purpose,
    }
    fingerprint = sha256_json(identity)
    path = ctx.workspace.artifacts_dir / "trainsets" / cfg.name / f"{fingerprint[:16]}.parquet"

    def run() -> TrainingSet:
        stream = stream_rows(
            ctx.workspace.tables_dir,
            cfg,
            loaded.definitions,
            tuple(sorted(dates)),
            versions,
            sources=ctx.sources,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        n_rows = 0
        # Batch by batch: a training set larger than memory is written without holding it.
        with pq.ParquetWriter(tmp, stream.schema) as writer:
            for batch in stream.batches:
                writer.write_batch(batch)
                n_rows += batch.num_rows
        tmp.replace(path)
        return TrainingSet(
            cfg.name,
            tuple(sorted(dates)),
            str(path),
            fingerprint,
            n_rows,
            versions,
            immature_examples=stream.immature_examples,
        )

    inputs = [f"table:{name}@{v}" for name, v in versions.items()]
    for name, v in versions.items():
        ctx.store.record_artifact(
            TableVersion.at(name, v, str(ctx.workspace.tables_dir / name))
        )  # no-op if ingest recorded it
    outcome = ctx.runner.run(
        f"training_set:{purpose}", run, identity=identity, model=cfg.name, inputs=inputs
    )
    trainset: TrainingSet = outcome.value
    if not Path(trainset.uri).is_file():  # recorded but removed: rebuild
        trainset = run()
    record_window(ctx, trainset, purpose)
    return trainset


def record_window(ctx: Context, trainset: TrainingSet, purpose: str) -> list[str]:
    """Record lineage edges raw partition -> training set for every day of its window.

    The pinned table versions may have been written by a later day's ingest (their own parents
    are that day's raw partitions), so the window's partitions are recorded explicitly: the
    newest recorded partition of each source and day. Idempotent; returns the partition ids.
    """
    chosen: dict[tuple[str, str], str] = {}
    for day in trainset.dates:
        for record in ctx.store.find_artifacts("raw_partition", date=day):  # oldest first
            chosen[(str(record.properties.get("source")), day)] = record.id
    ids = [chosen[key] for key in sorted(chosen)]
    ctx.store.add_edges([(raw_id, trainset.id, f"window:{purpose}") for raw_id in ids])
    return ids


def example_weights(table: pa.Table, cfg: ModelConfig) -> np.ndarray | None:
    """The rows' float32 example weights (``examples.weight``; None when not declared).

    The training set was checked when it was built (finite, >= 0, not all zero); the
    trainers check the float32 values again.
    """
    column = cfg.examples.weight
    if column is None:
        return None
    values = table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32)


def labels_and_groups(table: pa.Table, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows' float32 labels (0/1, values, or class indices by ``cfg.task``; a null is NaN,
    which the trainer and the gate refuse by row) and, with a ``group_key``, group ids.

    Raises:
        DataError: the label column is not numeric (naming it, its type and the fix).
    """
    labels = _labels(table, cfg)
    groups = None
    if cfg.group_key:
        _, groups = np.unique(
            table.column(cfg.group_key).to_numpy(zero_copy_only=False), return_inverse=True
        )
    return labels, groups


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
    (regression: the labels' mean and spread; multiclass: K from the labels) — see
    ``spindle.train.with_head``.

    Raises:
        TrainingError: multiclass labels that are not class indices.
    """
    from spindle.train import InputSpec, with_head

    return with_head(InputSpec.from_dict(transform_spec), cfg.task, labels)


def model_spec_from_file(cfg: ModelConfig, transform_spec: dict[str, Any], path: Path) -> InputSpec:
    """``model_spec`` for a training set streamed from Parquet: reads only its label column."""
    return model_spec(cfg, transform_spec, _labels(pq.read_table(path, columns=[cfg.label]), cfg))
