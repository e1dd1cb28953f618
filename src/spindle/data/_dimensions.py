"""Dimensions are stored once per change, and read as of a day.

A dimension (``kind: dimension``, layout ``static``) holds the same rows on every day. Ingest
writes them into ``raw/<source>`` (a ``date`` partition, as every raw table) only on a day whose
rows differ from the latest copy at or before that day: a year of an unchanged dimension is one
partition, not one per day. A day's rows of a dimension are its **latest copy at or before the
day**; a day before the first copy has none.

Readers that take a dimension's rows "of day D" (``WHERE date = D``, per-day counts) register it
with :func:`register_dimension`, which gives every day its latest copy under ``date`` = that day.
Readers that see every copy up to a cutoff (``date <= cutoff``, the feature views) and take the
latest one (``WHERE date = (SELECT max(date) FROM planes)``) need nothing: the latest copy known
is the same rows as before.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from spindle.core import TablePath, open_dataset, table_exists

if TYPE_CHECKING:  # pyarrow is imported where used: `spindle status` imports this module
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads


def copy_dates(dataset: pads.Dataset) -> list[str]:
    """The days holding a copy of a ``date``-partitioned Delta table, sorted (no data read).

    Args:
        dataset: the table (``open_dataset``), partitioned by a text ``date``.

    Returns:
        The distinct partition dates, ``YYYY-MM-DD``, ascending.
    """
    import pyarrow.dataset as pads

    dates: set[str] = set()
    for fragment in dataset.get_fragments():
        day = pads.get_partition_keys(fragment.partition_expression).get("date")
        if day is not None:
            dates.add(str(day))
    return sorted(dates)


def latest_copy(dates: Sequence[str], day: str) -> str | None:
    """The latest of the sorted ``dates`` on or before ``day`` (None: ``day`` is before all).

    Example:
        >>> latest_copy(["2026-01-01", "2026-01-05"], "2026-01-04")
        '2026-01-01'
    """
    at = bisect.bisect_right(list(dates), day)
    return dates[at - 1] if at else None


def _kind(type_: pa.DataType) -> str:
    """A type as compared across a Delta round trip (large and view strings are strings)."""
    import pyarrow as pa

    if pa.types.is_large_string(type_) or pa.types.is_string_view(type_):
        return "string"
    if pa.types.is_large_binary(type_) or pa.types.is_binary_view(type_):
        return "binary"
    return str(type_)


def _comparable(copy: pa.Table, rows: pa.Table) -> pa.Table | None:
    """``copy`` (read back from Delta, ``date`` dropped) in ``rows``' schema, or None when it
    cannot be: other columns (a column only earlier copies had, all null here, is ignored),
    or a type that does not cast."""
    import pyarrow as pa

    for name in copy.column_names:
        if name not in rows.column_names and copy.column(name).null_count == copy.num_rows:
            copy = copy.drop_columns([name])
    if sorted(copy.column_names) != sorted(rows.column_names):
        return None
    if any(_kind(copy.schema.field(f.name).type) != _kind(f.type) for f in rows.schema):
        return None  # a declared type changed: the rows read differ, even when values cast
    try:
        return copy.select(rows.column_names).cast(rows.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


def unchanged_copy(path: TablePath, rows: pa.Table, day: str) -> str | None:
    """The day of the dimension's latest copy at or before ``day`` when it holds exactly
    ``rows`` (same columns, values and order), else None (no copy yet, or a changed one).

    Args:
        path: the dimension's raw Delta table (``<tables>/raw/<source>``).
        rows: the rows ingest would write for ``day``, without ``date``.
        day: the day being ingested, ``YYYY-MM-DD``.

    Returns:
        The copy's day (``day`` itself when re-ingesting the day that holds it), or None
        when ``rows`` must be written.
    """
    import pyarrow.compute as pc

    if not table_exists(path):
        return None
    dataset = open_dataset(path)
    latest = latest_copy(copy_dates(dataset), day)
    if latest is None:
        return None
    copy = dataset.to_table(filter=pc.field("date") == latest)
    same = _comparable(copy.drop_columns(["date"]), rows)
    return latest if same is not None and same.equals(rows) else None


def _days(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def register_dimension(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: TablePath,
    until: str,
    version: int | None = None,
) -> None:
    """Register view ``name`` on ``con``: per day up to ``until``, the dimension's rows of that
    day (its latest copy at or before it) with ``date`` = that day, as if copied every day.

    Days before the first copy have no rows. The copies up to ``until`` are read into memory
    (one per change: small), so queries do not scan the Delta files again.

    Args:
        con: the connection the queries run on.
        name: the view's name (the source's name).
        path: the dimension's raw Delta table.
        until: the last day the view holds, ``YYYY-MM-DD``.
        version: the Delta version to read (latest when None).

    Example:
        >>> register_dimension(con, "planes", tables / "raw" / "planes", "2013-01-31")  # doctest: +SKIP
        >>> con.sql("SELECT count(*) FROM planes WHERE date = '2013-01-20'").fetchone()  # doctest: +SKIP
        (3322,)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    dt.date.fromisoformat(until)  # refuse anything that is not a plain ISO day
    dataset = open_dataset(path, version)
    dates = [d for d in copy_dates(dataset) if d <= until]
    days = _days(dates[0], until) if dates else []
    mapping = pa.table(
        {"day": days, "copy": [latest_copy(dates, d) for d in days]},
        schema=pa.schema([("day", pa.string()), ("copy", pa.string())]),
    )
    hidden, by_day = f"__spindle_dimension_{name}", f"__spindle_dimension_days_{name}"
    con.register(hidden, dataset.to_table(filter=pc.field("date").isin(dates)))
    con.register(by_day, mapping)
    date_type = "VARCHAR" if pa.types.is_string(dataset.schema.field("date").type) else "DATE"
    con.execute(
        f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT t.* REPLACE '
        f'(CAST(m.day AS {date_type}) AS date) FROM "{hidden}" t '
        f'JOIN "{by_day}" m ON CAST(t.date AS VARCHAR) = m.copy'
    )
