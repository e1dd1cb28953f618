"""Data validation: every simulator fault is caught on the day it starts; healthy days pass."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace

from spindle.core import SourceDeclaration, ValidationConfig, load_sources, load_validation
from spindle.data import ValidationReport, ingest_day, load_profiles, validate_day

YARNIT = Path(__file__).parents[2] / "src" / "spindle" / "examples" / "yarnit"
SOURCES: dict[str, SourceDeclaration] = load_sources(YARNIT)
CONFIG: ValidationConfig = load_validation(YARNIT, SOURCES)


def _validate(
    tables: Path, date: str, reference: tuple[str, ...] | None = None
) -> ValidationReport:
    return validate_day(tables, date, reference=reference, sources=SOURCES, config=CONFIG)


# One workspace, one fault a day after four healthy days (faults that persist come last).
FAULTS = {
    5: "corrupt_rows",
    6: "duplicate_burst",
    7: "missing_slice:DE",
    8: "label_flip",
    9: "missing_day",
    10: "late_data",
    12: "schema_change",
    13: "discount_drop",
}
DAYS = 13


def _day(number: int) -> str:
    return (START + dt.timedelta(days=number - 1)).isoformat()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, ValidationReport]]:
    faults = tuple(f"{kind}@{day}" for day, kind in FAULTS.items())
    root = make_workspace(tmp_path_factory.mktemp("faults") / "ws", DAYS, 0.2, faults)
    tables = root / ".spindle" / "tables"
    out: dict[int, ValidationReport] = {}
    failed: list[str] = []
    for number in range(1, DAYS + 1):
        ingest_day(root, SOURCES, tables, _day(number))
        # Days that failed are left out of later days' history (the trailing week without them).
        week = [_day(n) for n in range(max(1, number - 7), number)]
        reference = tuple(d for d in week if d not in failed)
        out[number] = _validate(tables, _day(number), reference)
        if out[number].verdict == "fail":
            failed.append(_day(number))
    out[0] = _validate(tables, _day(4))  # re-validating is stable (stats stored once)
    yield out


def _kinds(report: ValidationReport) -> dict[str, str]:
    return {a.kind: a.severity for a in report.anomalies}


def test_healthy_days_pass(reports: dict[int, ValidationReport]) -> None:
    # days 1 and 2 have fewer than two earlier days to compare with: "no baseline", not PASS
    for number in (1, 2):
        assert reports[number].verdict == "warn", reports[number].anomalies
        assert {a.kind for a in reports[number].anomalies} == {"no_baseline"}
    for number in (3, 4):
        assert reports[number].verdict == "pass", reports[number].anomalies
    assert reports[0].verdict == "pass"


@pytest.mark.parametrize(
    ("number", "kind", "verdict"),
    [
        (5, "quarantined_rows", "warn"),  # corrupt_rows: quarantined with reasons, day goes on
        (6, "duplicate_burst", "fail"),
        (7, "slice_vanished", "fail"),  # missing_slice:DE
        (8, "label_shift", "fail"),  # label_flip
        (9, "missing_partition", "fail"),  # missing_day
        (10, "row_count_drop", "fail"),  # late_data: 30% of the day arrives tomorrow
        (12, "schema_change", "warn"),  # an added column is a WARN, ingestion goes on
        (13, "slice_vanished", "fail"),  # discount_drop
    ],
)
def test_fault_caught_on_its_day(
    reports: dict[int, ValidationReport], number: int, kind: str, verdict: str
) -> None:
    report = reports[number]
    assert report.verdict == verdict, report.anomalies
    assert kind in _kinds(report), report.anomalies
    payload = json.loads(json.dumps(report.properties()))
    for anomaly in payload["anomalies"]:
        assert set(anomaly) == {
            "kind",
            "source",
            "column",
            "slice",
            "expected",
            "observed",
            "severity",
            "message",
        }


def test_evidence_names_the_slice_and_the_bias(reports: dict[int, ValidationReport]) -> None:
    missing_slice = reports[7].anomalies
    vanished = [a for a in missing_slice if a.kind == "slice_vanished"]
    assert {a.slice for a in vanished} == {"country=DE"}
    assert all(a.expected and a.expected > 0.05 and a.observed == 0.0 for a in vanished)
    bias = [a for a in missing_slice if a.kind == "missing_data_bias"]
    assert bias and all("concentrated" in a.message and a.slice == "country=DE" for a in bias)
    late = [a for a in reports[10].anomalies if a.kind == "missing_data_bias"]
    assert any(a.source == "searches" and "random" in a.message for a in late)
    discount = [a for a in reports[13].anomalies if a.kind == "slice_vanished"]
    assert [a.slice for a in discount] == ["discounted=True"]
    assert any(a.kind == "late_data" for a in reports[11].anomalies)  # the late rows arrive


def test_statistics_are_stored_per_partition(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 2, 0.1)
    tables = root / ".spindle" / "tables"
    for number in (1, 2):
        ingest_day(root, SOURCES, tables, _day(number))
    _validate(tables, _day(2))
    stored = load_profiles(tables, [_day(1), _day(2)])
    assert set(stored) == {_day(1), _day(2)}  # history profiled once, then kept
    price = next(r for r in stored[_day(2)] if (r["source"], r["column"]) == ("purchases", "price"))
    assert price["count"] > 0 and price["nulls"] == 0 and price["mean"] > 0
    assert len(price["quantiles"]) == 11 and price["distinct"] > 1


@pytest.mark.slow
def test_a_healthy_week_raises_no_fail(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", 9, 0.2)
    tables = root / ".spindle" / "tables"
    for number in range(1, 10):
        ingest_day(root, SOURCES, tables, _day(number))
        report = _validate(tables, _day(number))
        assert report.verdict != "fail", (number, report.anomalies)
