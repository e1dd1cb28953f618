"""A declared source's row rules and primary key, applied to rows read by ``_readers``.

Each function splits a table into the rows that pass and the rows set aside, every one with its
reason (``REJECTED_SCHEMA``), so nothing is dropped without a record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import (
    SQL_RULES,
    ConfigError,
    DataError,
    SourceDeclaration,
    expression_problem,
    lock_connection,
)
from spindle.data._readers import REJECTED_SCHEMA

if TYPE_CHECKING:
    import duckdb


def _set_aside(
    table: pa.Table, source: SourceDeclaration, rows: list[int], reasons: list[str], date: str
) -> pa.Table:
    taken = table.take(pa.array(rows, pa.int64())).to_pylist()
    return pa.table(
        {
            "source": [source.name] * len(rows),
            "row_number": rows,
            "reason": reasons,
            "row_json": [json.dumps(r, default=str, sort_keys=True) for r in taken],
            "date": [date] * len(rows),
        },
        schema=REJECTED_SCHEMA,
    )


def apply_rules(
    table: pa.Table,
    source: SourceDeclaration,
    date: str = "",
    others: Mapping[str, pa.Table] | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Run the source's row rules (SQL booleans, in DuckDB) over ``table``.

    A row passes when every check is TRUE. A check that is FALSE **or NULL** (e.g. ``qty >= 1``
    on an empty ``qty``) fails; a row failing several rules gets the first failing rule's reason.
    A rule with ``uses`` reads those sources by name from ``others`` (the same day's rows of
    each that passed their own checks; an empty table when the source has none that day).
    ``con``: a DuckDB connection to run in (a cursor of it; opening one costs ~40 ms, which a
    caller checking many sources a day pays once); a new one without it. Either way the
    connection is locked first (no file access, no ``SET``: ``core.lock_connection``).

    Raises:
        DataError: a rule uses a source missing from ``others``.
        ConfigError: a check is more than one expression over the row (and the sources it
            ``uses``), e.g. it reads a file (refused before it runs; see ``core._declared_sql``).

    Returns:
        (rows that pass, rows set aside with ``REJECTED_SCHEMA``; ``row_number`` is the position
        in ``table``).

    Example:
        >>> good, failed = apply_rules(read.table, source)  # doctest: +SKIP
    """
    if not source.rules or table.num_rows == 0:
        return table, REJECTED_SCHEMA.empty_table()
    import duckdb

    refused = [
        f"key 'rules.{i}.check': rule {r.reason!r}: the check {found}; {SQL_RULES['rule']}"
        for i, r in enumerate(source.rules)
        if (found := expression_problem(r.check, ["source_row", *r.uses])) is not None
    ]
    if refused:  # validated at load too; a declaration built in code gets here unchecked
        raise ConfigError(f"sources/{source.name}.yaml", refused)
    checks = ", ".join(f"(({r.check}) IS TRUE) AS rule_{i}" for i, r in enumerate(source.rules))
    given = dict(others or {})
    needed = sorted({name for rule in source.rules for name in rule.uses})
    absent = [name for name in needed if name not in given]
    if absent:
        raise DataError(
            f"{source.name}: its rules read source(s) {', '.join(absent)}; check those first"
            " and pass their rows of the day (apply_rules(..., others={name: table}))"
        )
    with duckdb.connect() if con is None else con.cursor() as cursor:
        lock_connection(cursor)  # the rows are Arrow: a rule reads no file
        cursor.register("source_row", table)
        for name in needed:
            cursor.register(name, given[name])
        # No ORDER BY needed: a projection of one registered Arrow table keeps its row order.
        passed = cursor.sql(f"SELECT {checks} FROM source_row").to_arrow_table()
    verdicts = np.column_stack(
        [passed.column(i).to_numpy(zero_copy_only=False) for i in range(passed.num_columns)]
    ).astype(bool)
    ok = verdicts.all(axis=1)
    failed = np.flatnonzero(~ok)
    first = np.argmin(verdicts[failed], axis=1)
    reasons = [source.rules[int(k)].reason for k in first]
    good = table.filter(pa.array(ok))
    return good, _set_aside(table, source, [int(i) for i in failed], reasons, date)


def drop_duplicate_keys(
    table: pa.Table, source: SourceDeclaration, date: str = ""
) -> tuple[pa.Table, pa.Table]:
    """Keep the first row of each primary key; set the later ones aside with the key's values.

    Returns:
        (rows with unique keys in their original order, duplicates with reason
        ``duplicate primary key (k1, k2) = (v1, v2)``).
    """
    keys = source.primary_key
    if not keys or table.num_rows == 0:
        return table, REJECTED_SCHEMA.empty_table()
    index = table.select(keys).append_column("row", pa.array(np.arange(table.num_rows)))
    first = index.group_by(keys, use_threads=False).aggregate([("row", "min")])
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[first.column("row_min").to_numpy()] = True
    duplicates = [int(i) for i in np.flatnonzero(~keep)]
    names = ", ".join(keys)
    values = table.select(keys).take(pa.array(duplicates, pa.int64())).to_pylist()
    reasons = [
        f"duplicate primary key ({names}) = ({', '.join(repr(v[k]) for k in keys)})" for v in values
    ]
    return table.filter(pa.array(keep)), _set_aside(table, source, duplicates, reasons, date)


def _duration_text(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def check_event_times(
    table: pa.Table, source: SourceDeclaration, date: str
) -> tuple[pa.Table, pa.Table]:
    """Set aside the rows of a daily partition whose event time is not on its day or within
    ``allowed_lateness`` before it (a row from the future, or too late to accept).

    Only for daily partitions with an event time: a dump is split by event time, so every row
    of its day is on it. The reason is ``<column> outside the partition day (or more than
    <lateness> late)``.

    Returns:
        (rows on time, rows set aside with ``REJECTED_SCHEMA``).
    """
    if source.event_time is None or source.layout != "daily" or table.num_rows == 0:
        return table, REJECTED_SCHEMA.empty_table()
    column = source.event_time.column
    day = dt.datetime.combine(dt.date.fromisoformat(date), dt.time())
    earliest = pa.scalar(day - dt.timedelta(seconds=source.allowed_lateness_s), pa.timestamp("us"))
    end = pa.scalar(day + dt.timedelta(days=1), pa.timestamp("us"))
    times = pc.cast(table.column(column), pa.timestamp("us"))
    outside = pc.fill_null(pc.or_(pc.less(times, earliest), pc.greater_equal(times, end)), True)
    mask = outside.to_numpy(zero_copy_only=False).astype(bool)
    late = [int(i) for i in np.flatnonzero(mask)]
    lateness = _duration_text(source.allowed_lateness_s)
    reason = f"{column} outside the partition day (or more than {lateness} late)"
    kept = table.filter(pa.array(~mask))
    return kept, _set_aside(table, source, late, [reason] * len(late), date)
