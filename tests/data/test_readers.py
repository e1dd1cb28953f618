"""Reading declared sources from real files: every format, casts, time zones, quarantine."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spindle.core import SourceDeclaration
from spindle.data import (
    apply_rules,
    check_event_times,
    drop_duplicate_keys,
    list_partition_dates,
    read_source_day,
    read_source_days,
    undeclared_files,
)


def _decl(**overrides: Any) -> SourceDeclaration:
    base: dict[str, Any] = {
        "name": "orders",
        "location": "raw/orders/{date}.csv",
        "format": "csv",
        "event_time": {"column": "ts"},
        "primary_key": ["order_id"],
        "columns": {
            "order_id": "string",
            "ts": "timestamp",
            "price": "float64",
            "qty": {"type": "int64", "nullable": True},
        },
        "provenance": {"origin": "test shop"},
    }
    base.update(overrides)
    return SourceDeclaration.model_validate(base)


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_custom_delimiter_null_markers_and_timestamp_format(tmp_path: Path) -> None:
    _write(
        tmp_path / "raw/orders/2026-01-02.csv",
        "order_id;ts;price;qty\n"
        "o1;02/01/2026 10:00;9.5;NA\n"
        "o2;02/01/2026 11:30;abc;2\n"
        "o3;31/02/2026 11:30;1.0;3\n",
    )
    source = _decl(
        csv={"delimiter": ";", "null_values": ["NA"], "timestamp_format": "%d/%m/%Y %H:%M"}
    )
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.problem is None
    assert read.table.schema == source.arrow_schema()
    assert read.table.to_pylist() == [
        {"order_id": "o1", "ts": dt.datetime(2026, 1, 2, 10, 0), "price": 9.5, "qty": None}
    ]
    reasons = dict(
        zip(
            read.rejected["row_number"].to_pylist(),
            read.rejected["reason"].to_pylist(),
            strict=True,
        )
    )
    assert reasons == {
        1: "column price: cannot read 'abc' as float64",
        2: "column ts: cannot read '31/02/2026 11:30' as timestamp (%d/%m/%Y %H:%M)",
    }
    assert json.loads(read.rejected["row_json"][0].as_py())["price"] == "abc"


def test_csv_without_header_and_a_malformed_line(tmp_path: Path) -> None:
    _write(
        tmp_path / "raw/orders/2026-01-02.csv",
        "o1,2026-01-02T10:00:00,1.5,1\no2,2026-01-02T10:00:00\no3,2026-01-02T12:00:00Z,2,\n",
    )
    read = read_source_day(tmp_path, _decl(csv={"header": False}), "2026-01-02")
    assert read.table["order_id"].to_pylist() == ["o1", "o3"]
    assert read.table["qty"].to_pylist() == [1, None]
    assert read.rejected["row_number"].to_pylist() == [-1]
    assert "malformed CSV line" in read.rejected["reason"][0].as_py()


def test_jsonl_string_in_a_numeric_column_is_a_row_level_reason(tmp_path: Path) -> None:
    rows = [
        {"order_id": "o1", "ts": "2026-01-02T08:00:00", "price": 3, "qty": 1, "note": "x"},
        {"order_id": "o2", "ts": "2026-01-02T09:00:00", "price": "abc", "qty": 1},
        {"order_id": "o3", "ts": "2026-01-02T09:30:00", "price": 2.25},
        {"order_id": "o4", "ts": "2026-01-02T09:30:00", "price": 2.5, "qty": 1.5},
    ]
    _write(tmp_path / "raw/orders/2026-01-02.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    source = _decl(location="raw/orders/{date}.jsonl", format="jsonl")
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.table["order_id"].to_pylist() == ["o1", "o3"]
    assert read.table["price"].to_pylist() == [3.0, 2.25]
    assert read.rejected["reason"].to_pylist() == [
        "column price: cannot read 'abc' as float64",
        "column qty: cannot read '1.5' as int64",
    ]
    assert read.extra_columns == ("note",)


def test_parquet_string_price_and_timezone_aware_times(tmp_path: Path) -> None:
    times = pa.array(
        [dt.datetime(2026, 1, 2, 10, tzinfo=dt.UTC), dt.datetime(2026, 1, 2, 11, tzinfo=dt.UTC)],
        pa.timestamp("ms", "Europe/Paris"),
    )
    table = pa.table(
        {"order_id": ["o1", "o2"], "ts": times, "price": ["1.25", "cheap"], "qty": [1, 2]}
    )
    pq.write_table(table, _write(tmp_path / "raw/orders/2026-01-02.parquet", b""))
    source = _decl(location="raw/orders/{date}.parquet", format="parquet")
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.table.to_pylist() == [
        {"order_id": "o1", "ts": dt.datetime(2026, 1, 2, 10), "price": 1.25, "qty": 1}
    ]
    assert read.rejected["reason"].to_pylist() == ["column price: cannot read 'cheap' as float64"]


def test_garbage_partition_is_quarantined_whole_naming_the_file(tmp_path: Path) -> None:
    bad = _write(tmp_path / "raw/orders/2026-01-02.parquet", b"\x00\x01garbage" * 50)
    source = _decl(location="raw/orders/{date}.parquet", format="parquet")
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.quarantined and read.table.num_rows == 0
    assert read.problem is not None and read.problem.startswith(f"{bad}: cannot be read as parquet")


def test_missing_required_column_quarantines_the_partition(tmp_path: Path) -> None:
    _write(tmp_path / "raw/orders/2026-01-02/a.csv", "order_id,ts,qty\no1,2026-01-02T01:00:00,1\n")
    _write(
        tmp_path / "raw/orders/2026-01-02/b.csv", "order_id,ts,price\no2,2026-01-02T01:00:00,1\n"
    )
    source = _decl(location="raw/orders/{date}/*.csv")
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.problem is not None
    assert "a.csv: missing required column(s) price" in read.problem
    # b.csv alone is fine: a missing nullable column reads as nulls
    (tmp_path / "raw/orders/2026-01-02/a.csv").unlink()
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.problem is None and read.table["qty"].to_pylist() == [None]


def test_dump_split_into_utc_days_from_new_york_time(tmp_path: Path) -> None:
    _write(
        tmp_path / "raw/history.csv",
        "order_id,ts,price,qty\n"
        "o1,2026-01-01 12:00:00,1,1\n"
        "o2,2026-01-01 23:30:00,2,1\n"  # 04:30 UTC on Jan 2
        "o3,2026-01-02 10:00:00,-3,1\n"
        "o4,not a time,4,1\n"
        "o5,2026-01-02 10:00:00,five,1\n",
    )
    source = _decl(
        location="raw/history.csv",
        event_time={"column": "ts", "timezone": "America/New_York"},
    )
    reads = read_source_days(tmp_path, source, ["2026-01-01", "2026-01-02"])
    assert reads.days["2026-01-01"].table["order_id"].to_pylist() == ["o1"]
    jan2 = reads.days["2026-01-02"]
    assert jan2.table["order_id"].to_pylist() == ["o2", "o3"]
    assert jan2.table["ts"][0].as_py() == dt.datetime(2026, 1, 2, 4, 30)
    assert jan2.rejected["reason"].to_pylist() == ["column price: cannot read 'five' as float64"]
    assert reads.undated["reason"].to_pylist() == [
        "column ts: cannot read 'not a time' as timestamp"
    ]


def test_delta_table_split_by_event_time(tmp_path: Path) -> None:
    from deltalake import write_deltalake

    table = pa.table(
        {
            "order_id": ["o1", "o2", "o3"],
            "ts": pa.array(
                [
                    dt.datetime(2026, 1, 1, 5),
                    dt.datetime(2026, 1, 2, 6),
                    dt.datetime(2026, 1, 2, 7),
                ],
                pa.timestamp("us"),
            ),
            "price": [1.0, 2.0, 3.0],
            "qty": pa.array([1, None, 3], pa.int64()),
        }
    )
    write_deltalake(str(tmp_path / "lake/orders"), table)
    source = _decl(location="lake/orders", format="delta")
    reads = read_source_days(tmp_path, source, ["2026-01-02", "2026-01-03"])
    assert reads.days["2026-01-02"].table["order_id"].to_pylist() == ["o2", "o3"]
    assert reads.days["2026-01-03"].table.num_rows == 0
    missing = read_source_day(tmp_path, _decl(location="lake/none", format="delta"), "2026-01-02")
    assert missing.problem is not None and "cannot be read as delta" in missing.problem


def test_partition_dates_and_undeclared_files(tmp_path: Path) -> None:
    for day in ("2026-01-02", "2026-01-01"):
        _write(tmp_path / f"raw/orders/{day}.csv", "order_id,ts,price\n")
    _write(tmp_path / "raw/orders/notes.csv", "x\n")
    _write(tmp_path / "raw/clicks/2026-01-01/part-0.parquet", b"")
    _write(tmp_path / "raw/history.csv", "x\n")
    sources = [_decl(), _decl(name="history", location="raw/history.csv")]
    assert list_partition_dates(tmp_path, sources[0]) == ["2026-01-01", "2026-01-02"]
    assert undeclared_files(tmp_path, sources) == [
        "raw/clicks/2026-01-01/part-0.parquet",
        "raw/orders/notes.csv",
    ]
    clicks = _decl(name="clicks", location="raw/clicks/{date}", format="parquet")
    assert list_partition_dates(tmp_path, clicks) == ["2026-01-01"]
    assert undeclared_files(tmp_path, [*sources, clicks]) == ["raw/orders/notes.csv"]


def test_rules_and_duplicate_keys_set_rows_aside_with_reasons(tmp_path: Path) -> None:
    _write(
        tmp_path / "raw/orders/2026-01-02.csv",
        "order_id,ts,price,qty\n"
        "o1,2026-01-02T01:00:00,5,1\n"
        "o2,2026-01-02T02:00:00,-1,\n"
        "o1,2026-01-02T03:00:00,6,2\n"
        "o3,2026-01-02T04:00:00,7,\n",
    )
    source = _decl(
        rules=[
            {"check": "price > 0", "reason": "non-positive price"},
            {"check": "qty >= 1", "reason": "no quantity"},
        ]
    )
    read = read_source_day(tmp_path, source, "2026-01-02")
    unique, duplicates = drop_duplicate_keys(read.table, source)
    assert unique["order_id"].to_pylist() == ["o1", "o2", "o3"]
    assert unique["price"].to_pylist() == [5.0, -1.0, 7.0]  # the first occurrence is kept
    assert duplicates["reason"].to_pylist() == ["duplicate primary key (order_id) = ('o1')"]
    assert duplicates["row_number"].to_pylist() == [2]
    good, failed = apply_rules(unique, source)
    assert good["order_id"].to_pylist() == ["o1"]
    # o2 fails both rules and gets the first one's reason; o3's qty is NULL: not true, so failing
    assert failed["reason"].to_pylist() == ["non-positive price", "no quantity"]
    assert good.schema == source.arrow_schema()


def test_local_times_in_a_daylight_saving_gap_are_refused_ambiguous_ones_read_early(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path / "raw/orders/2026-03-08.csv",
        "order_id,ts,price\n"
        "o1,2026-03-08T02:30:00,1\n"  # clocks jump 02:00 -> 03:00 in New York
        "o2,2026-03-08T03:30:00,1\n",
    )
    _write(
        tmp_path / "raw/orders/2026-11-01.csv",
        "order_id,ts,price\no3,2026-11-01T01:30:00,1\n",  # 01:00-02:00 happens twice
    )
    source = _decl(event_time={"column": "ts", "timezone": "America/New_York"})
    spring = read_source_day(tmp_path, source, "2026-03-08")
    assert spring.table["ts"].to_pylist() == [dt.datetime(2026, 3, 8, 7, 30)]
    assert spring.rejected["reason"].to_pylist() == [
        "column ts: 2026-03-08 02:30:00 does not exist in America/New_York (a daylight-saving gap)"
    ]
    autumn = read_source_day(tmp_path, source, "2026-11-01")
    assert autumn.table["ts"].to_pylist() == [dt.datetime(2026, 11, 1, 5, 30)]  # EDT, the earlier


def test_a_column_stored_in_an_unconvertible_type_quarantines_the_partition(
    tmp_path: Path,
) -> None:
    table = pa.table({"order_id": ["o1"], "ts": [True], "price": [1.0]})
    pq.write_table(table, _write(tmp_path / "raw/orders/2026-01-02.parquet", b""))
    source = _decl(location="raw/orders/{date}.parquet", format="parquet")
    read = read_source_day(tmp_path, source, "2026-01-02")
    assert read.problem is not None
    assert read.problem.endswith(
        "2026-01-02.parquet: column ts holds bool, which cannot be read as timestamp"
    )


def test_a_column_mostly_unreadable_quarantines_the_partition(tmp_path: Path) -> None:
    rows = "".join(f"o{i},2026-01-02T01:00:00,n/a\n" for i in range(1200))
    path = _write(tmp_path / "raw/orders/2026-01-02.csv", "order_id,ts,price\n" + rows)
    read = read_source_day(tmp_path, _decl(), "2026-01-02")
    assert read.problem is not None and read.problem.startswith(f"{path}: column price: 1000 of")
    assert "cannot read 'n/a' as float64" in read.problem
    assert read.problem.endswith("is the declared type right?")


def _zip(path: Path, members: dict[str, str]) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


ORDERS_CSV = "order_id,ts,price\no1,2026-01-02T23:30:00,5\no2,2026-01-03T01:00:00,x\n"


def test_zipped_csv_is_read_without_extracting(tmp_path: Path) -> None:
    _zip(tmp_path / "raw/orders.csv.zip", {"orders.csv": ORDERS_CSV, "__MACOSX/._orders.csv": "x"})
    source = _decl(location="raw/orders.csv.zip", event_time={"column": "ts"})
    days = read_source_days(tmp_path, source, ["2026-01-02", "2026-01-03"]).days
    assert days["2026-01-02"].table["order_id"].to_pylist() == ["o1"]
    assert days["2026-01-03"].rejected["reason"].to_pylist() == [
        "column price: cannot read 'x' as float64"
    ]
    _zip(tmp_path / "raw/two.csv.zip", {"a.csv": ORDERS_CSV, "b.csv": ORDERS_CSV})
    read = read_source_day(tmp_path, _decl(location="raw/two.csv.zip"), "2026-01-02")
    assert read.quarantined and read.table.num_rows == 0
    assert read.problem is not None
    assert "two.csv.zip: a zipped CSV must hold exactly one file; it holds a.csv, b.csv" in (
        read.problem
    )


def test_package_location_reads_an_installed_packages_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real package on sys.path; it is found with importlib.util.find_spec, never imported
    # (its __init__ raises, like a package whose import needs something missing).
    _write(tmp_path / "site/shopdata/__init__.py", "raise ImportError('not importable')\n")
    _zip(tmp_path / "site/shopdata/data/orders.csv.zip", {"orders.csv": ORDERS_CSV})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    source = _decl(location="package://shopdata/data/orders.csv.zip")
    read = read_source_day(tmp_path / "elsewhere", source, "2026-01-02")
    assert read.problem is None
    assert read.table["order_id"].to_pylist() == ["o1"]
    assert read.files == (str(tmp_path / "site/shopdata/data/orders.csv.zip"),)
    assert undeclared_files(tmp_path, [source]) == []  # nothing under raw/ is claimed
    missing = _decl(location="package://no_such_pkg_xyz/data/orders.csv")
    gone = read_source_day(tmp_path, missing, "2026-01-02")
    assert gone.problem == (
        "package://no_such_pkg_xyz/data/orders.csv: package 'no_such_pkg_xyz' is not installed"
        " here; install it (pip install no_such_pkg_xyz) or change the location"
    )
    with pytest.raises(ValueError, match="package://<package>/<path inside it>"):
        _decl(location="package://shopdata")


def test_a_dimension_holds_the_same_rows_on_every_day(tmp_path: Path) -> None:
    _write(tmp_path / "ref/stores.csv", "store_id,city\ns1,Lyon\ns2,\ns1,Nice\n")
    dimension: dict[str, Any] = {
        "name": "stores",
        "location": "ref/stores.csv",
        "format": "csv",
        "kind": "dimension",
        "primary_key": ["store_id"],
        "columns": {"store_id": "string", "city": "string"},
        "provenance": {"origin": "store list"},
    }
    source = SourceDeclaration.model_validate(dimension)
    assert source.layout == "static" and source.event_time is None
    days = read_source_days(tmp_path, source, ["2026-01-01", "2026-03-09"]).days
    for date, read in days.items():
        assert read.table["store_id"].to_pylist() == ["s1", "s1"]
        assert read.rejected["reason"].to_pylist() == [
            "column city: empty in a column that is not nullable"
        ]
        assert read.rejected["date"].to_pylist() == [date]
        _, duplicates = drop_duplicate_keys(read.table, source)
        assert duplicates["reason"].to_pylist() == ["duplicate primary key (store_id) = ('s1')"]
    with pytest.raises(ValueError, match="a dimension is one file or folder without"):
        SourceDeclaration.model_validate({**dimension, "location": "ref/{date}.csv"})
    with pytest.raises(ValueError, match="a dimension has no event time"):
        SourceDeclaration.model_validate(
            {
                **dimension,
                "event_time": {"column": "city"},
                "columns": {"store_id": "string", "city": "date"},
            }
        )


def test_event_times_outside_the_day_and_its_lateness_are_set_aside(tmp_path: Path) -> None:
    _write(
        tmp_path / "raw/orders/2026-01-05.csv",
        "order_id,ts,price\n"
        "o1,2026-01-05T23:59:59,1\n"  # on the day
        "o2,2026-01-03T00:00:00,1\n"  # 2 days late: accepted
        "o3,2026-01-02T23:59:59,1\n"  # more than 2 days late
        "o4,2026-01-06T00:00:00,1\n",  # tomorrow
    )
    source = _decl(allowed_lateness="2d")
    read = read_source_day(tmp_path, source, "2026-01-05")
    kept, late = check_event_times(read.table, source, "2026-01-05")
    assert kept["order_id"].to_pylist() == ["o1", "o2"]
    assert late["row_number"].to_pylist() == [2, 3]
    assert (
        late["reason"].to_pylist()
        == ["ts outside the partition day (or more than 2 days late)"] * 2
    )
    dump = _decl(location="raw/orders/2026-01-05.csv")  # split by event time: nothing is late
    assert check_event_times(read.table, dump, "2026-01-05")[1].num_rows == 0


RATES = """
name: rates
location: raw/rates/{date}.csv
format: csv
kind: snapshot
columns: {currency: string, usd: float64}
provenance: {origin: treasury}
"""
PAYMENTS = """
name: payments
location: raw/payments/{date}.csv
format: csv
event_time: {column: ts}
columns: {pay_id: string, ts: timestamp, currency: string}
rules:
  - {check: "currency IN (SELECT currency FROM rates)", reason: unknown currency, uses: [rates]}
