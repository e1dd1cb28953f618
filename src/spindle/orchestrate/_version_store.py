"""Model versions on the object store: a version's folder is also kept under
``<artifacts_url>/models/<model>/<version>/`` and fetched back where it is missing.

With ``artifacts_url`` on an object store, the train step publishes every version it writes
(:func:`publish_version`): each file of the package, then its manifest last, so a version on
the store without its manifest object is incomplete and never used. Readers of a completed
version call :func:`version_folder`, which returns the local folder as before and, when a
machine lost it (a lost disk, a node without the workspace's folder), fetches it from the
store first: every file checked against the manifest's sha256 and the manifest against the
content hash the registry recorded for the version, written to a temp folder renamed into
place, so nothing half-fetched is ever visible. With a local artifacts folder nothing changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from spindle.core import (
    Location,
    NotFound,
    ServingError,
    atomic_directory,
    manifest_file,
    read_package,
    verify_package,
)
from spindle.orchestrate._context import Context, ReadContext
from spindle.orchestrate._model_common import model_dir

_MANIFEST = manifest_file(".").name
"""The manifest's file name (the package module owns it)."""
_BLOCK = 1 << 20
"""The bytes copied at a time."""


@dataclass(frozen=True)
class StoredVersion:
    """A version's folder on the object store and the content hash the registry recorded for
    it (None: the registry has no record to check against); what a fit on a node without
    the workspace's folder fetches its warm-start base from."""

    location: Location
    content_hash: str | None = None

    def fetched(self, cache: Path) -> Path:
        """The version's folder in the local ``cache`` (fetched once, verified).

        Raises:
            ServingError: an object differs from its manifest, or the manifest from the
                registry's record, or the version is not on the store.
            DataError: the object store cannot be read.
        """
        digest = hashlib.sha256(self.location.url.encode()).hexdigest()[:16]
        target = cache / digest / self.location.name
        if not target.is_dir():
            fetch_version(self.location, target, registered=self.content_hash)
        return target


def version_location(ctx: Context | ReadContext, model: str, version: int) -> Location | None:
    """Where ``model@version`` is kept on the object store (None: artifacts are local)."""
    where = ctx.workspace.artifacts_location
    return None if where.is_local else where / "models" / model / str(version)


def is_published(where: Location) -> bool:
    """Whether the version at ``where`` is complete on the store (its manifest, put last, is)."""
    return (where / _MANIFEST).is_file()


def publish_version(ctx: Context, model: str, version: int) -> Location | None:
    """Put the local folder of ``model@version`` on the object store (no-op when local).

    Every file of the package is put, then its manifest, so the version exists on the store
    only once all of its files do. The local files are checked against the manifest first:
    a damaged folder is never published.

    Returns:
        The version's location on the store, or None for a local artifacts folder.

    Raises:
        ServingError: the local folder does not match its manifest (one line, the file).
        DataError: the object store cannot be written.
    """
    where = version_location(ctx, model, version)
    if where is None:
        return None
    folder = model_dir(ctx, model, version)
    package = read_package(folder)
    problems = verify_package(folder, package)
    if problems:
        raise ServingError(
            f"{problems[0]}: {model}@{version} was not put on {where}; retrain it as a new version"
        )
    for name in sorted(package.files):
        (where / name).put_file(folder / name)
    (where / _MANIFEST).put_file(manifest_file(folder))  # last: the version is complete
    return where


def unpublish_version(ctx: Context, model: str, version: int) -> Location | None:
    """Remove the store's copy of ``model@version`` when the registry holds it as failed (a
    released or abandoned number: never fetched, so only its space is at stake).

    Returns:
        The location removed, or None (local artifacts, or the version is not failed).

    Raises:
        DataError: the object store cannot be written.
    """
    where = version_location(ctx, model, version)
    if where is None or ctx.store.get_version(model, version).status != "failed":
        return None
    where.delete()
    return where


def stored_version(ctx: Context | ReadContext, model: str, version: int) -> StoredVersion | None:
    """``model@version`` on the object store with the registry's content hash (None: the
    artifacts are local, or the registry has the version but not as ready)."""
    where = version_location(ctx, model, version)
    if where is None:
        return None
    usable, recorded = _recorded_hash(ctx, model, version)
    return StoredVersion(where, recorded) if usable else None


def version_folder(ctx: Context | ReadContext, model: str, version: int) -> Path:
    """The local folder of a completed ``model@version``, fetched from the object store first
    when it is missing here and the store has it.

    Missing everywhere (or the registry holds the version as reserved or failed), the local
    path is returned as it is, so callers keep their own errors for a missing version.

    Raises:
        ServingError: the store's copy differs from its manifest or from the registry's
            record (one line naming the object and what to do); nothing is written locally.
        DataError: the object store cannot be read.
    """
    local = model_dir(ctx, model, version)
    if local.is_dir():
        return local
    stored = stored_version(ctx, model, version)
    if stored is None or not is_published(stored.location):
        return local
    try:
        fetch_version(stored.location, local, registered=stored.content_hash)
    except OSError:
        if not local.is_dir():  # not another process fetching it at the same time
            raise
    return local


def fetch_version(where: Location, target: Path, *, registered: str | None = None) -> Path:
    """Copy the version at ``where`` into the local folder ``target`` (absent), verified,
    by one rename.

    Raises:
        ServingError: the manifest is missing or unreadable, its checksums hash to other than
            ``registered``, or a file's sha256 differs from the manifest's.
        DataError: the object store cannot be read.
    """
    manifest = where / _MANIFEST
    if not is_published(where):
        raise ServingError(
            f"{manifest}: missing; the version is not on the store (or its upload never "
            "finished): run `spindle doctor --fix` where its local folder is"
        )
    with atomic_directory(target) as tmp:
        (tmp / _MANIFEST).write_bytes(manifest.read_bytes())
        try:
            package = read_package(tmp)
        except ServingError as exc:
            raise ServingError(f"{manifest}: {exc}; {_DAMAGED}") from exc
        if registered is not None and package.content_hash != registered:
            raise ServingError(
                f"{manifest}: not the version the registry recorded: its checksums hash to "
                f"{package.content_hash}, the registry recorded {registered}; {_DAMAGED}"
            )
        for name, expected in sorted(package.files.items()):
            found = _copy(where / name, tmp / name)
            if found != expected:
                raise ServingError(
                    f"{where / name}: sha256 {found}, its manifest lists {expected}; {_DAMAGED}"
                )
    return target


_DAMAGED = (
    "the version's copy on the store is damaged (versions are immutable): put the object "
    "back from a backup of the bucket, or train without it (`--from-scratch`)"
)


def _copy(source: Location, target: Path) -> str:
    """Copy the object ``source`` to ``target``; return the sha256 of the bytes copied.

    Raises:
        ServingError: the object is missing.
        DataError: the object store cannot be read.
    """
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with source.open_input() as stream, target.open("wb") as out:
            while block := stream.read(_BLOCK):
                digest.update(block)
                out.write(block)
    except FileNotFoundError as exc:
        raise ServingError(f"{source}: missing, its manifest lists it; {_DAMAGED}") from exc
    return digest.hexdigest()


def _recorded_hash(ctx: Context | ReadContext, model: str, version: int) -> tuple[bool, str | None]:
    """Whether the version may be read (ready in the registry, or unknown to it), and the
    content hash the registry recorded for it (None: no record)."""
    try:
        record = ctx.store.get_version(model, version)
    except NotFound:
        return True, None
    if record.status != "ready" or record.artifact_id is None:
        return False, None
    return True, ctx.store.get_artifact(record.artifact_id).content_hash
