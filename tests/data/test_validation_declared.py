"""Validation as declared, on a small workspace of its own (not the shop): the calendar of expected
gaps, the quarantine limit, slices of any source, and a check whose SQL does not run."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from spindle.core import (
    ConfigError,
    SourceDeclaration,
    ValidationConfig,
    load_sources,
    load_validation,
)
from spindle.data import ValidationReport, ingest_day, validate_day

START = dt.date(2026, 1, 5)  # a Monday
SUNDAY, UNPLANNED, NEGATIVE, NO_SHOP_C = (START + dt.timedelta(days=d) for d in (6, 8, 7, 9))
DAYS = [START + dt.timedelta(days=d) for d in range(10)]
ORDERS = """\
name: orders
location: raw/orders/{date}.csv
format: csv
event_time: {column: ts}
primary_key: [order_id]
columns: {order_id: string, ts: timestamp, shop: string, amount: float64}
rules: [{check: "amount >= 0", reason: negative amount}]
calendar: {closed_weekdays: [sunday]}
provenance: {origin: test}
"""
VISITS = """\
name: visits
location: raw/visits/{date}.csv
format: csv
event_time: {column: ts}
primary_key: [visit_id]
columns: {visit_id: string, ts: timestamp, shop: string}
provenance: {origin: test}
"""
REFUNDS = """\
name: refunds
location: raw/refunds/{date}.csv
format: csv
event_time: {column: ts}
columns: {refund_id: string, ts: timestamp}
provenance: {origin: test}
"""
VALIDATION = """\
quarantine_rate_max: 0.05
checks:
  - {source: orders, slices: [shop]}
  - {source: visits}
