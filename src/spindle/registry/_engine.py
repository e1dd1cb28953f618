"""The database connection: engine setup per backend, and database errors translated for users.

SQLite (the embedded default) runs in WAL mode with a 30 s busy timeout and foreign keys on.
SQLAlchemy emits BEGIN itself (the pysqlite driver's own transaction handling breaks SAVEPOINT
and repeatable reads); a write transaction begins with ``BEGIN IMMEDIATE`` so that it takes the
write lock before its first read, which makes read-then-write sequences (the next version
number, the current alias) serialisable across processes instead of failing late with
``database is locked``.

A SQLite store on a full, read-only or unwritable disk raises ``StorageError`` (one line naming
the file, the free space on its mount and what to do), not a hint about a database server.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.pool import StaticPool

from spindle.core import RegistryError, StorageError, storage_error

BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "spindle_write"


class WriteConflict(RegistryError):
    """A concurrent writer won a race on a unique key; the transaction may be retried."""


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def create_store_engine(url: str) -> Engine:
    """Create the engine for ``url``; for a SQLite file, create its parent directory first.

    Raises:
        RegistryError: the URL is malformed, its driver is not installed, or the directory
            for a SQLite file cannot be created.
    """
    masked = mask_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise RegistryError(
            f"metadata URL {masked!r} is not a database URL ({exc}); expected e.g. "
            "sqlite:///.spindle/metadata.db or postgresql+psycopg://user@host/dbname"
        ) from exc
    if parsed.get_backend_name() != "sqlite":
        return _create(url, masked, pool_pre_ping=True)
    if _is_memory(parsed):
        engine = _create(url, masked, poolclass=StaticPool)
    else:
        directory = Path(str(parsed.database)).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create directory {directory} for metadata store {masked}: "
                f"{exc.strerror}; choose a writable metadata_url in spindle.yaml"
            ) from exc
        engine = _create(url, masked)
    _configure_sqlite(engine, wal=not _is_memory(parsed))
    return engine


def _create(url: str, masked: str, **options: Any) -> Engine:
    try:
        return create_engine(url, **options)
    except (NoSuchModuleError, ImportError) as exc:
        raise RegistryError(
            f"no database driver for metadata URL {masked} ({exc}); install it "
            "(e.g. `pip install psycopg` for postgresql+psycopg://) or use a sqlite:/// URL"
        ) from exc
    except ArgumentError as exc:
        raise RegistryError(f"metadata URL {masked} is invalid: {exc}") from exc


def _unwritable(engine: Engine) -> Path | None:
    """The SQLite store's directory or file that can no longer be written, if one cannot."""
    if engine.url.get_backend_name() != "sqlite" or _is_memory(engine.url):
        return None
    path = Path(str(engine.url.database)).expanduser()
    for target in (path.parent, path, Path(f"{path}-shm")):
        if target.exists() and not os.access(target, os.W_OK):
            return target
    return None


def ensure_writable(engine: Engine) -> None:
    """Raise StorageError before a transaction on a SQLite store that can no longer be written.

    Even a read writes SQLite's WAL index, a shared memory map (``-shm``): on a file system
    that refuses writes (remounted read-only, made immutable while the process ran) that write
    kills the process with SIGBUS, so the store is checked first (three ``access`` calls).
    """
    target = _unwritable(engine)
    if target is not None:
        code = errno.EROFS if _read_only(target) else errno.EACCES
        raise storage_error(OSError(code, os.strerror(code), str(target))) or StorageError(
            f"cannot write {target}", read_only=True
        )


def close_engine(engine: Engine) -> None:
    """Close every pooled connection, unless the SQLite file can no longer be written.

    Closing the last connection checkpoints the WAL through its index, a shared memory map
    (``-shm``); once the file system refuses writes (remounted read-only, made immutable while
    the process ran) a write to that map kills the process with SIGBUS. Such an engine is kept
    open on purpose until the process ends, when the kernel drops it without writing.
    """
    if _unwritable(engine) is not None:
        # an extra reference: the interpreter's exit must not free (and close) it either
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
        return
    engine.dispose()


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, see on_begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _sqlite_file(masked_url: str) -> Path | None:
    if not masked_url.startswith("sqlite:///"):
        return None
    database = masked_url.removeprefix("sqlite:///").split("?")[0]
    return None if database in ("", ":memory:") else Path(database).expanduser()


def _storage_failure(masked_url: str, message: str) -> StorageError | None:
    """The StorageError of a SQLite store's failure on a full or read-only disk, else None."""
    database = _sqlite_file(masked_url)
    text = message.lower()
    if database is None:
        return None
    # "disk I/O error" is also what SQLite says when it cannot grow its WAL index on a full disk
    full = "disk is full" in text or ("disk i/o error" in text and _free_bytes(database) < 2**20)
    if full:
        return storage_error(OSError(errno.ENOSPC, "database or disk is full", str(database)))
    if "readonly" in text or "read-only" in text:
        read_only_mount = _read_only(database.parent)
        code = errno.EROFS if read_only_mount else errno.EACCES
        return storage_error(OSError(code, "attempt to write a readonly database", str(database)))
    return None


def _free_bytes(path: Path) -> int:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return 2**62
    return stats.f_bavail * stats.f_frsize


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _hint(message: str, masked_url: str = "") -> str:
    text = message.lower()
    if _sqlite_file(masked_url) is not None and ("disk" in text or "full" in text):
        return "the disk holding the SQLite file is failing; check `dmesg` and free space there"
    if "locked" in text or "busy" in text:
        return (
            f"another process held the write lock for longer than {BUSY_TIMEOUT_MS // 1000} s; "
            "retry, and look for a stuck process that keeps the database open"
        )
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return "check that the file's directory exists and is writable by this user"
    if "no such table" in text or "no such column" in text or "does not exist" in text:
        return "the database was made by another spindle version or is not a spindle store"
    if "disk is full" in text or "no space left" in text:
        return "the database server's disk is full: free space there"
    if masked_url.startswith("sqlite"):
        return "check metadata_url in spindle.yaml and that its file is a SQLite database"
    return "check metadata_url in spindle.yaml and that the database server is reachable"


@contextmanager
def translate_errors(masked_url: str) -> Iterator[None]:
    """Turn SQLAlchemy database errors into ``RegistryError`` naming the store and the fix.

    A unique-key collision becomes :class:`WriteConflict`, which callers may retry.
    """
    try:
        yield
    except IntegrityError as exc:
        if "foreign key" in str(exc.orig).lower():
            raise RegistryError(
                f"metadata store {masked_url}: a write refers to a missing record ({exc.orig})"
            ) from exc
        raise WriteConflict(
            f"metadata store {masked_url}: a concurrent write conflicted ({exc.orig}); retry"
        ) from exc
    except OperationalError as exc:
        raise _storage_failure(masked_url, str(exc.orig)) or RegistryError(
            f"metadata store {masked_url} is unavailable: {exc.orig}; "
            f"{_hint(str(exc.orig), masked_url)}"
        ) from exc
    except DBAPIError as exc:
        raise _storage_failure(masked_url, str(exc.orig)) or RegistryError(
            f"metadata store {masked_url} failed: {exc.orig}; {_hint(str(exc.orig), masked_url)}"
        ) from exc
