"""The train step: choose the base version, fit or reuse the transform, train, write the version."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spindle.core import (
    Artifact,
    ModelConfig,
    ModelVersion,
    Progress,
    ProgressEvent,
    ServingError,
    SpindleError,
    TrainingError,
    TrainingSet,
    manifest_file,
    read_package,
    sha256_file,
    sha256_json,
    step_progress,
    storage_error,
)
from spindle.orchestrate._context import Context, production_before
from spindle.orchestrate._fit_task import fit_on_node, unpacked
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    checkpoint_mirror,
    fresh_scratch,
    model_dir,
    resolve_config,
    training_window,
    trainset_file,
    trainset_location,
)
from spindle.orchestrate._tasks import call
from spindle.orchestrate._version_store import (
    publish_version,
    stored_version,
    unpublish_version,
    version_folder,
)

if TYPE_CHECKING:  # torch loads with the trainers: a no-op rerun never trains
    from spindle.train import TrainResult, VersionPlan


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
    config: LoadedConfig | None = None,
    base_version: int | None = None,
) -> tuple[ModelVersion, TrainResult | None, bool]:
    """Train a new version of ``model`` for ``date`` on the days before it (a recorded step).

    ``progress`` hears the training steps (epoch, examples/s) about twice a second.
    ``config`` is the run's config when it was loaded already (a daily run loads it once);
    else it is loaded with ``overrides``. ``base_version`` warm-starts from that version
    instead of the one :func:`choose_base` picks (``spindle retract plan --retrain``: the last
    base that never saw the retracted rows).

    Returns:
        The model version, the training result (None when the step was skipped), and whether skipped.

    Raises:
        TrainingError: the training window is empty (every day missing or failed validation).
    """
    loaded = resolve_config(ctx, model, overrides, config)
    cfg = loaded.config
    phase = _phases(progress, f"prepare {model} for {date}")
    base: int | None
    if base_version is not None and not from_scratch:
        base, why = base_version, f"warm start from version {base_version} (chosen)"
    else:
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
        try:
            path = version_folder(ctx, model, record.version)  # a damaged copy: not reused
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
    """Fit the version in scratch (the train stage), reserve its number, write it, put it on
    the object store (with ``artifacts_url`` there) and complete it."""
    from spindle.train import VersionPlan, fit_version, write_version

    cfg = loaded.config
    plan = VersionPlan(
        cfg,
        loaded.config_hash,
        loaded.effective,
        loaded.definitions,
        trainset,
        date,
        base,
        version_folder(ctx, cfg.name, base) if base is not None else None,
        why,
        tuple(left_out),
    )
    key = sha256_json({"identity": identity, "config": loaded.config_hash})[:16]
    scratch = fresh_scratch(ctx.workspace.artifacts_dir / "scratch" / cfg.name / key)
    checkpoints = ctx.workspace.artifacts_dir / "checkpoints" / cfg.name / key
    mirror = checkpoint_mirror(ctx, cfg.name, key)
    if ctx.tasks.name == "in-process":
        from spindle.train import mirror_checkpoints

        mirror_checkpoints(checkpoints, mirror)
        local = replace(trainset, uri=str(trainset_file(ctx, trainset.uri)))
        fitted = fit_version(
            replace(plan, trainset=local),
            scratch,
            checkpoints,
            progress=_step_progress(progress, plan),
            phase=phase,
        )
    else:  # a task elsewhere: its progress is not heard here (callbacks do not travel)
        options = trainset_location(ctx, trainset.uri).options
        # a node without the workspace's folder fetches the base from the store
        stored = stored_version(ctx, cfg.name, base) if base is not None else None
        args = (plan, scratch, checkpoints, ctx.workspace.artifacts_dir, options, mirror, stored)
        fitted, archive = call(ctx.tasks, fit_on_node, *args, label=f"train {cfg.name} {date}")
        fitted = unpacked(fitted, archive, scratch)
    version = ctx.store.reserve_version(cfg.name, date=date, base_version=base)
    try:
        final = model_dir(ctx, cfg.name, version)
        if final.exists():  # a crashed earlier attempt left it half-registered: immutable
            shutil.rmtree(final)
        files = write_version(plan, fitted, version, final)
        record_manifest(ctx, final)
        publish_version(ctx, cfg.name, version)  # before it is ready: a ready one is stored
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(checkpoints, ignore_errors=True)
        if mirror is not None:
            mirror.delete()
        metrics = fitted.metrics()
        # the content hash the registry keeps: serving and doctor check copies against it
        content_hash = sha256_json(files)  # = ModelPackage.content_hash of the manifest
        artifact = ModelVersion(cfg.name, version, str(final), content_hash, date, base, metrics)
        ctx.store.complete_version(cfg.name, version, artifact)
    except BaseException as exc:
        _release(ctx, cfg.name, version, exc)
        try:  # a released number's copy on the store is never fetched: only space
            unpublish_version(ctx, cfg.name, version)
        except SpindleError as inner:
            exc.add_note(f"{cfg.name}@{version}'s copy stays on the store ({inner})")
        raise
    return artifact, fitted.result


def record_manifest(ctx: Context, directory: Path) -> None:
    """Keep the manifest of the version in ``directory`` in the registry too.

    The manifest holds what a rebuild needs (the effective config, the training set's days
    and table versions, seed, threads, workers, base version, code and package versions, the
    files' checksums): ``spindle reproduce`` reads it from the registry (artifact
    ``manifest:MODEL@V``, kind ``model_manifest``) when the version's files are lost.
    Idempotent for the same manifest.
    """
    package = read_package(directory)
    path = manifest_file(directory)
    ctx.store.record_artifact(
        Artifact(
            "model_manifest",
            f"manifest:{package.model}@{package.version}",
            str(path),
            sha256_file(path),
            package.to_json(),
        )
    )


def _release(ctx: Context, model: str, version: int, exc: BaseException) -> None:
    """Mark the reserved ``version`` failed with why, so no one waits for it (a killed process
    cannot: ``spindle doctor --fix`` releases those)."""
    reason = f"released by the failed train step: {type(exc).__name__}: {exc}"
    failure = storage_error(exc, ctx.workspace.state_dir)
    if failure is not None and failure.read_only:  # writing the store now may SIGBUS
        exc.add_note(f"{model}@{version} stays reserved (read-only disk); `spindle doctor --fix`")
        return
    try:
        if ctx.store.get_version(model, version).status == "reserved":
            ctx.store.fail_version(model, version, reason)
    except SpindleError as inner:  # the store is down too: doctor --fix releases it later
        exc.add_note(f"{model}@{version} stays reserved ({inner}); `spindle doctor --fix`")


def _step_progress(
    progress: Progress | None, plan: VersionPlan
) -> Callable[[int, int], None] | None:
    """The training steps as progress events (epoch, examples/s), or None without a listener."""
    if progress is None:
        return None
    training = plan.config.training
    if training.one_process:  # a step is a boosting round over all rows
        epochs, batch = 1, max(plan.trainset.rows, 1)
    else:
        epochs = training.warm_start_epochs if plan.base_dir is not None else training.epochs
        batch = training.batch_size
    return step_progress(
        progress, f"train {plan.config.name} for {plan.date}", epochs=epochs, batch_size=batch
    )