provenance: {origin: shop}
"""


def test_a_rule_may_read_another_source_of_the_day(tmp_path: Path) -> None:
    from spindle.core import check_order, load_sources

    _write(tmp_path / "sources/s.yaml", PAYMENTS + "---\n" + RATES)
    _write(tmp_path / "raw/rates/2026-01-02.csv", "currency,usd\nEUR,1.1\nUSD,1\n")
    _write(
        tmp_path / "raw/payments/2026-01-02.csv",
        "pay_id,ts,currency\np1,2026-01-02T01:00:00,EUR\np2,2026-01-02T02:00:00,XXX\n",
    )
    sources = load_sources(tmp_path)
    assert check_order(sources) == ["rates", "payments"]
    rates = read_source_day(tmp_path, sources["rates"], "2026-01-02").table
    payments = read_source_day(tmp_path, sources["payments"], "2026-01-02").table
    good, failed = apply_rules(payments, sources["payments"], "2026-01-02", {"rates": rates})
    assert good["pay_id"].to_pylist() == ["p1"]
    assert failed["reason"].to_pylist() == ["unknown currency"]
    # No rates that day: an empty table, so every currency is unknown.
    empty = sources["rates"].arrow_schema().empty_table()
    assert apply_rules(payments, sources["payments"], "", {"rates": empty})[0].num_rows == 0


def test_rules_over_other_sources_are_checked_when_all_are_loaded(tmp_path: Path) -> None:
    from spindle.core import ConfigError, load_sources

    typo = PAYMENTS.replace("SELECT currency FROM", "SELECT code FROM")
    _write(tmp_path / "a/sources/s.yaml", typo + "---\n" + RATES)
    with pytest.raises(ConfigError) as err:
        load_sources(tmp_path / "a")
    text = "\n".join(err.value.problems)
    assert (
        "sources/s.yaml: line 2, key 'rules.0.check': rule 'unknown currency' does not run" in text
    )
    _write(tmp_path / "b/sources/s.yaml", PAYMENTS)
    with pytest.raises(ConfigError) as err:
        load_sources(tmp_path / "b")
    assert (
        "key 'rules.0.uses.0': rule 'unknown currency' uses source 'rates', which is not"
        " declared (declared: payments)" in "\n".join(err.value.problems)
    )
    circular = RATES.replace(
        "provenance:",
        'rules: [{check: "currency IN (SELECT currency FROM payments)", reason: x,'
        " uses: [payments]}]\nprovenance:",
    )
    _write(tmp_path / "c/sources/s.yaml", PAYMENTS + "---\n" + circular)
    with pytest.raises(ConfigError) as err:
        load_sources(tmp_path / "c")
    assert "rules use each other's sources in a cycle (payments -> rates -> payments)" in (
        "\n".join(err.value.problems)
    )
