"""Storage: free space and writability of the workspace's directories, and storage failures
(a full disk, a read-only or immutable file system, a permission) translated into one line.

A full disk shows up as many different exceptions: ``OSError`` ENOSPC from Python, SQLite's
"database or disk is full", DuckDB's "IO Error ... No space left on device", delta-rs'
"No space left on device (os error 28)". :func:`storage_error` recognises them all (and a
``SpindleError`` raised from one) and returns a :class:`StorageError` naming the path, the free
space on its mount and what to do. :class:`StorageCheck` refuses *before* a step writes: below
the workspace's free-space floor (``min_free_mb`` in spindle.yaml), or when a directory cannot
be written. The second matters beyond the message: SQLite maps its WAL index (``-shm``) into
memory, and a process that writes to that map after the file became immutable dies of SIGBUS;
checking first means the metadata store is never touched on a file system that refuses writes.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spindle.core._errors import SpindleError, StorageError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM)
# what third-party libraries say instead of raising an OSError (SQLite, DuckDB, delta-rs)
_TEXTS = {
    "no space left on device": "full",
    "database or disk is full": "full",
    "disk quota exceeded": "full",
    "read-only file system": "read-only",
    "attempt to write a readonly database": "read-only",
    "permission denied": "denied",
    "operation not permitted": "denied",
}
_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")
_BARE_PATH = re.compile(r"""(?:^|\s)(/[^\s:'"]+)""")
_NEARLY_FULL_MB = 1.0
_FIX = "move state_dir (spindle.yaml) to another disk, then re-run the command"


def free_mb(path: str | Path) -> float:
    """Megabytes an unprivileged writer may still use on the file system holding ``path``
    (its nearest existing ancestor)."""
    stats = os.statvfs(_existing(Path(path)))
    return stats.f_bavail * stats.f_frsize / 1e6


def mount_of(path: str | Path) -> Path:
    """The mount point of the file system holding ``path`` (its nearest existing ancestor)."""
    current = _existing(Path(path)).resolve()
    device = current.stat().st_dev
    while current.parent != current and current.parent.stat().st_dev == device:
        current = current.parent
    return current


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _message(kind: str, path: Path, detail: str) -> str:
    mount = mount_of(path)
    if kind == "full":
        return (
            f"disk full writing {path} ({detail}): {free_mb(path):.0f} MB free on {mount}; "
            f"free space there (`spindle doctor --fix` removes crash leftovers) or {_FIX}"
        )
    if kind == "read-only":
        return (
            f"cannot write {path}: the file system mounted at {mount} is read-only ({detail}); "
            f"remount it read-write or {_FIX}"
        )
    return (
        f"cannot write {path}: {detail} (its owner, mode, or an immutable flag: `lsattr -d "
        f"{path}`); make it writable by this user (chmod, chown, `chattr -i`) or {_FIX}"
    )


def _classify(exc: BaseException, *, texts: bool) -> tuple[str, str, str | None] | None:
    """(kind, detail, path) of one exception, or None when it is no storage failure; an
    exception that is no OSError is judged by its message when ``texts``."""
    if isinstance(exc, OSError) and exc.errno is not None:
        path = exc.filename if isinstance(exc.filename, str) else None
        detail = exc.strerror or str(exc)
        if exc.errno in _FULL:
            return "full", detail, path
        if exc.errno == errno.EROFS:
            return "read-only", detail, path
        if exc.errno in _DENIED and path is not None:  # a file's permission, not a signal's
            return "denied", detail, path
        return None
    if not texts:
        return None
    text = str(exc).lower()
    for needle, kind in _TEXTS.items():
        # spindle's own message may quote a full disk, but "denied" there is a policy's word
        if needle in text and not (kind == "denied" and isinstance(exc, SpindleError)):
            return kind, needle, _named_path([exc])
    return None


def _named_path(chain: list[BaseException]) -> str | None:
    """The first absolute path a message of the chain names (an error wrapping a bare ENOSPC
    often says which file it was writing)."""
    for link in chain:
        named = _QUOTED_PATH.search(str(link)) or _BARE_PATH.search(str(link))
        if named:
            return named.group(1)
    return None


def storage_error(exc: BaseException, where: str | Path | None = None) -> StorageError | None:
    """The :class:`StorageError` that ``exc`` (or an exception it was raised from) amounts to,
    or None when it is not a full, read-only or unwritable disk.

    Args:
        exc: any exception; its ``__cause__``/``__context__`` chain is searched too.
        where: the path to name when the exception does not say which file it was writing
            (e.g. the workspace's state_dir).

    Example:
        >>> storage_error(OSError(28, "No space left on device", "/data/x"))  # doctest: +SKIP
        StorageError('disk full writing /data/x (No space left on device): 3 MB free on ...')
    """
    if isinstance(exc, StorageError):
        return exc
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:  # a chain is short; a cycle must not loop
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    # an OSError anywhere in the chain names its file; a library's message only may
    for texts in (False, True):
        for link in chain:
            found = _classify(link, texts=texts)
            if found is None:
                continue
            kind, detail, path = found
            path = path or _named_path(chain)
            target = Path(path) if path else Path(where) if where else None
            if target is None:
                return None
            return StorageError(_message(kind, target, detail), read_only=kind != "full")
    return None


@dataclass(frozen=True)
class StorageCheck:
    """The directories a workspace writes and the free space it needs on each of their disks.

    Args:
        paths: directories spindle writes (state_dir, the model repository, the metadata
            store's directory); the first is named when an error does not say where.
        min_free_mb: the floor (``min_free_mb`` in spindle.yaml); 0 turns the check off.
        files: files written in place (the SQLite store and its ``-wal``/``-shm``), checked
            for writability when they exist.
    """

    paths: Sequence[Path]
    min_free_mb: int
    files: Sequence[Path] = ()

    def writable(self) -> None:
        """Raise StorageError when a directory or file cannot be written (read-only mount,
        immutable flag, permissions)."""
        for path in (*self.paths, *self.files):
            target = _existing(path) if path in self.paths else path
            if not target.exists() or os.access(target, os.W_OK):
                continue
            read_only = os.statvfs(target).f_flag & os.ST_RDONLY
            raise StorageError(
                _message("read-only", target, os.strerror(errno.EROFS))
                if read_only
                else _message("denied", target, os.strerror(errno.EACCES)),
                read_only=True,
            )

    def enough_space(self) -> None:
        """Raise StorageError when a disk spindle writes has less than ``min_free_mb`` free."""
        if self.min_free_mb <= 0:
            return
        for path in self.paths:
            free = free_mb(path)
            if free < self.min_free_mb:
                raise StorageError(
                    f"only {free:.0f} MB free on {mount_of(path)} ({path}); spindle needs at "
                    f"least {self.min_free_mb} MB (spindle.yaml min_free_mb) — free space or "
                    "move state_dir"
                )

    def translate(self, exc: BaseException) -> StorageError | None:
        """:func:`storage_error` of ``exc``, naming the first path when ``exc`` names none.

        An error no one recognises counts as a full disk when a disk spindle writes has less
        than 1 MB left: some writers fail on a short write in their own words (torch.save:
        "unexpected pos 564864 vs 564752").
        """
        found = storage_error(exc, self.paths[0] if self.paths else None)
        if found is not None or isinstance(exc, SpindleError):
            return found
        for path in self.paths:
            if free_mb(path) < _NEARLY_FULL_MB:
                detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                return StorageError(_message("full", path, detail.strip()))
        return None
