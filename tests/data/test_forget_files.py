"""Physical deletion at the data layer: landed files in every format, and Delta tables whose
older versions and log statistics must lose the ids too (real files, real Delta tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

from spindle.core import SourceDeclaration
from spindle.data import (
    forget_in_file,
    forget_in_parquet,
    forget_in_table,
    purge_table,
    raw_files_of,
    table_columns,
)


def _source(fmt: str, location: str) -> SourceDeclaration:
    return SourceDeclaration.model_validate(
        {
            "name": "accounts",
            "location": location,
            "format": fmt,
            "event_time": {"column": "ts"},
            "primary_key": ["account_id"],
            "columns": {"account_id": "string", "ts": "timestamp", "note": "string"},
            "provenance": {"origin": "test"},
        }
    )


def test_csv_loses_only_the_rows_and_keeps_other_lines_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "2026-01-01.csv"
    path.parent.mkdir()
    lines = [
        "account_id,ts,note\r\n",
        'a1,2026-01-01T00:00:00,"hello, world"\r\n',
        "zz-gone,2026-01-01T01:00:00,bye\r\n",
        "a2,2026-01-01T02:00:00,  spaced  \r\n",
        'zz-gone,2026-01-01T03:00:00,"two\r\n',
        'lines"\r\n',
        'a3,2026-01-01T04:00:00,"also\nmultiline"\r\n',
    ]
    path.write_text("".join(lines), newline="")
    decl = _source("csv", "raw/{date}.csv")
    assert raw_files_of(tmp_path, decl) == ([str(path)], [])
    assert forget_in_file(str(path), decl, "account_id", ["zz-gone"], count_only=True) == 2
    assert path.read_bytes().decode() == "".join(lines)  # counting changes nothing
    assert forget_in_file(str(path), decl, "account_id", ["zz-gone"]) == 2
    assert path.read_bytes().decode() == "".join(lines[:2] + lines[3:4] + lines[6:])
    assert forget_in_file(str(path), decl, "account_id", ["zz-gone"]) == 0  # idempotent


def test_jsonl_drops_matching_and_broken_lines_quoting_an_id(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "2026-01-01.jsonl"
    path.parent.mkdir()
    rows = [
        json.dumps({"account_id": "a1", "ts": "2026-01-01T00:00:00", "note": "x"}) + "\n",
        json.dumps({"account_id": "zz-gone", "ts": "2026-01-01T00:00:00"}) + "\n",
        '{"account_id": "zz-gone", broken\n',
        json.dumps({"account_id": "a2", "ts": "2026-01-01T00:00:00"}) + "\n",
    ]
    path.write_text("".join(rows))
    decl = _source("jsonl", "raw/{date}.jsonl")
    assert forget_in_file(str(path), decl, "account_id", ["zz-gone"]) == 2
    assert path.read_text() == rows[0] + rows[3]


def test_parquet_rewritten_in_place_with_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "set.parquet"
    table = pa.table({"account_id": ["a1", "zz-gone", None], "x": [1.0, 2.0, 3.0]})
    pq.write_table(table, path)
    assert forget_in_parquet(path, ["account_id"], ["zz-gone"], count_only=True) == 1
    assert forget_in_parquet(path, ["account_id"], ["zz-gone"]) == 1
    back = pq.read_table(path)
    assert back.schema == table.schema
    assert back.column("account_id").to_pylist() == ["a1", None]
    assert forget_in_parquet(path, ["missing"], ["zz-gone"]) == 0


def test_delta_delete_then_purge_leaves_no_version_or_statistic(tmp_path: Path) -> None:
    path = tmp_path / "accounts"
    for day, ids in (("2026-01-01", ["a0-gone", "b1"]), ("2026-01-02", ["a0-gone", "c2"])):
        rows = pa.table({"account_id": ids, "date": [day] * len(ids)})
        write_deltalake(str(path), rows, mode="append", partition_by=["date"])
    log = path / "_delta_log"
    assert any(b"a0-gone" in f.read_bytes() for f in log.iterdir())  # a min in the stats
    assert table_columns(path) == ["account_id", "date"]
    assert table_columns(path, text_only=True) == ["account_id"]
    assert forget_in_table(path, ["account_id"], ["a0-gone"], count_only=True) == 2
    assert forget_in_table(path, ["account_id"], ["a0-gone"]) == 2
    assert forget_in_table(path, ["account_id"], ["a0-gone"]) == 0  # nothing left to commit
    assert DeltaTable(str(path), version=1).to_pyarrow_table().num_rows == 4  # still there
    removed = purge_table(path)
    assert len(removed) == 2  # the two files that held the rows
    every = [f for f in path.rglob("*") if f.is_file()]
    assert not any(b"a0-gone" in f.read_bytes() for f in every)
    current = DeltaTable(str(path))
    assert sorted(current.to_pyarrow_table().column("account_id").to_pylist()) == ["b1", "c2"]
    assert min(int(f.name[:20]) for f in log.glob("*.json")) == current.version()
