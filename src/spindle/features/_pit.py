"""The point-in-time join: DuckDB ``ASOF LEFT JOIN`` with a time-to-live, streamed as Arrow.

For each event the join takes, per entity, the latest feature row with ``feature_ts <= ts``
(never a value from after the event). A row older than the TTL is dropped to nulls, and the
age of the row is kept so a model (or a person) can tell a missing value from a stale one.
Every event is kept. Only the pinned feature columns are selected (``name__vN``), so a model
pinning version 1 reads version 1 whatever else the table holds. The result is streamed as
Arrow record batches, so a caller can write a training set larger than memory batch by batch.
On an in-memory connection the join itself runs in Arrow (``_asof.py``, same rows, faster).
Training sets (``build_rows``) and ``benchmarks/pit_join.py`` use this same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.features import _asof
from spindle.features._asof import AsofSide, in_memory, joined_arrow

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


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
    age = f"epoch({event_alias}.{_q(event_time)}) - epoch({alias}.feature_ts)"
    if ttl_s is None:
        out = [f"{alias}.{_q(c)} AS {_q(c)}" for c in columns]
    else:
        out = [
            f"CASE WHEN {age} <= {int(ttl_s)} THEN {alias}.{_q(c)} END AS {_q(c)}" for c in columns
        ]
    out.append(f"{age} AS {_q(age_column)}")
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
    on = [f"e.{_q(k)} = f.{_q(k)}" for k in keys]
    return (
        f"SELECT {', '.join(select)} FROM {events} e ASOF LEFT JOIN {features} f "
        f"ON {' AND '.join(on)} AND e.{_q(event_time)} >= f.feature_ts"
    )


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
