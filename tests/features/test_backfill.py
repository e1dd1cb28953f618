"""Backfill: a new feature version is recomputed for past days idempotently and resumably,
without touching any other column; training sets read at pinned versions stay identical; the
command records the backfill as a run in the metadata store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from spindle.core import load_sources
from spindle.features import FeatureRegistry, backfill_feature, build_rows, compute_group
from spindle.orchestrate import Context, load_config

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
NEW_VERSION = """  - name: price_usd
    version: 2
    description: List price in USD, ignoring discounts.
    dtype: float64
    sql: list_price * usd_per_unit
    encoding: {kind: numeric, log: true}
"""
REF = "product.price_usd@2"
COLUMN = "product__price_usd__v2"


def _add_version(root: Path) -> FeatureRegistry:
    path = root / "features" / "product.yaml"
    path.write_text(path.read_text() + NEW_VERSION)
    return FeatureRegistry.load(root / "features")


def _product_table(tables: Path, version: int | None = None) -> pa.Table:
    table = DeltaTable(str(tables / "features" / "product"), version=version).to_pyarrow_table()
    return table.sort_by([("date", "ascending"), ("product_id", "ascending")])


def _expected(tables: Path, registry: FeatureRegistry, date: str) -> pa.Table:
    rows = compute_group(tables, registry, "product", date, [registry.get(REF)])
    return rows.select(["product_id", COLUMN]).sort_by("product_id")


def _assert_backfilled(tables: Path, registry: FeatureRegistry) -> None:
    table = _product_table(tables)
    for date in DAYS:
        day = table.filter(pc.equal(table["date"], date)).select(["product_id", COLUMN])
        assert day.equals(_expected(tables, registry, date)), date


def test_backfill_fills_only_its_column_and_is_idempotent(workspace_copy: Path) -> None:
    registry = _add_version(workspace_copy)
    with Context.open(workspace_copy) as ctx:
        tables = ctx.workspace.tables_dir
        loaded = load_config(ctx, "search_ranker")
        from spindle.features import pin_versions

        pinned = pin_versions(tables)
        sources = load_sources(workspace_copy)
        trainset = build_rows(
            tables, loaded.config, loaded.definitions, tuple(DAYS[2:]), pinned, sources=sources
        )
        before = _product_table(tables)
        progress: list[tuple[int, int]] = []
        result = backfill_feature(
            tables,
            registry,
            REF,
            DAYS,
            progress=lambda _t, done, total: progress.append((done, total)),
        )
        assert result.written == DAYS and progress[-1] == (4, 4)
        after = _product_table(tables)
        assert after.drop_columns([COLUMN]).equals(before)  # no other value changed
        _assert_backfilled(tables, registry)
        version = DeltaTable(str(tables / "features" / "product")).version()
        again = backfill_feature(tables, registry, REF, DAYS)
        assert set(again.days.values()) == {"unchanged"}  # a rerun changes nothing ...
        assert DeltaTable(str(tables / "features" / "product")).version() == version  # ... at all
        # Time travel: the training set read at the pinned versions is the same row for row.
        rebuilt = build_rows(
            tables, loaded.config, loaded.definitions, tuple(DAYS[2:]), pinned, sources=sources
        )
        assert rebuilt.table.equals(trainset.table)
        assert COLUMN not in rebuilt.table.column_names  # the model pins v1, not v2


_CHILD = """
import sys, time
from pathlib import Path
from spindle.features import FeatureRegistry, backfill_feature
root = Path(sys.argv[1])
def report(task, done, total):
    print(done, flush=True)
    time.sleep(2.0)   # the parent kills the process while it waits here or on the next day
backfill_feature(root / ".spindle" / "tables", FeatureRegistry.load(root / "features"),
                 sys.argv[2], sys.argv[3:], progress=report)
"""


def test_backfill_resumes_after_a_kill(workspace_copy: Path) -> None:
    registry = _add_version(workspace_copy)
    tables = workspace_copy / ".spindle" / "tables"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(workspace_copy), REF, *DAYS],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as child:
        assert child.stdout is not None
        first = child.stdout.readline()
        child.send_signal(signal.SIGKILL)  # a real kill, mid-backfill
        child.wait(timeout=60)
    assert first.strip() == "1"
    resumed = backfill_feature(tables, registry, REF, DAYS)
    assert resumed.days[DAYS[0]] == "unchanged"  # the committed day is not redone
    assert resumed.days[DAYS[-1]] == "written"
    _assert_backfilled(tables, registry)


def test_backfill_command(workspace_copy: Path) -> None:
    import json

    from typer.testing import CliRunner

    from spindle.cli import app

    _add_version(workspace_copy)
    args = ["features", "backfill", REF, "--since", DAYS[0], "--json", "-w", str(workspace_copy)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["written"] == DAYS  # --until defaults to the newest day
    assert report["table"] == f"table:features/product@{report['table_version']}"
    with Context.open(workspace_copy) as ctx:  # recorded as a run, with its output version
        run = ctx.store.get_run(report["run_id"])
        assert run.step == "backfill" and report["table"] in run.outputs
        assert run.params["ref"] == REF and run.params["until"] == DAYS[-1]
    rerun = json.loads(CliRunner().invoke(app, args).stdout)
    assert rerun["written"] == [] and rerun["table"] is None  # nothing to write: no version
    text = CliRunner().invoke(app, args[:-3] + args[-2:])
    assert text.exit_code == 0 and "an identical backfill had already run" in text.stdout
    unknown = CliRunner().invoke(
        app,
        ["features", "backfill", "product.nope@1", "--since", DAYS[0], "-w", str(workspace_copy)],
    )
    assert unknown.exit_code == 1 and "not defined" in unknown.output
    query = CliRunner().invoke(
        app, ["features", "backfill", "query.text@1", "--since", DAYS[0], "-w", str(workspace_copy)]
    )
    assert query.exit_code == 1 and "computed per request" in query.output
