"""Undo the ingest of one day: its rows leave every table, as a new version (history stays)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from spindle.core import TableVersion, open_dataset, sha256_json, write_partition


@dataclass(frozen=True)
class IngestUndo:
    """The record of a day's rows removed from the tables: the new versions, and why."""

    kind: ClassVar[str] = "ingest_undo"
    date: str
    uri: str
    reason: str
    rows_removed: int
    tables: tuple[TableVersion, ...]

    @property
    def content_hash(self) -> str:
        return sha256_json(self.properties())

    @property
    def id(self) -> str:
        return f"ingest_undo:{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "reason": self.reason,
            "rows_removed": self.rows_removed,
            "tables": {t.table: t.version for t in self.tables},
        }


def _delta_tables(tables_dir: Path) -> list[Path]:
    return sorted(log.parent for log in tables_dir.rglob("_delta_log") if log.is_dir())


def remove_day(tables_dir: Path, date: str, *, reason: str) -> IngestUndo:
    """Remove the rows of ``date`` from every date-partitioned Delta table under ``tables_dir``.

    Each table that held rows of the day gets a new version without them (an overwrite of the
    partition with no rows), so ``open_dataset(path, version=...)`` still reads the old rows.

    Args:
        tables_dir: root of the Delta tables (raw sources, quarantine, features, statistics).
        date: the day, ``YYYY-MM-DD``.
        reason: why the day is removed (recorded with the undo).

    Returns:
        An :class:`IngestUndo` with the new table versions and the rows removed.

    Example:
        >>> remove_day(ws.tables_dir, "2026-01-06", reason="bad export")  # doctest: +SKIP
    """
    import pyarrow.compute as pc  # here, not at the top: `spindle status` imports this module

    versions: list[TableVersion] = []
    removed = 0
    for path in _delta_tables(tables_dir):
        dataset = open_dataset(path)
        if "date" not in dataset.schema.names:
            continue
        rows = dataset.count_rows(filter=pc.field("date") == date)
        if rows == 0:
            continue
        name = path.relative_to(tables_dir).as_posix()
        versions.append(write_partition(path, dataset.schema.empty_table(), date, name))
        removed += rows
    return IngestUndo(date, str(tables_dir), reason, removed, tuple(versions))
