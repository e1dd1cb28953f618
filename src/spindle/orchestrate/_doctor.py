"""``spindle doctor``: check that the metadata store and the files on disk agree.

After any crash, re-running the pipeline must leave a consistent workspace. The doctor is the
check: every recorded artifact that names a file exists with its checksum, every model version
(its artifact and its copy in the model repository) holds the files the registry recorded for
it, no run is left ``running`` without a live process, no version number is reserved and
abandoned, no day was trained twice, the Delta tables open, no intent is left pending, serving
routes to what the registry calls production, and no crash left temp files behind.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spindle.core import (
    DataError,
    ServingError,
    current_version,
    manifest_file,
    model_file,
    read_package,
    sha256_file,
    table_exists,
    verify_package,
)
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._deploy import (
    deploy,
    pending_deployments,
    pending_intent,
    registered,
    repository,
    resolve_pending,
)
from spindle.orchestrate._doctor_store import check_store
from spindle.orchestrate._doctor_versions import check_versions
from spindle.orchestrate._leftovers import clean_leftovers, find_leftovers
from spindle.orchestrate._model_common import model_dir, trainset_location
from spindle.orchestrate._version_store import unpublish_version, version_folder
from spindle.registry import DeploymentRecord, moved_root
from spindle.serve import (
    Routing,
    S3Repository,
    check_model_name,
    list_versions,
    read_routing,
    restore_version,
    routing_lock,
)


@dataclass(frozen=True)
class Problem:
    """One inconsistency, and whether ``--fix`` repaired it."""

    kind: str
    subject: str
    message: str
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "fixed": self.fixed,
        }


def _check_runs(ctx: Context, fix: bool) -> list[Problem]:
    stale = ctx.store.stale_runs()
    if stale and fix:
        ctx.store.mark_stale_runs()
    return [
        Problem(
            "stale_run",
            f"run {r.id} ({r.step} {r.model or ''} {r.date or ''})".strip(),
            f"recorded as running but process {r.pid} is gone",
            fix,
        )
        for r in stale
    ]


def _check_moved(ctx: Context, fix: bool) -> list[Problem]:
    """Absolute paths an older store recorded into the root this workspace was copied from."""
    root = ctx.workspace.root
    found = moved_root((r.uri for r in ctx.store.find_artifacts()), root)
    if found is None:
        return []
    old, count = found
    if fix:
        ctx.store.relocate(old)
    return [
        Problem(
            "moved_workspace",
            str(root),
            f"{count} recorded artifact paths point into {old}, not into this workspace "
            "(it was copied or moved from there by a spindle that recorded absolute paths); "
            "run `spindle doctor --fix` to record them relative to the workspace",
            fix,
        )
    ]


def _check_model_versions(
    ctx: Context, fix: bool, reported: frozenset[str] = frozenset()
) -> list[Problem]:
    """Abandoned numbers, and ready versions whose files are missing or changed (``reported``:
    versions whose lost folder the store's check already named)."""
    problems: list[Problem] = []
    stale = {r.id for r in ctx.store.stale_runs()}
    busy = {
        (r.model, r.date)
        for r in ctx.store.runs(status="running", step="train", limit=None)
        if r.id not in stale
    }
    for model in ctx.store.models():
        seen: dict[tuple[Any, ...], int] = {}
        for record in ctx.store.versions(model):
            subject = f"{model}@{record.version}"
            if record.status == "reserved" and (model, record.date) not in busy:
                if fix:
                    ctx.store.fail_version(
                        model, record.version, "abandoned by a crashed run (spindle doctor)"
                    )
                    with contextlib.suppress(DataError):  # the store's check says why
                        unpublish_version(ctx, model, record.version)  # its copy there
                problems.append(
                    Problem(
                        "abandoned_version",
                        subject,
                        "version number reserved but never completed",
                        fix,
                    )
                )
                continue
            if record.status != "ready" or record.artifact_id is None:
                continue
            artifact = ctx.store.get_artifact(record.artifact_id)
            uri = Path(artifact.uri)
            manifest_path = manifest_file(uri)
            if not manifest_path.is_file():
                if subject not in reported:  # else said once, with the store's copy
                    problems.append(Problem("missing_file", subject, f"{manifest_path} is missing"))
                continue
            try:
                manifest = read_package(uri)
            except ServingError as exc:
                problems.append(Problem("missing_file", subject, str(exc)))
                continue
            if manifest.content_hash != artifact.content_hash:
                problems.append(
                    Problem(
                        "checksum",
                        subject,
                        f"{manifest_path}: its checksums hash to {manifest.content_hash}, the "
                        f"registry recorded {artifact.content_hash} when the version was "
                        "trained: the version's files were replaced; retrain it as a new version",
                    )
                )
            for name, digest in manifest.files.items():
                file = uri / name
                if not file.is_file():
                    problems.append(Problem("missing_file", subject, f"{file} is missing"))
                elif sha256_file(file) != digest:
                    problems.append(
                        Problem("checksum", subject, f"{file} does not match its manifest checksum")
                    )
            identity = (
                record.date,
                manifest.training_set_id,
                record.base_version,
                manifest.config_hash,
            )
            if identity in seen:
                problems.append(
                    Problem(
                        "duplicate_version",
                        subject,
                        f"same day, training set, base and config as version {seen[identity]}",
                    )
                )
            else:
                seen[identity] = record.version
    return problems


def _check_files(ctx: Context) -> list[Problem]:
    problems: list[Problem] = []
    for kind in ("training_set", "evaluation"):
        for record in ctx.store.find_artifacts(kind):
            path = trainset_location(ctx, record.uri)  # a training set may be on a store
            if not path.is_file():
                problems.append(Problem("missing_file", record.id, f"{path} is missing"))
            elif kind == "evaluation" and sha256_file(path.path) != record.content_hash:
                problems.append(
                    Problem("checksum", record.id, f"{path} changed after it was recorded")
                )
    tables = ctx.workspace.tables_dir
    try:  # an object store (tables_url) must answer before its tables can be checked
        tables.check()
    except DataError as exc:
        return [*problems, Problem("tables", str(tables), str(exc))]
    kinds = [k for k in tables.iterdir() if k.name != "quarantine"]
    quarantine = [k for k in tables.iterdir() if k.name == "quarantine"]
    for table_dir in sorted(t for k in kinds for t in k.iterdir()) + quarantine:
        if table_exists(table_dir):
            try:
                current_version(table_dir, table_dir.name)
            except DataError as exc:
                problems.append(Problem("table", str(table_dir), str(exc)))
    return problems


_RERUN = {
    "push": "spindle push {model} --version {version}{weight}",
    "route": "spindle route {model} {weights}",
    "rollback": "spindle rollback {model}",
}


def _rerun_hint(record: DeploymentRecord, ctx: Context) -> str:
    """How to complete a pending deployment: re-run the command that recorded its intent."""
    intent = pending_intent(ctx, record)
    if intent is None or intent.op not in _RERUN:
        return "`spindle doctor --fix` resolves it"
    weights = " ".join(f"{v}={w:g}" for v, w in dict(intent.args.get("weights") or {}).items())
    weight = intent.args.get("weight")
    command = _RERUN[intent.op].format(
        model=record.model,
        version=intent.args.get("version"),
        weight="" if weight is None else f" --weight {weight:g}",
        weights=weights,
    )
    same = " with the same options" if intent.op == "push" else ""
    return (
        f"a `spindle {intent.op}` was interrupted: re-run `{command}`{same} to complete it, "
        "or `spindle doctor --fix` resolves it"
    )


def _check_serving(ctx: Context, fix: bool) -> list[Problem]:
    problems: list[Problem] = []
    for record in pending_deployments(ctx):
        outcome = resolve_pending(ctx, record) if fix else None
        problems.append(
            Problem(
                "pending_deployment",
                f"{record.model} deployment #{record.seq}",
                f"routing {record.weights} was recorded but never finished (a crash between "
                f"the registry and routing.json); "
                + (outcome if outcome else _rerun_hint(record, ctx)),
                fix,
            )
        )
    repo = repository(ctx)
    try:
        stored = repo.models() if isinstance(repo, S3Repository) else _routed_models(repo)
        for model in sorted(set(stored) | set(ctx.store.models())):
            problems += _check_model_serving(ctx, model, fix)
    except DataError:  # a store that does not answer: _check_repository reports it
        if not isinstance(repo, S3Repository):
            raise
    return problems


def _check_model_serving(ctx: Context, model: str, fix: bool) -> list[Problem]:
    repo = repository(ctx)
    routing_file = f"{repo}/{model}/routing.json"
    production = production_version(ctx, model)
    try:
        routing = read_routing(repo, model)
    except ServingError as exc:
        return [_repair(ctx, model, production, fix, "corrupt_routing", str(exc))]
    problems = []
    for version in sorted(routing.weights):
        if not _present(repo, model, version):
            problems.append(
                Problem(
                    "routing",
                    f"{model}@{version}",
                    f"routed in {routing_file} but not in the repository",
                )
            )
    if routing.main != production:
        message = (
            f"serving routes most traffic to version {routing.main}, "
            f"the registry says production is {production}"
        )
        problems.append(_repair(ctx, model, production, fix, "serving_mismatch", message))
    return problems


def _repair(
    ctx: Context, model: str, production: int | None, fix: bool, kind: str, message: str
) -> Problem:
    """Make routing.json follow the registry's last recorded deployment of ``production``."""
    repo = repository(ctx)
    if production is None:
        return Problem(
            kind,
            model,
            f"{message}; the registry has no production version: "
            f"pick one with `spindle route {model} VERSION=1`",
        )
    if not _present(repo, model, production):
        return Problem(
            kind,
            model,
            f"{message}; version {production} is not in the repository: "
            f"copy it back with `spindle push {model} --version {production}`",
        )
    done = [
        d
        for d in ctx.store.deployments(model, status="done")
        if d.main == production and all(_present(repo, model, v) for v in d.weights)
    ]
    if done:
        weights, previous = done[-1].weights, done[-1].previous
    else:  # pushed before deployments were recorded: production alone, previous from the alias
        weights, previous = {production: 1.0}, ctx.store.get_alias(model, "previous")
        kept = previous is not None and _present(repo, model, previous)
        if previous == production or not kept:
            previous = None
    if not fix:
        return Problem(
            kind,
            model,
            f"{message}; `spindle doctor --fix` routes it back to the "
            f"registry's deployment {weights}",
        )
    deploy(
        ctx,
        model,
        lambda _current: Routing(model, weights, previous),
        op="fix",
        args={"weights": {str(v): w for v, w in sorted(weights.items())}, "previous": previous},
        actor="spindle doctor --fix",
        reason=f"routing.json disagreed with the registry: {message}",
    )
    return Problem(
        kind, model, f"{message}; routed back to the registry's deployment {weights}", True
    )


def _check_repository(ctx: Context, fix: bool) -> list[Problem]:
    """Every version in the model repository holds the files the registry recorded for it."""
    problems: list[Problem] = []
    repo = repository(ctx)
    if isinstance(repo, S3Repository):  # leftovers, integrity: see _doctor_store
        return [Problem(*found) for found in check_store(ctx, repo, fix)]
    known = set(ctx.store.models())
    hashes = registered(ctx)
    models = sorted(p.name for p in repo.glob("*") if p.is_dir() and _valid_name(p.name))
    for model in models:
        for version in list_versions(repo, model):
            subject, directory = f"{model}@{version}", repo / model / str(version)
            try:
                expected = hashes(model, version) if model in known else None
            except ServingError as exc:
                expected, why = None, str(exc)
            else:
                why = f"the registry has no model {model!r}"
            if expected is None:
                problems.append(
                    Problem(
                        "unregistered_version",
                        subject,
                        f"{directory} is in the model repository but not a ready version in "
                        f"the registry ({why}): it never serves; remove the directory",
                    )
                )
                continue
            try:
                found = verify_package(
                    directory, read_package(directory), only_present=True, registered=expected
                )
            except ServingError as exc:
                found = [str(exc)]
            if found:
                problems.append(_restore(ctx, model, version, expected, found[0], fix))
    return problems


def _routed_models(repo: Path) -> list[str]:
    return [p.parent.name for p in repo.glob("*/routing.json")]


def _present(repo: Path | S3Repository, model: str, version: int) -> bool:
    """Whether ``model@version`` is in the repository (on a store: its manifest exists)."""
    if isinstance(repo, S3Repository):
        return version in repo.list_versions(model)
    return model_file(repo / model / str(version)).is_file()


def _valid_name(model: str) -> bool:
    try:
        check_model_name(model)
    except ServingError:
        return False
    return True


def _restore(
    ctx: Context, model: str, version: int, expected: str, found: str, fix: bool
) -> Problem:
    """Copy ``model@version`` back into the repository from its artifact (with ``fix``)."""
    subject = f"{model}@{version}"
    source = model_dir(ctx, model, version)
    if not fix:
        return Problem(
            "repository_checksum",
            subject,
            f"{found}; it does not serve (its traffic falls back); `spindle doctor --fix` "
            f"copies it back from {source}",
        )
    try:
        source = version_folder(ctx, model, version)  # fetched when lost here
        with routing_lock(ctx.workspace.model_repo, model):
            restore_version(source, ctx.workspace.model_repo, registered=expected)
    except ServingError as exc:
        return Problem(
            "repository_checksum",
            subject,
            f"{found}; its artifact cannot restore it ({exc}): retrain it as a new version",
        )
    return Problem("repository_checksum", subject, f"{found}; copied back from {source}", True)


def _check_leftovers(ctx: Context, fix: bool) -> list[Problem]:
    found = find_leftovers(ctx.workspace)
    removed = clean_leftovers(ctx) if fix and found else None
    busy = fix and found and removed is None
    return [
        Problem(
            "leftover",
            str(leftover.path),
            leftover.describe()
            + (
                "; not removed: another spindle process is at work (run `spindle doctor --fix` "
                "again once it ends)"
                if busy
                else "; removed"
                if fix
                else "; the next run or `spindle doctor --fix` removes it"
            ),
            bool(fix and not busy),
        )
        for leftover in found
    ]


def doctor(ctx: Context, *, fix: bool = False) -> list[Problem]:
    """Every inconsistency between the metadata store, the files and serving (empty = healthy).

    Args:
        fix: repair what is safe to repair: record relative to the workspace the absolute
            paths an older store kept into the folder this workspace was copied or moved
            from, mark dead runs failed, fail abandoned version numbers,
            finish or abandon deployments a crash left pending, route serving back to the
            registry's recorded deployment when routing.json disagrees with it (or is corrupt),
            copy back from its artifact a version whose copy in the model repository is not
            the registry's, fetch back from the object store a version folder that is lost
            here and put there one it lacks, and remove crash leftovers when no other process
            is at work.
    """
    stored = [Problem(*found) for found in check_versions(ctx, fix)]  # first: fetches back
    lost = frozenset(p.subject for p in stored if p.kind == "version_folder" and not p.fixed)
    return [
        *_check_moved(ctx, fix),
        *_check_runs(ctx, fix),
        *stored,
        *_check_model_versions(ctx, fix, lost),
        *_check_files(ctx),
        *_check_repository(ctx, fix),
        *_check_serving(ctx, fix),
        *_check_leftovers(ctx, fix),
    ]
