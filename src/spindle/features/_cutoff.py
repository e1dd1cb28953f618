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
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.core import DataError, open_dataset, table_exists

# One token of SQL text: a string literal, a quoted identifier, a comment, or a word.
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[A-Za-z_][A-Za-z0-9_$]*",
    re.DOTALL,
)


def cutoff_literals(day: str) -> dict[str, str]:
    """The SQL literals of ``cutoff`` (day ``day`` 00:00 UTC) and ``cutoff_date`` (that day)."""
    dt.date.fromisoformat(day)  # refuse anything that is not a plain ISO day
    return {"cutoff": f"TIMESTAMP '{day} 00:00:00'", "cutoff_date": f"DATE '{day}'"}


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
    tables_dir: Path,
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
    for source, event_time in event_times.items():
        path = tables_dir / "raw" / source
        if not table_exists(path):
            raise DataError(
                f"raw table {source} has no data under {path}; run `spindle ingest` for the "
                "days you need"
            )
        dataset = open_dataset(path, (versions or {}).get(f"raw/{source}"))
        hidden = f"__spindle_raw_{source}"
        con.register(hidden, dataset)
        con.execute(
            f'CREATE OR REPLACE TEMP VIEW "{source}" AS SELECT * FROM "{hidden}" '
            f"WHERE {_known(dataset.schema, event_time, day)}"
        )


def _known(schema: pa.Schema, event_time: str | None, day: str) -> str:
    """The condition of a row known at the cutoff, for a table of ``schema``.

    Delta stores the ``date`` partition column as text, so a text column is cast first.
    """
    literals = cutoff_literals(day)
    if event_time is not None:
        column = f'"{event_time}"'
        if event_time in schema.names and pa.types.is_string(schema.field(event_time).type):
            column = f"CAST({column} AS TIMESTAMP)"
        return f"{column} < {literals['cutoff']}"
    if "date" in schema.names:
        if pa.types.is_string(schema.field("date").type):  # ISO text: compares as text, and
            return f"\"date\" <= '{day}'"  # the dataset can skip later partitions unread
        return f'"date" <= {literals["cutoff_date"]}'
    return "true"  # a static table: every row is known
