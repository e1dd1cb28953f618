"""The steps' tasks on Ray (``executor: {kind: ray}``, ``--executor ray``): a day's ingest,
features, training sets and training run as Ray tasks with the same records, keys and results
as in-process; a backfill's days run as tasks; a failing task keeps its own error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import make_workspace
from tests.features.test_backfill import DAYS, REF, _add_version, _assert_backfilled

import spindle
from spindle.core import ConfigError, DataError, OrchestrationError
from spindle.orchestrate import Context, run_day

pytest.importorskip("ray")
pytestmark = pytest.mark.e2e

DAY = "2026-01-04"


def _with_history(root: Path) -> Path:
    """``root`` with the 3 days before DAY ingested and validated here; DAY left to the run."""
    with Context.open(root) as ctx:
        for day in DAYS[:3]:
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
    return root


def test_a_day_runs_its_data_and_training_as_ray_tasks(tmp_path: Path, local_ray: None) -> None:
    root = _with_history(make_workspace(tmp_path / "yarnit", days=4))
    with Context.open(root) as ctx:
        ctx.use_executor("ray")
        report = run_day(ctx, "search_ranker", DAY, overrides=["training.epochs=1"])
        assert report.error is None, report.error
        placed = [label for label, _ in getattr(ctx.tasks, "placements", [])]
        assert f"ingest {DAY}" in placed and f"features {DAY}" in placed
        assert f"train search_ranker {DAY}" in placed
        assert any(p.startswith("training set search_ranker train") for p in placed)
        nodes = {node for _, node in getattr(ctx.tasks, "placements", [])}
        for step in ("ingest", "features", "train"):
            runs = [r for r in ctx.store.runs(step=step, limit=None) if r.date == DAY]
            assert [r.status for r in runs] == ["succeeded"], step
            # the record says where the step's task ran and what it cost there
            (ran,) = runs[0].params["ran_on"]
            assert ran["node"] in nodes and ran["task"] in placed and ran["cpu_s"] > 0
            assert runs[0].resources["tasks"] == 1
            assert runs[0].resources["task_cpu_s"] == ran["cpu_s"] > 0
        (fit,) = [r for r in ctx.store.runs(step="train", limit=None) if r.date == DAY]
        # the fit's CPU was spent in the task, not by the driver waiting for it
        assert fit.resources["task_cpu_s"] > fit.resources["cpu_s"]
        # the same day in this process: every step is recognised as done (same keys)
        ctx.use_executor("in-process")
        again = run_day(ctx, "search_ranker", DAY, overrides=["training.epochs=1"])
        assert {"ingest", "train"} <= set(again.skipped_steps)
        assert again.version == report.version


def test_a_backfill_runs_its_days_as_ray_tasks(workspace_copy: Path, local_ray: None) -> None:
    registry = _add_version(workspace_copy)
    with Context.open(workspace_copy) as ctx:
        ctx.use_executor("ray")
        run = spindle.backfill(ctx, REF, DAYS[0], DAYS[-1])
        assert run.result.written == DAYS
        labels = [label for label, _ in getattr(ctx.tasks, "placements", [])]
        assert labels == [f"backfill {REF} {DAYS[0]}..{DAYS[0]}"] * 1 + [
            f"backfill {REF} {DAYS[1]}..{DAYS[-1]}"
        ] * (len(DAYS) - 1)
        _assert_backfilled(ctx.workspace.tables_dir, registry)
        (recorded,) = ctx.store.runs(step="backfill", limit=None)
        assert recorded.status == "succeeded" and recorded.id == run.run_id


def test_a_failing_task_keeps_its_own_error_and_is_recorded(
    tmp_path: Path, local_ray: None
) -> None:
    root = make_workspace(tmp_path / "yarnit", days=1)
    with Context.open(root) as ctx:
        day = "2026-01-01"
        (part,) = [p for p in (root / "raw").rglob("*") if p.is_file() and day in str(p)][:1]
        part.write_bytes(b"\x00not a file of its format\x00")
        ctx.use_executor("ray")
        with pytest.raises(DataError) as caught:
            spindle.ingest(ctx, day)
        message = str(caught.value)
        assert "\n" not in message and "Traceback" not in message and day in message
        (run,) = ctx.store.runs(step="ingest", limit=None)
        assert run.status == "failed" and (run.error or "").startswith(type(caught.value).__name__)


def test_the_executor_comes_from_spindle_yaml_or_the_command_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "yarnit", days=1)
    config = root / "spindle.yaml"
    config.write_text(
        config.read_text() + "executor: {kind: ray, address: 127.0.0.1:1, num_cpus: 2}\n"
    )
    with Context.open(root) as ctx:
        assert (ctx.tasks.name, getattr(ctx.tasks, "address", None)) == ("ray", "127.0.0.1:1")
        ctx.use_executor("in-process")
        assert ctx.tasks.name == "in-process"
        with pytest.raises(OrchestrationError, match="unknown executor 'spark'"):
            ctx.use_executor("spark")
    config.write_text(config.read_text().replace("kind: ray", "kind: dask"))
    with pytest.raises(ConfigError, match="executor"):
        Context.open(root)


def test_cli_ingest_with_an_unreachable_ray_cluster_says_so_in_one_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "yarnit", days=1)
    exe = Path(sys.executable).parent / "spindle"
    done = subprocess.run(
        [
            str(exe),
            "ingest",
            "--date",
            "2026-01-01",
            "--executor",
            "ray",
            "--ray-address",
            "127.0.0.1:9",
            "--allow-future",
            "--json",
            "-w",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (outcome,) = json.loads(done.stdout)
    assert outcome["status"] == "failed" and "Ray cluster at 127.0.0.1:9" in outcome["error"]
    assert "Traceback" not in done.stderr


# slow (make test-all): `spindle run --executor ray` runs in every CI run in
# test_two_nodes.py, on a cluster of two nodes
@pytest.mark.slow
def test_cli_run_with_executor_ray_runs_the_day(tmp_path: Path) -> None:
    root = _with_history(make_workspace(tmp_path / "yarnit", days=4))
    exe = Path(sys.executable).parent / "spindle"
    done = subprocess.run(
        [
            str(exe),
            "run",
            "purchase_propensity",
            "--date",
            DAY,
            "--executor",
            "ray",
            "--set",
            "training.epochs=1",
            "--json",
            "-w",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["error"] is None and report["version"] == 1
    with Context.open_reader(root) as ctx:
        trained = ctx.store.runs(step="train", status="succeeded", limit=None)
        assert [r.model for r in trained] == ["purchase_propensity"]
        assert [t["task"] for t in trained[0].params["ran_on"]] == [
            f"train purchase_propensity {DAY}"
        ]


def test_an_ingest_range_on_ray_loads_its_days_at_once_and_equals_in_process(
    tmp_path: Path,
) -> None:
    """``spindle ingest --since --until --executor ray``: every day's load is a task started
    before the first day's features; each day is recorded once, and the outcome (rows,
    quarantine, verdicts, feature tables) equals the same range ingested in this process."""
    roots = {kind: make_workspace(tmp_path / kind, days=4) for kind in ("ray", "in-process")}
    exe = Path(sys.executable).parent / "spindle"
    outcomes = {}
    for kind, root in roots.items():
        done = subprocess.run(
            [
                str(exe),
                "ingest",
                "--since",
                DAYS[0],
                "--until",
                DAYS[-1],
                "--executor",
                kind,
                "--json",
                "-w",
                str(root),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outcomes[kind] = json.loads(done.stdout)
    assert outcomes["ray"] == outcomes["in-process"]
    with Context.open_reader(roots["ray"]) as ctx:
        runs = ctx.store.runs(step="ingest", limit=None)
        loads = sorted((r.date, r.status) for r in runs)
        assert loads == [(day, "succeeded") for day in DAYS]
        first_features = min(r.started_at for r in ctx.store.runs(step="features", limit=None))
        assert all(r.started_at < first_features for r in runs)  # every load came first
    # the same feature rows; a window's float sums may differ in the last bit, since the
    # days' files were committed in another order and DuckDB sums them in scan order
    for table in ("product", "user"):
        ray_rows, local_rows = (_feature_rows(root, table) for root in roots.values())
        assert ray_rows.schema == local_rows.schema and ray_rows.num_rows == local_rows.num_rows
        for name in ray_rows.column_names:
            a, b = ray_rows.column(name), local_rows.column(name)
            if pa.types.is_floating(a.type):
                assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-12, equal_nan=True), name
            else:
                assert a.equals(b), (table, name)


def _feature_rows(root: Path, table: str) -> pa.Table:
    from deltalake import DeltaTable

    rows = DeltaTable(str(root / ".spindle" / "tables" / "features" / table)).to_pyarrow_table()
    keys = [c for c in rows.column_names if not pa.types.is_floating(rows.schema.field(c).type)]
    return rows.sort_by([(c, "ascending") for c in keys])
