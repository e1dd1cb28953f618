"""Two ``spindle run``s of different models started at once on a day nobody ingested yet: both
ingest the same partitions (Delta commit conflicts, retried by type), both train, evaluate
and push, and the day's tables hold each row once."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace

import spindle

pytestmark = pytest.mark.e2e

MODELS = ("search_ranker", "purchase_propensity")
DAY = "2026-01-04"
FLAGS = ("--json", "--workspace")


def _start(root: Path, model: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "spindle"
    return subprocess.Popen(
        [str(exe), "run", model, "--date", DAY, "--set", "training.epochs=1", *FLAGS, str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_of_different_models_on_a_fresh_day_both_succeed(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "yarnit", days=4)
    with spindle.Context.open(root) as ctx:
        for i in range(3):  # the history; the run's day is left for both runs to ingest
            day = (START + dt.timedelta(days=i)).isoformat()
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
    runs = [_start(root, model) for model in MODELS]
    outputs = [run.communicate(timeout=900) for run in runs]
    for model, run, (out, err) in zip(MODELS, runs, outputs, strict=True):
        assert run.returncode == 0, (model, out[-2000:], err[-2000:])
        report = json.loads(out)
        assert report["model"] == model and report["error"] is None, report
    with spindle.Context.open_reader(root) as ctx:
        for model in MODELS:
            assert [v.status for v in ctx.store.versions(model)] == ["ready"]
            assert ctx.store.get_alias(model, "production") == 1
        ingests = [r for r in ctx.store.runs(step="ingest", limit=None) if r.date == DAY]
        ingested = ctx.store.latest_artifact("ingest", date=DAY)
    # an attempt that lost a Delta commit race is recorded as failed, as a transient failure
    # the runner retried; every other ingest run of the day succeeded
    for run in ingests:
        if run.status == "failed":
            assert (run.error or "").startswith("transient (retried): "), run.error
        else:
            assert run.status == "succeeded", (run.status, run.error)
    assert [r.status for r in ingests].count("succeeded") >= 1
    assert ingested is not None
    # every source's partition of the day was loaded once: no row twice, none lost
    import duckdb
    from deltalake import DeltaTable

    loaded = 0
    with duckdb.connect() as con:
        for table in sorted((root / ".spindle" / "tables" / "raw").iterdir()):
            con.register("t", DeltaTable(str(table)).to_pyarrow_dataset())
            (total,) = con.execute(f"SELECT count(*) FROM t WHERE date = '{DAY}'").fetchall()[0]
            (distinct,) = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT * FROM t WHERE date = '{DAY}')"
            ).fetchall()[0]
            con.unregister("t")
            assert total == distinct, table.name
            loaded += total
    assert loaded == ingested.properties["rows_ingested"] > 0


def test_run_all_with_two_at_once_keeps_its_output_and_records(workspace_copy: Path) -> None:
    """``run-all --max-parallel 2`` runs the models in spawned processes (no stdout redirected
    from a thread): its table names both models with the version each trained and the version
    serving it, as the registry has them."""
    exe = Path(sys.executable).parent / "spindle"
    done = subprocess.run(
        [str(exe), "run-all", "--date", DAY, "--max-parallel", "2", "-w", str(workspace_copy)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"run-all {DAY}" in done.stdout
    with spindle.Context.open_reader(workspace_copy) as ctx:
        for model in MODELS:
            (trained,) = ctx.store.versions(model)
            serving = ctx.store.get_alias(model, "production")
            row = next(line for line in done.stdout.splitlines() if f" {model} " in line)
            cells = [c.strip() for c in row.split("│")[1:-1]]
            assert cells[:2] == [model, str(trained.version)], row
            assert cells[3] == ("-" if serving is None else str(serving)), row
