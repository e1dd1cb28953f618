"""``spindle reproduce``: rebuild a model version from its record and report how it compares.

The rebuild uses the version's recorded effective config, the exact table versions of its
training set (Delta time travel), its seed, threads and workers, and its warm-start base; it
trains into a scratch directory under ``.spindle/artifacts/reproduce/`` (never the version's
own directory) and registers nothing unless asked. The report compares the rebuild with the
original: weights and files bit for bit, the metrics with paired bootstrap intervals and the
scores on the holdout the version was evaluated on, and names the known causes of a
difference (threads, cores, packages, code, retractions since, a rebuilt base).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spindle.core import (
    ConfigError,
    ModelConfig,
    Progress,
    SpindleError,
    TrainingError,
    TrainingSet,
    apply_overrides,
    sha256_json,
)
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    fresh_scratch,
    load_config,
    trainset_file,
    trainset_location,
)
from spindle.orchestrate._reproduce_compare import compare_scores, files_comparison
from spindle.orchestrate._reproduce_facts import (
    Recorded,
    environment_diff,
    known_causes,
    recorded_version,
    retractions_since,
    warm_start_chain,
)
from spindle.orchestrate._reproduce_place import register_rebuild, restore_rebuild
from spindle.orchestrate._train_step import _step_progress
from spindle.orchestrate._version_store import version_folder
from spindle.train import FittedVersion, VersionPlan, fit_version, write_version


@dataclass(frozen=True)
class Rebuilt:
    """A rebuild in its scratch directory: the plan, the trained model and its files."""

    plan: VersionPlan
    fitted: FittedVersion
    directory: Path
    content_hash: str
    files: dict[str, str]


def recorded_config(
    ctx: Context, recorded: Recorded, threads: int | None = None
) -> tuple[LoadedConfig, dict[str, Any]]:
    """The version's recorded effective config (``threads`` overriding its thread count),
    and how the workspace's config compares with it.

    Raises:
        ConfigError: the recorded config no longer validates and the workspace's config hashes
            differently (nothing to rebuild it with).
    """
    manifest, model = recorded.manifest, recorded.model
    effective = dict(manifest.get("config") or {})
    recorded_hash = str(manifest.get("config_hash") or sha256_json(effective))
    try:
        current_hash: str | None = load_config(ctx, model).config_hash
    except SpindleError:  # gone or invalid now: the recorded one is what counts
        current_hash = None
    if threads is not None:
        effective = apply_overrides(effective, [f"training.threads={threads}"])
    try:
        config = ModelConfig.model_validate(effective)
    except ValidationError as exc:
        first = str(exc).splitlines()[1:3]
        raise ConfigError(
            f"{model}@{recorded.version}",
            [
                f"its recorded effective config no longer validates ({' '.join(first)}) and "
                f"models/{model}.yaml hashes {current_hash or 'to nothing (unreadable)'}, not "
                f"the recorded {recorded_hash}: it cannot be rebuilt with this code; check out "
                f"its code version {manifest.get('code_version')}"
            ],
        ) from None
    config_hash = recorded_hash if threads is None else sha256_json(effective)
    definitions = ctx.features.resolve(config)
    info = {
        "hash": recorded_hash,
        "used": config_hash,
        "workspace": current_hash,
        "workspace_same": current_hash == recorded_hash,
        "recorded_hash_checks": sha256_json(dict(manifest.get("config") or {})) == recorded_hash,
    }
    return LoadedConfig(config, config_hash, effective, definitions), info


def recorded_trainset(ctx: Context, recorded: Recorded, loaded: LoadedConfig) -> TrainingSet:
    """The version's training set rebuilt with its recorded days and table versions."""
    trainset = dict(recorded.manifest.get("training_set") or {})
    dates = [str(d) for d in trainset.get("dates") or []]
    versions = {str(k): int(v) for k, v in dict(trainset.get("table_versions") or {}).items()}
    if not dates:
        raise TrainingError(
            f"{recorded.model}@{recorded.version}: its record lists no training days"
        )
    return build_training_set(ctx, loaded, dates, "train", versions=versions)


