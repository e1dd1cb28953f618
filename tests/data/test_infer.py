"""Drafting a source declaration from a file: the draft loads back and reads the file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from spindle.core import DataError, load_sources
from spindle.data import infer_source, read_source_days


def _keep(root: Path, text: str, name: str) -> None:
    (root / "sources").mkdir(exist_ok=True)
    (root / "sources" / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_csv_draft_guesses_types_key_and_event_time_and_loads_back(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data/orders.csv").write_text(
        "line;order_id;customer;created_at;amount;coupon;day\n"
        "1;o1;c1;2026-01-01T10:00:00;9.5;;2026-01-01\n"
        "1;o2;c2;2026-01-01T23:00:00;3;X1;2026-01-01\n"
        "2;o2;c1;2026-01-02T09:00:00;4.25;;2026-01-02\n",
        encoding="utf-8",
    )
    text = infer_source(tmp_path / "data/orders.csv", name="orders", root=tmp_path)
    draft = yaml.safe_load(text)
    assert draft["location"] == "data/orders.csv"  # relative to the workspace: a dump
    assert draft["csv"] == {"delimiter": ";", "header": True}
    assert draft["event_time"] == {"column": "created_at", "timezone": "UTC"}
    assert draft["primary_key"] == ["order_id", "line"]  # no single column is unique; ids first
    assert draft["columns"] == {
        "line": "int64",
        "order_id": "string",
        "customer": "string",
        "created_at": "timestamp",
        "amount": "float64",
        "coupon": {"type": "string", "nullable": True},
        "day": "date",
    }
    assert "REVIEW" in text
    _keep(tmp_path, text, "orders")
    source = load_sources(tmp_path)["orders"]
    days = read_source_days(tmp_path, source, ["2026-01-01", "2026-01-02"])
    assert days.days["2026-01-01"].table.num_rows == 2
    assert days.days["2026-01-02"].rejected.num_rows == 0


def test_dated_file_name_becomes_a_daily_partition_pattern(tmp_path: Path) -> None:
    folder = tmp_path / "raw/clicks"
    folder.mkdir(parents=True)
    rows = [{"click_id": i, "ts": f"2026-01-05T0{i}:00:00Z", "score": None} for i in range(3)]
    (folder / "2026-01-05.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = infer_source(folder / "2026-01-05.jsonl", root=tmp_path)
    draft = yaml.safe_load(text)
    assert draft["name"] == "clicks"  # the file is named by its date: the folder names it
    assert draft["location"] == "raw/clicks/{date}.jsonl"
    assert draft["event_time"]["column"] == "ts"
    assert draft["primary_key"] == ["click_id"]
    _keep(tmp_path, text, "clicks")
    assert load_sources(tmp_path)["clicks"].layout == "daily"


def test_parquet_without_event_time_drafts_a_daily_snapshot(tmp_path: Path) -> None:
    table = pa.table(
        {
            "sku": ["a", "b"],
            "price": pa.array([1.5, 2.0], pa.float32()),
            "added": pa.array([dt.datetime(2026, 1, 1), None], pa.timestamp("ms", "UTC")),
        }
    )
    pq.write_table(table, tmp_path / "catalogue.parquet")
    text = infer_source(tmp_path / "catalogue.parquet", root=tmp_path)
    draft = yaml.safe_load(text)
    assert draft["kind"] == "snapshot" and "event_time" not in draft
    assert draft["location"] == "raw/catalogue/{date}.parquet"
    assert draft["columns"]["price"] == "float32"
    assert draft["columns"]["added"] == {"type": "timestamp", "nullable": True}
    _keep(tmp_path, text, "catalogue")
    assert load_sources(tmp_path)["catalogue"].kind == "snapshot"


def test_unreadable_or_unknown_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match="cannot tell its format"):
        infer_source(tmp_path / "x.xlsx")
    (tmp_path / "x.parquet").write_bytes(b"garbage" * 20)
    with pytest.raises(DataError, match=r"x\.parquet: cannot be read as parquet"):
        infer_source(tmp_path / "x.parquet")


def test_hive_style_dated_folder_becomes_a_glob_over_its_parts(tmp_path: Path) -> None:
    folder = tmp_path / "raw/purchases/date=2026-01-01"
    folder.mkdir(parents=True)
    table = pa.table(
        {"transaction_id": ["t1", "t2"], "ts": pa.array([1, 2], pa.timestamp("us")), "x": [1, 2]}
    )
    pq.write_table(table, folder / "part-00000.parquet")
    pq.write_table(table.slice(0, 1), folder / "part-00001.parquet")
    text = infer_source(folder / "part-00000.parquet", root=tmp_path)
    draft = yaml.safe_load(text)
    assert draft["name"] == "purchases"
    assert draft["location"] == "raw/purchases/date={date}/*.parquet"
    _keep(tmp_path, text, "purchases")
    source = load_sources(tmp_path)["purchases"]
    read = read_source_days(tmp_path, source, ["2026-01-01"]).days["2026-01-01"]
    assert len(read.files) == 2 and read.table.num_rows == 3
