"""Physical deletion from Delta tables: delete the rows holding given values, then purge every
older version (vacuum, a checkpoint, and the log entries before it) so no copy stays on disk.

A Delta ``delete`` is one atomic commit, so a crash leaves the table before or after it; the
files it replaced stay (older versions still read them) until :func:`purge_delta` removes them
with the log entries that name them — those entries carry each file's column statistics, and a
deleted value can be a file's min or max there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import DataError, Location, TablePath, open_dataset, open_table, table_exists


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def table_columns(path: TablePath, *, text_only: bool = False) -> list[str]:
    """The columns of the Delta table at ``path`` in its latest version ([] without a table);
    with ``text_only``, its text columns but the ``date`` partition."""
    if not table_exists(path):
        return []
    schema = open_dataset(path).schema
    return [
        f.name
        for f in schema
        if not text_only
        or ((pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and f.name != "date")
    ]


def forget_in_table(
    path: TablePath, columns: Sequence[str], values: Sequence[str], *, count_only: bool = False
) -> int:
    """Delete (in one commit) the rows of the Delta table at ``path`` whose value in any of
    ``columns`` is one of ``values``; returns how many rows went (or, with ``count_only``,
    would go). Older versions keep them until :func:`purge_table`.

    Raises:
        DataError: the delete failed (the table stays at its previous version).

    Example:
        >>> forget_in_table(Path(".spindle/tables/raw/users"), ["user_id"], ["u42"])  # doctest: +SKIP
        1
    """
    if count_only:
        return _count_in(path, columns, values)
    return _delete_in(path, columns, values)


def forget_in_quarantine(
    tables_dir: Location | Path,
    sources: Sequence[str],
    column: str,
    values: Sequence[str],
    *,
    count_only: bool = False,
) -> int:
    """Delete (in one commit) the quarantined rows of ``sources`` holding one of ``values``
    (see :func:`_quarantined_matches`); returns how many went (or would go)."""
    found = _quarantined_matches(tables_dir, sources, column, values)
    if count_only:
        return sum(len(v) for v in found.values())
    return _delete_rows_where(tables_dir / "quarantine", found)


def _count_in(path: TablePath, columns: Sequence[str], values: Sequence[str]) -> int:
    """Rows of the Delta table at ``path`` whose value in any of ``columns`` is one of ``values``."""
    present = [c for c in columns if c in table_columns(path)]
    if not present or not values:
        return 0
    table = open_dataset(path).to_table(columns=present)
    return int(pc.sum(_mask(table, present, values)).as_py() or 0)


def _mask(table: pa.Table, columns: Sequence[str], values: Sequence[str]) -> pa.ChunkedArray:
    wanted = pa.array(list(values), pa.string())
    mask: pa.ChunkedArray | None = None
    for column in columns:
        hit = pc.fill_null(
            pc.is_in(table.column(column).cast(pa.string()), value_set=wanted), False
        )
        mask = hit if mask is None else pc.or_(mask, hit)
    assert mask is not None
    return mask


def _delete_in(path: TablePath, columns: Sequence[str], values: Sequence[str]) -> int:
    """Delete, in one commit, the rows of the Delta table at ``path`` whose value in any of
    ``columns`` is one of ``values``; returns how many went (0: nothing committed).

    Raises:
        DataError: the delete failed (the table stays at its previous version).
    """
    from deltalake.exceptions import DeltaError

    present = [c for c in columns if c in table_columns(path)]
    if not present or not values:
        return 0
    listed = ", ".join(_sql_text(v) for v in values)
    predicate = " OR ".join(f"{_quoted(c)} IN ({listed})" for c in present)
    try:
        metrics = open_table(path).delete(predicate)
    except DeltaError as exc:
        raise DataError(f"deleting rows from the Delta table at {path} failed: {exc}") from exc
    return int(metrics.get("num_deleted_rows", 0) or 0)


def _delete_rows_where(path: TablePath, predicate_of: dict[str, list[int]]) -> int:
    """Delete rows of the quarantine-shaped table at ``path`` by ``date`` and ``row_number``
    within a ``source``: ``predicate_of`` maps ``"<date>|<source>"`` to row numbers."""
    from deltalake.exceptions import DeltaError

    parts = []
    for where, numbers in sorted(predicate_of.items()):
        date, _, source = where.partition("|")
        listed = ", ".join(str(int(n)) for n in sorted(set(numbers)))
        parts.append(
            f"(date = {_sql_text(date)} AND source = {_sql_text(source)} "
            f"AND row_number IN ({listed}))"
        )
    if not parts:
        return 0
    try:
        metrics = open_table(path).delete(" OR ".join(parts))
    except DeltaError as exc:
        raise DataError(f"deleting rows from the Delta table at {path} failed: {exc}") from exc
    return int(metrics.get("num_deleted_rows", 0) or 0)


def _quarantined_matches(
    tables_dir: Location | Path, sources: Sequence[str], column: str, values: Sequence[str]
) -> dict[str, list[int]]:
    """The quarantined rows of ``sources`` that hold one of ``values``: by ``"<date>|<source>"``,
    their row numbers. A row read as JSON matches on ``column`` (or on any value equal to one of
    ``values``); a row kept as raw text (unparseable) matches when the text contains one."""
    path = tables_dir / "quarantine"
    if not table_exists(path) or not values:
        return {}
    table = open_dataset(path).to_table(columns=["date", "source", "row_number", "row_json"])
    table = table.filter(pc.is_in(table.column("source"), value_set=pa.array(list(sources))))
    wanted = set(values)
    found: dict[str, list[int]] = {}
    for row in table.to_pylist():
        if _row_holds(row["row_json"], column, wanted):
            found.setdefault(f"{row['date']}|{row['source']}", []).append(int(row["row_number"]))
    return found


def _row_holds(text: object, column: str, wanted: set[str]) -> bool:
    if not isinstance(text, str):
        return False
    try:
        parsed = json.loads(text)
    except ValueError:
        return any(v in text for v in wanted)
    if isinstance(parsed, dict):
        if str(parsed.get(column)) in wanted:
            return True
        return any(isinstance(v, str) and v in wanted for v in parsed.values())
    return any(v in text for v in wanted)


def purge_table(path: TablePath) -> list[str]:
    """Remove every file and log entry of the Delta table at ``path`` older than its latest
    version: vacuum with no retention, write a checkpoint, delete the log entries and older
    checkpoints before it. The latest version reads as before; older versions are gone.

    Returns:
        The data files vacuumed (relative to the table).

    Raises:
        DataError: vacuum or checkpoint failed (the table stays readable: each is atomic).
    """
    from deltalake.exceptions import DeltaError

    if not table_exists(path):
        return []
    try:
        table = open_table(path)
        removed = table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
        table.update_incremental()
        table.create_checkpoint()
        version = table.version()
    except DeltaError as exc:
        raise DataError(f"purging old versions of the Delta table at {path} failed: {exc}") from exc
    _drop_log_before(Location.of(path) / "_delta_log", version)
    return sorted(str(f) for f in removed)


def _drop_log_before(log: Location, version: int) -> None:
    """Delete commits, checksums and checkpoints of versions before ``version`` (the protocol
    lets a reader start from the checkpoint at ``version``; the oldest go first)."""
    for entry in sorted(log.iterdir()):
        head = entry.name.split(".", 1)[0]
        if head.isdigit() and int(head) < version and entry.is_file():
            entry.delete()
