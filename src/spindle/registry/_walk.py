"""The lineage walk, apart from any database: breadth-first over edges a backend fetches.

The store (SQLAlchemy) and the light reader (sqlite3) hand :func:`walk_graph` two functions —
the edges touching a batch of artifacts, and the artifacts of a batch of ids — so both walk
alike. One fetch per level, direction and batch: the cost grows with the depth and size of
the answer, never with the size of the store. Each artifact appears once, at its shortest
distance from the root; cycles (which the runner never creates) cannot loop it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from spindle.core import RegistryError
from spindle.registry._records import (
    DIRECTIONS,
    ArtifactRecord,
    LineageEdge,
    LineageGraph,
    LineageNode,
)

CHUNK = 500  # stay far below SQLite's limit on bound parameters per statement

# edges_of(ids, upstream): the edges whose child (upstream) or parent (downstream) is in
# ids, ordered by the other end's id, then relation, then the near end's id
EdgesOf = Callable[[Sequence[str], bool], Iterable[LineageEdge]]
# artifacts_of(ids): the recorded artifacts among ids (missing ones absent)
ArtifactsOf = Callable[[Sequence[str]], Mapping[str, ArtifactRecord]]


def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """``ids`` in batches of at most :data:`CHUNK`."""
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def node(record: ArtifactRecord, relation: str | None, depth: int) -> LineageNode:
    """The lineage node of ``record``, reached by ``relation`` at ``depth``."""
    return LineageNode(
        id=record.id,
        kind=record.kind,
        uri=record.uri,
        relation=relation,
        depth=depth,
        properties=dict(record.properties),
        run_id=record.run_id,
    )


def _walk(
    root_id: str, upstream: bool, max_depth: int, edges_of: EdgesOf, artifacts_of: ArtifactsOf
) -> tuple[list[LineageNode], list[LineageEdge]]:
    seen = {root_id}
    frontier = [root_id]
    reached: list[tuple[str, str, int]] = []
    edges: list[LineageEdge] = []
    for depth in range(1, max_depth + 1):
        if not frontier:
            break
        next_frontier: list[str] = []
        for chunk in chunks(frontier):
            for edge in edges_of(chunk, upstream):
                edges.append(edge)
                other = edge.parent_id if upstream else edge.child_id
                if other not in seen:
                    seen.add(other)
                    reached.append((other, edge.relation, depth))
                    next_frontier.append(other)
        frontier = next_frontier
    records: dict[str, ArtifactRecord] = {}
    for chunk in chunks(list(dict.fromkeys(i for i, _, _ in reached))):
        records.update(artifacts_of(chunk))
    nodes = [node(records[i], relation, depth) for i, relation, depth in reached if i in records]
    return nodes, edges


def walk_graph(
    root: ArtifactRecord,
    direction: str,
    max_depth: int,
    edges_of: EdgesOf,
    artifacts_of: ArtifactsOf,
) -> LineageGraph:
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
        upstream, up_edges = _walk(root.id, True, max_depth, edges_of, artifacts_of)
        edges.extend(up_edges)
    if direction in ("downstream", "both"):
        downstream, down_edges = _walk(root.id, False, max_depth, edges_of, artifacts_of)
        edges.extend(down_edges)
    unique_edges = list(dict.fromkeys(edges))
    return LineageGraph(
        root=node(root, None, 0), upstream=upstream, downstream=downstream, edges=unique_edges
    )
