"""What a forget leaves to the user: the model versions and evaluations whose training sets or
holdouts it rewrote (retrain them), and the feature views computed from rows it removed
(recompute them with ``spindle features backfill``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spindle.orchestrate._context import Context


def impact_of(
    ctx: Context, rewritten: Sequence[str], rows: dict[str, int]
) -> tuple[list[str], list[str], list[str]]:
    """Model versions (``MODEL@V``) and evaluations that used a rewritten training set or
    holdout, and the feature views reading a source that lost rows.

    Args:
        rewritten: files rewritten, relative to the workspace (or absolute).
        rows: rows removed per place (``raw:<source>`` places name the sources).
    """
    root = ctx.workspace.root
    files = {(root / f).resolve() for f in rewritten}
    models: set[str] = set()
    evaluations: set[str] = set()
    for record in ctx.store.find_artifacts("training_set"):
        if Path(record.uri).resolve() not in files:
            continue
        graph = ctx.store.lineage(record.id, direction="downstream", max_depth=1)
        for node in graph.downstream:
            if node.kind == "model_version":
                models.add(node.id.removeprefix("model:"))
            elif node.kind == "evaluation":
                evaluations.add(node.id)
    sources = {name.split(":", 1)[1] for name, n in rows.items() if name.startswith("raw:") and n}
    recompute = sorted(
        name for name, view in ctx.features.views().items() if sources & set(view.sources)
    )
    return sorted(models), sorted(evaluations), recompute


_HANDLED = ("metadata.db", "online.db")  # redacted and vacuumed by the forget itself


def files_quoting(ctx: Context, ids: Sequence[str]) -> list[str]:
    """Files under the state folder and the model repository, other than the tables, Parquet
    files, stores and journal the forget rewrites, whose bytes hold one of ``ids`` (a model's
    vocabulary, an evaluation's slice, a scratch copy): one line each, to be reported as not
    scrubbed (the ids themselves are never named)."""
    ws = ctx.workspace
    wanted = [i.encode("utf-8") for i in ids]
    tables = ws.tables_dir
    skipped = (*([tables.path] if tables.is_local else []), ws.state_dir / "forget")
    found: list[str] = []
    repo = ws.model_repo_location  # on an object store: its versions are not scanned
    for folder in dict.fromkeys([ws.state_dir, *([repo.path] if repo.is_local else [])]):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if (
                not path.is_file()
                or path.suffix == ".parquet"
                or path.name.startswith(_HANDLED)
                or any(path.is_relative_to(s) for s in skipped)
            ):
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if any(i in data for i in wanted):
                rel = path.relative_to(ws.root) if path.is_relative_to(ws.root) else path
                found.append(f"{rel}: holds a deleted value (not rewritten; remove or rebuild it)")
    return found
