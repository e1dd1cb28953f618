"""The SQLite online-store backend: one table per entity, upserted per partition in one transaction.

Each call of :meth:`SQLiteOnlineStore.materialize` loads the partition into a temporary table,
counts what is new, changed, unchanged and gone, then applies ``INSERT ... ON CONFLICT DO
UPDATE`` (only rows whose values differ), deletes keys absent from a complete snapshot, and
moves the entity's watermark — all inside one ``BEGIN IMMEDIATE`` transaction. Readers (WAL
mode) read inside their own transaction, so they see the store before or after a partition,
never half of one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from spindle.core import FeatureError
from spindle.features._online_backend import (
    TIME_COLUMN,
    KeyedRows,
    MaterializeResult,
    StoredRows,
    behind_watermark,
    check_key_column,
    needs_rewrite,
    next_version,
)

_KEYS_PER_QUERY = 500  # under SQLite's default limit of bound parameters


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "REAL"
    return "TEXT"


def column_values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values SQLite binds: numbers, bools and text as they are; everything
    else (dates, timestamps) as ISO text."""
    kind = column.type
    values: list[Any] = column.to_pylist()
    if (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    ):
        return values
    return [None if v is None else str(v) for v in values]


@dataclass
class _Layout:
    """How one entity is stored: its columns, their Arrow type names, its key column."""

    names: list[str]
    types: list[str]
    key: str
    _select: str = ""

    def select(self, entity: str) -> str:
        if not self._select:
            self._select = f"SELECT {', '.join(_q(n) for n in self.names)} FROM {_q(entity)}"
        return self._select


class SQLiteOnlineStore(KeyedRows):
    """The default :class:`OnlineStoreBackend`: a SQLite file in WAL mode.

    Args:
        path: the SQLite file (created with its folder when missing).

    Example:
        >>> backend = SQLiteOnlineStore(".spindle/online.db")  # doctest: +SKIP
        >>> backend.materialize("account", "account_id", table, "2026-01-03")  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._layouts: dict[str, _Layout] = {}  # valid while meta's version is unchanged
        self._layouts_version: str | None = None
        # Autocommit mode: every transaction below is opened and closed explicitly.
        self._con = sqlite3.connect(
            self.path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- reading ---------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def read_rows_many(
        self, asks: Sequence[tuple[str, Sequence[str] | None]]
    ) -> list[StoredRows | None]:
        with self._lock:
            self._con.execute("BEGIN")  # one snapshot for the layouts and every entity's rows
            try:
                version = self._meta("version")
                if version is None or version != self._layouts_version:
                    self._layouts = {}  # something was written: read the layouts again
                    self._layouts_version = version
                return [self._read(entity, keys) for entity, keys in asks]
            finally:
                self._con.execute("COMMIT")

    def _layout(self, entity: str) -> _Layout | None:
        """How ``entity`` is stored (columns, types, key), read from ``meta`` once per version
        of the store; the caller holds the lock inside a read transaction."""
        found = self._layouts.get(entity)
        if found is None:
            schema_text, key = self._meta(f"schema:{entity}"), self._meta(f"key:{entity}")
            if schema_text is None:
                return None
            schema: dict[str, str] = json.loads(schema_text)
            found = _Layout(list(schema), list(schema.values()), key or next(iter(schema)))
            if self._layouts_version is not None:
                self._layouts[entity] = found
        return found

    def _read(self, entity: str, keys: Sequence[str] | None) -> StoredRows | None:
        layout = self._layout(entity)
        if layout is None:
            return None
        names, select = layout.names, layout.select(entity)
        if keys is None:
            rows = self._con.execute(select).fetchall()
        else:
            key = layout.key
            rows = []
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), _KEYS_PER_QUERY):
                chunk = unique[i : i + _KEYS_PER_QUERY]
                marks = ", ".join("?" for _ in chunk)
                rows += self._con.execute(f"{select} WHERE {_q(key)} IN ({marks})", chunk)
            if len(rows) > 1 or len(unique) != len(keys):
                position = names.index(key)
                by_key = {r[position]: r for r in rows}
                rows = [by_key[k] for k in keys if k in by_key]
        return StoredRows(names, layout.types, layout.key, rows)

    # -- writing ---------------------------------------------------------------------------
    def materialize(
        self,
        entity: str,
        key: str,
        table: pa.Table,
        partition: str,
        *,
        snapshot: bool = True,
        restate: bool = False,
    ) -> MaterializeResult:
        check_key_column(entity, key, table, partition)
        schema = {f.name: str(f.type) for f in table.schema}
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")  # one writer; readers keep their snapshot
            try:
                watermark = self._meta(f"as_of:{entity}")
                if behind_watermark(watermark, partition, restate):
                    self._con.execute("ROLLBACK")
                    return MaterializeResult(entity, partition, watermark, skipped=True)
                result = self._apply(entity, key, table, partition, schema, snapshot)
                self._write_meta(entity, key, partition, schema)
                self._con.execute("COMMIT")
                return result
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            finally:
                self._con.execute("DROP TABLE IF EXISTS temp._incoming")

    def _apply(
        self,
        entity: str,
        key: str,
        table: pa.Table,
        partition: str,
        schema: dict[str, str],
        snapshot: bool,
    ) -> MaterializeResult:
        names = table.column_names
        ddl = ", ".join(
            f"{_q(n)} {_sql_type(table.schema.field(n).type)}"
            + (" PRIMARY KEY NOT NULL" if n == key else "")
            for n in names
        )
        self._con.execute("DROP TABLE IF EXISTS temp._incoming")
        self._con.execute(f"CREATE TEMP TABLE _incoming ({ddl})")
        rows = zip(*(column_values(table.column(n)) for n in names), strict=True)
        cols = ", ".join(_q(n) for n in names)
        marks = ", ".join("?" for _ in names)
        try:
            self._con.executemany(f"INSERT INTO temp._incoming ({cols}) VALUES ({marks})", rows)
        except sqlite3.IntegrityError as exc:
            raise FeatureError(
                f"online store: partition {partition} of {entity!r} has a null or duplicate "
                f"{key!r} ({exc}); a partition holds one row per key. Nothing was written."
            ) from exc
        stored = self._meta(f"schema:{entity}")
        previous = 0
        if stored is not None:
            previous = self._con.execute(f"SELECT count(*) FROM {_q(entity)}").fetchone()[0]
        held = (stored, self._meta(f"key:{entity}"))
        if needs_rewrite(entity, partition, held, schema, key, snapshot):
            # First partition or a schema change (feature added or retyped): rewrite the table.
            self._con.execute(f"DROP TABLE IF EXISTS {_q(entity)}")
            self._con.execute(f"CREATE TABLE {_q(entity)} AS SELECT * FROM temp._incoming")
            self._con.execute(
                f"CREATE UNIQUE INDEX {_q(entity + '_key')} ON {_q(entity)} ({_q(key)})"
            )
            return MaterializeResult(
                entity,
                partition,
                partition,
                inserted=table.num_rows,
                deleted=previous,
                rewritten=stored is not None,
            )
        return self._upsert(entity, key, names, partition, snapshot)

    def _upsert(
        self, entity: str, key: str, names: list[str], partition: str, snapshot: bool
    ) -> MaterializeResult:
        t, k = _q(entity), _q(key)
        values = [n for n in names if n not in (key, TIME_COLUMN)]
        differs = " OR ".join(f"t.{_q(n)} IS NOT i.{_q(n)}" for n in values) or "false"
        matched, changed = self._con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {differs}) "
            f"FROM temp._incoming i JOIN {t} t ON t.{k} = i.{k}"
        ).fetchone()
        incoming = self._con.execute("SELECT count(*) FROM temp._incoming").fetchone()[0]
        cols = ", ".join(_q(n) for n in names)
        if values:
            # Unchanged rows are not rewritten: they keep the feature_ts of their last change.
            sets = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names if n != key)
            when = " OR ".join(f"{t}.{_q(n)} IS NOT excluded.{_q(n)}" for n in values)
            action = f"DO UPDATE SET {sets} WHERE {when}"
        else:
            action = "DO NOTHING"
        self._con.execute(
            f"INSERT INTO {t} ({cols}) SELECT {cols} FROM temp._incoming WHERE true "
            f"ON CONFLICT ({k}) {action}"
        )
        deleted = 0
        if snapshot:  # a complete snapshot: a key it lacks is gone (e.g. a deleted account)
            deleted = self._con.execute(
                f"DELETE FROM {t} WHERE {k} NOT IN (SELECT {k} FROM temp._incoming)"
            ).rowcount
        return MaterializeResult(
            entity,
            partition,
            partition,
            inserted=incoming - matched,
            updated=changed,
            unchanged=matched - changed,
            deleted=deleted,
        )

    def delete_keys(self, entity: str, keys: Sequence[str]) -> int:
        """Delete the rows of ``keys`` of ``entity``; zero the freed pages, truncate the WAL and
        vacuum the file, so no copy of the rows stays on disk (a deletion request)."""
        unique = list(dict.fromkeys(keys))
        with self._lock:
            self._con.execute("PRAGMA secure_delete = ON")  # freed pages are overwritten
            self._con.execute("BEGIN IMMEDIATE")
            try:
                layout = self._layout(entity)
                deleted = 0
                if layout is not None:
                    for i in range(0, len(unique), _KEYS_PER_QUERY):
                        chunk = unique[i : i + _KEYS_PER_QUERY]
                        marks = ", ".join("?" for _ in chunk)
                        deleted += self._con.execute(
                            f"DELETE FROM {_q(entity)} WHERE {_q(layout.key)} IN ({marks})", chunk
                        ).rowcount
                if deleted:
                    self._bump_version(f"{entity} deleted")
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            # the deleted rows' old pages may sit in the WAL and the free list: rewrite both
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._con.execute("VACUUM")
            self._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._layouts, self._layouts_version = {}, None
        return deleted

    def _bump_version(self, what: str) -> None:
        self._write_entries({"version": next_version(self._meta("version"), what)})

    def _write_meta(self, entity: str, key: str, partition: str, schema: dict[str, str]) -> None:
        version = next_version(self._meta("version"), f"{entity}@{partition}")
        self._write_entries(
            {
                f"schema:{entity}": json.dumps(schema),
                f"key:{entity}": key,
                f"as_of:{entity}": partition,
                "version": version,
            }
        )

    def _write_entries(self, entries: dict[str, str]) -> None:
        for name, value in entries.items():
            self._con.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )
