"""Read the quarantine: the rows ingestion set aside on a day, with their reasons, a page at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as pads

from spindle.core import Location, open_dataset, table_exists


@dataclass(frozen=True)
class QuarantinePage:
    """One page of a day's quarantined rows (oldest source row first), how many match in all,
    and the day's counts by (source, reason)."""

    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
    reasons: dict[tuple[str, str], int]


def quarantined_rows(
    tables_dir: Location | Path,
    date: str,
    *,
    source: str | None = None,
    reason: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> QuarantinePage:
    """The rows of ``date`` in the quarantine table, filtered by ``source`` and ``reason``.

    Each row: ``source``, ``row_number`` (in its file), ``reason`` and ``row`` (the row as it was
    read, a dict; the raw text when it is not JSON).

    Example:
        >>> page = quarantined_rows(ws.tables_dir, "2026-01-04", reason="negative price")  # doctest: +SKIP
        >>> page.total, page.rows[0]["row"]["price"]  # doctest: +SKIP
        (12, -3.5)
    """
    path = tables_dir / "quarantine"
    if not table_exists(path):
        return QuarantinePage([], 0, offset, limit, {})
    day = open_dataset(path).to_table(filter=pads.field("date") == date)
    counts: dict[tuple[str, str], int] = {}
    for src, why in zip(
        day.column("source").to_pylist(), day.column("reason").to_pylist(), strict=True
    ):
        counts[(str(src), str(why))] = counts.get((str(src), str(why)), 0) + 1
    if source is not None:
        day = day.filter(pc.equal(day.column("source"), source))
    if reason is not None:
        day = day.filter(pc.equal(day.column("reason"), reason))
    day = day.sort_by([("source", "ascending"), ("row_number", "ascending")])
    rows = []
    for row in day.slice(offset, limit).to_pylist():
        try:
            parsed: Any = json.loads(row["row_json"])
        except (TypeError, ValueError):
            parsed = row["row_json"]
        rows.append(
            {
                "source": row["source"],
                "row_number": row["row_number"],
                "reason": row["reason"],
                "row": parsed,
            }
        )
    return QuarantinePage(rows, day.num_rows, offset, limit, dict(sorted(counts.items())))
