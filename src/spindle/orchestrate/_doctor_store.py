"""``spindle doctor``'s checks of a model repository on an object store.

The store answers and its bucket exists; no version prefix was left without its manifest by a
push that died (``--fix`` removes those objects); every version's objects are the files the
registry recorded (a download verified against it). A damaged version is reported; ``--fix``
puts back the objects whose bytes are not the registered ones from the version's artifact
(verified against the registry first; each object replaced only if it is still the damaged
one), so the version is again exactly what was pushed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from spindle.core import DataError, ServingError
from spindle.orchestrate._context import Context
from spindle.orchestrate._deploy import registered
from spindle.orchestrate._version_store import version_folder
from spindle.serve import S3Repository

Found = tuple[str, str, str, bool]
"""kind, subject, message, fixed: one problem for ``Problem``."""


def check_store(ctx: Context, repo: S3Repository, fix: bool) -> list[Found]:
    """Every problem of the repository ``repo`` (see the module docstring).

    Returns:
        One ``(kind, subject, message, fixed)`` per problem; only the first when the store
        cannot be reached.
    """
    try:
        repo.bucket.check()
        return [*_leftovers(repo, fix), *_integrity(ctx, repo, fix)]
    except DataError as exc:
        return [("model_repository", repo.url, str(exc), False)]


def _leftovers(repo: S3Repository, fix: bool) -> list[Found]:
    found = []
    for prefix in repo.leftovers():
        model = prefix.partition("/")[0]
        if fix:
            with repo.lock(model):
                repo.remove_leftovers(model)
        found.append(
            (
                "repository_leftover",
                prefix,
                f"{repo.url}/{prefix} has objects but no manifest (a push that died); "
                + ("removed" if fix else "`spindle doctor --fix` removes them"),
                fix,
            )
        )
    return found


def _integrity(ctx: Context, repo: S3Repository, fix: bool) -> list[Found]:
    hashes, known = registered(ctx), set(ctx.store.models())
    found: list[Found] = []
    for model in repo.models():
        for version in repo.list_versions(model):
            subject, url = f"{model}@{version}", repo.version_url(model, version)
            try:
                expected = hashes(model, version) if model in known else None
            except ServingError:
                expected = None
            if expected is None:
                found.append(
                    (
                        "unregistered_version",
                        subject,
                        f"{url} is in the model repository but not a ready version in the "
                        "registry: it never serves; delete its objects",
                        False,
                    )
                )
                continue
            with tempfile.TemporaryDirectory(prefix="spindle-doctor-") as tmp:
                try:
                    repo.download(model, version, Path(tmp) / "v", registered=expected)
                except ServingError as exc:
                    found.append(_repaired(ctx, repo, model, version, expected, str(exc), fix))
    return found


def _repaired(
    ctx: Context,
    repo: S3Repository,
    model: str,
    version: int,
    expected: str,
    damage: str,
    fix: bool,
) -> Found:
    """A damaged version's problem; with ``fix``, its objects put back from its artifact."""
    subject = f"{model}@{version}"
    if not fix:
        return (
            "repository_checksum",
            subject,
            f"{damage}; it does not serve (its traffic falls back); `spindle doctor --fix` puts "
            "its objects back from the version's artifact",
            False,
        )
    try:
        with repo.lock(model):
            names = repo.repair_version(version_folder(ctx, model, version), registered=expected)
    except (ServingError, DataError, OSError) as exc:
        return (
            "repository_checksum",
            subject,
            f"{damage}; its artifact cannot repair it ({exc}): delete the objects under "
            f"{repo.version_url(model, version)}/ and `spindle push {model} --version {version}` "
            "again, or retrain it as a new version",
            False,
        )
    return ("repository_checksum", subject, f"{damage}; put back {', '.join(names)}", True)
