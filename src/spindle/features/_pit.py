"""The point-in-time join with a time-to-live, streamed as Arrow: DuckDB's ``ASOF LEFT JOIN``,
or on an in-memory connection the Arrow as-of join of ``_asof.py`` (same rows, faster).

For each event the join takes, per entity, the latest feature row with ``feature_ts <= ts``
(never a value from after the event). A row older than the TTL is dropped to nulls, and the
age of the row is kept so a model (or a person) can tell a missing value from a stale one.
Every event is kept. Only the pinned feature columns are selected (``name__vN``), so a model
pinning version 1 reads version 1 whatever else the table holds. The result is streamed as
Arrow record batches, so a caller can write a training set larger than memory batch by batch.
Training sets (``build_rows``, :func:`create_joined`) and ``benchmarks/pit_join.py`` use this
same SQL and the same choice: Arrow where the connection is in memory and the key and time types
allow, DuckDB where the connection spills to a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.core import quote_identifier as q
from spindle.features import _asof
from spindle.features._asof import asof_columns, asof_match, asof_unsupported

BATCH_ROWS = 1 << 17


def bounded_connection(
    spill_dir: Path, memory_limit_mb: int, inputs_mb: float | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that stays within ``memory_limit_mb`` by spilling to ``spill_dir``.

    Its tables live in a database file in ``spill_dir`` (evictable, unlike an in-memory
    database's), its joins and sorts spill there too, and below 250 MB it runs one thread
    (each thread needs its own buffers). When the caller knows its inputs are small
    (``inputs_mb``, their size on disk, times 8 for decompression, under half the limit) the
    tables stay in memory instead, which saves writing them to the file (measured on a year of
    flights, 336k examples and four views: 15-30% of the build); joins and sorts still spill.
    Remove ``spill_dir`` after closing the connection.

    Example:
        >>> con = bounded_connection(Path(".spindle/tmp/duckdb/run-1"), 500)  # doctest: +SKIP
    """
    spill_dir.mkdir(parents=True, exist_ok=True)
    small = inputs_mb is not None and inputs_mb * 8 < memory_limit_mb / 2
    con = duckdb.connect(":memory:" if small else str(spill_dir / "spill.duckdb"))
    try:
        con.execute(f"SET threads TO {2 if memory_limit_mb >= 250 else 1}")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        con.execute("SET temp_directory = '" + str(spill_dir).replace("'", "''") + "'")
        # Row order comes from explicit ORDER BYs; keeping insertion order costs memory.
        con.execute("SET preserve_insertion_order = false")
    except BaseException:
        con.close()
        raise
    return con


def ttl_select(
    alias: str,
    columns: Sequence[str],
    ttl_s: int | None,
    age_column: str,
    event_alias: str = "e",
    event_time: str = "ts",
) -> list[str]:
    """Select expressions for pinned ``columns`` of feature row ``alias``, nulled past the TTL.

    Args:
        alias: the feature relation's alias in the join.
        columns: the pinned feature columns.
        ttl_s: a row older than this (seconds) at the event's time gives nulls; None: no limit.
        age_column: the name of the returned age (seconds from ``feature_ts`` to the event).
        event_alias: the events relation's alias.
        event_time: the events' time column.

    Returns:
        One select expression per column, then the age.
    """
    age = f"epoch({event_alias}.{q(event_time)}) - epoch({alias}.feature_ts)"
    if ttl_s is None:
        out = [f"{alias}.{q(c)} AS {q(c)}" for c in columns]
    else:
        out = [
            f"CASE WHEN {age} <= {int(ttl_s)} THEN {alias}.{q(c)} END AS {q(c)}" for c in columns
        ]
    out.append(f"{age} AS {q(age_column)}")
    return out


def pit_join_sql(
    events: str,
    features: str,
    entity: str | Sequence[str],
    columns: Sequence[str],
    ttl_s: int | None,
    event_time: str = "ts",
) -> str:
    """The ASOF join of relation ``events`` (entity keys, ``event_time``, ...) with ``features``
    (entity keys, ``feature_ts``, pinned columns): every event row, pinned columns within TTL.

    ``entity`` is the key column, or the key columns of a composite key.
    """
    keys = [entity] if isinstance(entity, str) else list(entity)
    select = ["e.*", *ttl_select("f", columns, ttl_s, "feature_age_s", "e", event_time)]
    on = [f"e.{q(k)} = f.{q(k)}" for k in keys]
    return (
        f"SELECT {', '.join(select)} FROM {events} e ASOF LEFT JOIN {features} f "
        f"ON {' AND '.join(on)} AND e.{q(event_time)} >= f.feature_ts"
    )


# -- the Arrow join on a DuckDB connection (_asof.py), where the inputs are in memory -------------
def in_memory(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s database is in memory (so its tables are small enough to copy out;
    a spilling connection keeps them in a file, and its joins stay in DuckDB).

    Like any ``execute``, it ends a result the connection left unfinished (``fetchone``),
    which would otherwise stop the relations run after it."""
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return bool(row) and row[0][0] is None


@dataclass(frozen=True)
class AsofSide:
    """One relation of feature rows joined as of the events' time.

    ``relation`` is a table or view on the connection; ``keep`` columns are taken as is,
    ``columns`` nulled past ``ttl_s``; ``age_column`` names the age.
    """

    relation: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    ttl_s: int | None
    age_column: str
    keep: tuple[str, ...] = ()


def _schema(con: duckdb.DuckDBPyConnection, relation: str) -> pa.Schema:
    return con.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().schema


def joined_arrow(
    con: duckdb.DuckDBPyConnection, events: str, sides: Sequence[AsofSide], event_time: str
) -> pa.Table | None:
    """The events of relation ``events`` with every side joined, computed in Arrow.

    Args:
        con: an in-memory DuckDB connection (see :func:`in_memory`) holding the relations.
        events: a relation (table, view or parenthesised query) of the events.
        sides: the feature relations to join, in order.
        event_time: the events' time column.

    Returns:
        The events' columns, then each side's ``keep``, ``columns`` and age; None (nothing
        read) when a relation's types are not ones :func:`asof_join` compares exactly, or a
        relation or column is missing: the caller runs DuckDB's join, which names the problem.

    Raises:
        duckdb.OutOfMemoryException: the relations do not fit in memory.
    """
    in_memory(con)  # ends an unfinished result, as the SQL join's execute would
    try:
        ev_schema = _schema(con, events)
        for side in sides:
            ft_schema = _schema(con, side.relation)
            if asof_unsupported(ev_schema, ft_schema, side.keys, event_time) is not None:
                return None
            if any(c not in ft_schema.names for c in (*side.keep, *side.columns)):
                return None
        out = con.sql(f"SELECT * FROM {events}").to_arrow_table()
        for side in sides:
            needed = dict.fromkeys((*side.keys, "feature_ts", *side.keep, *side.columns))
            names = ", ".join(q(c) for c in needed)
            features = con.sql(f"SELECT {names} FROM {side.relation}").to_arrow_table()
            match = asof_match(out, features, side.keys, event_time)
            added = asof_columns(
                features, match, side.columns, side.ttl_s, side.age_column, side.keep
            )
            for name, column in added.items():
                out = out.append_column(pa.field(name, column.type), column)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error:
        return None
    return out


def create_joined(
    con: duckdb.DuckDBPyConnection,
    target: str,
    expected_sql: str,
    events: str,
    sides: Sequence[AsofSide],
    event_time: str,
) -> bool:
    """Create table ``target`` with the rows of ``expected_sql`` (a DuckDB ASOF join of
    ``events`` with ``sides``), joined in Arrow instead when ``con`` is in memory.

    Args:
        con: the DuckDB connection.
        target: the table to create (a quoted name).
        expected_sql: the DuckDB query whose rows and types the table must have.
        events: the events' relation (rows already filtered as ``expected_sql`` filters them).
        sides: the feature relations, in the query's order.
        event_time: the events' time column.

    Returns:
        True when the table was created; False (nothing created) when the join must run in
        DuckDB: a spilling connection, types it does not compare exactly, or a result whose
        column names or types would differ from ``expected_sql``'s.

    Raises:
        duckdb.OutOfMemoryException: the relations do not fit in memory.
    """
    if _asof.ENGINE == "duckdb" or (_asof.ENGINE == "auto" and not in_memory(con)):
        return False
    table = joined_arrow(con, events, sides, event_time)
    if table is None:
        return False
    try:
        expected = con.sql(expected_sql)
        hidden = f"__spindle_asof_{id(table)}"
        con.register(hidden, table)
        try:
            got = con.sql(f"SELECT * FROM {hidden}")
            if got.columns != expected.columns or got.types != expected.types:
                return False
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM {hidden}")
        finally:
            con.unregister(hidden)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error:
        return False
    return True


def pit_join(
    con: duckdb.DuckDBPyConnection,
    events: str,
    features: str,
    entity: str | Sequence[str],
    columns: Sequence[str],
    ttl_s: int | None,
    batch_rows: int = BATCH_ROWS,
    event_time: str = "ts",
    engine: str | None = None,
) -> pa.RecordBatchReader:
    """Stream the point-in-time join of two relations registered on ``con`` as Arrow batches.

    On an in-memory connection the join runs in Arrow (:func:`spindle.features._asof.asof_join`,
    the same rows, faster than DuckDB's ASOF join); on a connection that spills to a file, and
    for key or time types the Arrow join does not compare exactly, it is DuckDB's ASOF join.

    Args:
        con: a DuckDB connection holding ``events`` and ``features`` (tables or views).
        events: relation with the entity keys and ``event_time`` (timestamp) per event.
        features: relation with the entity keys, ``feature_ts`` and the feature columns.
        entity: the key column (or the columns of a composite key).
        columns: the pinned feature columns to return.
        ttl_s: feature rows older than this (seconds) give nulls; None: no limit.
        batch_rows: rows per Arrow batch (memory stays bounded by a few batches).
        event_time: the events' time column.
        engine: ``auto`` (as above), ``duckdb`` (always DuckDB's join) or ``arrow`` (the Arrow
            join on any connection, where the types allow); None: ``_asof.ENGINE`` (auto).

    Returns:
        A reader of the events with the pinned columns and ``feature_age_s``. Read it to the
        end (or close it) before reusing ``con``.

    Example:
        >>> reader = pit_join(con, "events", "features", "account_id", ["account__spend__v1"], 86400)
        >>> for batch in reader: ...

    Raises:
        ValueError: an unknown ``engine``.
    """
    engine = _asof.ENGINE if engine is None else engine
    if engine not in _asof.ENGINES:
        raise ValueError(f"pit_join engine {engine!r}: use auto, duckdb or arrow")
    if engine == "arrow" or (engine == "auto" and in_memory(con)):
        keys = (entity,) if isinstance(entity, str) else tuple(entity)
        side = AsofSide(features, keys, tuple(columns), ttl_s, "feature_age_s")
        table = joined_arrow(con, events, [side], event_time)
        if table is not None:
            return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))
    relation = con.sql(pit_join_sql(events, features, entity, columns, ttl_s, event_time))
    return relation.to_arrow_reader(batch_rows)
