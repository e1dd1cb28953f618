"""Declared names (a source's columns, a view's keys and kept columns) are one name each in the
SQL spindle writes around them, whatever they hold, and a name SQL could not read as written
(a double quote, a control character) is refused when the workspace loads, naming the file and
key. Before, a column named ``x" FROM '/etc/passwd' --`` ended the name and went on as SQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest

from spindle.core import (
    ConfigError,
    SourceDeclaration,
    load_sources,
    quote_identifier,
    write_partition,
)
from spindle.features import FeatureRegistry, compute_group, view_rows

WHEN = "x\" FROM '/etc/passwd' --"  # an event-time column's name
KEY = 'a"b'
DAY = "2026-01-04"

SOURCE = """\
name: s
location: raw/s/{{date}}.csv
format: csv
event_time: {{column: ts}}
columns: {{ts: timestamp, {column}: string, "Dep Delay": float64}}
provenance: {{origin: test}}
"""

EVENT_VIEW = """\
group: ev
owner: me@example
entity: {{name: thing, keys: [{key}]}}
sources: [s]
view:
  from: s
  at: "{at}"
  keep: [{keep}]
features:
  - {{name: delay, version: 1, dtype: float64, sql: '"Dep Delay"', encoding: {{kind: numeric}}}}
"""


@pytest.mark.parametrize(
    ("column", "found"),
    [
        ("'a\"b'", "column name 'a\"b' holds a double quote"),
        ("'x\" FROM ''/etc/passwd'' --'", "column name 'x\" FROM \\'/etc/passwd\\' --' holds a"),
        ('"a\\nb"', "column name 'a\\nb' holds a control character"),
    ],
)
def test_a_source_column_sql_cannot_read_as_written_is_refused_at_load(
    tmp_path: Path, column: str, found: str
) -> None:
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.yaml").write_text(SOURCE.format(column=column))
    with pytest.raises(ConfigError) as info:
        load_sources(tmp_path)
    message = str(info.value)
    assert "sources/s.yaml: line 5, key 'columns': Value error, " + found in message
    assert "rename it where the data is written" in message and "\n" not in message


def test_a_source_column_with_spaces_or_dots_loads(tmp_path: Path) -> None:
    """What a file's header may hold (``Dep Delay``, `` padded``) stays declarable: SQL reads
    it quoted."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.yaml").write_text(SOURCE.format(column='" a.b"'))
    assert list(load_sources(tmp_path)["s"].columns) == ["ts", " a.b", "Dep Delay"]


@pytest.mark.parametrize(("key", "keep"), [(f"'{KEY}'", "ts"), ("id", f"'{KEY}'")])
def test_a_view_key_or_kept_column_holding_a_quote_is_refused_at_load(
    tmp_path: Path, key: str, keep: str
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    (features / "ev.yaml").write_text(EVENT_VIEW.format(key=key, keep=keep, at="ts"))
    sources = {"s": _source()}
    with pytest.raises(ConfigError) as info:
        FeatureRegistry.load(features, sources=sources)
    where = "key 'entity.keys'" if key != "id" else "key 'view.keep'"
    message = str(info.value)
    assert f"ev.yaml: line {3 if key != 'id' else 8}, {where}: Value error, " in message
    assert "column name 'a\"b' holds a double quote" in message
    assert "rename the column in the view's SQL" in message


def _source() -> SourceDeclaration:
    """A declaration built in code (no load to refuse its names): event time ``WHEN``, a
    column ``a"b``."""
    plain = SourceDeclaration.model_validate(
        {
            "name": "s",
            "location": "raw/s/{date}.csv",
            "format": "csv",
            "event_time": {"column": "ts"},
            "primary_key": ["id", "ts"],
            "columns": {"id": "string", "ts": "timestamp", "k": "string", "Dep Delay": "float64"},
            "provenance": {"origin": "test"},
        }
    )
    assert plain.event_time is not None
    named = {"ts": WHEN, "k": KEY}
    return plain.model_copy(
        update={
            "columns": {named.get(n, n): spec for n, spec in plain.columns.items()},
            "event_time": plain.event_time.model_copy(update={"column": WHEN}),
            "primary_key": ["id", WHEN],
        }
    )


def test_names_holding_quotes_are_one_name_in_spindles_sql(tmp_path: Path) -> None:
    """An event-time view over a source whose event time is ``WHEN``, with ``at`` and a row
    order over it, computes; so does the same view keyed on ``a"b`` (built in code)."""
    tables = tmp_path / "tables"
    start = dt.datetime(2026, 1, 3, 23)
    rows = pa.table(
        {
            "id": ["p1", "p2", "p1"],
            WHEN: pa.array([start, start + dt.timedelta(hours=2), start + dt.timedelta(hours=3)]),
            KEY: ["k1", "k2", "k3"],
            "Dep Delay": [1.0, 2.0, 3.0],
            "date": ["2026-01-03", DAY, DAY],
        }
    )
    write_partition(
        tables / "raw" / "s", rows.filter(pa.array([True, False, False])), "2026-01-03", "raw/s"
    )
    write_partition(tables / "raw" / "s", rows.filter(pa.array([False, True, True])), DAY, "raw/s")
    features = tmp_path / "features"
    features.mkdir()
    at = f"{quote_identifier(WHEN)} + INTERVAL 30 MINUTE".replace('"', '\\"')
    (features / "ev.yaml").write_text(EVENT_VIEW.format(key="id", keep="'Dep Delay'", at=at))
    registry = FeatureRegistry.load(features, sources={"s": _source()})
    view = registry.view("ev")
    got = view_rows(tables, view, DAY)
    assert got.column("id").to_pylist() == ["p1", "p2"]
    assert got.column("known_at").to_pylist() == [
        start + dt.timedelta(hours=3, minutes=30),
        start + dt.timedelta(hours=2, minutes=30),
    ]
    computed = compute_group(tables, registry, "ev", DAY)
    assert computed.column("ev__delay__v1").to_pylist() == [3.0, 2.0]
    keyed = replace(view, keys=(KEY,))
    got = view_rows(tables, keyed, DAY)
    assert got.column(KEY).to_pylist() == ["k2", "k3"]
