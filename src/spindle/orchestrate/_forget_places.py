"""The places a forget scrubs, each a journalled step: Delta tables (raw, features, others),
the quarantine, the online store, Parquet artifacts (training sets, holdouts), landed raw
files, and scratch/spill leftovers. See ``_forget`` for the order and the purge."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spindle.core import Location, SourceDeclaration, kill_point, table_exists
from spindle.data import (
    forget_in_file,
    forget_in_parquet,
    forget_in_quarantine,
    forget_in_table,
    raw_files_of,
    table_columns,
)
from spindle.orchestrate._forget_journal import Journal
from spindle.orchestrate._leftovers import find_leftovers

if TYPE_CHECKING:
    from spindle.core import Workspace
    from spindle.orchestrate._context import Context


def scrubbed_sources(ctx: Context, source: str, column: str) -> list[SourceDeclaration]:
    """The request's source first, then every other source declaring a column of that name:
    the value is a trace wherever it is held."""
    others = [d for n, d in sorted(ctx.sources.items()) if n != source and column in d.columns]
    return [ctx.sources[source], *others]


def step(journal: Journal, name: str, count: Callable[[], int], act: Callable[[], Any]) -> int:
    """Run one place: count its rows, journal the count, act, journal it done (a rerun of a
    started place acts again — every act is idempotent — and keeps the first count)."""
    state = journal.place(name)
    if state is not None and state["state"] == "done":
        return int(state["rows"])
    rows = int(state["rows"]) if state is not None else count()
    if rows == 0 and state is None:
        return 0
    if state is None:
        journal.start(name, rows)
        kill_point("forget:counted")
    act()
    kill_point("forget:acted")
    journal.finish(name, rows)
    return rows


def delta_places(
    ctx: Context, sources: list[str], column: str
) -> dict[str, tuple[Location, list[str]]]:
    """The Delta tables to delete from: name -> (path, columns matched against the ids)."""
    tables = ctx.workspace.tables_dir
    found: dict[str, tuple[Location, list[str]]] = {}
    for name in sources:
        if table_exists(tables / "raw" / name):
            found[f"raw:{name}"] = (tables / "raw" / name, [column])
    features = tables / "features"
    for path in sorted(features.iterdir()) if features.is_dir() else []:
        if table_exists(path) and column in table_columns(path):
            found[f"features:{path.name}"] = (path, [column])
    for path in tables.delta_tables():
        rel = path.relative_to(tables).as_posix()
        if rel.split("/")[0] in ("raw", "features") or rel == "quarantine":
            continue
        found[f"table:{rel}"] = (path, table_columns(path, text_only=True))
    return found


def delete_from_tables(
    journal: Journal, tables: dict[str, tuple[Location, list[str]]], ids: list[str]
) -> None:
    """Delete the rows holding an id from each table of :func:`delta_places` (one commit each)."""
    for name, (path, columns) in tables.items():
        step(
            journal,
            name,
            lambda p=path, c=columns: forget_in_table(p, c, ids, count_only=True),  # type: ignore[misc]
            lambda p=path, c=columns: forget_in_table(p, c, ids),  # type: ignore[misc]
        )


def quarantine(
    ctx: Context, journal: Journal, sources: list[str], column: str, ids: list[str]
) -> None:
    tables = ctx.workspace.tables_dir
    step(
        journal,
        "quarantine",
        lambda: forget_in_quarantine(tables, sources, column, ids, count_only=True),
        lambda: forget_in_quarantine(tables, sources, column, ids),
    )


def online(ctx: Context, journal: Journal, column: str, ids: list[str]) -> None:
    store = ctx.online_store()
    try:
        for view in sorted(ctx.features.views()):
            step(
                journal,
                f"online:{view}",
                lambda v=view: store.forget(v, column, ids, count_only=True),  # type: ignore[misc]
                lambda v=view: store.forget(v, column, ids),  # type: ignore[misc]
            )
        # freed pages of rows removed before (a snapshot's deleted keys) may still hold them
        step(journal, "online:compact", lambda: 1, lambda: store.backend.delete_keys("meta", []))
    finally:
        store.close()


def parquet_artifacts(ctx: Context, journal: Journal, column: str, ids: list[str]) -> None:
    root = ctx.workspace.root
    for path in sorted(ctx.workspace.artifacts_dir.rglob("*.parquet")):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        kind = "trainset" if "trainsets" in path.parts else "artifact"
        step(
            journal,
            f"{kind}:{rel}",
            lambda p=path: forget_in_parquet(p, [column], ids, count_only=True),  # type: ignore[misc]
            lambda p=path: forget_in_parquet(p, [column], ids),  # type: ignore[misc]
        )


def raw_files(
    ctx: Context,
    journal: Journal,
    sources: list[SourceDeclaration],
    column: str,
    ids: list[str],
) -> list[str]:
    root = ctx.workspace.root
    not_scrubbed: list[str] = []
    for decl in sources:
        files, notes = raw_files_of(root, decl)
        not_scrubbed += notes
        for name in files:
            path = Path(name)
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else name
            step(
                journal,
                f"raw_file:{rel}",
                lambda n=name, d=decl: forget_in_file(n, d, column, ids, count_only=True),  # type: ignore[misc]
                lambda n=name, d=decl: forget_in_file(n, d, column, ids),  # type: ignore[misc]
            )
    return not_scrubbed


def leftovers(ctx: Context, journal: Journal) -> list[str]:
    """Remove scratch, checkpoints, spill and temp leftovers (copies of rows being worked on);
    returns a note when another spindle process had the workspace open meanwhile (what it
    writes from rows read before the deletion is not covered)."""
    ws = ctx.workspace
    done = journal.place("leftovers") or {}
    if done.get("state") != "done":
        alone = True
        if ctx.presence is not None:
            with ctx.presence.alone() as alone:
                removed = _remove_leftovers(ws)
        else:
            removed = _remove_leftovers(ws)
        done = {"removed": removed, "alone": alone}
        journal.finish("leftovers", 0, **done)
    if done.get("alone", True):
        return []
    return [
        "another spindle process had the workspace open during the forget: rows it read "
        "before the deletion may reappear in what it writes; forget when the workspace is idle"
    ]


def _remove_leftovers(ws: Workspace) -> list[str]:
    paths = [ws.artifacts_dir / "scratch", ws.artifacts_dir / "checkpoints", ws.state_dir / "tmp"]
    paths += [item.path for item in find_leftovers(ws)]
    removed: list[Path | str] = []
    on_store = ws.artifacts_location / "checkpoints"
    if not on_store.is_local and on_store.exists():  # a fit's checkpoints kept on the store
        on_store.delete()
        removed.append(on_store.url)
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif path.exists():
            path.unlink(missing_ok=True)
            removed.append(path)
    return sorted(
        p.relative_to(ws.root).as_posix()
        if isinstance(p, Path) and p.is_relative_to(ws.root)
        else str(p)
        for p in removed
    )
