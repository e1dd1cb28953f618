"""Crash leftovers: what a killed process leaves behind, found by the doctor, removed by the next run.

A process killed mid-write leaves temp files and directories that no one will rename or remove:
``<repo>/<model>/.*.tmp`` (a version being copied into the model repository, a routing.json
being replaced), ``*.tmp`` under the artifacts (a training set being written, a version being
exported, a checkpoint, ``scratch/*.tmp``) and DuckDB's spill directories
(``<state>/tmp/duckdb/*``). They are never read, but they take disk space. So do the local
copies of objects on a store (``<state>/tmp/objects/<key>/``: a training set read by the fit,
the evaluation, ...) once no step has used them for :data:`OBJECT_COPY_DAYS` days: a copy is
touched each time it is used, and fetched again if it is needed after it was removed.

A leftover is removed only when no live process can own it. Every :class:`~spindle.orchestrate.
Context` holds a shared lock on ``<state>/active.lock`` (:class:`Presence`) while it is open,
and the kernel drops it when its process dies, however it dies; cleaning takes that lock
exclusively, without waiting, so it runs only when this context is the only one open in the
workspace (other processes, and other contexts of this process, included). The model
repository's temp files are removed under the model's routing lock instead, which every writer
of them holds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spindle.core import Workspace
    from spindle.orchestrate._context import Context

log = logging.getLogger(__name__)
PRESENCE_FILE = "active.lock"
OBJECT_COPY_DAYS = 2
"""A local copy of an object on the store unused this long is removed with the leftovers."""


class Presence:
    """A context's mark that it is at work in a workspace: a shared ``flock`` on
    ``<state>/active.lock``, held until :meth:`close` (or until the process dies)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(state_dir / PRESENCE_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    @contextmanager
    def alone(self) -> Iterator[bool]:
        """Yield whether this is the only open context in the workspace; while it is, no other
        can open (they wait on the lock), so nothing new is written meanwhile."""
        if self._fd is None:
            yield False
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


@dataclass(frozen=True)
class Leftover:
    """A temp file or directory a process left; ``where`` says which kind."""

    path: Path
    where: str  # "model repository", "artifacts", "duckdb spill" or "object copy"
    size_bytes: int

    def describe(self) -> str:
        if self.where == "object copy":
            return (
                f"local copy of an object on the store, {self.size_bytes:,} bytes, unused for "
                f"{OBJECT_COPY_DAYS} days or more (fetched again when needed)"
            )
        kind = "directory" if self.path.is_dir() else "file"
        return f"{self.where} temp {kind} of {self.size_bytes:,} bytes left by a process that died"


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.lstat().st_size
    except OSError:
        return 0


def _tmp_below(root: Path) -> Iterator[Path]:
    """``*.tmp`` files and directories below ``root`` (a .tmp directory is not entered)."""
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        for name in list(dirs):
            if name.endswith(".tmp"):
                dirs.remove(name)
                yield here / name
        for name in files:
            if name.endswith(".tmp"):
                yield here / name


def find_leftovers(workspace: Workspace) -> list[Leftover]:
    """Every crash leftover in the workspace (some may belong to a process at work now)."""
    from spindle.serve import leftovers as repository_leftovers

    repo = workspace.model_repo_location  # on an object store: doctor's store checks
    found = [
        Leftover(path, "model repository", _size(path))
        for path in (repository_leftovers(repo.path) if repo.is_local else [])
    ]
    found += [
        Leftover(path, "artifacts", _size(path))
        for path in sorted(_tmp_below(workspace.artifacts_dir))
    ]
    spill = workspace.state_dir / "tmp" / "duckdb"  # features' spill_root
    if spill.is_dir():
        found += [Leftover(path, "duckdb spill", _size(path)) for path in sorted(spill.iterdir())]
    copies = workspace.state_dir / "tmp" / "objects"  # Location.local_copy's cache
    if copies.is_dir():
        found += [
            Leftover(path, "object copy", _size(path))
            for path in sorted(copies.iterdir())
            if _unused_for(path, OBJECT_COPY_DAYS * 86400.0)
        ]
    return found


def _unused_for(path: Path, seconds: float) -> bool:
    """Whether nothing at or below ``path`` was modified (or touched) for ``seconds``."""
    try:
        times = [path.lstat().st_mtime]
        if path.is_dir() and not path.is_symlink():
            times += [p.lstat().st_mtime for p in path.rglob("*")]
    except OSError:
        return False
    return time.time() - max(times) > seconds


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(ctx: Context) -> list[Leftover] | None:
    """Remove the workspace's crash leftovers when no other context is open in it.

    Returns:
        What was removed, or None when another context is open (a process at work may own
        what looks left over: nothing is removed; a later run or ``doctor --fix`` does it).
    """
    from spindle.serve import remove_leftovers, routing_lock

    presence = ctx.presence
    if presence is None:
        return None
    with presence.alone() as alone:
        if not alone:
            return None
        found = find_leftovers(ctx.workspace)
        for model in sorted({f.path.parent.name for f in found if f.where == "model repository"}):
            repo = ctx.workspace.model_repo  # local: found only in a local repository
            with routing_lock(repo, model):
                remove_leftovers(repo, model)
        for leftover in found:
            if leftover.where != "model repository":
                _remove(leftover.path)
    if found:
        log.info(
            "removed %d crash leftovers: %s", len(found), ", ".join(str(f.path) for f in found)
        )
    return found
