"""``spindle doctor``'s checks of a model repository on an object store.

The store answers and its bucket exists; no version prefix was left without its manifest by a
push that died (``--fix`` removes those objects); every version's objects are the files the
registry recorded (a download verified against it). A version on the store is immutable, so a
damaged one is reported with what to do, never rewritten in place.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from spindle.core import DataError, ServingError
from spindle.orchestrate._context import Context
from spindle.orchestrate._deploy import registered
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
        return [*_leftovers(repo, fix), *_integrity(ctx, repo)]
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


def _integrity(ctx: Context, repo: S3Repository) -> list[Found]:
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
                    found.append(
                        (
                            "repository_checksum",
                            subject,
                            f"{exc}; it does not serve (its traffic falls back); versions on "
                            f"the store are immutable: delete the objects under {url}/ and "
                            f"`spindle push {model} --version {version}` again",
                            False,
                        )
                    )
    return found
