"""Python features and computation fingerprints: a typed function over Arrow is computed at
ingest and by backfill like SQL; a broken function gives a clear error and writes nothing; a
materialised version whose computation changed is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import ConfigError, FeatureError, load_sources
from spindle.features import FeatureRegistry, backfill_feature, build_rows, compute_features
from spindle.orchestrate import Context, backfill, ingest, init_workspace, load_config

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
EXAMPLE_COLUMN = "product__name_word_count__v1"
LONG_NAME = """
import pyarrow as pa
import pyarrow.compute as pc


def long_name(base: pa.Table) -> pa.Array:
    return pc.greater(pc.utf8_length(base["name_words"]), 20)
"""
LONG_NAME_YAML = """  - name: long_name
    version: 1
    description: The product name is longer than 20 characters.
    dtype: bool
    python: extra/long_name.py:long_name
    encoding: {kind: numeric}
"""


def _feature_table(tables: Path, group: str = "product") -> pa.Table:
    table = DeltaTable(str(tables / "features" / group)).to_pyarrow_table()
    return table.sort_by([("date", "ascending"), ("product_id", "ascending")])


def _table_version(tables: Path, group: str = "product") -> int:
    return DeltaTable(str(tables / "features" / group)).version()


def _add(root: Path, yaml_text: str, files: dict[str, str]) -> FeatureRegistry:
    for name, text in files.items():
        (root / "features" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "features" / name).write_text(text)
    path = root / "features" / "product.yaml"
    path.write_text(path.read_text() + yaml_text)
    return FeatureRegistry.load(root / "features")


def test_example_python_feature_is_computed_at_ingest(workspace_copy: Path) -> None:
    table = _feature_table(workspace_copy / ".spindle" / "tables")
    names = table.column("name_words").to_pylist()
    expected = [0 if n is None else len(n.split()) for n in names]  # computed directly
    assert table.column(EXAMPLE_COLUMN).type == pa.int64()  # cast to the declared dtype
    assert table.column(EXAMPLE_COLUMN).to_pylist() == expected
    assert set(table.column("date").to_pylist()) == set(DAYS)
    # In a training set it is just a column: a model pinning it reads the values ingest wrote.
    with Context.open(workspace_copy) as ctx:
        loaded = load_config(ctx, "search_ranker")
        config = loaded.config.model_copy(
            update={"features": [*loaded.config.features, "product.name_word_count@1"]}
        )
        rows = build_rows(
            ctx.workspace.tables_dir,
            config,
            ctx.features.resolve(config),
            (DAYS[-1],),
            sources=load_sources(workspace_copy),
        )
    day = table.filter(pc.equal(table["date"], DAYS[-1]))
    by_product = dict(
        zip(day["product_id"].to_pylist(), day[EXAMPLE_COLUMN].to_pylist(), strict=True)
    )
    joined = rows.table.select(["product_id", EXAMPLE_COLUMN]).to_pylist()
    assert joined and all(r[EXAMPLE_COLUMN] == by_product[r["product_id"]] for r in joined)


def test_python_feature_backfill_is_a_recorded_run_with_lineage(workspace_copy: Path) -> None:
    _add(workspace_copy, LONG_NAME_YAML, {"extra/long_name.py": LONG_NAME})
    with Context.open(workspace_copy) as ctx:
        tables = ctx.workspace.tables_dir
        before = _table_version(tables)
        first = backfill(ctx, "product.long_name@1", DAYS[0])  # --until: the newest day
        assert first.result.written == DAYS and not first.skipped
        assert first.table is not None and first.table.version == _table_version(tables) > before
        table = _feature_table(tables)
        names = table.column("name_words").to_pylist()
        expected = [n is not None and len(n) > 20 for n in names]
        assert table.column("product__long_name__v1").to_pylist() == expected

        run = ctx.store.get_run(first.run_id)
        assert run.step == "backfill" and run.status == "succeeded"
        assert f"table:features/product@{before}" in run.inputs
        assert {"table:raw/products", "table:raw/purchases"} <= {
            i.split("@")[0] for i in run.inputs
        }
        assert first.table.id in run.outputs
        graph = ctx.store.lineage(first.table.id, direction="upstream")
        assert graph.root.run_id == first.run_id
        upstream = {n.id for n in graph.upstream}
        assert any(i.startswith("table:raw/fx_rates@") for i in upstream)

        again = backfill(ctx, "product.long_name@1", DAYS[0])  # the table moved on: runs ...
        assert set(again.result.days.values()) == {"unchanged"}
        assert again.table is None and not again.skipped  # ... and writes no version
        assert _table_version(tables) == first.table.version
        third = backfill(ctx, "product.long_name@1", DAYS[0])  # nothing new to read
        assert third.skipped and third.run_id == again.run_id
        assert third.result.days == again.result.days


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("return pa.array([True])", "returned 1 values for"),
        ("raise ValueError('no price today')", "raised ValueError: no price today"),
        ("return [True] * base.num_rows", "returned list; expected a pyarrow Array"),
        ("return pa.array(['x'] * base.num_rows)", "cannot be cast to the declared dtype bool"),
    ],
)
def test_a_broken_python_feature_gives_a_clear_error_and_writes_nothing(
    workspace_copy: Path, body: str, problem: str
) -> None:
    source = f"import pyarrow as pa\n\n\ndef broken(base: pa.Table) -> pa.Array:\n    {body}\n"
    registry = _add(
        workspace_copy,
        LONG_NAME_YAML.replace("long_name.py:long_name", "broken.py:broken"),
        {"extra/broken.py": source},
    )
    tables = workspace_copy / ".spindle" / "tables"
    versions = (_table_version(tables), _table_version(tables, "user"))
    with pytest.raises(FeatureError) as info:
        compute_features(tables, registry, DAYS[-1])
    message = str(info.value)
    assert "product.long_name@1" in message and "broken.py:broken" in message
    assert problem in message and DAYS[-1] in message
    with pytest.raises(FeatureError, match=r"broken\.py:broken"):
        backfill_feature(tables, registry, "product.long_name@1", DAYS)
    assert (_table_version(tables), _table_version(tables, "user")) == versions
    assert "product.long_name@1" not in (tables / "features" / "_fingerprints.json").read_text()


def test_python_definitions_are_checked_at_load(tmp_path: Path) -> None:
    features = tmp_path / "features"
    features.mkdir()
    (features / "f.py").write_text("def two(a, b):\n    return a\n")
    (features / "product.yaml").write_text(
        """group: product
