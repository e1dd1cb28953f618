"""Helpers of the forget tests: a demo workspace with quarantined rows, ids to forget, and the
search for any trace of them on disk (bytes, decoded Parquet, every loadable Delta version,
every SQLite table)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tests.conftest import demo_with_corrupt_day

build_demo = demo_with_corrupt_day  # the 3-day demo and a 4th day of corrupt rows


def pick_user_ids(root: Path) -> list[str]:
    """Two users of the raw ``users`` table, and one whose row sits in the quarantine when
    there is one (the quarantine must be scrubbed too)."""
    from deltalake import DeltaTable

    state = root / ".spindle" / "tables"
    users = DeltaTable(str(state / "raw" / "users")).to_pyarrow_table(columns=["user_id"])
    chosen = sorted(set(users.column("user_id").to_pylist()))[:2]
    quarantine = DeltaTable(str(state / "quarantine")).to_pyarrow_table()
    for text in quarantine.column("row_json").to_pylist():
        try:
            row = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(row, dict) and isinstance(row.get("user_id"), str):
            chosen.append(row["user_id"])
            break
    return sorted(set(chosen))


def _strings(table: pa.Table) -> set[str]:
    found: set[str] = set()
    for column in table.columns:
        try:
            found.update(str(v) for v in column.to_pylist() if v is not None)
        except (pa.ArrowException, ValueError):
            continue
    return found


def _holds(values: set[str], ids: list[str]) -> list[str]:
    return [i for i in ids if any(i in v for v in values)]


def traces(root: Path, ids: list[str]) -> list[str]:
    """Every place under the workspace's state and raw folders still holding one of ``ids``:
    raw bytes of every file, Parquet columns decoded, every Delta version that still loads,
    every SQLite table."""
    from deltalake import DeltaTable

    found: list[str] = []
    folders = [root / ".spindle", root / "raw"]
    for path in sorted(p for folder in folders for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hit = [i for i in ids if i.encode() in data]
        if path.suffix == ".parquet":
            hit += _holds(_strings(pq.read_table(path)), ids)
        if path.suffix == ".db" or data[:16] == b"SQLite format 3\x00":
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                names = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
                for name in [n for n in names if not n.startswith("sqlite_")]:
                    try:
                        rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
                    except sqlite3.Error:
                        continue
                    hit += _holds({json.dumps(r, default=str) for r in rows}, ids)
            finally:
                con.close()
        if hit:
            found.append(f"{path.relative_to(root)}: {sorted(set(hit))}")
    for log in sorted((root / ".spindle" / "tables").rglob("_delta_log")):
        latest = DeltaTable(str(log.parent)).version()
        for version in range(latest + 1):
            try:
                table = DeltaTable(str(log.parent), version=version).to_pyarrow_table()
            except Exception:  # a purged version no longer loads: nothing to find there
                continue
            hit = _holds(_strings(table), ids)
            if hit:
                found.append(f"{log.parent.relative_to(root)}@{version}: {hit}")
    return found
