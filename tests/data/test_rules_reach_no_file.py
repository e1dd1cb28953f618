"""A source's row rules and validation.yaml's checks reach no file when they run, even when
their declaration was built in code (loading the YAML refuses them first: tests/core). Each
attack here read ``/etc/passwd`` or wrote a file before (docs/features.md "What SQL in a
workspace may do")."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from spindle.core import ConfigError, SourceCheck, ValidationConfig, load_sources
from spindle.data import apply_rules, ingest_day, validate_day

DAY = "2026-01-04"


def _attacks(tmp_path: Path) -> list[tuple[str, str, Path | None]]:
    """(rule check, what the refusal says, the file it would write)."""
    written = tmp_path / "written.csv"
    return [
        (
            "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0",
            "reads a file with read_csv()",
            None,
        ),
        (  # closes the parentheses spindle puts around it, to run statements of its own
            f"true) IS TRUE) AS r FROM source_row; COPY (SELECT 1) TO '{written}'; SELECT ((true",
            "is not valid SQL",  # not one expression in the parentheses
            written,
        ),
        ("EXISTS (SELECT * FROM '/etc/passwd')", "reads the file '/etc/passwd'", None),
    ]


def test_a_rule_that_reaches_a_file_is_refused_when_it_runs(tmp_path: Path) -> None:
    decl = load_sources(Path(__file__).parents[2] / "src/spindle/examples/yarnit")["fx_rates"]
    rows = pa.table({"currency": ["EUR"], "usd_per_unit": [1.1], "date": ["2026-01-04"]})
    for check, found, target in _attacks(tmp_path):
        rule = decl.rules[0].model_copy(update={"check": check})  # not validated: as in code
        sneaky = decl.model_copy(update={"rules": [rule]})
        with pytest.raises(ConfigError) as info:
            apply_rules(rows, sneaky, DAY)
        message = str(info.value)
        assert message.startswith("sources/fx_rates.yaml: key 'rules.0.check': rule ")
        assert (
            f"the check {found}" in message and "; a rule is one true/false expression" in message
        )
        assert target is None or not target.exists()


def test_ingest_refuses_such_a_rule_and_writes_nothing(workspace_copy: Path) -> None:
    sources = load_sources(workspace_copy)
    written = workspace_copy / "written.csv"
    check = f"true) IS TRUE) AS r FROM source_row; COPY (SELECT 1) TO '{written}'; SELECT ((true"
    rule = sources["fx_rates"].rules[0].model_copy(update={"check": check})
    sources["fx_rates"] = sources["fx_rates"].model_copy(update={"rules": [rule]})
    tables = workspace_copy / ".spindle" / "tables"
    with pytest.raises(ConfigError, match=r"fx_rates\.yaml: key 'rules\.0\.check'"):
        ingest_day(workspace_copy, sources, tables, DAY)
    assert not written.exists()


def test_a_validation_check_that_reaches_a_file_is_refused_when_it_runs(
    workspace_copy: Path,
) -> None:
    written = workspace_copy / "written.csv"
    tables = workspace_copy / ".spindle" / "tables"
    sources = load_sources(workspace_copy)
    for check, found in [
        (
            SourceCheck(source="purchases", sql="SELECT * FROM read_csv('/etc/passwd')"),
            "key 'checks.0.sql': the check's sql reads a file with read_csv()",
        ),
        (
            SourceCheck(  # closes the parentheses its slices' query puts around it
                source="purchases",
                slices=["date"],
                sql=(
                    f"SELECT * FROM purchases) AS p GROUP BY ALL; COPY (SELECT 1) TO '{written}'; "
                    "SELECT date, 1, 1 FROM (SELECT * FROM purchases"
                ),
            ),
            "key 'checks.0.sql': the check's sql is not valid SQL",
        ),
    ]:
        with pytest.raises(ConfigError) as info:
            validate_day(tables, DAY, sources=sources, config=ValidationConfig(checks=[check]))
        assert str(info.value).startswith(f"validation.yaml: {found}")
        assert "\n" not in str(info.value)
    assert not written.exists()
