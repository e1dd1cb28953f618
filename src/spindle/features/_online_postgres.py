"""The PostgreSQL online-store backend: one table per entity, upserted per partition in one
transaction, for a store that several serving machines share.

A partition is copied into a temporary table (``COPY``), compared with the entity's table,
then applied with ``INSERT ... ON CONFLICT DO UPDATE`` (only rows whose values differ), the keys
a complete snapshot lacks deleted and the watermark moved, all in one transaction that holds
the store's advisory lock (one writer at a time; readers are never blocked). Readers read in
one ``REPEATABLE READ`` transaction, so a request's lookups see the store before or after a
partition, never half of one. Tables are ``spindle_online_<entity>`` beside
``spindle_online_meta``, so the store may share a database with the metadata store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

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
from spindle.features._online_sqlite import column_values

_META = "spindle_online_meta"
_LOCK_ID = 7_411_020_601  # the store's advisory lock: one writer at a time


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(entity: str) -> str:
    return _q(f"spindle_online_{entity}")


def _sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE PRECISION"
    return "TEXT"


def _dsn(url: str) -> str:
    """A libpq connection string from a SQLAlchemy-style URL (``postgresql+psycopg://``)."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgresql") else url


class PostgresOnlineStore(KeyedRows):
    """An :class:`OnlineStoreBackend` on PostgreSQL (``postgresql://user@host/db``).

    Args:
        url: the database (``postgresql://`` or SQLAlchemy's ``postgresql+psycopg://``).

    Raises:
        FeatureError: psycopg is not installed, or the server cannot be reached (names the
            URL without its password and the fix).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        try:
            import psycopg
        except ImportError:
            raise FeatureError(
                f"online store {_masked(url)}: PostgreSQL needs psycopg; "
                "`pip install 'spindle[postgresql]'`"
            ) from None
        try:
            self._con = psycopg.connect(_dsn(url), autocommit=True)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FeatureError(
                f"online store {_masked(url)}: cannot connect ({first}); check "
                "online_store_url in spindle.yaml and that the server is reachable"
            ) from None
        self._lock = threading.Lock()
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS {_META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- reading ---------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._con.execute(f"SELECT value FROM {_META} WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def read_rows_many(
        self, asks: Sequence[tuple[str, Sequence[str] | None]]
    ) -> list[StoredRows | None]:
        with self._lock, self._con.transaction():
            self._con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return [self._read(entity, keys) for entity, keys in asks]

    def _read(self, entity: str, keys: Sequence[str] | None) -> StoredRows | None:
        schema_text, key = self._meta(f"schema:{entity}"), self._meta(f"key:{entity}")
        if schema_text is None:
            return None
        schema: dict[str, str] = json.loads(schema_text)
        names, types = list(schema), list(schema.values())
        key = key or names[0]
        select = f"SELECT {', '.join(_q(n) for n in names)} FROM {_table(entity)}"
        if keys is None:
            rows = self._con.execute(select).fetchall()
        else:
            unique = list(dict.fromkeys(keys))
            rows = self._con.execute(f"{select} WHERE {_q(key)} = ANY(%s)", (unique,)).fetchall()
            position = names.index(key)
            by_key = {r[position]: r for r in rows}
            rows = [by_key[k] for k in keys if k in by_key]
        return StoredRows(names, types, key, [tuple(r) for r in rows])

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
        with self._lock, self._con.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            watermark = self._meta(f"as_of:{entity}")
            if behind_watermark(watermark, partition, restate):
                return MaterializeResult(entity, partition, watermark, skipped=True)
            self._load(entity, key, table, partition)
            result = self._apply(entity, key, table, partition, schema, snapshot)
            self._write_meta(
                {
                    f"schema:{entity}": json.dumps(schema),
                    f"key:{entity}": key,
                    f"as_of:{entity}": partition,
                },
                f"{entity}@{partition}",
            )
            return result

    def _load(self, entity: str, key: str, table: pa.Table, partition: str) -> None:
        """Copy the partition into ``_incoming`` (dropped at commit); a null or duplicate key
        is a :class:`FeatureError` and the transaction writes nothing."""
        names = table.column_names
        ddl = ", ".join(f"{_q(n)} {_sql_type(table.schema.field(n).type)}" for n in names)
        self._con.execute(f"CREATE TEMP TABLE _incoming ({ddl}) ON COMMIT DROP")
        values = [column_values(table.column(n)) for n in names]
        with self._con.cursor().copy(
            f"COPY _incoming ({', '.join(_q(n) for n in names)}) FROM STDIN"
        ) as copy:
            for row in zip(*values, strict=True):
                copy.write_row(row)
        nulls, dupes = self._con.execute(
            f"SELECT count(*) FILTER (WHERE {_q(key)} IS NULL), "
            f"count(*) - count(DISTINCT {_q(key)}) FROM _incoming"
        ).fetchone() or (0, 0)
        if nulls or dupes:
            raise FeatureError(
                f"online store: partition {partition} of {entity!r} has a null or duplicate "
                f"{key!r} ({nulls} null, {dupes} repeated); a partition holds one row per key. "
                "Nothing was written."
            )

    def _apply(
        self,
        entity: str,
        key: str,
        table: pa.Table,
        partition: str,
        schema: dict[str, str],
        snapshot: bool,
    ) -> MaterializeResult:
        t = _table(entity)
        stored = self._meta(f"schema:{entity}")
        previous = 0
        if stored is not None:
            previous = int((self._con.execute(f"SELECT count(*) FROM {t}").fetchone() or (0,))[0])
        held = (stored, self._meta(f"key:{entity}"))
        if needs_rewrite(entity, partition, held, schema, key, snapshot):
            # the first partition, or a feature added or retyped: the table is rebuilt
            self._con.execute(f"DROP TABLE IF EXISTS {t}")
            self._con.execute(f"CREATE TABLE {t} AS SELECT * FROM _incoming")
            self._con.execute(f"ALTER TABLE {t} ADD PRIMARY KEY ({_q(key)})")
            return MaterializeResult(
                entity,
                partition,
                partition,
                inserted=table.num_rows,
                deleted=previous,
                rewritten=stored is not None,
            )
        return self._upsert(entity, key, table.column_names, partition, snapshot)

    def _upsert(
        self, entity: str, key: str, names: list[str], partition: str, snapshot: bool
    ) -> MaterializeResult:
        t, k = _table(entity), _q(key)
        values = [n for n in names if n not in (key, TIME_COLUMN)]
        differs = " OR ".join(f"t.{_q(n)} IS DISTINCT FROM i.{_q(n)}" for n in values) or "false"
        matched, changed, incoming = self._con.execute(
            f"SELECT count(t.{k}), count(t.{k}) FILTER (WHERE {differs}), count(*) "
            f"FROM _incoming i LEFT JOIN {t} t ON t.{k} = i.{k}"
        ).fetchone() or (0, 0, 0)
        cols = ", ".join(_q(n) for n in names)
        if values:  # unchanged rows are not rewritten: they keep their last change's feature_ts
            sets = ", ".join(f"{_q(n)} = excluded.{_q(n)}" for n in names if n != key)
            when = " OR ".join(f"{t}.{_q(n)} IS DISTINCT FROM excluded.{_q(n)}" for n in values)
            action = f"DO UPDATE SET {sets} WHERE {when}"
        else:
            action = "DO NOTHING"
        self._con.execute(
            f"INSERT INTO {t} ({cols}) SELECT {cols} FROM _incoming ON CONFLICT ({k}) {action}"
        )
        deleted = 0
        if snapshot:  # a complete snapshot: a key it lacks is gone
            deleted = self._con.execute(
                f"DELETE FROM {t} WHERE {k} NOT IN (SELECT {k} FROM _incoming)"
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
        """Delete the rows of ``keys`` of ``entity``, then ``VACUUM FULL`` its table so no old
        row version stays in the table's files. The server's WAL and backups keep what they
        hold until recycled: their retention is the database administrator's."""
        unique = list(dict.fromkeys(keys))
        with self._lock:
            with self._con.transaction():
                self._con.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                key = self._meta(f"key:{entity}")
                if key is None:
                    return 0
                deleted = self._con.execute(
                    f"DELETE FROM {_table(entity)} WHERE {_q(key)} = ANY(%s)", (unique,)
                ).rowcount
                if deleted:
                    self._write_meta({}, f"{entity} deleted")
            if deleted:
                self._con.execute(f"VACUUM FULL {_table(entity)}")  # outside a transaction
        return deleted

    def _write_meta(self, entries: dict[str, str], what: str) -> None:
        version = next_version(self._meta("version"), what)
        for name, value in {**entries, "version": version}.items():
            self._con.execute(
                f"INSERT INTO {_META} VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _masked(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}"
