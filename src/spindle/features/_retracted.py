"""Retracted rows left out of what a training set or a feature view reads of a source.

A retraction (fraud found later, a deletion request) names rows of a source by the values of
one column. The orchestrator passes each source's recorded retractions here as plain data
(this package does not read the metadata store): ``(retraction id, column, keys, salt)``,
the keys being the ids themselves, or, with a salt, ``sha256(salt || id)`` in hex (a deletion
request keeps no plain id). A row is retracted when its column's text (or its salted digest)
is among the keys; a null never is.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from spindle.core import retracted_sql

Exclusion = tuple[str, str, Sequence[str], str | None]
"""One retraction's rows of a source: (retraction id, column, keys or digests, salt or None)."""


def exclusion_condition(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: Sequence[str],
    exclusions: Sequence[Exclusion],
) -> str:
    """Register each retraction's keys on ``con``; the SQL condition of a row kept.

    A retraction on a column the table lacks leaves it unchanged.

    Args:
        source: the source's name (names the registered key tables).
        columns: the columns of the source's table.
        exclusions: the source's retractions.

    Returns:
        ``true`` without retractions, else ``NOT coalesce(<retracted>, false) AND ...``.

    Example:
        >>> con = duckdb.connect()
        >>> exclusion_condition(con, "orders", ["id"], [("retraction-1", "id", ["7"], None)])
        'NOT coalesce(CAST("id" AS VARCHAR) IN (SELECT key FROM "__spindle_retracted_orders_0"), false)'
    """
    kept: list[str] = []
    for i, (_, column, keys, salt) in enumerate(exclusions):
        if column not in columns:
            continue
        table = f"__spindle_retracted_{source}_{i}"
        con.register(table, pa.table({"key": pa.array(list(keys), pa.string())}))
        kept.append(f"NOT coalesce({retracted_sql(column, table, salt)}, false)")
    return " AND ".join(kept) if kept else "true"
