"""A view's, a feature's, a model's examples' and a baseline's SQL reach no file: refused when
the workspace loads, and again when it runs (a view or config built in code skips the load),
on a connection that can reach no file anyway. Each attack here read ``/etc/passwd`` or wrote a
file before (docs/features.md "What SQL in a workspace may do")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from spindle.core import BaselineConfig, ConfigError, FeatureError, load_sources
from spindle.features import FeatureRegistry, baseline_scores, build_rows, compute_group, view_rows
from spindle.orchestrate import Context, load_config

DAY = "2026-01-04"
PASSWD = "SELECT column0 AS product_id FROM read_csv('/etc/passwd', header = false, sep = ':')"


def _view_attacks(tmp_path: Path) -> list[tuple[str, str, Path | None]]:
    """(view SQL, what the refusal says, the file it would write)."""
    written, db = tmp_path / "written.csv", tmp_path / "other.db"
    return [
        (PASSWD, "reads a file with read_csv()", None),
        ("SELECT column0 AS product_id FROM '/etc/passwd'", "reads the file '/etc/passwd'", None),
        (
            f"COPY (SELECT 1) TO '{written}'; SELECT 'p1' AS product_id",
            "holds 2 statements (COPY, SELECT)",
            written,
        ),
        (f"ATTACH '{db}' AS other; SELECT 'p1' AS product_id", "holds 2 statements", db),
    ]


GROUP = """group: peek
owner: me@example
entity: {{name: product, keys: [product_id]}}
sources: [products]
view:
  sql: "{sql}"
features:
  - {{name: n, version: 1, dtype: string, sql: {feature}, encoding: {{kind: categorical}}}}
"""


def test_a_view_that_reaches_a_file_is_refused_at_load(workspace_copy: Path) -> None:
    for sql, found, target in _view_attacks(workspace_copy):
        path = workspace_copy / "features" / "peek.yaml"
        path.write_text(GROUP.format(sql=sql, feature="product_id"))
        with pytest.raises(ConfigError) as info:
            FeatureRegistry.load(workspace_copy / "features")
        (problem,) = info.value.problems
        assert f"peek.yaml: line 5, key 'view.sql': the view's SQL {found}" in problem
        assert "use a Python feature for anything else" in problem
        assert target is None or not target.exists()


def test_a_view_that_reaches_a_file_is_refused_when_it_runs(workspace_copy: Path) -> None:
    """A view built in code (no load to refuse it) is refused before its SQL runs."""
    tables = workspace_copy / ".spindle" / "tables"
    product = FeatureRegistry.load(workspace_copy / "features").view("product")
    for sql, found, target in _view_attacks(workspace_copy):
        with pytest.raises(FeatureError) as info:
            view_rows(tables, replace(product, sql=sql), DAY)
        message = str(info.value)
        assert f"product.yaml: view product: key 'view.sql': the view's SQL {found}" in message
        assert "\n" not in message
        assert target is None or not target.exists()


def test_a_view_cannot_read_spindles_own_tables_through_a_cte(workspace_copy: Path) -> None:
    """``WITH t AS (SELECT * FROM t)`` reads the table ``t``, not the CTE: named after
    spindle's hidden raw table, a view read every row of it, past its cutoff (or, named after
    a Python variable, what the frame running it held), while the check took ``t`` for the CTE."""
    raw = "__spindle_raw_products"
    sql = f"WITH {raw} AS (SELECT * FROM {raw}) SELECT product_id FROM {raw} GROUP BY 1"
    found = f"the view's SQL reads '{raw}', which is not a table it may read"
    path = workspace_copy / "features" / "peek.yaml"
    path.write_text(GROUP.format(sql=sql, feature="product_id"))
    with pytest.raises(ConfigError, match=f"key 'view.sql': {found} \\(products\\)"):
        FeatureRegistry.load(workspace_copy / "features")
    path.unlink()
    product = FeatureRegistry.load(workspace_copy / "features").view("product")
    with pytest.raises(FeatureError, match=f"view product: key 'view.sql': {found}"):
        view_rows(workspace_copy / ".spindle" / "tables", replace(product, sql=sql), DAY)


def test_a_feature_expression_that_reaches_a_file_is_refused(workspace_copy: Path) -> None:
    feature = "\"(SELECT max(column0) FROM read_csv('/etc/passwd', header = false))\""
    path = workspace_copy / "features" / "peek.yaml"
    path.write_text(GROUP.format(sql="SELECT product_id FROM products", feature=feature))
    with pytest.raises(ConfigError, match=r"key 'features\.0\.sql' \(peek\.n@1\): reads a file"):
        FeatureRegistry.load(workspace_copy / "features")
    path.unlink()
    registry = FeatureRegistry.load(workspace_copy / "features")
    name = "product.product_type@1"
    sneaky = replace(registry.get(name), sql=feature.strip('"'))
    registry.definitions[name] = sneaky
    with pytest.raises(FeatureError, match=r"product\.product_type@1: its sql reads a file"):
        compute_group(workspace_copy / ".spindle" / "tables", registry, "product", DAY, [sneaky])


def test_examples_that_reach_a_file_are_refused_at_load_and_when_they_run(
    workspace_copy: Path,
) -> None:
    written = workspace_copy / "written.csv"
    # closes the parentheses spindle wraps the SQL in, to run statements of its own
    escape = (
        "SELECT user_id, ts, false AS purchased_today FROM searches); "
        f"COPY (SELECT 1) TO '{written}'; SELECT * FROM (SELECT 1"
    )
    model = workspace_copy / "models" / "purchase_propensity.yaml"
    text = model.read_text()
    declared = yaml.safe_load(text)
    declared["examples"]["sql"] = PASSWD
    model.write_text(yaml.safe_dump(declared))
    with Context.open(workspace_copy) as ctx:
        with pytest.raises(ConfigError) as info:
            ctx.workspace.model_config("purchase_propensity")
        assert info.value.problems[0].startswith(
            "line 14, key 'examples.sql': Value error, examples.sql reads a file with read_csv()"
        )
        model.write_text(text)
        loaded = load_config(ctx, "purchase_propensity")
        for sql, found in [(PASSWD, "reads a file"), (escape, "is not valid SQL")]:
            # a config built in code is not validated: the run refuses it
            examples = loaded.config.examples.model_copy(update={"sql": sql})
            config = loaded.config.model_copy(update={"examples": examples})
            with pytest.raises(ConfigError, match=f"key 'examples.sql': examples.sql {found}"):
                build_rows(
                    ctx.workspace.tables_dir,
                    config,
                    loaded.definitions,
                    (DAY,),
                    sources=load_sources(workspace_copy),
                )
    assert not written.exists()


def test_a_baseline_that_reaches_a_file_is_refused(tmp_path: Path) -> None:
    holdout = pa.table({"rate": [0.1, 0.2]})
    written = tmp_path / "written.csv"
    attacks = [
        "(SELECT count(*) FROM read_csv('/etc/passwd'))",
        f"1)::DOUBLE AS score FROM holdout; COPY (SELECT 1) TO '{written}'; SELECT (1",
    ]
    for sql in attacks:
        with pytest.raises(ValueError, match="the baseline's sql"):
            BaselineConfig(name="b", sql=sql)
        unchecked = BaselineConfig.model_construct(name="b", sql=sql, feature=None, constant=None)
        with pytest.raises(ConfigError, match=r"models/m\.yaml: baselines\.0: sql: the baseline"):
            baseline_scores(unchecked, holdout, {}, "models/m.yaml: baselines.0")
    assert not written.exists()
