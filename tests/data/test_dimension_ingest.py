"""A dimension is written only when its rows change, and every reader still sees, for each day,
the rows a copy written that day would have held: its latest copy at or before the day.

The workspace: a daily ``orders`` source and a ``stores`` dimension whose file changes once,
on day 4 of 6. "The old behaviour" (a copy of the dimension written with every day) is what the
file held when each day was ingested.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from spindle.core import SourceDeclaration, load_sources, open_dataset
from spindle.data import _validate, ingest_day, remove_day, validate_day
from spindle.data._dimensions import copy_dates, latest_copy, register_dimension
from spindle.data._profile import profile_day
from spindle.features._cutoff import register_as_of

ORDERS = """\
name: orders
location: raw/orders/{date}.csv
format: csv
event_time: {column: ts}
primary_key: [order_id]
columns: {order_id: string, ts: timestamp, store_id: string, amount: float64}
provenance: {origin: test shop}
"""
STORES = """\
name: stores
location: reference/stores.csv
format: csv
kind: dimension
primary_key: [store_id]
columns: {store_id: string, city: string, size: int32}
provenance: {origin: test shop}
"""
DAYS = [f"2026-01-0{i}" for i in range(1, 7)]
BEFORE = "store_id,city,size\ns1,Oslo,10\ns2,Lyon,20\ns3,Kyiv,30\n"
AFTER = "store_id,city,size\ns1,Oslo,12\ns2,Lyon,20\ns4,Graz,40\ns5,Pisa,50\n"  # day 4 on
# the latest copy, the idiom of a view over a dimension (docs/your-data.md)
LATEST = "SELECT store_id, city, size FROM stores WHERE date = (SELECT max(date) FROM stores)"


def _workspace(root: Path) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "orders.yaml").write_text(ORDERS)
    (root / "sources" / "stores.yaml").write_text(STORES)
    (root / "reference").mkdir()
    (root / "raw" / "orders").mkdir(parents=True)
    for i, day in enumerate(DAYS):
        (root / "raw" / "orders" / f"{day}.csv").write_text(
            f"order_id,ts,store_id,amount\no{i},{day} 10:00,s1,{i}.5\n"
        )
    return root


def _file_rows(text: str) -> list[tuple[str, str, int]]:
    """The rows a day's copy held under the old behaviour: the file as ingested that day."""
    rows = [line.split(",") for line in text.strip().splitlines()[1:]]
    return sorted((s, c, int(n)) for s, c, n in rows)


def _ingest_days(root: Path, days: list[str]) -> dict[str, str]:
    """Ingest ``days`` in order, the dimension's file changing on day 4; returns each day's file."""
    sources, tables = load_sources(root), root / ".spindle" / "tables"
    held = {}
    for day in days:
        held[day] = BEFORE if day < DAYS[3] else AFTER
        (root / "reference" / "stores.csv").write_text(held[day])
        ingest_day(root, sources, tables, day)
    return held


def _as_of(tables: Path, day: str, sql: str) -> list[tuple[str, str, int]]:
    with duckdb.connect() as con:
        register_as_of(con, tables, {"stores": None}, day)
        return sorted(con.sql(sql).fetchall())


def _by_day(tables: Path, day: str, until: str) -> list[tuple[str, str, int]]:
    with duckdb.connect() as con:
        register_dimension(con, "stores", tables / "raw" / "stores", until)
        sql = f"SELECT store_id, city, size FROM stores WHERE date = '{day}'"
        return sorted(con.sql(sql).fetchall())