"""


def _write(root: Path, rng: random.Random) -> None:
    for day in DAYS:
        orders = ["order_id,ts,shop,amount"]
        for i in range(400):
            shop = rng.choice("abc")
            if day == NO_SHOP_C and shop == "c":
                continue
            amount = -1.0 if day == NEGATIVE and i % 33 == 0 else rng.uniform(5, 200)
            ts = f"{day}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00"
            orders.append(f"{day}-{i},{ts},{shop},{amount:.2f}")
        visits = ["visit_id,ts,shop"] + [
            f"v{day}-{i},{day}T{rng.randrange(24):02d}:00:00,{rng.choice('abc')}"
            for i in range(300)
        ]
        refunds = ["refund_id,ts"]  # a source that is usually empty
        for name, lines in (("orders", orders), ("visits", visits), ("refunds", refunds)):
            if name == "orders" and day in (SUNDAY, UNPLANNED):
                continue
            folder = root / "raw" / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{day}.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("declared") / "ws"
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "orders.yaml").write_text(ORDERS)
    (root / "sources" / "visits.yaml").write_text(VISITS)
    (root / "sources" / "refunds.yaml").write_text(REFUNDS)
    (root / "validation.yaml").write_text(VALIDATION)
    _write(root, random.Random(3))
    sources = load_sources(root)
    for day in DAYS:
        ingest_day(root, sources, root / "tables", day.isoformat())
    return root


def _validate(
    root: Path, day: dt.date, config: ValidationConfig | None = None, missing: tuple[str, ...] = ()
) -> ValidationReport:
    sources: dict[str, SourceDeclaration] = load_sources(root)
    config = config or load_validation(root, sources)
    reference = tuple(d.isoformat() for d in DAYS if d < day and d not in (UNPLANNED, NEGATIVE))
    return validate_day(
        root / "tables",
        day.isoformat(),
        reference=reference,
        sources=sources,
        config=config,
        missing=missing,
    )


def test_a_calendar_closed_day_is_noted_not_an_alarm(workspace: Path) -> None:
    report = _validate(workspace, SUNDAY)
    assert report.verdict == "pass", report.anomalies
    assert report.stats["rows"] == {"orders": 0, "visits": 300}
    assert report.stats["notes"] == [f"orders: no rows on {SUNDAY}, a closed day in its calendar"]


def test_an_unplanned_missing_day_fails(workspace: Path) -> None:
    report = _validate(workspace, UNPLANNED)
    assert report.verdict == "fail"
    (missing,) = [a for a in report.anomalies if a.kind == "missing_partition"]
    assert missing.source == "orders" and missing.severity == "fail"
    assert "calendar of sources/orders.yaml" in missing.message
    assert "notes" not in report.stats


def test_the_quarantine_limit_comes_from_the_config(workspace: Path) -> None:
    # 13 of 400 rows (3.2%) have a negative amount: under the 5% limit a WARN, over 1% a FAIL
    (loose,) = [a for a in _validate(workspace, NEGATIVE).anomalies if a.kind == "quarantined_rows"]
    assert (loose.source, loose.severity, loose.observed) == ("orders", "warn", 13.0)
    config = load_validation(workspace).model_copy(update={"quarantine_rate_max": 0.01})
    strict = _validate(workspace, NEGATIVE, config)
    (tight,) = [a for a in strict.anomalies if a.kind == "quarantined_rows"]
    assert tight.severity == "fail" and strict.verdict == "fail"
    assert "FAIL above 1.0%" in tight.message and "quarantine_rate_max" in tight.message
    assert "13 negative amount" in tight.message


def test_slices_of_any_declared_source(workspace: Path) -> None:
    report = _validate(workspace, NO_SHOP_C)
    vanished = [a for a in report.anomalies if a.kind == "slice_vanished"]
    assert [(a.source, a.slice, a.severity) for a in vanished] == [("orders", "shop=c", "fail")]
    bias = [a for a in report.anomalies if a.kind == "missing_data_bias"]
    assert [(a.slice, a.severity) for a in bias] == [("shop=c", "fail")]


def test_a_check_sql_error_names_the_file_the_check_and_duckdb(workspace: Path) -> None:
    config = ValidationConfig.model_validate(
        {
            "checks": [
                {"source": "visits"},
                {"source": "orders", "sql": "SELECT date, shopp FROM orders", "slices": ["shopp"]},
            ]
        }
    )
    with pytest.raises(ConfigError) as info:
        _validate(workspace, DAYS[-1], config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("validation.yaml: key 'checks.1.sql': the check of 'orders'")
    assert "shopp" in message and "Binder Error" in message  # DuckDB's own words
    rate = {"what": "big orders", "expr": "avg(amount > 100"}
    config = ValidationConfig.model_validate({"checks": [{"source": "orders", "label_rate": rate}]})
    with pytest.raises(ConfigError) as info:
        _validate(workspace, DAYS[-1], config)
    assert str(info.value).startswith("validation.yaml: key 'checks.0.label_rate.expr'")
    assert "Parser Error" in str(info.value)


def test_an_often_empty_source_fails_only_when_its_partition_is_missing(workspace: Path) -> None:
    config = ValidationConfig.model_validate({"checks": [{"source": "refunds"}]})
    empty = _validate(workspace, DAYS[-1], config)
    assert empty.verdict == "pass", empty.anomalies  # no rows, as on every reference day
    absent = _validate(workspace, DAYS[-1], config, missing=("refunds",))
    assert [(a.kind, a.source, a.severity) for a in absent.anomalies] == [
        ("missing_partition", "refunds", "fail")
    ]


def _weekly(
    root: Path, weeks: int, *, saturday_size: float = 0.6, saturday_mix: str = "abc", seed: int = 5
) -> list[dt.date]:
    """``weeks`` weeks of orders, ingested; Saturdays have ``saturday_size`` of a weekday's
    orders, drawn from the shops in ``saturday_mix`` (weekdays: a, b, c alike)."""
    rng = random.Random(seed)
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "orders.yaml").write_text(ORDERS.replace("sunday", "monday"))
    days = [START + dt.timedelta(days=d) for d in range(7 * weeks)]
    folder = root / "raw" / "orders"
    folder.mkdir(parents=True)
    for day in days:
        saturday = day.weekday() == 5
        n = round(rng.randint(570, 630) * (saturday_size if saturday else 1.0))
        mix = saturday_mix if saturday else "abc"
        lines = [f"{day}-{i},{day}T12:00:00,{rng.choice(mix)},9.5" for i in range(n)]
        (folder / f"{day}.csv").write_text("order_id,ts,shop,amount\n" + "\n".join(lines) + "\n")
    sources = load_sources(root)
    for day in days:
        ingest_day(root, sources, root / "tables", day.isoformat())
    return days


@pytest.mark.parametrize("baseline", ["median", "same_weekday"])
def test_a_light_saturday_is_compared_with_saturdays(tmp_path: Path, baseline: str) -> None:
    days = _weekly(tmp_path / "ws", 3)
    sources = load_sources(tmp_path / "ws")
    config = ValidationConfig.model_validate(
        {"history_days": 21, "checks": [{"source": "orders", "volume": baseline}]}
    )

    def validate(day: dt.date) -> ValidationReport:
        reference = tuple(d.isoformat() for d in days if d < day)
        return validate_day(
            tmp_path / "ws" / "tables",
            day.isoformat(),
            reference=reference,
            sources=sources,
            config=config,
        )

    saturday = days[-2]
    assert saturday.weekday() == 5
    report = validate(saturday)
    if baseline == "median":  # against weekdays a Saturday is a 40% drop, every week
        assert ("row_count_drop", "fail") in {(a.kind, a.severity) for a in report.anomalies}
        return
    assert report.verdict == "pass", report.anomalies
    first = validate(days[5])  # no earlier Saturday: said, not compared with the weekdays
    assert [(a.kind, a.severity) for a in first.anomalies] == [("no_baseline", "warn")]
    assert "saturday" in first.anomalies[0].message


@pytest.mark.parametrize("baseline", ["median", "same_weekday"])
def test_slice_shares_follow_the_weekly_rhythm_with_same_weekday(
    tmp_path: Path, baseline: str
) -> None:
    days = _weekly(tmp_path / "ws", 3, saturday_size=1.0, saturday_mix="abcccc", seed=7)
    config = ValidationConfig.model_validate(
        {
            "history_days": 21,
            "checks": [{"source": "orders", "volume": baseline, "slices": ["shop"]}],
        }
    )
    saturday = days[-2]
    report = validate_day(
        tmp_path / "ws" / "tables",
        saturday.isoformat(),
        reference=tuple(d.isoformat() for d in days if d < saturday),
        sources=load_sources(tmp_path / "ws"),
        config=config,
    )
    shifted = [a for a in report.anomalies if a.severity != "pass" and "shop=" in a.message]
    if baseline == "median":  # against every day, a Saturday's shop c is a jump, every week
        assert shifted, report.anomalies
    else:  # against the earlier Saturdays it is the usual Saturday
        assert not shifted, shifted


@pytest.mark.parametrize("exempt", [False, True])
def test_a_column_left_empty_alarms_unless_declared_exempt(tmp_path: Path, exempt: bool) -> None:
    """A producer that stops filling a column is a null_rate alarm; a column declared in
    ``null_rate_exempt`` (known to be filled now and then) is not tested."""
    root = tmp_path / "ws"
    (root / "sources").mkdir(parents=True)
    nullable = "shop: string}", "shop: {type: string, nullable: true}}"
    (root / "sources" / "visits.yaml").write_text(VISITS.replace(*nullable))
    extra = "\n    null_rate_exempt: [shop]" if exempt else ""
    (root / "validation.yaml").write_text(f"checks:\n  - source: visits{extra}\n")
    rng = random.Random(5)
    days = DAYS[:6]
    for day in days:
        rows = ["visit_id,ts,shop"]
        for i in range(300):
            shop = "" if day == days[-1] and i % 2 else rng.choice("abc")
            rows.append(f"v{day}-{i},{day}T{rng.randrange(24):02d}:00:00,{shop}")
        (root / "raw" / "visits").mkdir(parents=True, exist_ok=True)
        (root / "raw" / "visits" / f"{day}.csv").write_text("\n".join(rows) + "\n")
    sources = load_sources(root)
    for day in days:
        ingest_day(root, sources, root / "tables", day.isoformat())
    report = validate_day(
        root / "tables",
        days[-1].isoformat(),
        reference=tuple(d.isoformat() for d in days[:-1]),
        sources=sources,
        config=load_validation(root, sources),
    )
    nulls = [(a.source, a.column, a.severity) for a in report.anomalies if a.kind == "null_rate"]
    assert nulls == ([] if exempt else [("visits", "shop", "fail")]), report.anomalies
