"""Source declarations: loading sources/*.yaml, every problem at once with file, line and key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from spindle.core import ConfigError, SourceDeclaration, load_sources

SESSIONS = """\
name: sessions
location: raw/sessions/{date}.parquet
format: parquet
kind: events
event_time: {column: started_at, timezone: Europe/Paris}
primary_key: [session_id]
columns: {session_id: string, started_at: timestamp, plan: {type: string, nullable: true},
          minutes: float64, fee: {type: decimal, precision: 10, scale: 3}}
allowed_lateness: 2d
rules:
  - {check: "minutes >= 0", reason: negative duration}
provenance: {origin: "app event log", licence: internal, retention_days: 730}
tags: [pii]
allowed_teams: [growth]
calendar: {closed_weekdays: [sunday], closed_dates: [2026-12-25]}
"""


def _workspace(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "sources").mkdir()
    for name, text in files.items():
        (tmp_path / "sources" / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_full_declaration_loads_with_its_arrow_schema(tmp_path: Path) -> None:
    sources = load_sources(_workspace(tmp_path, {"sessions.yaml": SESSIONS}))
    decl = sources["sessions"]
    assert decl.layout == "daily"
    assert decl.allowed_lateness_s == 2 * 86400
    assert decl.calendar.is_closed(dt.date(2026, 12, 25))
    assert decl.calendar.is_closed(dt.date(2026, 1, 4))  # a Sunday
    assert not decl.calendar.is_closed(dt.date(2026, 1, 5))
    assert decl.arrow_schema() == pa.schema(
        [
            pa.field("session_id", pa.string(), nullable=False),
            pa.field("started_at", pa.timestamp("us"), nullable=False),
            pa.field("plan", pa.string()),
            pa.field("minutes", pa.float64(), nullable=False),
            pa.field("fee", pa.decimal128(10, 3), nullable=False),
        ]
    )
    assert decl.column_timezone("started_at") == "Europe/Paris"


def test_several_documents_per_file_and_no_folder(tmp_path: Path) -> None:
    assert load_sources(tmp_path) == {}
    other = SESSIONS.replace("name: sessions", "name: visits")
    sources = load_sources(_workspace(tmp_path, {"all.yaml": SESSIONS + "---\n" + other}))
    assert list(sources) == ["sessions", "visits"]


def test_every_problem_of_every_file_at_once_with_file_line_and_key(tmp_path: Path) -> None:
    broken = SESSIONS.replace("format: parquet", "format: xlsx").replace(
        "timezone: Europe/Paris", "timezone: Mars/Olympus"
    )
    second = """\
name: orders
location: raw/orders/{date}/{date}.csv
format: csv
columns: {id: string, amount: float65}
provenance: {origin: shop}
colour: red
"""
    root = _workspace(tmp_path, {"a.yaml": broken, "b.yaml": "name: ok\n---\n" + second})
    with pytest.raises(ConfigError) as err:
        load_sources(root)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "sources/a.yaml: line 3, key 'format'" in text
    assert "sources/a.yaml: line 5, key 'event_time.timezone'" in text and "Mars/Olympus" in text
    # the second document of b.yaml starts on line 3: lines are counted in the file
    assert "sources/b.yaml: line 4, key 'location'" in text and "only once" in text
    assert "sources/b.yaml: line 6, key 'columns.amount.type'" in text
    assert "sources/b.yaml: line 8, key 'colour': unknown key; allowed keys: name, location" in text
    assert "sources/b.yaml: line 1, key 'location': Field required" in text
    assert len(problems) == 9, problems  # 2 in a.yaml, 4 + 3 in the two documents of b.yaml


def test_unknown_nested_key_lists_that_blocks_keys(tmp_path: Path) -> None:
    text = SESSIONS.replace("{column: started_at,", "{column: started_at, zone: UTC,")
    with pytest.raises(ConfigError) as err:
        load_sources(_workspace(tmp_path, {"s.yaml": text}))
    (problem,) = err.value.problems
    assert problem.startswith("sources/s.yaml: line 5, key 'event_time.zone'")
    assert "allowed keys: column, timezone, format" in problem


def test_bad_rule_sql_names_the_rule_and_its_line(tmp_path: Path) -> None:
    text = SESSIONS.replace(
        '  - {check: "minutes >= 0", reason: negative duration}\n',
        '  - {check: "minutes >= 0", reason: negative duration}\n'
        '  - {check: "minuts > 1", reason: too short}\n'
        '  - {check: "minutes + 1", reason: not a boolean}\n',
    )
    with pytest.raises(ConfigError) as err:
        load_sources(_workspace(tmp_path, {"s.yaml": text}))
    first, second = err.value.problems
    assert first.startswith("sources/s.yaml: line 12, key 'rules.1.check': rule 'too short'")
    assert "minuts" in first
    assert second.startswith("sources/s.yaml: line 13, key 'rules.2.check': rule 'not a boolean'")
    assert "true/false" in second


def test_cross_field_checks(tmp_path: Path) -> None:
    text = (
        SESSIONS.replace("primary_key: [session_id]", "primary_key: [plan, visit_id]")
        .replace("column: started_at", "column: minutes")
        .replace("raw/sessions/{date}.parquet", "raw/sessions.csv")
        .replace("format: parquet", "format: csv\ncsv: {delimiter: ';'}")
    )
    with pytest.raises(ConfigError) as err:
        load_sources(_workspace(tmp_path, {"s.yaml": text}))
    text = "\n".join(err.value.problems)
    assert "key 'primary_key.0': key column 'plan' cannot be nullable" in text
    assert "key 'primary_key.1': 'visit_id' is not a declared column" in text
    assert "key 'event_time.column': the event time column must be a timestamp or date" in text


def test_event_time_required_except_for_daily_snapshots() -> None:
    base = {
        "name": "products",
        "location": "raw/products/{date}.parquet",
        "format": "parquet",
        "kind": "snapshot",
        "columns": {"product_id": "string"},
        "provenance": {"origin": "catalogue"},
    }
    assert SourceDeclaration.model_validate(base).event_time is None
    with pytest.raises(ValueError, match="event_time is required for a source split into days"):
        SourceDeclaration.model_validate({**base, "location": "raw/products.parquet"})
    with pytest.raises(ValueError, match="event_time is required for a events source"):
        SourceDeclaration.model_validate({**base, "kind": "events"})


def test_duplicate_names_across_files_name_both_files(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"a.yaml": SESSIONS, "b.yaml": "\n" + SESSIONS})
    with pytest.raises(ConfigError) as err:
        load_sources(root)
    (problem,) = err.value.problems
    assert problem.startswith("sources/b.yaml: line 2, key 'name': source 'sessions'")
    assert "already declared in sources/a.yaml line 1" in problem
