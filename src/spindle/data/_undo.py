"""Undo the ingest of one day: its rows leave every table, as a new version (history stays)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from spindle.core import (
    Location,
    TableVersion,
    open_dataset,
    sha256_json,
    table_exists,
    write_partition,
)
from spindle.data._dimensions import copy_dates, latest_copy


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


def _delta_tables(tables_dir: Location | Path) -> list[Location]:
    return Location.of(tables_dir).delta_tables()


def _next_day(tables_dir: Location | Path, date: str, dimensions: Collection[str]) -> str | None:
    """The first day after ``date`` that another ingest wrote (a raw table other than a
    dimension, or the quarantine, has a partition of it)."""
    raw = tables_dir / "raw"
    tables = [p for p in raw.iterdir() if p.is_dir() and p.name not in dimensions]
    later = [
        day
        for path in [*tables, tables_dir / "quarantine"]
        if table_exists(path)
        for day in copy_dates(open_dataset(path))
        if day > date
    ]
    return min(later, default=None)


def _keep_copy(
    tables_dir: Location | Path, date: str, dimensions: Collection[str], name: str
) -> TableVersion | None:
    """Before ``date`` leaves a dimension's table: when it holds the copy that later ingested
    days read (they have no copy of their own), write that copy again under the first of them.
    """
    path = tables_dir / name
    source = path.name
    if path.parent != tables_dir / "raw" or source not in dimensions:
        return None
    dataset = open_dataset(path)
    later = _next_day(tables_dir, date, dimensions)
    if later is None or latest_copy(copy_dates(dataset), later) != date:
        return None
    import pyarrow.compute as pc

    copy = dataset.to_table(filter=pc.field("date") == date).drop_columns(["date"])
    return write_partition(path, copy, later, name)


def remove_day(
    tables_dir: Location | Path, date: str, *, reason: str, dimensions: Collection[str] = ()
) -> IngestUndo:
    """Remove the rows of ``date`` from every date-partitioned Delta table under ``tables_dir``.

    Each table that held rows of the day gets a new version without them (an overwrite of the
    partition with no rows), so ``open_dataset(path, version=...)`` still reads the old rows.
    A dimension's copy of the day that later ingested days read (ingest writes a dimension
    only when it changes) is first written again under the first of those days.

    Args:
        tables_dir: root of the Delta tables (raw sources, quarantine, features, statistics).
        date: the day, ``YYYY-MM-DD``.
        reason: why the day is removed (recorded with the undo).
        dimensions: the sources that are dimensions (``raw/<source>``).

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
        name = path.relative_to(Location.of(tables_dir)).as_posix()
        kept = _keep_copy(tables_dir, date, dimensions, name)
        versions.extend([kept] if kept is not None else [])
        versions.append(write_partition(path, dataset.schema.empty_table(), date, name))
        removed += rows
    return IngestUndo(date, str(tables_dir), reason, removed, tuple(versions))
