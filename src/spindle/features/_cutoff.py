"""Point-in-time visibility: what a declared SQL may see of each source as of a cutoff.

spindle, not the author of a view or of a model's examples, enforces point-in-time
correctness. Each source a query reads is registered as a DuckDB view of its ingested Delta
table (``<tables>/raw/<source>``, a pinned version when given) holding only the rows known at
the cutoff:

- a source with a declared event time: rows whose event time is strictly before the cutoff;
- a source without one (daily snapshots, dimensions, FX-like tables): rows whose ``date`` is on
  or before the cutoff's day (a daily snapshot is published at the start of its day).

The query may name time identifiers (``cutoff``, ``cutoff_date``, ``window_start``, ...);
:func:`substitute_times` replaces them by literals outside string literals, quoted identifiers
and comments, so ``WHERE ts >= cutoff - INTERVAL 7 DAY`` is a trailing window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from spindle.core import DataError, Location, open_dataset, quote_identifier, table_exists
from spindle.features._retracted import Exclusion, exclusion_condition

# One token of SQL text: a string literal, a quoted identifier, a comment, or a word.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[A-Za-z_][A-Za-z0-9_$]*",
    re.DOTALL,
)


def cutoff_literals(day: str, at: dt.datetime | None = None) -> dict[str, str]:
    """The SQL literals of ``cutoff`` (day ``day`` 00:00 UTC, or the instant ``at`` of that
    day) and ``cutoff_date`` (the day)."""
    dt.date.fromisoformat(day)  # refuse anything that is not a plain ISO day
    instant = f"{day} 00:00:00"
    if at is not None:
        if at.date().isoformat() != day:
            raise ValueError(f"cutoff {at} is not on {day}")
        instant = at.strftime("%Y-%m-%d %H:%M:%S")
    return {"cutoff": f"TIMESTAMP '{instant}'", "cutoff_date": f"DATE '{day}'"}


def substitute_times(sql: str, literals: Mapping[str, str]) -> str:
    """Replace the identifiers named in ``literals`` by their SQL literals.

    Only bare words are replaced (case-insensitively): not inside string literals, quoted
    identifiers or comments, and not a qualified column such as ``t.cutoff``.

    Example:
        >>> substitute_times("SELECT 'cutoff', cutoff", {"cutoff": "TIMESTAMP '2026-01-02'"})
        "SELECT 'cutoff', TIMESTAMP '2026-01-02'"
    """
    lowered = {name.lower(): literal for name, literal in literals.items()}
    out: list[str] = []
    last = 0
    for match in _TOKEN.finditer(sql):
        word = match.group(0)
        literal = lowered.get(word.lower())
        if literal is None or sql[: match.start()].rstrip().endswith("."):
            continue
        out.append(sql[last : match.start()])
        out.append(literal)
        last = match.end()
    out.append(sql[last:])
    return "".join(out)


def register_as_of(
    con: duckdb.DuckDBPyConnection,
    tables_dir: Location | Path,
    event_times: Mapping[str, str | None],
    day: str,
    versions: Mapping[str, int] | None = None,
) -> None:
    """Register each source of ``event_times`` on ``con`` as a view of what was known at ``day`` 00:00.

    Args:
        con: the connection the declared SQL will run on.
        tables_dir: the workspace's tables folder (``raw/<source>`` under it).
        event_times: source name -> its declared event-time column, or None when it has none.
        day: the cutoff's day, ``YYYY-MM-DD`` (the cutoff is its 00:00 UTC).
        versions: Delta versions to read, keyed ``raw/<source>``; latest when absent.

    Raises:
        DataError: a source has no ingested table (names it and the fix).
    """
    cutoff_literals(day)  # refuse anything that is not a plain ISO day
    schemas = register_sources(con, tables_dir, event_times, versions)
    restrict_as_of(con, schemas, event_times, day)


def register_sources(
    con: duckdb.DuckDBPyConnection,
    tables_dir: Location | Path,
    event_times: Mapping[str, str | None],
    versions: Mapping[str, int] | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> dict[str, pa.Schema]:
    """Register each source's ingested table on ``con`` under a hidden name, for
    :func:`restrict_as_of` to show as of one cutoff or several in turn.

    With ``window`` (start, end), a source with an event time (of timestamp type) is read
    once into memory with only its events in ``[start, end)``, from the daily partitions that
    can hold them: the runs of a view with ``lookback`` then scan a few days of rows, not the
    whole table each time. ``exclusions`` (per source, its recorded retractions, see
    ``_retracted``) leaves the rows they name out.

    Returns:
        Each source's schema.

    Raises:
        DataError: a source has no ingested table (names it and the fix).
    """
    schemas: dict[str, pa.Schema] = {}
    for source, event_time in event_times.items():
        path = tables_dir / "raw" / source
        if not table_exists(path):
            raise DataError(
                f"raw table {source} has no data under {path}; run `spindle ingest` for the "
                "days you need"
            )
        dataset = open_dataset(path, (versions or {}).get(f"raw/{source}"))
        rows: pads.Dataset | pa.Table = dataset
        timed = event_time is not None and event_time in dataset.schema.names
        if (
            window is not None
            and timed
            and pa.types.is_timestamp(dataset.schema.field(event_time).type)
        ):
            start, end = window
            kind = dataset.schema.field(event_time).type
            keep = (pads.field(event_time) >= pa.scalar(start, kind)) & (
                pads.field(event_time) < pa.scalar(end, kind)
            )
            if "date" in dataset.schema.names:  # a row is never filed before its event's day
                first = start.date()
                text = pa.types.is_string(dataset.schema.field("date").type)
                keep &= pads.field("date") >= (first.isoformat() if text else first)
            rows = dataset.to_table(filter=keep)
        retracted = (exclusions or {}).get(source, ())
        if retracted:  # the rows a retraction names are never seen
            con.register(f"__spindle_all_{source}", rows)
            kept = exclusion_condition(con, source, dataset.schema.names, retracted)
            con.execute(
                f"CREATE TEMP VIEW {quote_identifier('__spindle_raw_' + source)} AS SELECT * "
                f"FROM {quote_identifier('__spindle_all_' + source)} WHERE {kept}"
            )
        else:
            con.register(f"__spindle_raw_{source}", rows)
        schemas[source] = dataset.schema
    return schemas


def restrict_as_of(
    con: duckdb.DuckDBPyConnection,
    schemas: Mapping[str, pa.Schema],
    event_times: Mapping[str, str | None],
    day: str,
    at: dt.datetime | None = None,
    lookback_s: int | None = None,
) -> None:
    """(Re)define each source registered by :func:`register_sources` as the view of its rows
    known at ``day`` 00:00, or at the instant ``at`` of that day; with ``lookback_s``, only
    the events of that many seconds before it."""
    for source, event_time in event_times.items():
        known = _known(schemas[source], event_time, day, at, lookback_s)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_identifier(source)} AS SELECT * FROM "
            f"{quote_identifier('__spindle_raw_' + source)} WHERE {known}"
        )


def _known(
    schema: pa.Schema,
    event_time: str | None,
    day: str,
    at: dt.datetime | None,
    lookback_s: int | None = None,
) -> str:
    """The condition of a row known at the cutoff, for a table of ``schema``.

    Delta stores the ``date`` partition column as text, so a text column is cast first.
    """
    literals = cutoff_literals(day, at)
    if event_time is not None:
        column = quote_identifier(event_time)
        if event_time in schema.names and pa.types.is_string(schema.field(event_time).type):
            column = f"CAST({column} AS TIMESTAMP)"
        known = f"{column} < {literals['cutoff']}"
        if lookback_s is None:
            return known
        start = (at or dt.datetime.fromisoformat(day)) - dt.timedelta(seconds=lookback_s)
        known += f" AND {column} >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'"
        if "date" in schema.names:  # a row's partition is never before its event's day (ingest
            # files a late row under the day it came), so earlier partitions are skipped unread
            first = f"'{start:%Y-%m-%d}'"
            text = pa.types.is_string(schema.field("date").type)
            known += f' AND "date" >= {first if text else "DATE " + first}'
        return known
    if "date" in schema.names:
        if pa.types.is_string(schema.field("date").type):  # ISO text: compares as text, and
            return f"\"date\" <= '{day}'"  # the dataset can skip later partitions unread
        return f'"date" <= {literals["cutoff_date"]}'
    return "true"  # a static table: every row is known