def test_a_dimension_is_written_once_per_change_and_read_as_before(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    tables = root / ".spindle" / "tables"
    held = _ingest_days(root, DAYS)
    stores = open_dataset(tables / "raw" / "stores")
    assert copy_dates(stores) == [DAYS[0], DAYS[3]]  # the first day, and the day it changed
    assert stores.count_rows() == 3 + 4  # rows written: 7, against 3 * 3 + 3 * 4 = 21 before
    assert open_dataset(tables / "raw" / "orders").count_rows() == len(DAYS)  # events as before
    for day in DAYS:
        expected = _file_rows(held[day])
        # a feature view or examples SQL: every copy up to the cutoff, the latest one taken
        assert _as_of(tables, day, LATEST) == expected, day
        # a reader of "the day's rows" (validation, statistics): the latest copy, dated that day
        assert _by_day(tables, day, DAYS[-1]) == expected, day
    profiled = profile_day(tables, DAYS[2], ["stores"], dimensions=["stores"]).to_pylist()
    assert {r["count"] for r in profiled} == {3}  # day 3 profiles the copy of day 1


def test_an_unchanged_day_says_so_and_rerunning_a_day_writes_nothing(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    tables, sources = root / ".spindle" / "tables", load_sources(root)
    (root / "reference" / "stores.csv").write_text(BEFORE)
    first = ingest_day(root, sources, tables, DAYS[0])
    assert "raw/stores" in {t.table for t in first.tables} and first.notes == ()
    second = ingest_day(root, sources, tables, DAYS[1])
    assert "raw/stores" not in {t.table for t in second.tables}
    assert second.rows_ingested == first.rows_ingested == 1 + 3  # what the day holds, as before
    assert second.notes == (
        f"unchanged dimension(s) not written again, {DAYS[1]} reads their copy of the day"
        f" shown: stores ({DAYS[0]}, 3 rows)",
    )
    version = DeltaTable(str(tables / "raw" / "stores")).version()
    ingest_day(root, sources, tables, DAYS[0])  # the day holding the copy, again
    assert DeltaTable(str(tables / "raw" / "stores")).version() == version
    # a changed declaration that changes the rows (a column's type) writes a new copy
    (root / "sources" / "stores.yaml").write_text(STORES.replace("size: int32", "size: float64"))
    third = ingest_day(root, load_sources(root), tables, DAYS[2])
    assert "raw/stores" in {t.table for t in third.tables}


def test_a_day_ingested_before_the_first_copy_gets_its_own(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    tables = root / ".spindle" / "tables"
    held = _ingest_days(root, [DAYS[4], DAYS[1], DAYS[2]])  # out of order
    assert copy_dates(open_dataset(tables / "raw" / "stores")) == [DAYS[1], DAYS[4]]
    assert _as_of(tables, DAYS[0], LATEST) == []  # before the first write: nothing, as before
    for day in (DAYS[1], DAYS[2], DAYS[4]):
        assert _as_of(tables, day, LATEST) == _file_rows(held[day])


def test_undoing_the_day_that_holds_the_copy_keeps_it_for_later_days(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    tables = root / ".spindle" / "tables"
    held = _ingest_days(root, DAYS[:5])
    undo = remove_day(tables, DAYS[0], reason="bad export", dimensions=["stores"])
    assert undo.rows_removed == 1 + 3  # the day's order and its copy of the dimension
    dates = copy_dates(open_dataset(tables / "raw" / "stores"))
    assert dates == [DAYS[1], DAYS[3]]  # the copy now stands under the next ingested day
    assert latest_copy(dates, DAYS[0]) is None and _as_of(tables, DAYS[0], LATEST) == []
    for day in DAYS[1:5]:
        assert _as_of(tables, day, LATEST) == _file_rows(held[day]), day
    remove_day(tables, DAYS[4], reason="bad export", dimensions=["stores"])
    assert copy_dates(open_dataset(tables / "raw" / "stores")) == [DAYS[1], DAYS[3]]


@pytest.mark.skipif(
    not hasattr(_validate, "_dimensions"),
    reason="validation reads dimensions by copy once /tmp/briefs/requests-E.md R1 is applied",
)
def test_validation_counts_a_dimension_on_every_day(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws")
    tables, sources = root / ".spindle" / "tables", load_sources(root)
    held = _ingest_days(root, DAYS)
    reference = tuple(DAYS[:2])
    decls: dict[str, SourceDeclaration] = dict(sources)
    for day in DAYS[2:]:
        report = validate_day(tables, day, reference=reference, sources=decls)
        assert report.stats["rows"]["stores"] == len(_file_rows(held[day])), day
        assert not [a for a in report.anomalies if a.source == "stores" and a.severity == "fail"]
