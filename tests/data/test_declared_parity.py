"""The simulated shop read through its declarations (examples/yarnit/sources) agrees with
today's ingest checks (data/_ingest.py), row by row, on a workspace with every logging fault.

The safety net for switching ingest to the declarations: for each day and source, the same set
of good row keys, and every row today quarantines is set aside by the declared path too. The
one difference left: the declared path sets aside repeated primary keys, which today's ingest
writes (``DECLARED_ONLY_PREFIX``; docs/your-data.md, "The simulated shop, declared").
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.conftest import START, make_workspace

from spindle.core import DataError, SourceDeclaration, check_order, load_sources
from spindle.data import (
    REJECTED_SCHEMA,
    apply_rules,
    check_day,
    check_event_times,
    drop_duplicate_keys,
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
#: Rows the declared path sets aside and today keeps: a repeated primary key (today's ingest
#: writes every copy of a duplicate_burst purchase; the declarations keep the first).
DECLARED_ONLY_PREFIX = "duplicate primary key"
POS = "_parity_pos"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("parity") / "yarnit", DAYS, 0.3, FAULTS)


def _key_columns(decl: SourceDeclaration) -> list[str]:
    # fraud_flags has no key (as today): a row is identified by all its columns.
    return decl.primary_key or ["transaction_id", "flagged_ts", "reason"]


def _keys(rows: list[dict[str, Any]], columns: list[str]) -> set[tuple[str, ...]]:
    return {tuple(str(r[c]) for c in columns) for r in rows}


def _declared(
    root: Path, decl: SourceDeclaration, date: str, others: dict[str, pa.Table]
) -> tuple[pa.Table, dict[int, str], tuple[str, ...]]:
    """The declared path: read, event time within lateness, row rules (reading the good rows
    of the sources they use, in ``others``), primary key.

    Returns:
        (good rows, original row position -> reason for every row set aside, extra columns).
    """
    read = read_source_day(root, decl, date)
    assert read.problem is None, read.problem
    aside = dict(
        zip(
            read.rejected.column("row_number").to_pylist(),
            read.rejected.column("reason").to_pylist(),
            strict=True,
        )
    )
    total = read.table.num_rows + read.rejected.num_rows
    kept = [i for i in range(total) if i not in aside]
    table = read.table.append_column(POS, pa.array(kept, pa.int64()))
    steps = (
        check_event_times,
        lambda t, d, day: apply_rules(t, d, day, others),
        drop_duplicate_keys,
    )
    for step in steps:
        table, rejected = step(table, decl, date)
        for row, reason in zip(
            rejected.column("row_json").to_pylist(),
            rejected.column("reason").to_pylist(),
            strict=True,
        ):
            aside[json.loads(row)[POS]] = reason
    assert rejected.schema == REJECTED_SCHEMA
    return table, aside, read.extra_columns


def _shown(reason: str) -> str:
    """A reason without the values it names, to count reasons (duplicate keys differ)."""
    return reason.split(" = ")[0] if reason.startswith(DECLARED_ONLY_PREFIX) else reason


def test_declarations_load_and_match_the_simulator_layout(shop: Path) -> None:
    sources = load_sources(Path(__file__).parents[2] / "src/spindle/examples/yarnit")
    assert sorted(sources) == sorted(
        ["searches", "impressions", "purchases", "products", "users", "fx_rates", "fraud_flags"]
    )
    assert {s.allowed_lateness_s for s in sources.values() if s.event_time} == {3 * 86400}
    # The workspace made by `spindle init` carries them, and they cover every file written.
    assert sorted(load_sources(shop)) == sorted(sources)
    assert undeclared_files(shop, sources.values()) == []
    assert list_partition_dates(shop, sources["purchases"]) == [
        (START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)
    ]


def test_declared_path_agrees_with_todays_ingest_on_every_day_and_source(shop: Path) -> None:
    sources = load_sources(shop)
    pairs: Counter[tuple[str, str, str]] = Counter()  # (source, today's reason, declared one)
    problems: list[str] = []
    for i in range(DAYS):
        date = (START + dt.timedelta(days=i)).isoformat()
        checked, missing = check_day(shop / "raw", date)
        assert missing == []
        goods: dict[str, pa.Table] = {}
        assert checked[0].source == "fx_rates"  # as check_order puts it first
        for today in checked:
            decl = sources[today.source]
            good, aside, extra = _declared(shop, decl, date, goods)
            goods[today.source] = good
            columns = _key_columns(decl)
            todays_bad = dict(
                zip(
                    today.bad.column("row_number").to_pylist(),
                    today.bad.column("reason").to_pylist(),
                    strict=True,
                )
            )
            todays_good = _keys(today.good.to_pylist(), columns)
            declared_good = _keys(good.to_pylist(), columns)
            if todays_good != declared_good:
                problems.append(
                    f"{date} {today.source}: good keys differ: only today"
                    f" {sorted(todays_good - declared_good)[:3]}, only declared"
                    f" {sorted(declared_good - todays_good)[:3]}"
                )
            if extra != today.extra_columns:
                problems.append(
                    f"{date} {today.source}: extra columns {extra} vs {today.extra_columns}"
                )
            for row, reason in todays_bad.items():
                declared = _shown(aside.get(row, "KEPT"))
                pairs[(today.source, reason, declared)] += 1
                if declared == "KEPT":
                    problems.append(
                        f"{date} {today.source} row {row}: today {reason!r}, declared kept it"
                    )
            for row, reason in aside.items():
                if row not in todays_bad:
                    pairs[(today.source, "KEPT", _shown(reason))] += 1
                    if not reason.startswith(DECLARED_ONLY_PREFIX):
                        problems.append(
                            f"{date} {today.source} row {row}: declared {reason!r}, today kept it"
                        )
    table = "\n".join(f"  {s}: {a!r} -> {b!r}: {n}" for (s, a, b), n in sorted(pairs.items()))
    assert not problems, (
        "\n".join(problems[:20]) + "\n(today's reason -> declared reason):\n" + table
    )
    # The faults happened, and each is caught by both paths (so this test can fail).
    seen = {(s, a) for s, a, _ in pairs}
    for expected in [
        ("products", "NaN list_price"),
        ("purchases", "negative price"),
        ("purchases", "null product_id"),
        ("purchases", "ts outside the partition day (or more than 3 days late)"),
        ("products", "negative list_price"),
        ("products", "null product_id"),
    ]:
        assert expected in seen, table
    assert pairs[("products", "NaN list_price", "NaN list_price")] > 0, table
    null_id = "column product_id: empty in a column that is not nullable"
    assert pairs[("purchases", "null product_id", null_id)] > 0, table
    duplicates = sum(n for (s, a, b), n in pairs.items() if a == "KEPT" and s == "purchases")
    assert duplicates > 0, (
        table
    )  # duplicate_burst: today keeps the copies, declared sets them aside


def test_unknown_currency_is_set_aside_by_a_rule_over_fx_rates(shop: Path) -> None:
    """Today checks currencies against the day's fx_rates; so does the declared rule that
    ``uses: [fx_rates]``, and it needs those rows (a one-line error without them)."""
    sources = load_sources(shop)
    assert check_order(sources).index("fx_rates") < check_order(sources).index("purchases")
    unknown = 0
    for i in range(DAYS):
        date = (START + dt.timedelta(days=i)).isoformat()
        checked, _ = check_day(shop / "raw", date)
        goods: dict[str, pa.Table] = {}
        for today in checked:
            good, aside, _ = _declared(shop, sources[today.source], date, goods)
            goods[today.source] = good
            for row, reason in zip(
                today.bad.column("row_number").to_pylist(),
                today.bad.column("reason").to_pylist(),
                strict=True,
            ):
                if reason == "unknown currency":
                    unknown += 1
                    assert aside[row] == "unknown currency"
    assert unknown > 0  # corrupt_rows wrote currency XXX
    purchases = read_source_day(shop, sources["purchases"], "2026-01-02")
    with pytest.raises(DataError, match=r"its rules read source\(s\) fx_rates; check those first"):
        apply_rules(purchases.table, sources["purchases"])
