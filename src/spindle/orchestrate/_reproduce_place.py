"""Where a rebuilt version goes: a new registered version, or back in place of the lost one.

``spindle reproduce --register`` registers the rebuild as a new version (lineage edge from the
version it reproduces). ``--restore`` puts a rebuild back as the same version number (the
disaster recovery drill): only when its files hash to the content hash the registry recorded
for that version — the directory is written atomically with the recorded manifest, and the
model repository's copy is placed again (verified against the registry) when the version is
routed, so serving answers with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from spindle.core import (
    MANIFEST_FILE,
    ModelVersion,
    ServingError,
    TrainingError,
    atomic_directory,
    atomic_write_json,
    read_package,
    verify_package,
)
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import model_dir
from spindle.orchestrate._reproduce_facts import Recorded
from spindle.orchestrate._train_step import record_manifest
from spindle.serve import (
    install_version,
    model_repository,
    read_routing,
    restore_version,
    routing_lock,
)
from spindle.train import FittedVersion, VersionPlan, write_version


def register_rebuild(
    ctx: Context, recorded: Recorded, plan: VersionPlan, fitted: FittedVersion
) -> int:
    """Register the rebuild as a new version of the model (its own number; nothing else moves).

    Returns:
        The new version number.
    """
    model = recorded.model
    version = ctx.store.reserve_version(model, date=plan.date, base_version=plan.base_version)
    try:
        final = model_dir(ctx, model, version)
        if final.exists():  # a crashed earlier attempt left it half-registered
            shutil.rmtree(final)
        write_version(plan, fitted, version, final)
        record_manifest(ctx, final)
        content_hash = read_package(final).content_hash
        artifact = ModelVersion(
            model, version, str(final), content_hash, plan.date, plan.base_version,
            fitted.metrics(),
        )  # fmt: skip
        ctx.store.complete_version(model, version, artifact)
    except BaseException as exc:
        if ctx.store.get_version(model, version).status == "reserved":
            ctx.store.fail_version(model, version, f"reproduce --register failed: {exc}")
        raise
    ctx.store.add_edge(
        f"model:{model}@{recorded.version}", f"model:{model}@{version}", "reproduced"
    )
    return version


def _restore_directory(recorded: Recorded, rebuilt: Path) -> str:
    """Write the version directory from the rebuilt files and the recorded manifest."""
    final = recorded.directory
    damaged = final.with_name(f"{final.name}.damaged")
    if final.exists():  # damaged files (else it would be intact): kept aside, never trusted
        if damaged.exists():
            shutil.rmtree(damaged)
        final.rename(damaged)
    manifest = dict(recorded.manifest)
    with atomic_directory(final) as tmp:
        for name in manifest["files"]:
            shutil.copy2(rebuilt / name, tmp / name)
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
    problems = verify_package(final, read_package(final), registered=recorded.registered)
    if problems:  # cannot happen when the hashes matched; never leave a wrong version
        shutil.rmtree(final)
        raise TrainingError(f"{recorded.model}@{recorded.version}: restore failed: {problems[0]}")
    if damaged.exists():
        shutil.rmtree(damaged)
    return f"restored {final}"


def _repository_copy(ctx: Context, recorded: Recorded) -> str:
    """Place the version in the model repository again when it is routed (verified copy)."""
    repo = model_repository(ctx.workspace.model_repo_location)
    model, version = recorded.model, recorded.version
    try:
        routing = read_routing(repo, model)
    except ServingError:
        return "model repository: routing.json unreadable; not placed (`spindle doctor`)"
    routed = version in routing.weights or routing.previous == version
    if not routed:
        return f"model repository: {model}@{version} is not routed; not placed"
    source = model_dir(ctx, model, version)
    with routing_lock(repo, model):
        try:
            installed = install_version(source, repo, registered=recorded.registered)
        except ServingError:  # a damaged copy is there: replace it by the verified one
            if not isinstance(repo, Path):  # versions on a store are immutable
                raise
            installed = restore_version(source, repo, registered=recorded.registered)
            return f"model repository: replaced the damaged copy {installed.path}"
    state = "placed" if installed.created else "already held"
    return f"model repository: {state} {installed.path}"


def restore_rebuild(
    ctx: Context, recorded: Recorded, rebuilt_dir: Path, rebuilt_hash: str
) -> dict[str, Any]:
    """Put the rebuild back as ``recorded``'s version when it is bit-identical.

    Returns:
        ``{"done": True, "steps": [...]}``; ``{"done": False, "why": ...}`` (nothing written)
        when the rebuilt files hash to another content hash than the registry's record.
    """
    label = f"{recorded.model}@{recorded.version}"
    if rebuilt_hash != recorded.registered:
        why = (
            f"{label}: --restore refused: the rebuild is not bit-identical (its files hash to "
            f"{rebuilt_hash[:16]}, the registry recorded {recorded.registered[:16]}), so it "
            f"may not take the place of {label}; see the report's causes, or use --register "
            "alone to register it as a new version"
        )
        return {"done": False, "why": why, "steps": []}
    steps = []
    if recorded.intact:
        steps.append(f"{recorded.directory}: intact, left as it is")
    else:
        steps.append(_restore_directory(recorded, rebuilt_dir))
    steps.append(_repository_copy(ctx, recorded))
    return {"done": True, "steps": steps}