def rebuild(
    ctx: Context,
    recorded: Recorded,
    loaded: LoadedConfig,
    trainset: TrainingSet,
    base: int | None,
    tag: str = "rebuild",
    progress: Progress | None = None,
) -> Rebuilt:
    """Train the version again into ``.spindle/artifacts/reproduce/MODEL/V/<key>/<tag>``."""
    manifest = recorded.manifest
    plan = VersionPlan(
        loaded.config,
        loaded.config_hash,
        loaded.effective,
        loaded.definitions,
        replace(trainset, uri=str(trainset_file(ctx, trainset.uri))),  # a local file to read
        recorded.date,
        base,
        version_folder(ctx, recorded.model, base) if base is not None else None,
        str(manifest.get("why") or ""),
        tuple(str(d) for d in manifest.get("left_out_days") or ()),
    )
    key = sha256_json({"config": loaded.config_hash, "trainset": trainset.id, "base": base})
    root = (
        ctx.workspace.artifacts_dir / "reproduce" / recorded.model / str(recorded.version)
    ) / f"{key[:16]}-{tag}"
    scratch = fresh_scratch(root / "scratch")
    checkpoints = fresh_scratch(root / "checkpoints")  # a fresh run: never resume an old one
    fitted = fit_version(plan, scratch, checkpoints, progress=_step_progress(progress, plan))
    out = root / "version"
    if out.exists():
        shutil.rmtree(out)
    files = write_version(plan, fitted, recorded.version, out)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return Rebuilt(plan, fitted, out, sha256_json(files), files)


def holdout_file(
    ctx: Context, recorded: Recorded, loaded: LoadedConfig
) -> tuple[Path, dict[str, Any]]:
    """The holdout the version was evaluated on (its recorded training set, rebuilt with its
    table versions when the file is gone), or its date's holdout when never evaluated."""
    model, version = recorded.model, recorded.version
    evaluation = ctx.store.latest_artifact("evaluation", model=model, version=version)
    holdout_id = None
    if evaluation is not None and evaluation.run_id is not None:
        inputs = ctx.store.get_run(evaluation.run_id).inputs
        holdout_id = next((i for i in inputs if i.startswith("trainset:")), None)
    if holdout_id is None:
        date = recorded.date
        built = build_training_set(ctx, loaded, [date], purpose="holdout")
        info = {"id": built.id, "dates": [date], "evaluation": None, "rebuilt": True}
        info["note"] = f"never evaluated: scored on the holdout of {date} built now"
        return trainset_file(ctx, built.uri), info
    record = ctx.store.get_artifact(holdout_id)
    info = {"id": holdout_id, "dates": record.properties.get("dates"), "rebuilt": False}
    info["evaluation"] = evaluation.id if evaluation is not None else None
    if trainset_location(ctx, record.uri).is_file():
        return trainset_file(ctx, record.uri), info
    versions = {str(k): int(v) for k, v in dict(record.properties["table_versions"]).items()}
    dates = [str(d) for d in record.properties.get("dates") or [recorded.date]]
    built = build_training_set(ctx, loaded, dates, purpose="holdout", versions=versions)
    info |= {"rebuilt": True, "rebuilt_id": built.id}
    return trainset_file(ctx, built.uri), info


def _ensure_base(
    ctx: Context, recorded: Recorded, restore: bool, progress: Progress | None
) -> list[int]:
    """Make sure the warm-start base's files are there; rebuild the chain base-first with
    ``restore``. Returns the bases rebuilt (oldest first).

    Raises:
        TrainingError: the base's files are missing and ``restore`` is not set.
    """
    base = recorded.base_version
    if base is None:
        return []
    model = recorded.model
    found = recorded_version(ctx, model, base)
    if found.intact:
        return []
    if not restore:
        raise TrainingError(
            f"{model}@{recorded.version} warm-starts from {model}@{base}, whose files are "
            f"missing or damaged ({found.problems[0] if found.problems else found.directory}): "
            f"rerun with --restore to rebuild the chain base-first ({model}@{base} first)"
        )
    report = reproduce_version(ctx, model, base, restore=True, progress=progress)
    if not report["restore"]["done"]:
        raise TrainingError(report["restore"]["why"])
    return [*report["rebuilt_bases"], base]


