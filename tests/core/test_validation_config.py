"""validation.yaml: the defaults without it, every problem at once with line and key, and the
checks prepared against the declared sources at load (a typo fails before any day is validated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spindle.core import ConfigError, ValidationConfig, load_sources, load_validation

EXAMPLES = Path(__file__).parents[2] / "src" / "spindle" / "examples"
ORDERS = """\
name: orders
location: raw/orders/{date}.csv
format: csv
event_time: {column: ts}
primary_key: [order_id]
columns: {order_id: string, ts: timestamp, shop: string, amount: float64}
provenance: {origin: test}
"""


def _workspace(root: Path, validation: str | None) -> Path:
    (root / "sources").mkdir(parents=True)
    (root / "sources" / "orders.yaml").write_text(ORDERS)
    (root / "sources" / "shops.yaml").write_text(
        ORDERS.replace("name: orders", "name: shops").replace("orders/", "shops/")
    )
    if validation is not None:
        (root / "validation.yaml").write_text(validation)
    return root


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_validation(root, load_sources(root))
    assert info.value.path.endswith("validation.yaml")
    return info.value.problems


def test_no_file_checks_every_declared_source_with_the_defaults(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", None)
    config = load_validation(root, load_sources(root))
    assert config == ValidationConfig()
    assert config.quarantine_rate_max == 0.05 and config.history_days == 7
    checks = config.checks_for(load_sources(root))
    assert [c.source for c in checks] == ["orders", "shops"]
    assert all(c.volume is True and not c.slices and c.label_rate is None for c in checks)


def test_unknown_keys_list_the_allowed_ones_with_their_lines(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path / "ws",
        "history_days: 3\nquarantine_max: 0.1\nchecks:\n  - source: orders\n    slice: [shop]\n",
    )
    problems = _problems(root)
    assert len(problems) == 2, problems
    top = next(p for p in problems if "'quarantine_max'" in p)
    assert top.startswith("line 2,") and "allowed keys:" in top and "quarantine_rate_max" in top
    nested = next(p for p in problems if "'checks.0.slice'" in p)
    assert nested.startswith("line 5,") and "slices" in nested and "label_rate" in nested


def test_bad_values_are_named_with_key_and_line(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path / "ws",
        "quarantine_rate_max: 1.5\nvolume: {drop_warn: 0.7, drop_fail: 0.9}\n"
        "checks:\n  - {source: orders, bursts: {key: shop, window: 10 minutes}}\n",
    )
    problems = _problems(root)
    assert any(p.startswith("line 1, key 'quarantine_rate_max'") for p in problems), problems
    assert any("'volume'" in p and "drop_fail" in p for p in problems), problems
    assert any("'checks.0.bursts'" in p and "10m" in p for p in problems), problems


def test_a_check_of_an_undeclared_source_names_the_declared_ones(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "checks:\n  - source: order\n")
    (problem,) = _problems(root)
    assert problem.startswith("line 2, key 'checks.0.source'") and "'order'" in problem
    assert "declared: orders, shops" in problem


def test_check_sql_and_columns_are_prepared_at_load(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path / "ws",
        "checks:\n"
        "  - source: orders\n"
        "    sql: SELECT o.*, s.shop AS shop_name FROM orders o JOIN shops s USING (order_id)\n"
        "    slices: [shop_name, region]\n"
        "    label_rate: {what: big orders, expr: avg((amount > 100)::DOUBLE)}\n"
        "    drift: [amount, shop]\n"
        "    null_rate_exempt: [amount, amonut]\n"
        "  - source: shops\n"
        "    sql: SELECT date, order_id, shopp FROM shops\n",
    )
    problems = _problems(root)
    assert len(problems) == 4, problems
    exempt = next(p for p in problems if "checks.0.null_rate_exempt.1" in p)
    assert "'amonut' is not a declared column of orders" in exempt
    region = next(p for p in problems if "checks.0.slices.1" in p)
    assert region.startswith("line 4,") and "'orders'" in region and "region" in region
    drift = next(p for p in problems if "checks.0.drift.1" in p)
    assert drift.startswith("line 6,") and "a string column" in drift
    sql = next(p for p in problems if "checks.1.sql" in p)
    assert sql.startswith("line 9,") and "the check of 'shops' does not run" in sql
    assert "shopp" in sql  # DuckDB's message names the column


def test_two_checks_of_one_source_are_refused(tmp_path: Path) -> None:
    root = _workspace(tmp_path / "ws", "checks:\n  - source: orders\n  - source: orders\n")
    (problem,) = _problems(root)
    assert "'orders' has two checks" in problem


@pytest.mark.parametrize("example", ["yarnit", "flights"])
def test_the_examples_validation_files_load(example: str) -> None:
    root = EXAMPLES / example
    sources = load_sources(root)
    config = load_validation(root, sources)
    assert config.checks is not None and {c.source for c in config.checks} <= set(sources)
