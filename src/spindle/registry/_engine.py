"""The database connection: engine setup per backend, and database errors translated for users.

SQLite (the embedded default) runs in WAL mode with a 30 s busy timeout and foreign keys on.
SQLAlchemy emits BEGIN itself (the pysqlite driver's own transaction handling breaks SAVEPOINT
and repeatable reads); a write transaction begins with ``BEGIN IMMEDIATE`` so that it takes the
write lock before its first read, which makes read-then-write sequences (the next version
number, the current alias) serialisable across processes instead of failing late with
``database is locked``.
"""

from __future__ import annotations

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

from spindle.core import RegistryError

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


def _hint(message: str) -> str:
    text = message.lower()
    if "locked" in text or "busy" in text:
        return (
            f"another process held the write lock for longer than {BUSY_TIMEOUT_MS // 1000} s; "
            "retry, and look for a stuck process that keeps the database open"
        )
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return "check that the file's directory exists and is writable by this user"
    if "no such table" in text or "no such column" in text or "does not exist" in text:
        return "the database was made by another spindle version or is not a spindle store"
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
        raise RegistryError(
            f"metadata store {masked_url} is unavailable: {exc.orig}; {_hint(str(exc.orig))}"
        ) from exc
    except DBAPIError as exc:
        raise RegistryError(
            f"metadata store {masked_url} failed: {exc.orig}; {_hint(str(exc.orig))}"
        ) from exc
