"""The metadata store: runs, artifacts, lineage, model versions and aliases (SQLAlchemy).

One schema serves SQLite (``sqlite:///.spindle/metadata.db``, the embedded default) and
PostgreSQL. Every step's run, its outputs and their lineage are recorded through
:class:`MetadataStore`; the records it returns are frozen dataclasses. Light commands read
through :func:`open_reader`, a :class:`RegistryReader` that for a SQLite file needs no SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.registry._locations import moved_root
    from spindle.registry._pages import (
        DayStep,
        RunFacets,
        RunPage,
        VersionPage,
        artifact_fields,
        day_steps,
        latest_by_version,
        run_facets,
        runs_page,
        versions_page,
    )
    from spindle.registry._reader import RegistryReader, open_reader
    from spindle.registry._records import (
        AliasEvent,
        ArtifactRecord,
        DeploymentRecord,
        IntentRecord,
        LineageEdge,
        LineageGraph,
        LineageNode,
        ModelVersionRecord,
        RunRecord,
    )
    from spindle.registry._sqlite_reader import SQLiteReader
    from spindle.registry._store import MetadataStore

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "AliasEvent": "spindle.registry._records",
    "DayStep": "spindle.registry._pages",
    "RunFacets": "spindle.registry._pages",
    "RunPage": "spindle.registry._pages",
    "VersionPage": "spindle.registry._pages",
    "artifact_fields": "spindle.registry._pages",
    "day_steps": "spindle.registry._pages",
    "latest_by_version": "spindle.registry._pages",
    "run_facets": "spindle.registry._pages",
    "runs_page": "spindle.registry._pages",
    "versions_page": "spindle.registry._pages",
    "ArtifactRecord": "spindle.registry._records",
    "DeploymentRecord": "spindle.registry._records",
    "IntentRecord": "spindle.registry._records",
    "LineageEdge": "spindle.registry._records",
    "LineageGraph": "spindle.registry._records",
    "LineageNode": "spindle.registry._records",
    "MetadataStore": "spindle.registry._store",
    "ModelVersionRecord": "spindle.registry._records",
    "RegistryReader": "spindle.registry._reader",
    "RunRecord": "spindle.registry._records",
    "SQLiteReader": "spindle.registry._sqlite_reader",
    "moved_root": "spindle.registry._locations",
    "open_reader": "spindle.registry._reader",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "AliasEvent",
    "ArtifactRecord",
    "DayStep",
    "DeploymentRecord",
    "IntentRecord",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "MetadataStore",
    "ModelVersionRecord",
    "RegistryReader",
    "RunFacets",
    "RunPage",
    "RunRecord",
    "SQLiteReader",
    "VersionPage",
    "artifact_fields",
    "day_steps",
    "latest_by_version",
    "moved_root",
    "open_reader",
    "run_facets",
    "runs_page",
    "versions_page",
]
