"""RegistryReader: the reads light commands need, and :func:`open_reader`, the lightest for a URL.

``spindle models list`` must answer in half a CPU-second; importing SQLAlchemy's ORM alone costs
about that. :func:`open_reader` returns a :class:`SQLiteReader` (``_sqlite_reader``) for an
existing ``sqlite:///`` store — the stdlib :mod:`sqlite3` module on a read-only connection,
returning the same records and raising the same :class:`~spindle.core.NotFound` as
:class:`MetadataStore` — and the full store for anything else (PostgreSQL, an in-memory or
missing database, a schema that lacks a column read there). A reader has no write methods, so
nothing can write through it. tests/registry/test_registry_reader.py checks both
implementations against this one contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from spindle.registry._records import (
    AliasEvent,
    ArtifactRecord,
    DeploymentRecord,
    LineageGraph,
    ModelVersionRecord,
    RunRecord,
)
from spindle.registry._sqlite_reader import SQLiteReader


@runtime_checkable
class RegistryReader(Protocol):
    """What the registry knows of models, versions, aliases, artifacts and deployments; no writes.

    :class:`MetadataStore` satisfies it; :func:`open_reader` returns the lightest one for a URL.
    Artifact URIs come back resolved against ``root``, the workspace that opened the store
    (``_locations``); None returns them as recorded.
    """

    root: Path | None

    def models(self) -> list[str]:
        """Names of every model with at least one version, sorted."""
        ...

    def versions(self, model: str) -> list[ModelVersionRecord]:
        """Every version of ``model``, oldest first; NotFound for an unknown model."""
        ...

    def get_version(self, model: str, version: int) -> ModelVersionRecord:
        """Return ``model`` ``version``; NotFound says which versions exist."""
        ...

    def aliases(self, model: str) -> dict[str, int]:
        """Every set alias of ``model`` and its version; NotFound for an unknown model."""
        ...

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None if it was never set or was cleared."""
        ...

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes of ``model`` (of one ``alias`` if given), oldest first."""
        ...

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """Return the artifact ``artifact_id``; NotFound lists similar ids that exist."""
        ...

    def find_artifacts(self, kind: str | None = None, **properties: Any) -> list[ArtifactRecord]:
        """Artifacts of ``kind`` whose properties equal every given value, oldest first."""
        ...

    def latest_artifact(self, kind: str, **properties: Any) -> ArtifactRecord | None:
        """The most recently recorded artifact of ``kind`` matching ``properties``, or None."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """Return run ``run_id``; NotFound names the newest runs."""
        ...

    def lineage(
        self, artifact_id: str, *, direction: str = "both", max_depth: int = 20
    ) -> LineageGraph:
        """Walk lineage from ``artifact_id``: ``upstream`` (inputs), ``downstream`` or ``both``."""
        ...

    def runs(
        self,
        *,
        model: str | None = None,
        step: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first, at most ``limit`` (None: all)."""
        ...

    def deployments(
        self, model: str | None = None, *, status: str | None = None
    ) -> list[DeploymentRecord]:
        """Recorded deployments (of ``model``, with ``status``), oldest first."""
        ...

    def close(self) -> None:
        """Release the connection(s); the reader cannot be used afterwards."""
        ...


def sqlite_file(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL; None for any other URL.

    In-memory databases and URLs with options (``?mode=...``) are left to SQLAlchemy.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix) :]
    return None if path in ("", ":memory:") else Path(path)


def open_reader(url: str, *, root: Path | None = None) -> RegistryReader:
    """The lightest reader of the metadata store at ``url``: SQLiteReader, else MetadataStore.

    ``root`` is the workspace whose relative artifact paths are resolved (see MetadataStore).

    Raises:
        RegistryError: as :class:`MetadataStore` does, when it is the one opened.
    """
    path = sqlite_file(url)
    if path is not None and path.is_file():
        reader = SQLiteReader.open(path, root=root)
        if reader is not None:
            return reader
    from spindle.registry._store import MetadataStore  # the full store: SQLAlchemy

    return MetadataStore(url, root=root)
