"""The train step: choose the base version, fit or reuse the transform, train, write the version."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    ModelConfig,
    ModelVersion,
    Progress,
    ProgressEvent,
    ServingError,
    TrainingError,
    TrainingSet,
    atomic_directory,
    read_package,
    read_transform_text,
    sha256_json,
    step_progress,
    write_package,
)
from spindle.features import Transform
from spindle.orchestrate._context import Context, production_before
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    copy_trained_files,
    example_weights,
    fresh_scratch,
    labels_and_groups,
    load_config,
    model_dir,
    model_spec,
    model_spec_from_file,
    training_window,
)
from spindle.train import ParquetData, StreamingTrainer, Trainer, TrainResult, streams, trainer_for

_PACKAGES = ("torch", "numpy", "pyarrow", "duckdb", "deltalake", "onnx", "onnxruntime", "spindle")


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _packages() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def choose_base(
    ctx: Context, cfg: ModelConfig, date: str, from_scratch: bool
) -> tuple[int | None, str]:
    """The version to warm-start from (None = from scratch) and why.

    The base is what is in production (see ``production_before``): after a rollback, the
    version rolled back to, never the rolled-back one.
    """
    if from_scratch:
        return None, "from scratch (asked)"
    if not cfg.training.warm_start:
        return None, "from scratch (warm_start is off)"
    production = production_before(ctx, cfg.name, date)
    if production is None:
        return None, "from scratch (no version in production before this day)"
    last_full = None
    for record in reversed(ctx.store.versions(cfg.name)):
        if record.status == "ready" and record.base_version is None and record.date:
            last_full = record.date
            break
    if last_full is not None:
        age = (dt.date.fromisoformat(date) - dt.date.fromisoformat(last_full)).days
        if age >= cfg.training.full_retrain_every_days:
            return (
                None,
                f"from scratch (last full retrain {age} days ago, every {cfg.training.full_retrain_every_days})",
            )
    return production, f"warm start from version {production}"


def _phases(progress: Progress | None, task: str) -> Callable[[int, str], None]:
    """Report the steps before the first training step (the window, the training set, the
    encoding, starting workers: seconds to minutes) so a terminal is never blank."""

    def phase(done: int, name: str) -> None:
        if progress is not None:
            progress(ProgressEvent(task, done, 3, "phases", detail=name))

    return phase


def train_version(
    ctx: Context,
    model: str,
    date: str,
    *,
    from_scratch: bool = False,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
) -> tuple[ModelVersion, TrainResult | None, bool]:
    """Train a new version of ``model`` for ``date`` on the days before it (a recorded step).

    ``progress`` hears the training steps (epoch, examples/s) about twice a second.

    Returns:
        The model version, the training result (None when the step was skipped), and whether skipped.

    Raises:
        TrainingError: the training window is empty (every day missing or failed validation).
    """
    loaded = load_config(ctx, model, overrides)
    cfg = loaded.config
    phase = _phases(progress, f"prepare {model} for {date}")
    base, why = choose_base(ctx, cfg, date, from_scratch)
    days, left_out = training_window(
        ctx, cfg, date, cfg.training.warm_start_window_days if base is not None else None
    )
    if not days:
        raise TrainingError(
            f"{model} for {date}: the training window is empty ({', '.join(left_out) or 'no days'}); ingest and validate earlier days first"
        )
    phase(0, f"training set {days[0]}..{days[-1]}")
    trainset = build_training_set(ctx, loaded, days)
    phase(1, f"encoding {trainset.rows:,} rows")
    if trainset.rows == 0:
        raise TrainingError(
            f"{model} for {date}: the training set of {days[0]}..{days[-1]} has no rows"
        )
    identity = {"trainset": trainset.content_hash, "base": base, "date": date}
    inputs = [trainset.id] + ([f"model:{model}@{base}"] if base is not None else [])
    result_box: dict[str, TrainResult] = {}

    def run() -> ModelVersion:
        # A run killed after registering its version but before the runner recorded success
        # must not register a duplicate when rerun: the same work already has a version.
        existing = _existing_version(ctx, model, date, trainset.id, base, loaded.config_hash)
        if existing is not None:
            return existing
        version, result = _train_version(
            ctx, loaded, date, trainset, base, identity, left_out, why, progress, phase
        )
        result_box["result"] = result
        return version

    outcome = ctx.runner.run(
        "train",
        run,
        identity=identity,
        model=model,
        date=date,
        config_hash=loaded.config_hash,
        inputs=inputs,
        params={"base_version": base, "why": why, "days": days, "left_out": left_out},
    )
    phase(3, "skipped: already trained" if outcome.skipped else "trained")
    return outcome.value, result_box.get("result"), outcome.skipped


def _existing_version(
    ctx: Context, model: str, date: str, trainset_id: str, base: int | None, config_hash: str
) -> ModelVersion | None:
    """The ready version trained for the same day, training set, base and config, if any."""
    if model not in ctx.store.models():
        return None
    for record in ctx.store.versions(model):
        if record.status != "ready" or record.date != date or record.base_version != base:
            continue
        path = model_dir(ctx, model, record.version)
        try:
            manifest = read_package(path)
        except ServingError:
            continue
        if manifest.training_set_id == trainset_id and manifest.config_hash == config_hash:
            return ModelVersion(
                model,
                record.version,
                str(path),
                sha256_json(manifest.files),
                date,
                base,
                manifest.metrics,
            )
    return None


def _train_version(
    ctx: Context,
    loaded: LoadedConfig,
    date: str,
    trainset: TrainingSet,
    base: int | None,
    identity: dict[str, Any],
    left_out: list[str],
    why: str,
    progress: Progress | None = None,
    phase: Callable[[int, str], None] | None = None,
) -> tuple[ModelVersion, TrainResult]:
    cfg = loaded.config
    base_dir = model_dir(ctx, cfg.name, base) if base is not None else None
    on_step = None
    if progress is not None:
        epochs = cfg.training.warm_start_epochs if base_dir is not None else cfg.training.epochs
        on_step = step_progress(
            progress,
            f"train {cfg.name} for {date}",
            epochs=epochs,
            batch_size=cfg.training.batch_size,
        )
    key = sha256_json({"identity": identity, "config": loaded.config_hash})[:16]
    scratch = fresh_scratch(ctx.workspace.artifacts_dir / "scratch" / cfg.name / key)
    checkpoints = ctx.workspace.artifacts_dir / "checkpoints" / cfg.name / key
    trainer = trainer_for(cfg.training)
    streamer = _streamer(trainer, cfg, trainset)
    streamed = streamer is not None
    if streamer is not None:
        if phase is not None:
            phase(2, "streaming the training set from Parquet")
        transform, result = _train_streamed(
            streamer, loaded, trainset, base_dir, scratch, checkpoints, on_step
        )
    else:
        table = pq.read_table(trainset.uri)
        if base_dir is not None:
            transform = Transform.from_json(read_transform_text(base_dir))
        else:
            transform = Transform.fit(table, loaded.definitions)
        inputs = transform.transform(table)
        labels, _ = labels_and_groups(table, cfg)
        weights = example_weights(table, cfg)
        spec = model_spec(cfg, transform.input_spec(), labels)
        del table  # the encoded arrays are what training needs; free the raw rows
        if phase is not None:
            workers = cfg.training.workers
            phase(2, f"starting {workers} workers" if workers > 1 else "starting")
        result = trainer.train(
            inputs,
            labels,
            spec,
            cfg.training,
            scratch,
            checkpoint_dir=checkpoints,
            base_dir=base_dir,
            progress=on_step,
            weights=weights,
        )
    version = ctx.store.reserve_version(cfg.name, date=date, base_version=base)
    final = model_dir(ctx, cfg.name, version)
    if final.exists():  # a crashed earlier attempt left it half-registered: versions are immutable
        shutil.rmtree(final)
    metrics = {
        "examples": result.examples,
        "examples_per_s": result.examples_per_s,
        "cpu_s": result.cpu_s,
        "m_examples_per_cpu_s": result.m_examples_per_cpu_s,
        "utilisation": result.utilisation,
        "peak_rss_mb": result.peak_rss_mb,
        "final_loss": result.final_loss,
        "seconds": result.seconds,
        "workers": result.workers,
        "streamed": streamed,
        "peak_rows_held": result.peak_rows_held,
    }
    with atomic_directory(final) as tmp:
        names = copy_trained_files(scratch, result.weights_path.name, transform.to_json(), tmp)
        fields = {
            "model": cfg.name,
            "version": version,
            "date": date,
            "base_version": base,
            "why": why,
            "config_hash": loaded.config_hash,
            "config": loaded.effective,
            "features": cfg.features,
            "training_set": {
                "id": trainset.id,
                "dates": list(trainset.dates),
                "rows": trainset.rows,
                "table_versions": trainset.table_versions,
            },
            "left_out_days": left_out,
            "example_weight": cfg.examples.weight,
            "notes": _notes(cfg, result),
            "metrics": metrics,
            "weights_sha256": result.weights_sha256,
            "framework": trainer.framework,
            "servable": True,  # every trainer writes a verified model.onnx
            "workers": result.workers,
            "resumed_from_step": result.resumed_from_step,
            "hardware": {"machine": platform.machine(), "cpus": os.cpu_count()},
            "seed": cfg.training.seed,
            "threads": cfg.training.threads,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "code_version": _code_version(),
            "packages": _packages(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        files = write_package(tmp, fields, names).files
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(checkpoints, ignore_errors=True)
    artifact = ModelVersion(cfg.name, version, str(final), sha256_json(files), date, base, metrics)
    ctx.store.complete_version(cfg.name, version, artifact)
    return artifact, result


def _notes(cfg: ModelConfig, result: TrainResult) -> list[str]:
    """The trainer's notes, after one saying whether (and by what) the examples were weighted."""
    weight = cfg.examples.weight
    first = (
        f"examples weighted by column {weight!r}: the training loss is their weighted mean "
        "(evaluation metrics are unweighted)"
        if weight is not None
        else "examples unweighted"
    )
    return [first, *result.notes]


