"""Where recorded artifacts lie: URIs stored relative to the workspace, resolved when read.

A workspace is a folder that can be copied or moved (``cp -r``, ``mv``, a backup restored on
another machine). So a path inside the workspace root is stored relative to it (``.spindle/
artifacts/models/ranker/3``) and resolved against the root of the workspace that opened the
store; a path outside it (a ``model_repo`` configured elsewhere), a URI with a scheme
(``s3://...``) and an empty URI are stored as given. Stores written before this kept absolute
paths: those read back unchanged, and ``spindle doctor`` finds the ones that point into another
root (:func:`moved_root`) and ``--fix`` makes them relative.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from spindle.core import Artifact
from spindle.registry._records import ArtifactRecord, LineageGraph


def _plain_path(uri: str) -> bool:
    return bool(uri) and "://" not in uri


def stored_uri(uri: str, root: Path | None) -> str:
    """``uri`` as the store keeps it: relative to ``root`` when it lies inside it.

    Example:
        >>> stored_uri("/ws/.spindle/artifacts/models/m/1", Path("/ws"))
        '.spindle/artifacts/models/m/1'
        >>> stored_uri("/srv/model_repo/m/1", Path("/ws"))
        '/srv/model_repo/m/1'
    """
    if root is None or not _plain_path(uri) or not Path(uri).is_absolute():
        return uri
    try:
        relative = Path(uri).relative_to(root)
    except ValueError:
        return uri  # outside the workspace: absolute
    return relative.as_posix()


def resolved_uri(uri: str, root: Path | None) -> str:
    """A stored ``uri`` as a path of the workspace at ``root`` (absolute ones unchanged).

    Example:
        >>> resolved_uri(".spindle/artifacts/models/m/1", Path("/copy"))
        '/copy/.spindle/artifacts/models/m/1'
    """
    if root is None or not _plain_path(uri) or PurePosixPath(uri).is_absolute():
        return uri
    return str(root / uri)


def stored(artifact: Any, root: Path | None) -> Any:
    """``artifact`` (or an artifact id, unchanged) with the URI the store keeps."""
    uri = getattr(artifact, "uri", None)
    if not isinstance(uri, str) or isinstance(artifact, str):
        return artifact  # an id, or not an artifact: record_artifact says why
    kept = stored_uri(uri, root)
    if kept == uri:
        return artifact
    if isinstance(artifact, ArtifactRecord):
        return replace(artifact, uri=kept)
    return Artifact(artifact.kind, artifact.id, kept, artifact.content_hash, artifact.properties())


def resolved(record: ArtifactRecord, root: Path | None) -> ArtifactRecord:
    """``record`` with its URI resolved against ``root``."""
    uri = resolved_uri(record.uri, root)
    return record if uri == record.uri else replace(record, uri=uri)


def resolved_graph(graph: LineageGraph, root: Path | None) -> LineageGraph:
    """``graph`` with every node's URI resolved against ``root``."""
    if root is None:
        return graph

    def fix(nodes: Iterable[Any]) -> list[Any]:
        return [replace(n, uri=resolved_uri(n.uri, root)) for n in nodes]

    return replace(
        graph,
        root=replace(graph.root, uri=resolved_uri(graph.root.uri, root)),
        upstream=fix(graph.upstream),
        downstream=fix(graph.downstream),
    )


def moved_root(uris: Iterable[str], root: Path) -> tuple[str, int] | None:
    """The root an older store's absolute paths point into, when this workspace was moved.

    A recorded absolute path ``OLD/rel`` whose ``rel`` exists under ``root`` (and ``OLD`` is not
    ``root``) votes for ``OLD``; the prefix with the most votes wins. Returns it with the
    number of recorded paths under it, or None when no path points into another copy.
    """
    recorded = list(uris)
    votes: Counter[str] = Counter()
    for uri in recorded:
        if not _plain_path(uri) or not Path(uri).is_absolute():
            continue
        path = Path(uri)
        if path.is_relative_to(root):
            continue
        parts = path.parts
        for cut in range(1, len(parts)):
            if (root.joinpath(*parts[cut:])).exists():
                votes[str(Path(*parts[:cut]))] += 1
                break
    if not votes:
        return None
    old, _ = votes.most_common(1)[0]
    under = sum(1 for _ in uris_under(recorded, old))
    return old, under


def uris_under(uris: Iterable[str], old_root: str) -> Iterable[str]:
    """The plain absolute paths of ``uris`` inside ``old_root``."""
    prefix = old_root.rstrip("/") + "/"
    return (u for u in uris if _plain_path(u) and (u == old_root or u.startswith(prefix)))
