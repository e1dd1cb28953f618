"""Lineage: recording edges between artifacts and walking the graph up (inputs) and down (uses).

The walk is breadth-first, one query per level and direction, so its cost grows with the depth
and size of the answer, never with the size of the store. Each artifact appears once, at its
shortest distance from the root; cycles (which the runner never creates) cannot loop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from spindle.core import NotFound, RegistryError
from spindle.registry._records import DIRECTIONS, LineageEdge, LineageGraph, LineageNode
from spindle.registry._schema import ArtifactRow, EdgeRow, utc_now

_CHUNK = 500  # stay far below SQLite's limit on bound parameters per statement


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def artifact_rows(session: Session, ids: Iterable[str]) -> dict[str, ArtifactRow]:
    """Load the artifacts with these ids (missing ones are absent from the result)."""
    wanted = list(dict.fromkeys(ids))
    rows: dict[str, ArtifactRow] = {}
    for chunk in _chunks(wanted):
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


def _node(row: ArtifactRow, relation: str | None, depth: int) -> LineageNode:
    return LineageNode(
        id=row.id,
        kind=row.kind,
        uri=row.uri,
        relation=relation,
        depth=depth,
        properties=dict(row.properties),
        run_id=row.run_id,
    )


def _walk(
    session: Session, root_id: str, *, upstream: bool, max_depth: int
) -> tuple[list[LineageNode], list[LineageEdge]]:
    near, far = (
        (EdgeRow.child_id, EdgeRow.parent_id) if upstream else (EdgeRow.parent_id, EdgeRow.child_id)
    )
    seen = {root_id}
    frontier = [root_id]
    reached: list[tuple[str, str, int]] = []
    edges: list[LineageEdge] = []
    for depth in range(1, max_depth + 1):
        if not frontier:
            break
        next_frontier: list[str] = []
        for chunk in _chunks(frontier):
            stmt = select(EdgeRow).where(near.in_(chunk)).order_by(far, EdgeRow.relation)
            for edge in session.scalars(stmt):
                edges.append(LineageEdge(edge.parent_id, edge.child_id, edge.relation))
                other = edge.parent_id if upstream else edge.child_id
                if other not in seen:
                    seen.add(other)
                    reached.append((other, edge.relation, depth))
                    next_frontier.append(other)
        frontier = next_frontier
    rows = artifact_rows(session, [artifact_id for artifact_id, _, _ in reached])
    nodes = [_node(rows[i], relation, depth) for i, relation, depth in reached if i in rows]
    return nodes, edges


def walk(session: Session, root: ArtifactRow, direction: str, max_depth: int) -> LineageGraph:
    """Walk lineage from ``root`` in ``direction`` (upstream, downstream or both)."""
    if direction not in DIRECTIONS:
        raise RegistryError(
            f"lineage direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}"
        )
    if max_depth < 0:
        raise RegistryError(f"max_depth must be >= 0; got {max_depth}")
    upstream: list[LineageNode] = []
    downstream: list[LineageNode] = []
    edges: list[LineageEdge] = []
    if direction in ("upstream", "both"):
        upstream, up_edges = _walk(session, root.id, upstream=True, max_depth=max_depth)
        edges.extend(up_edges)
    if direction in ("downstream", "both"):
        downstream, down_edges = _walk(session, root.id, upstream=False, max_depth=max_depth)
        edges.extend(down_edges)
    unique_edges = list(dict.fromkeys(edges))
    return LineageGraph(
        root=_node(root, None, 0), upstream=upstream, downstream=downstream, edges=unique_edges
    )
