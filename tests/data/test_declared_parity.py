"""The simulated shop read through its declarations (examples/yarnit/sources) agrees with
today's ingest checks (data/_ingest.py), row by row, on a workspace with every logging fault.

The safety net for switching ingest to the declarations: for each day and source, the same set
of good row keys, and every row today quarantines is set aside by the declared path too. The
differences that remain are listed in ``ALLOWED`` (and in docs/your-data.md).
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

from spindle.core import SourceDeclaration, load_sources
from spindle.data import (
    REJECTED_SCHEMA,
    apply_rules,
    check_day,
    check_event_times,
    drop_duplicate_keys,
    read_source_day,
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
#: Today's reasons the declarations cannot give yet: a currency absent from the day's fx_rates
#: needs a rule over another source (docs/your-data.md, "What the simulated shop still needs").
NOT_YET_DECLARED = {"unknown currency"}
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
    root: Path, decl: SourceDeclaration, date: str
) -> tuple[pa.Table, dict[int, str], tuple[str, ...]]:
    """The declared path: read, event time within lateness, row rules, primary key.

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
    steps = (check_event_times, apply_rules, drop_duplicate_keys)
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
    # The workspace made by `spindle init` carries them.
    assert sorted(load_sources(shop)) == sorted(sources)


def test_declared_path_agrees_with_todays_ingest_on_every_day_and_source(shop: Path) -> None:
    sources = load_sources(shop)
    pairs: Counter[tuple[str, str, str]] = Counter()  # (source, today's reason, declared one)
    problems: list[str] = []
    for i in range(DAYS):
        date = (START + dt.timedelta(days=i)).isoformat()
        checked, missing = check_day(shop / "raw", date)
        assert missing == []
        for today in checked:
            decl = sources[today.source]
            good, aside, extra = _declared(shop, decl, date)
            columns = _key_columns(decl)
            todays_bad = dict(
                zip(
                    today.bad.column("row_number").to_pylist(),
                    today.bad.column("reason").to_pylist(),
                    strict=True,
                )
            )
            not_yet = [
                json.loads(j)
                for j, reason in zip(
                    today.bad.column("row_json").to_pylist(), todays_bad.values(), strict=True
                )
                if reason in NOT_YET_DECLARED
            ]
            todays_good = _keys(today.good.to_pylist(), columns)
            # Rows today sets aside for a reason not declared yet are good for the declarations.
            declared_good = _keys(good.to_pylist(), columns) - _keys(not_yet, columns)
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
                if declared == "KEPT" and reason not in NOT_YET_DECLARED:
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


def test_unknown_currency_is_the_one_check_not_declared_yet(shop: Path) -> None:
    """Today sets XXX aside by looking at the day's fx_rates; no single-table rule can (xfail
    until rules may read another source: docs/your-data.md)."""
    sources = load_sources(shop)
    unknown: list[int] = []
    missed: list[int] = []
    for i in range(DAYS):
        date = (START + dt.timedelta(days=i)).isoformat()
        checked, _ = check_day(shop / "raw", date)
        for today in checked:
            rows = [
                row
                for row, reason in zip(
                    today.bad.column("row_number").to_pylist(),
                    today.bad.column("reason").to_pylist(),
                    strict=True,
                )
                if reason == "unknown currency"
            ]
            if rows:
                _, aside, _ = _declared(shop, sources[today.source], date)
                unknown += rows
                missed += [row for row in rows if row not in aside]
    assert unknown  # corrupt_rows wrote currency XXX
    if missed:
        pytest.xfail(f"{len(missed)} rows in currency XXX pass the declarations (cross-source)")