owner: me@yarnit
entity: {name: product, keys: [product_id]}
view: {sql: "SELECT 'p1' AS product_id"}
features:
  - {name: a, version: 1, description: x, dtype: int64, python: f.py:missing, encoding: {kind: numeric}}
  - {name: b, version: 1, description: x, dtype: int64, python: f.py:two, encoding: {kind: numeric}}
  - {name: c, version: 1, description: x, dtype: int64, python: nope.py:f, encoding: {kind: numeric}}
  - {name: d, version: 1, description: x, dtype: int64, sql: '1', python: f.py:two, encoding: {kind: numeric}}
  - {name: e, version: 1, description: x, dtype: int64, python: ../f.py:two, encoding: {kind: numeric}}
"""
    )
    with pytest.raises(ConfigError) as info:
        FeatureRegistry.load(features)
    message = str(info.value)
    assert "product.a@1" in message and "no top-level function missing" in message
    assert "product.b@1" in message and "exactly one argument" in message
    assert "product.c@1" in message and "no file" in message
    assert "product.d@1" in message and "exactly one computation" in message
    assert "product.e@1" in message and "inside the features directory" in message


def test_a_changed_computation_of_a_materialised_version_is_refused(workspace_copy: Path) -> None:
    path = workspace_copy / "features" / "product.yaml"
    path.write_text(path.read_text().replace("sql: discount_pct\n", "sql: discount_pct * 100\n"))
    tables = workspace_copy / ".spindle" / "tables"
    version = _table_version(tables)
    with Context.open(workspace_copy) as ctx, pytest.raises(FeatureError) as info:
        ingest(ctx, DAYS[-1])  # the features step's identity changed, so it runs: refused
    message = str(info.value)
    assert "feature product.discount_pct@1: its computation changed since it was first" in message
    assert "give the changed computation a new version (discount_pct@2)" in message
    assert "models pinning discount_pct@1 keep their values" in message
    registry = FeatureRegistry.load(workspace_copy / "features")
    with pytest.raises(FeatureError, match="computation changed"):
        backfill_feature(tables, registry, "product.discount_pct@1", DAYS)
    assert _table_version(tables) == version

    # A Python feature's fingerprint is its file: editing the file is a change too.
    path.write_text(path.read_text().replace("sql: discount_pct * 100\n", "sql: discount_pct\n"))
    code = workspace_copy / "features" / "product_features.py"
    code.write_text(code.read_text().replace("fill_null(", "fill_null(1 + "))
    with pytest.raises(FeatureError, match=r"product\.name_word_count@1: its computation changed"):
        compute_features(tables, FeatureRegistry.load(workspace_copy / "features"), DAYS[-1])
    assert _table_version(tables) == version


def test_features_show_json_shows_the_python_computation(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "ws", "yarnit")
    runner = CliRunner()
    args = ["features", "show", "product.name_word_count", "-w", str(root)]
    shown = runner.invoke(app, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    [record] = json.loads(shown.stdout)
    computation = record["computation"]
    source = (root / "features" / "product_features.py").read_bytes()
    assert computation["kind"] == "python"
    assert computation["python"] == "product_features.py:name_word_count"
    assert computation["source_sha256"] == hashlib.sha256(source).hexdigest()
    assert record["used_by"] == [] and record["dtype"] == "int64"
    text = runner.invoke(app, args)
    assert text.exit_code == 0 and "python product_features.py:name_word_count" in text.stdout
    listed = runner.invoke(
        app, ["features", "show", "product.price_usd@1", "--json", "-w", str(root)]
    )
    assert json.loads(listed.stdout)[0]["computation"]["kind"] == "sql"


def test_registry_fingerprint_changes_with_a_computation(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "ws", "yarnit")
    before = FeatureRegistry.load(root / "features").fingerprint()
    assert FeatureRegistry.load(root / "features").fingerprint() == before  # deterministic
    code = root / "features" / "product_features.py"
    code.write_text(code.read_text() + "\n# a comment is a change of the file\n")
    assert FeatureRegistry.load(root / "features").fingerprint() != before