def _streamer(trainer: Trainer, cfg: ModelConfig, trainset: TrainingSet) -> StreamingTrainer | None:
    """The trainer, when it streams the training set from its Parquet file instead of loading
    it: above ``training.in_memory_max_rows`` rows, if it can (torch: 1 worker)."""
    if trainset.rows > cfg.training.in_memory_max_rows and streams(trainer, cfg.training):
        return trainer
    return None


def _train_streamed(
    trainer: StreamingTrainer,
    loaded: LoadedConfig,
    trainset: TrainingSet,
    base_dir: Path | None,
    scratch: Path,
    checkpoints: Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Transform, TrainResult]:
    """Fit (or reuse) the transform from a stream of the file, then train streaming it."""
    cfg = loaded.config
    path = Path(trainset.uri)
    if base_dir is not None:
        transform = Transform.from_json(read_transform_text(base_dir))
    else:
        columns = sorted({d.column for d in loaded.definitions})
        batches = pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=columns)
        transform = Transform.fit_batches(batches, loaded.definitions)

    def encode(table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        labels = table.column(cfg.label).to_numpy(zero_copy_only=False).astype(np.float32)
        return transform.transform(table), labels

    data_id = sha256_json({"trainset": trainset.content_hash, "transform": transform.to_json()})
    data = ParquetData(
        path,
        encode,
        data_id,
        columns=sorted({*transform.columns(), cfg.label}),
        weight_column=cfg.examples.weight,
        buffer_rows=cfg.training.stream_buffer_rows,
    )
    result = trainer.train_stream(
        data,
        model_spec_from_file(cfg, transform.input_spec(), path),
        cfg.training,
        scratch,
        checkpoint_dir=checkpoints,
        base_dir=base_dir,
        progress=progress,
    )
    return transform, result
