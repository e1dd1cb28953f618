"""The reference window never drifts into a fault, and a day without one is not a PASS.

A ``discount_drop`` fault persists from its day on: every later day lacks discounted purchases.
Those days must all FAIL against the healthy days before the fault, however long it lasts,
until an operator accepts a day as the new normal (``spindle validate accept``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from tests.conftest import START, make_workspace
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import load_sources, load_validation
from spindle.data import ValidationReport, ingest_day, validate_day
from spindle.orchestrate import Context, ingest, validate

FAULT_DAY, DAYS = 4, 10  # seven fault days: longer than the 7-day reference window


def _day(number: int) -> str:
    return (START + dt.timedelta(days=number - 1)).isoformat()


@pytest.fixture(scope="module")
def persisting(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[int, ValidationReport]]:
    root = make_workspace(
        tmp_path_factory.mktemp("persist") / "ws", DAYS, 0.1, (f"discount_drop@{FAULT_DAY}",)
    )
    assert (root / "validation.yaml").is_file()  # `spindle init` copies the shop's checks
    reports = {}
    with Context.open(root) as ctx:
        for number in range(1, DAYS + 1):
            ingest(ctx, _day(number))
            reports[number] = validate(ctx, _day(number))
    return root, reports


def test_first_days_say_no_baseline_not_pass(
    persisting: tuple[Path, dict[int, ValidationReport]],
) -> None:
    root, reports = persisting
    for number in (1, 2):
        report = reports[number]
        assert report.verdict == "warn", report.anomalies
        assert [a.kind for a in report.anomalies] == ["no_baseline"], report.anomalies
    # two reference days: the checks run (this small day may WARN on noise, never FAIL)
    assert reports[3].verdict != "fail", reports[3].anomalies
    assert "no_baseline" not in {a.kind for a in reports[3].anomalies}
    assert reports[3].history_verdicts == {_day(1): "warn", _day(2): "warn"}
    cli = CliRunner()
    assert cli.invoke(app, ["validate", "--date", _day(1), "-w", str(root)]).exit_code == 0
    strict = cli.invoke(app, ["validate", "--date", _day(1), "--strict", "-w", str(root)])
    assert strict.exit_code == 1 and "no_baseline" in strict.stdout


def test_a_lasting_fault_fails_every_day(
    persisting: tuple[Path, dict[int, ValidationReport]],
) -> None:
    _, reports = persisting
    healthy = tuple(_day(n) for n in range(1, FAULT_DAY))
    for number in range(FAULT_DAY, DAYS + 1):
        report = reports[number]
        assert report.verdict == "fail", (number, report.anomalies)
        assert any(a.slice == "discounted=True" for a in report.anomalies), report.anomalies
        # the reference is the healthy days before the fault, never a failed day
        assert report.history_days == healthy, number
        assert set(report.history_verdicts.values()) <= {"pass", "warn"}


def test_accept_takes_a_day_into_the_reference(
    persisting: tuple[Path, dict[int, ValidationReport]],
) -> None:
    root, _ = persisting
    cli = CliRunner()
    ws = ["-w", str(root)]
    accepted = cli.invoke(
        app,
        [
            "validate",
            "accept",
            "--date",
            _day(FAULT_DAY),
            "--reason",
            "discounts ended",
            "--json",
            *ws,
        ],
    )
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout) == {
        "date": _day(FAULT_DAY),
        "reason": "discounts ended",
        "verdict": "fail",
    }
    out = cli.invoke(app, ["validate", "--date", _day(FAULT_DAY + 1), "--json", *ws])
    report = json.loads(out.stdout)
    assert _day(FAULT_DAY) in report["history_days"]
    assert report["history_verdicts"][_day(FAULT_DAY)] == "accepted"
    with Context.open(root) as ctx:
        runs = [r for r in ctx.store.runs(step="validate_accept") if r.date == _day(FAULT_DAY)]
    assert runs and runs[0].status == "succeeded"
    missing = cli.invoke(app, ["validate", "accept", "--date", "2025-06-01", *ws])
    assert missing.exit_code == 1 and "no validation verdict" in missing.output


# Slice shares are tested both ways every day: a day built from a healthy one by multiplying or
# thinning the partner purchases (new transaction ids, so no duplicate is involved).
SHARE_DAYS = 5


def _partner_day(root: Path, date: str, factor: float) -> None:
    folder = root / "raw" / "purchases" / f"date={date}"
    purchases = pq.read_table(folder / "part-00000.parquet")
    products = pq.read_table(root / "raw" / "products" / f"date={date}" / "part-00000.parquet")
    partner_ids = products.filter(pc.field("is_partner"))["product_id"]
    is_partner = pc.is_in(purchases["product_id"], value_set=partner_ids)
    partner, rest = purchases.filter(is_partner), purchases.filter(pc.invert(is_partner))
    if factor < 1:  # keep the first share of the partner transactions
        keep = sorted(set(partner["transaction_id"].to_pylist()))[
            : round(factor * partner.num_rows)
        ]
        parts = [rest, partner.filter(pc.is_in(partner["transaction_id"], pa.array(keep)))]
    else:
        copies = [
            partner.set_column(
                0,
                "transaction_id",
                pc.binary_join_element_wise(partner["transaction_id"], f"-{i}", ""),
            )
            for i in range(1, round(factor))
        ]
        parts = [purchases, *copies]
    for old in folder.iterdir():
        old.unlink()
    pq.write_table(pa.concat_tables(parts), folder / "part-00000.parquet")


@pytest.fixture(scope="module")
def healthy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(tmp_path_factory.mktemp("shares") / "ws", SHARE_DAYS, 1.0)
    tables = root / ".spindle" / "tables"
    sources = load_sources(root)
    config = load_validation(root, sources)
    for number in range(1, SHARE_DAYS):
        ingest_day(root, sources, tables, _day(number))
        validate_day(tables, _day(number), sources=sources, config=config)
    return root


def _share_report(healthy_root: Path, tmp_path: Path, factor: float) -> ValidationReport:
    root = tmp_path / "ws"
    shutil.copytree(healthy_root, root)
    date = _day(SHARE_DAYS)
    if factor != 1:
        _partner_day(root, date, factor)
    tables = root / ".spindle" / "tables"
    sources = load_sources(root)
    ingest_day(root, sources, tables, date)
    return validate_day(tables, date, sources=sources, config=load_validation(root, sources))


def _partner(report: ValidationReport) -> list[tuple[str, str, str]]:
    return [
        (a.kind, a.source, a.severity)
        for a in report.anomalies
        if a.slice == "partner=True" and a.kind.startswith("slice_")
    ]


def test_healthy_day_has_no_share_alarm(healthy_root: Path, tmp_path: Path) -> None:
    report = _share_report(healthy_root, tmp_path, 1)
    assert report.verdict == "pass", report.anomalies


def test_a_partner_share_that_doubles_fails(healthy_root: Path, tmp_path: Path) -> None:
    report = _share_report(healthy_root, tmp_path, 3.4)  # ~29% of purchases -> ~58%
    assert ("slice_grew", "purchases", "fail") in _partner(report), report.anomalies
    assert report.verdict == "fail"


def test_a_partner_slice_shrinking_40_percent_fails(healthy_root: Path, tmp_path: Path) -> None:
    report = _share_report(healthy_root, tmp_path, 0.6)
    assert ("slice_shrunk", "purchases", "fail") in _partner(report), report.anomalies
    assert report.verdict == "fail"