def reproduce_version(
    ctx: Context,
    model: str,
    version: int,
    *,
    register: bool = False,
    restore: bool = False,
    from_scratch: bool = False,
    threads: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Rebuild ``model@version`` from its record and report how the rebuild compares.

    Args:
        register: register the rebuild as a new version (unless ``restore`` placed it as
            ``version`` itself).
        restore: put a bit-identical rebuild back as ``version`` (its directory and, when it
            is routed, its model-repository copy), and rebuild a warm-start base whose files
            are missing the same way first.
        from_scratch: for a warm-started version, also train from scratch on the chain's days
            and report how far it lands from the incremental model.
        threads: train with this many threads instead of the recorded count (the report
            names the difference).
        progress: hears the rebuilds' training steps (epoch, examples/s).

    Returns:
        The report (see docs/operations.md): ``weights_identical``, ``files``,
        ``content_hash``, ``metric_diff``, ``prediction_diff``, ``causes``, ``chain``,
        ``packages_diff``, ``code_version``, ``restore``, ``registered_version``, ...

    Raises:
        NotFound: no such model or version.
        RegistryError: the version is reserved or failed.
        TrainingError: it cannot be rebuilt (no record, a missing base without ``restore``,
            a missing base whose rebuild is not bit-identical). A refused ``restore`` of the
            version itself is in the report (``restore.done`` False, ``restore.why``).
        ConfigError: its recorded config no longer validates.
    """
    recorded = recorded_version(ctx, model, version)
    chain = warm_start_chain(ctx, model, version)
    rebuilt_bases = _ensure_base(ctx, recorded, restore, progress)
    loaded, config_info = recorded_config(ctx, recorded, threads)
    trainset = recorded_trainset(ctx, recorded, loaded)
    built = rebuild(ctx, recorded, loaded, trainset, recorded.base_version, progress=progress)
    holdout, holdout_info = holdout_file(ctx, recorded, loaded)
    original = recorded.directory if recorded.intact else None
    scores = compare_scores(loaded.config, holdout, original, built.directory)
    environment = environment_diff(recorded.manifest)
    recorded_trainset_id = dict(recorded.manifest.get("training_set") or {}).get("id")
    threads_used = loaded.config.training.threads
    causes = known_causes(
        recorded,
        environment,
        threads_used,
        trainset_same=trainset.id == recorded_trainset_id,
        rebuilt_bases=rebuilt_bases,
        retractions=retractions_since(
            ctx, recorded, tuple(getattr(trainset, "retractions", ()) or ())
        ),
    )
    files = files_comparison(recorded.manifest, built.files)
    weights_identical = built.fitted.result.weights_sha256 == recorded.manifest.get(
        "weights_sha256"
    )
    report: dict[str, Any] = {
        "model": model,
        "version": version,
        "date": recorded.date,
        "record": recorded.source,
        "original_files": "intact" if recorded.intact else "missing or damaged",
        "chain": [f"{model}@{v}" for v in chain],
        "base_version": recorded.base_version,
        "rebuilt_bases": rebuilt_bases,
        "config": config_info,
        "training_set": {"recorded": recorded_trainset_id, "rebuilt": trainset.id},
        "threads": {"recorded": recorded.manifest.get("threads"), "used": threads_used},
        "workers": {
            "recorded": recorded.manifest.get("workers"),
            "used": built.fitted.result.workers,
        },
        "seed": loaded.config.training.seed,
        "weights_identical": weights_identical,
        "files": files,
        "content_hash": {
            "registered": recorded.registered,
            "rebuilt": built.content_hash,
            "same": recorded.registered == built.content_hash,
        },
        "holdout": holdout_info,
        **scores,
        **environment,
        "causes": causes,
        "rebuilt_dir": str(built.directory),
        "restore": None,
        "registered_version": None,
    }
    if from_scratch:
        report["from_scratch"] = _from_scratch(
            ctx, recorded, loaded, chain, holdout, built, progress
        )
    if restore:
        report["restore"] = restore_rebuild(ctx, recorded, built.directory, built.content_hash)
    elif register:
        report["registered_version"] = register_rebuild(ctx, recorded, built.plan, built.fitted)
    return report


def _from_scratch(
    ctx: Context,
    recorded: Recorded,
    loaded: LoadedConfig,
    chain: list[int],
    holdout: Path,
    incremental: Rebuilt,
    progress: Progress | None,
) -> dict[str, Any]:
    """Train from scratch on every day the warm-start chain trained on (the chain's recorded
    days, with this version's table versions) and compare with the incremental rebuild."""
    if recorded.base_version is None:
        return {"note": "trained from scratch already: nothing to compare"}
    days: set[str] = set()
    for version in chain:
        found = recorded_version(ctx, recorded.model, version)
        days.update(str(d) for d in dict(found.manifest.get("training_set") or {})["dates"])
    versions = dict(dict(recorded.manifest.get("training_set") or {})["table_versions"])
    trainset = build_training_set(ctx, loaded, sorted(days), "train", versions=versions)
    scratch = rebuild(ctx, recorded, loaded, trainset, None, tag="from-scratch", progress=progress)
    scores = compare_scores(
        loaded.config,
        holdout,
        incremental.directory,
        scratch.directory,
        names=("incremental", "from_scratch"),
    )
    return {
        "days": sorted(days),
        "training_set": trainset.id,
        "weights_identical": scratch.fitted.result.weights_sha256
        == incremental.fitted.result.weights_sha256,
        "rebuilt_dir": str(scratch.directory),
        **scores,
    }
