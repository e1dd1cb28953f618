"""Constants and readers shared by the simulator tests (fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

START = dt.date(2026, 3, 1)
DAYS = 5
SEED = 11
SCALE = 0.25


def day(n: int) -> dt.date:
    """The n-th simulated day (1-based, as in ``KIND@DAY``)."""
    return START + dt.timedelta(days=n - 1)


def read(root: Path, table: str, date: dt.date | None = None) -> pa.Table:
    """One partition, or every partition of a table concatenated (columns unified)."""
    if date is not None:
        return pq.read_table(root / table / f"date={date.isoformat()}" / "part-00000.parquet")
    parts = [pq.read_table(f) for f in sorted((root / table).glob("date=*/part-00000.parquet"))]
    return pa.concat_tables(parts, promote_options="default")


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }
