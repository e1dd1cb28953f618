from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from tests.conftest import make_workspace

from spindle.core import SchemaError
from spindle.data import ingest_day, validate_day


def test_corrupt_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=1, scale=0.2, faults=("corrupt_rows@1",))
    raw, tables = root / "raw", root / ".spindle" / "tables"
    result = ingest_day(raw, tables, "2026-01-01")
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
    again = ingest_day(raw, tables, "2026-01-01")  # idempotent: a partition overwrite
    assert again.rows_quarantined == result.rows_quarantined
    assert (
        DeltaTable(str(tables / "quarantine")).to_pyarrow_table().num_rows
        == result.rows_quarantined
    )


def test_missing_required_column_writes_nothing(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=1, scale=0.2)
    raw, tables = root / "raw", root / ".spindle" / "tables"
    file = next((raw / "purchases" / "date=2026-01-01").glob("*.parquet"))
    pq.write_table(pq.read_table(file).drop_columns(["price"]), file)
    with pytest.raises(SchemaError) as info:
        ingest_day(raw, tables, "2026-01-01")
    assert "price" in str(info.value) and "purchases" in str(info.value)
    assert not (tables / "raw").exists()  # two phases: nothing was written


def test_missing_day_fails_validation(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", days=4, scale=0.2, faults=("missing_day@4",))
    raw, tables = root / "raw", root / ".spindle" / "tables"
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        ingest_day(raw, tables, day)
        assert validate_day(tables, day).verdict != "fail"
    result = ingest_day(raw, tables, "2026-01-04")
    assert "searches" in result.missing_sources
    report = validate_day(tables, "2026-01-04")
    assert report.verdict == "fail"
    assert any(a.kind == "missing_partition" for a in report.anomalies)
