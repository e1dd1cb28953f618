"""What the registry says when a model, version or artifact is missing (store and reader alike).

The messages are built here from what the caller looked up, so the SQLAlchemy store and the
light stdlib reader (``_reader``) raise the same :class:`NotFound` for the same database.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from spindle.core import NotFound


def unknown_model(model: str, known: Sequence[str]) -> NotFound:
    """No version of ``model``; ``known`` are the models that have one."""
    if not known:
        return NotFound(
            f"no model {model!r}: the registry has no models yet; a model appears with its "
            "first version (made by `spindle train` or `spindle run`)"
        )
    close = difflib.get_close_matches(model, list(known), n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    return NotFound(f"no model {model!r}{suggestion}; models: {', '.join(known)}")


def unknown_version(model: str, version: int, low: int, high: int) -> NotFound:
    """``model`` exists with versions ``low``-``high`` but not ``version``."""
    existing = f"version {low}" if low == high else f"versions {low}-{high}"
    return NotFound(f"model {model} has {existing}; no version {version}")


def id_prefixes(artifact_id: str) -> list[str]:
    """Id prefixes to look for similar artifacts by: ``model:m@9`` -> ``model:m@``, ``model:``."""
    prefixes = []
    if "@" in artifact_id:
        prefixes.append(artifact_id.split("@")[0] + "@")
    if ":" in artifact_id:
        prefixes.append(artifact_id.split(":")[0] + ":")
    return prefixes


def similar_artifacts(artifact_id: str, prefix: str, newest: Sequence[str], count: int) -> NotFound:
    """No artifact ``artifact_id``, but ``count`` ids start with ``prefix`` (``newest`` first)."""
    more = f" and {count - len(newest)} more" if count > len(newest) else ""
    return NotFound(
        f"no artifact {artifact_id!r}; recorded ids starting with {prefix!r}: "
        f"{', '.join(newest)}{more}"
    )


def unknown_artifact(artifact_id: str, kinds: Sequence[str]) -> NotFound:
    """No artifact ``artifact_id`` and no similar id; ``kinds`` are the recorded kinds."""
    recorded = f"recorded kinds: {', '.join(kinds)}" if kinds else "no artifacts are recorded yet"
    return NotFound(
        f"no artifact {artifact_id!r} and no similar id; {recorded} "
        "(list them with find_artifacts(kind))"
    )


def unknown_run(run_id: str, newest: Sequence[tuple[str, str, str]]) -> NotFound:
    """No run ``run_id``; ``newest`` are the newest runs' (id, step, status), newest first."""
    if not newest:
        return NotFound(f"no run {run_id!r}: no runs are recorded yet")
    listed = ", ".join(f"{i} ({step}, {status})" for i, step, status in newest)
    return NotFound(f"no run {run_id!r}; the newest runs are {listed}")
