"""The simulated shop ingested through its declarations (examples/yarnit/sources), on a
workspace with every logging fault: each fault is set aside with its reason, every good row is
written, and no row is lost (rows in the files = rows written + rows quarantined).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import START, make_workspace

from spindle.core import DataError, IngestResult, check_order, load_sources, open_dataset
from spindle.data import (
    apply_rules,
    ingest_day,
    list_partition_dates,
    read_source_day,
    undeclared_files,
)

DAYS = 5
FAULTS = (
    "corrupt_rows@1",
    "corrupt_rows@2",
    "duplicate_burst@3",
    "late_data@3",
    "schema_change@4",
    "corrupt_rows@5",
)


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, IngestResult]]:
    root = make_workspace(tmp_path_factory.mktemp("parity") / "yarnit", DAYS, 0.3, FAULTS)
    sources = load_sources(root)
    tables = root / ".spindle" / "tables"
    return root, {_day(i): ingest_day(root, sources, tables, _day(i)) for i in range(DAYS)}


def _rows(root: Path, table: str, date: str) -> list[dict[str, object]]:
    dataset = open_dataset(root / ".spindle" / "tables" / table)
    rows: list[dict[str, object]] = dataset.to_table(filter=pc.field("date") == date).to_pylist()
    return rows


def test_declarations_load_and_match_the_simulator_layout(
    shop: tuple[Path, dict[str, IngestResult]],
) -> None:
    root, _ = shop
    sources = load_sources(Path(__file__).parents[2] / "src/spindle/examples/yarnit")
    assert sorted(sources) == sorted(
        ["searches", "impressions", "purchases", "products", "users", "fx_rates", "fraud_flags"]
    )
    assert {s.allowed_lateness_s for s in sources.values() if s.event_time} == {3 * 86400}
    # The workspace made by `spindle init` carries them, and they cover every file written.
    assert sorted(load_sources(root)) == sorted(sources)
    assert undeclared_files(root, sources.values()) == []
    assert list_partition_dates(root, sources["purchases"]) == [_day(i) for i in range(DAYS)]


def test_no_row_is_lost_every_day_and_source(shop: tuple[Path, dict[str, IngestResult]]) -> None:
    root, results = shop
    for date, result in results.items():
        assert result.missing_sources == ()
        quarantined = Counter(str(r["source"]) for r in _rows(root, "quarantine", date))
        assert sum(quarantined.values()) == result.rows_quarantined
        written = 0
        for source in load_sources(root):
            files = (root / "raw" / source / f"date={date}").glob("*.parquet")
            in_files = sum(pq.read_metadata(f).num_rows for f in files)
            kept = len(_rows(root, f"raw/{source}", date))
            written += kept
            assert kept + quarantined[source] == in_files, (date, source)
        assert written == result.rows_ingested


def test_corrupt_rows_are_set_aside_each_with_its_reason(
    shop: tuple[Path, dict[str, IngestResult]],
) -> None:
    root, results = shop
    reasons = Counter[str]()
    for i in (0, 1, 4):  # corrupt_rows days
        reasons.update(results[_day(i)].quarantine_reasons)
    for expected in (
        "products: NaN list_price",
        "products: negative list_price",
        "purchases: negative price",
        "purchases: unknown currency",  # a rule that reads the day's good fx_rates rows
        "purchases: column product_id: empty in a column that is not nullable",
        "purchases: ts outside the partition day (or more than 3 days late)",
    ):
        assert reasons[expected] > 0, (expected, reasons)
    # the good rows are written, the bad ones are not
    purchases = _rows(root, "raw/purchases", _day(0))
    assert purchases and all(r["price"] >= 0 and r["currency"] != "XXX" for r in purchases)
    assert all(r["date"] == _day(0) for r in purchases)  # the day ingested under, as text
    quarantine = _rows(root, "quarantine", _day(0))
    assert all(r["row_json"] != "{}" and r["row_number"] >= 0 for r in quarantine)


def test_a_duplicate_burst_keeps_the_first_copy_of_each_key(
    shop: tuple[Path, dict[str, IngestResult]],
) -> None:
    root, results = shop
    duplicates = results[_day(2)].quarantine_reasons[
        "purchases: duplicate primary key (transaction_id)"
    ]
    assert duplicates > 0
    ids = [r["transaction_id"] for r in _rows(root, "raw/purchases", _day(2))]
    assert len(ids) == len(set(ids))
    reasons = [r["reason"] for r in _rows(root, "quarantine", _day(2))]
    assert any(r.startswith("duplicate primary key (transaction_id) = ('") for r in reasons)


def test_late_rows_within_the_allowed_lateness_are_kept(
    shop: tuple[Path, dict[str, IngestResult]],
) -> None:
    """late_data@3: a third of day 3's searches arrive in day 4's partition, ts on day 3."""
    root, _ = shop
    day4 = dt.datetime.combine(START + dt.timedelta(days=3), dt.time())
    late = [r for r in _rows(root, "raw/searches", _day(3)) if r["ts"] < day4]  # type: ignore[operator]
    assert len(late) > 10
    assert all(r["ts"] >= day4 - dt.timedelta(days=1) for r in late)  # type: ignore[operator]


def test_a_new_column_is_kept_and_noted(shop: tuple[Path, dict[str, IngestResult]]) -> None:
    root, results = shop
    assert "impressions: new column(s) ['device'] kept (schema evolution)" in results[_day(3)].notes
    assert not any("device" in n for n in results[_day(2)].notes)
    devices = {r["device"] for r in _rows(root, "raw/impressions", _day(3))}
    assert devices >= {"web", "ios", "android"}
    assert {r["device"] for r in _rows(root, "raw/impressions", _day(0))} == {None}


def test_a_rule_over_fx_rates_needs_its_rows(shop: tuple[Path, dict[str, IngestResult]]) -> None:
    root, _ = shop
    sources = load_sources(root)
    assert check_order(sources).index("fx_rates") < check_order(sources).index("purchases")
    purchases = read_source_day(root, sources["purchases"], _day(1))
    with pytest.raises(DataError, match=r"its rules read source\(s\) fx_rates; check those first"):
        apply_rules(purchases.table, sources["purchases"])
