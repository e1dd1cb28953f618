"""What ``spindle reproduce`` rebuilds from: a version's recorded facts and how today differs.

A version's manifest (its directory's ``manifest.json``, or the copy the train step keeps in the
registry as ``manifest:MODEL@V`` when the files are lost) holds the effective config, the
training set's days and table versions, seed, threads, workers, base version, code and package
versions. This module reads it, walks the warm-start chain, and says what differs now (code,
packages, Python, cores, retractions recorded since) as the known causes of a difference.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spindle.core import (
    NotFound,
    RegistryError,
    ServingError,
    SpindleError,
    TrainingError,
    code_version,
    package_version,
    read_package,
    verify_package,
)
from spindle.orchestrate._context import Context
from spindle.orchestrate._version_store import version_folder
from spindle.serve import registered_hash

MANIFEST_KIND = "model_manifest"


@dataclass(frozen=True)
class Recorded:
    """One ready version as recorded.

    Attributes:
        model, version: which.
        manifest: its manifest (lineage, checksums, environment).
        source: ``"files"`` (its directory) or ``"registry"`` (the registry's copy).
        directory: its version directory.
        intact: the directory holds the registered files (checked against the registry's hash).
        registered: the content hash the registry recorded when it was trained.
        problems: why the directory is not intact (empty when it is).
    """

    model: str
    version: int
    manifest: dict[str, Any]
    source: str
    directory: Path
    intact: bool
    registered: str
    problems: tuple[str, ...] = ()

    @property
    def base_version(self) -> int | None:
        base = self.manifest.get("base_version")
        return int(base) if base is not None else None

    @property
    def date(self) -> str:
        return str(self.manifest.get("date") or "")


def recorded_version(ctx: Context, model: str, version: int) -> Recorded:
    """Read what ``model@version`` was built from: its files, else the registry's copy.

    Raises:
        NotFound: no such model or version (the message lists what exists).
        RegistryError: the version is reserved or failed (nothing ready to reproduce).
        TrainingError: its files are gone and the registry keeps no copy of its manifest.
    """
    if model not in ctx.store.models():
        known = ", ".join(ctx.store.models()) or "none"
        raise NotFound(f"no model {model!r} in the registry; models: {known}")
    record = ctx.store.get_version(model, version)
    if record.status != "ready":
        why = f" ({record.error})" if record.error else ""
        raise RegistryError(
            f"{model}@{version} is {record.status} in the registry{why}: only a ready version "
            f"can be reproduced; see `spindle models show {model}` (and `spindle doctor --fix` "
            "for a version a killed run left reserved)"
        )
    registered = registered_hash(ctx.store, model, version)
    directory = version_folder(ctx, model, version)
    problems: list[str] = []
    try:
        package = read_package(directory)
        problems = verify_package(directory, package, registered=registered)
        if not problems:
            return Recorded(model, version, package.to_json(), "files", directory, True, registered)
    except ServingError as exc:
        problems = [str(exc)]
    try:
        kept = ctx.store.get_artifact(f"manifest:{model}@{version}")
    except NotFound:
        raise TrainingError(
            f"{model}@{version}: its files are gone or damaged ({problems[0]}) and the registry "
            "keeps no copy of its manifest (trained before spindle recorded them): it cannot be "
            "rebuilt from its record"
        ) from None
    return Recorded(
        model, version, dict(kept.properties), "registry", directory, False, registered,
        tuple(problems),
    )  # fmt: skip


def warm_start_chain(ctx: Context, model: str, version: int) -> list[int]:
    """The versions warm-started one from another up to ``version``, the full retrain first."""
    chain = [version]
    base = ctx.store.get_version(model, version).base_version
    while base is not None and base not in chain:
        chain.insert(0, base)
        base = ctx.store.get_version(model, base).base_version
    return chain


def environment_diff(manifest: dict[str, Any]) -> dict[str, Any]:
    """How the code, packages, Python and machine differ from the version's record.

    Returns:
        ``code_version`` {recorded, current, same}, ``packages_diff`` {name: {recorded,
        current}} (only those that differ), ``python`` {recorded, current, same} and
        ``cpus`` {recorded, current}.
    """
    recorded_code = str(manifest.get("code_version") or "unknown")
    current_code = code_version()
    packages = dict(manifest.get("packages") or {})
    differ = {
        name: {"recorded": str(was), "current": now}
        for name, was in sorted(packages.items())
        if (now := package_version(name)) != str(was)
    }
    recorded_python = str(manifest.get("python") or "unknown")
    hardware = dict(manifest.get("hardware") or {})
    return {
        "code_version": {
            "recorded": recorded_code,
            "current": current_code,
            "same": recorded_code == current_code,
        },
        "packages_diff": differ,
        "python": {
            "recorded": recorded_python,
            "current": platform.python_version(),
            "same": recorded_python == platform.python_version(),
        },
        "cpus": {"recorded": hardware.get("cpus"), "current": os.cpu_count()},
    }


def retractions_since(
    ctx: Context, recorded: Recorded, left_out: tuple[str, ...] = ()
) -> list[str]:
    """Retractions recorded after the version was trained, one line each.

    Read defensively (retractions are recorded by ``spindle retract``; a store or training set
    without them yields none): each recorded after the manifest's ``created_at`` is listed,
    with whether the rebuilt training set left its rows out (``left_out``: the training set's
    ``retractions``) while the original, trained before it, read them.
    """
    from spindle.orchestrate import _retract_step

    lister = getattr(_retract_step, "retractions", None)
    if not callable(lister):
        return []
    created = str(recorded.manifest.get("created_at") or "")
    recorded_set = dict(recorded.manifest.get("training_set") or {})
    before = set(recorded_set.get("retractions") or ())
    try:
        found = list(lister(ctx))
    except (TypeError, SpindleError):
        return []
    lines = []
    for item in found:
        when = str(getattr(item, "at", "") or "")
        ident = str(getattr(item, "id", item))
        if created and when and when <= created:
            continue
        effect = (
            ": the rebuilt training set leaves its rows out"
            if ident in left_out and ident not in before
            else ""
        )
        reason = getattr(item, "reason", "")
        lines.append(f"{ident} ({reason}) recorded {when or 'at an unknown time'}{effect}")
    return lines


def known_causes(
    recorded: Recorded,
    environment: dict[str, Any],
    threads_used: int,
    *,
    trainset_same: bool,
    rebuilt_bases: list[int],
    retractions: list[str],
) -> list[str]:
    """The known causes of a difference between the rebuild and the original, one line each."""
    manifest = recorded.manifest
    causes = []
    recorded_threads = manifest.get("threads")
    if recorded_threads is not None and int(recorded_threads) != threads_used:
        causes.append(
            f"threads: rebuilt with {threads_used}, the version was trained with {recorded_threads}"
        )
    cpus = environment["cpus"]
    if cpus["recorded"] is not None and cpus["recorded"] != cpus["current"]:
        causes.append(
            f"machine: {cpus['current']} cores here, {cpus['recorded']} where it was trained "
            f"(threads {threads_used})"
        )
    for name, diff in environment["packages_diff"].items():
        causes.append(f"package {name}: {diff['current']} now, {diff['recorded']} recorded")
    if not environment["python"]["same"]:
        python = environment["python"]
        causes.append(f"python: {python['current']} now, {python['recorded']} recorded")
    code = environment["code_version"]
    if not code["same"]:
        causes.append(f"code version: {code['current']} now, {code['recorded']} recorded")
    if not trainset_same:
        causes.append("training set: the rebuilt rows differ from the recorded training set")
    causes += [f"data changed since: {line}" for line in retractions]
    if rebuilt_bases:
        listed = ", ".join(f"{recorded.model}@{v}" for v in rebuilt_bases)
        causes.append(f"warm-start base rebuilt ({listed}), not the original files")
    return causes
