"""Lineage: recording edges between artifacts and walking the graph up (inputs) and down (uses).

The walk itself (breadth-first, one query per level and direction) is ``_walk.walk_graph``,
shared with the light reader; here are its SQLAlchemy queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from spindle.core import NotFound, RegistryError
from spindle.registry._records import ArtifactRecord, LineageEdge, LineageGraph
from spindle.registry._schema import ArtifactRow, EdgeRow, utc_now
from spindle.registry._walk import chunks, walk_graph


def artifact_rows(session: Session, ids: Iterable[str]) -> dict[str, ArtifactRow]:
    """Load the artifacts with these ids (missing ones are absent from the result)."""
    wanted = list(dict.fromkeys(ids))
    rows: dict[str, ArtifactRow] = {}
    for chunk in chunks(wanted):
        for row in session.scalars(select(ArtifactRow).where(ArtifactRow.id.in_(chunk))):
            rows[row.id] = row
    return rows


def require_artifacts(session: Session, ids: Sequence[str], what: str) -> None:
    """Raise NotFound naming every id in ``ids`` that is not recorded."""
    found = artifact_rows(session, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(
            f"{what}: no artifact {', '.join(repr(m) for m in missing)} in the registry; "
            "record it first with record_artifact() (or as an output of finish_run())"
        )


def add_edge(session: Session, parent_id: str, child_id: str, relation: str) -> None:
    """Record ``parent_id -> child_id``; recording the same edge again is a no-op."""
    if not relation:
        raise RegistryError("a lineage edge needs a relation, e.g. 'produced_by:train'")
    if parent_id == child_id:
        raise RegistryError(f"artifact {parent_id!r} cannot be its own parent")
    require_artifacts(session, [parent_id, child_id], f"edge {parent_id} -> {child_id}")
    existing = session.get(EdgeRow, (parent_id, child_id, relation))
    if existing is None:
        session.add(
            EdgeRow(parent_id=parent_id, child_id=child_id, relation=relation, created_at=utc_now())
        )
        session.flush()


def walk(session: Session, root: ArtifactRow, direction: str, max_depth: int) -> LineageGraph:
    """Walk lineage from ``root`` in ``direction`` (upstream, downstream or both)."""

    def edges_of(ids: Sequence[str], upstream: bool) -> list[LineageEdge]:
        near, far = (
            (EdgeRow.child_id, EdgeRow.parent_id)
            if upstream
            else (EdgeRow.parent_id, EdgeRow.child_id)
        )
        stmt = select(EdgeRow).where(near.in_(ids)).order_by(far, EdgeRow.relation, near)
        return [LineageEdge(e.parent_id, e.child_id, e.relation) for e in session.scalars(stmt)]

    def artifacts_of(ids: Sequence[str]) -> dict[str, ArtifactRecord]:
        return {i: row.to_record() for i, row in artifact_rows(session, ids).items()}

    return walk_graph(root.to_record(), direction, max_depth, edges_of, artifacts_of)
