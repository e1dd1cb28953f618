"""Ingest from the declared sources: two phases, whole-partition quarantine, calendar gaps,
undeclared files, and an identity that follows the declarations."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from tests.conftest import make_workspace

from spindle.core import DataError, SchemaError, load_sources, load_validation
from spindle.data import ingest_day, raw_partitions, unread_files, validate_day

ORDERS = """\
name: orders
location: raw/orders/{date}.csv
format: csv
event_time: {column: ts}
primary_key: [order_id]
columns: {order_id: string, ts: timestamp, amount: float64}
calendar: {closed_weekdays: [sunday]}
rules:
  - {check: "amount >= 0", reason: negative amount}
provenance: {origin: test shop}
"""
YARNIT = Path(__file__).parents[2] / "src/spindle/examples/yarnit"
# 2026-01-04 is a Sunday
OPEN_DAY, CLOSED_DAY = "2026-01-05", "2026-01-04"


def _orders_workspace(root: Path, days: dict[str, str]) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "orders.yaml").write_text(ORDERS)
    for day, text in days.items():
        (root / "raw" / "orders").mkdir(parents=True, exist_ok=True)
        (root / "raw" / "orders" / f"{day}.csv").write_text(text)
    return root


def test_corrupt_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=1, scale=0.2, faults=("corrupt_rows@1",))
    raw, tables = root / "raw", root / ".spindle" / "tables"
    result = ingest_day(root, load_sources(root), tables, "2026-01-01")
    assert result.rows_quarantined > 0
    quarantine = DeltaTable(str(tables / "quarantine")).to_pyarrow_table().to_pylist()
    assert len(quarantine) == result.rows_quarantined
    reasons = {q["reason"] for q in quarantine}
    assert any("negative" in r or "NaN" in r or "unknown" in r for r in reasons), reasons
    row = json.loads(quarantine[0]["row_json"])
    assert isinstance(row, dict) and row  # the bad row is kept whole, with its reason
    for source in ("purchases", "products"):
        raw_rows = sum(
            pq.read_table(f).num_rows for f in (raw / source / "date=2026-01-01").glob("*.parquet")
        )
        kept = DeltaTable(str(tables / "raw" / source)).to_pyarrow_table().num_rows
        bad = sum(1 for q in quarantine if q["source"] == source)
        assert kept + bad == raw_rows  # nothing lost
    again = ingest_day(root, load_sources(root), tables, "2026-01-01")  # a partition overwrite
    assert again.rows_quarantined == result.rows_quarantined
    assert again.content_hash == result.content_hash
    assert (
        DeltaTable(str(tables / "quarantine")).to_pyarrow_table().num_rows
        == result.rows_quarantined
    )


def test_missing_required_column_quarantines_the_partition_and_writes_nothing(
    tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path / "ws", days=1, scale=0.2)
    raw, tables = root / "raw", root / ".spindle" / "tables"
    file = next((raw / "purchases" / "date=2026-01-01").glob("*.parquet"))
    pq.write_table(pq.read_table(file).drop_columns(["price"]), file)
    with pytest.raises(SchemaError) as info:
        ingest_day(root, load_sources(root), tables, "2026-01-01")
    message = str(info.value)
    assert "purchases: " in message and str(file) in message
    assert "missing required column(s) price" in message and "\n" not in message
    assert not tables.exists()  # two phases: nothing of the day was written


def test_an_unreadable_partition_quarantines_whole_and_the_day_writes_nothing(
    tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path / "ws", days=1, scale=0.2)
    tables = root / ".spindle" / "tables"
    file = next((root / "raw" / "impressions" / "date=2026-01-01").glob("*.parquet"))
    file.write_bytes(b"PAR1 not a parquet file" * 50)
    with pytest.raises(DataError) as info:
        ingest_day(root, load_sources(root), tables, "2026-01-01")
    assert not isinstance(info.value, SchemaError)
    assert f"impressions: {file}: cannot be read as parquet" in str(info.value)
    assert "nothing of the day was written" in str(info.value)
    assert not tables.exists()


def test_missing_day_is_a_missing_source_and_fails_validation(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=4, scale=0.2, faults=("missing_day@4",))
    tables, sources = root / ".spindle" / "tables", load_sources(root)
    config = load_validation(YARNIT, sources)  # the shop's validation.yaml
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        assert ingest_day(root, sources, tables, day).missing_sources == ()
        assert validate_day(tables, day, sources=sources, config=config).verdict != "fail"
    result = ingest_day(root, sources, tables, "2026-01-04")
    assert set(result.missing_sources) == {"searches", "impressions", "purchases"}
    report = validate_day(tables, "2026-01-04", sources=sources, config=config)
    assert report.verdict == "fail"
    assert any(a.kind == "missing_partition" for a in report.anomalies)


def test_no_partition_on_a_calendar_closed_day_is_expected_not_missing(tmp_path: Path) -> None:
    root = _orders_workspace(
        tmp_path / "ws", {"2026-01-03": "order_id,ts,amount\no1,2026-01-03 10:00,3.5\n"}
    )
    sources, tables = load_sources(root), root / ".spindle" / "tables"
    closed = ingest_day(root, sources, tables, CLOSED_DAY)
    assert closed.missing_sources == () and closed.rows_ingested == 0
    assert closed.notes == (
        f"orders: no data for {CLOSED_DAY}, a closed day in its calendar (expected)",
    )
    opened = ingest_day(root, sources, tables, OPEN_DAY)
    assert opened.missing_sources == ("orders",)  # an unplanned gap: a missing-data anomaly
    assert ingest_day(root, sources, tables, "2026-01-03").rows_ingested == 1


def test_files_no_declaration_reads_are_listed_for_their_day(tmp_path: Path) -> None:
    root = _orders_workspace(
        tmp_path / "ws", {OPEN_DAY: "order_id,ts,amount\no1,2026-01-05 10:00,-1\n"}
    )
    (root / "raw" / "refunds").mkdir()
    (root / "raw" / "refunds" / f"{OPEN_DAY}.csv").write_text("id\nr1\n")
    (root / "raw" / "refunds" / "2026-01-06.csv").write_text("id\nr2\n")
    sources = load_sources(root)
    assert unread_files(root, sources, root / "raw", OPEN_DAY) == [f"refunds/{OPEN_DAY}.csv"]
    result = ingest_day(root, sources, root / ".spindle" / "tables", OPEN_DAY)
    assert result.quarantine_reasons == {"orders: negative amount": 1}


def test_a_changed_declaration_or_file_changes_the_days_identity(tmp_path: Path) -> None:
    root = _orders_workspace(
        tmp_path / "ws", {OPEN_DAY: "order_id,ts,amount\no1,2026-01-05 10:00,2\n"}
    )
    before = raw_partitions(root, load_sources(root), OPEN_DAY)
    assert [(p.source, p.rows) for p in before] == [("orders", 1)]
    assert raw_partitions(root, load_sources(root), OPEN_DAY) == before  # stable
    yaml = root / "sources" / "orders.yaml"
    yaml.write_text(yaml.read_text().replace("amount >= 0", "amount > 0"))
    changed = raw_partitions(root, load_sources(root), OPEN_DAY)
    assert changed[0].content_hash != before[0].content_hash
    (root / "raw" / "orders" / f"{OPEN_DAY}.csv").write_text(
        "order_id,ts,amount\no1,2026-01-05 10:00,3\n"
    )
    assert raw_partitions(root, load_sources(root), OPEN_DAY)[0].content_hash != (
        changed[0].content_hash
    )
    assert raw_partitions(root, load_sources(root), CLOSED_DAY) == []


def test_a_dump_is_split_by_event_time_and_undated_rows_are_said(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "visits.yaml").write_text(
        "name: visits\nlocation: history/visits.csv\nformat: csv\nevent_time: {column: ts}\n"
        "primary_key: [visit_id]\ncolumns: {visit_id: string, ts: timestamp}\n"
        "provenance: {origin: test}\n"
    )
    (root / "history").mkdir()
    (root / "history" / "visits.csv").write_text(
        "visit_id,ts\nv1,2026-01-05 10:00\nv2,2026-01-05 23:59\nv3,2026-01-06 00:00\nv4,soon\n"
    )
    sources, tables = load_sources(root), root / ".spindle" / "tables"
    result = ingest_day(root, sources, tables, OPEN_DAY)
    assert (result.rows_ingested, result.rows_quarantined, result.missing_sources) == (2, 0, ())
    assert result.notes == (
        "visits: 1 row(s) of the dump have no readable event time, so no day holds them"
        " (not ingested): fix their event time in the file",
    )
    assert [p.source for p in raw_partitions(root, sources, "2026-01-06")] == ["visits"]
    assert ingest_day(root, sources, tables, "2026-01-07").missing_sources == ("visits",)
