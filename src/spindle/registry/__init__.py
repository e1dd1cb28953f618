"""The metadata store: runs, artifacts, lineage, model versions and aliases (SQLAlchemy).

One schema serves SQLite (``sqlite:///.spindle/metadata.db``, the embedded default) and
PostgreSQL. Every step's run, its outputs and their lineage are recorded through
:class:`MetadataStore`; the records it returns are frozen dataclasses.
"""

from __future__ import annotations

from spindle.registry._records import (
    AliasEvent,
    ArtifactRecord,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelVersionRecord,
    RunRecord,
)
from spindle.registry._store import MetadataStore

__all__ = [
    "AliasEvent",
    "ArtifactRecord",
    "LineageEdge",
    "LineageGraph",
    "LineageNode",
    "MetadataStore",
    "ModelVersionRecord",
    "RunRecord",
]
