"""Seed replicas on a real workspace: spread reported, deterministic, cached, never registered."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.orchestrate import Context, replica_seed, train_replicas

MODEL = "search_ranker"
DAY = "2026-01-03"


def test_replicas_report_the_spread_and_are_cached_not_registered(workspace_copy: Path) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with Context.open(workspace_copy) as ctx:
        version, _, _ = spindle.train_version(ctx, MODEL, DAY, overrides=["training.epochs=1"])
        evaluation, details = spindle.evaluate_version(ctx, MODEL, version.version, DAY, replicas=3)

        # the spread of every metric over the candidate and its two replicas, in the verdict
        overall = {s["metric"]: s for s in details["replica_spread"] if s["slice"] is None}
        ndcg = overall["ndcg@10"]
        values = [details["metrics"][s]["ndcg@10"] for s in ndcg["systems"]]
        assert ndcg["k"] == 3 and ndcg["values"] == pytest.approx(values)
        assert ndcg["systems"] == ["candidate", "replica_1", "replica_2"]
        assert 0 < ndcg["std"] < 0.1 and ndcg["min"] <= ndcg["max"]
        assert ndcg["noise"] == pytest.approx(2 * ndcg["std"])
        assert any(s["slice"] for s in details["replica_spread"])  # per slice too
        (reason,) = [r for r in details["reasons"] if r["check"] == "replica_spread"]
        assert "3 seed replicas" in reason["message"]
        seed = ctx.workspace.model_config(MODEL)[0].training.seed
        seeds = [r["seed"] for r in details["replicas"]]
        assert seeds == [replica_seed(seed, 1), replica_seed(seed, 2)] and seed not in seeds

        # replicas are evaluation artifacts: not model versions, not in the model repository
        assert [v.version for v in ctx.store.versions(MODEL)] == [version.version]
        paths = [Path(r["path"]) for r in details["replicas"]]
        replicas_dir = ctx.workspace.artifacts_dir / "replicas" / MODEL / str(version.version)
        assert all(p.parent == replicas_dir and (p / "model.onnx").is_file() for p in paths)
        assert not (ctx.workspace.model_repo / MODEL).exists()

        # a rerun reuses them (a re-evaluation under another gate config trains nothing)
        again = train_replicas(ctx, MODEL, version.version, 3)
        assert [r.reused for r in again] == [True, True]
        assert [r.path for r in again] == paths

        # deterministic: a replica trained again from nothing is the same model
        before = json.loads((paths[0] / "manifest.json").read_text())
        shutil.rmtree(paths[0])
        retrained, reused = train_replicas(ctx, MODEL, version.version, 3)
        assert not retrained.reused and reused.reused
        after = json.loads((retrained.path / "manifest.json").read_text())
        assert after["files"] == before["files"]  # same weights and ONNX, byte for byte

        # two evaluations at once: one trains the missing replica, the other waits and reuses it
        shutil.rmtree(paths[1])
        outcomes: list[list[bool]] = []
        errors: list[BaseException] = []

        def evaluate_concurrently() -> None:
            try:
                with Context.open(workspace_copy) as other:
                    outcomes.append(
                        [r.reused for r in train_replicas(other, MODEL, version.version, 3)]
                    )
            except BaseException as error:  # reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=evaluate_concurrently) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert sorted(outcomes) == [[True, False], [True, True]]
    assert evaluation.decision == "pass", evaluation.reasons

    # the command line shows the spread (the evaluation is recorded: nothing is retrained)
    args = ["evaluate", MODEL, "--version", str(version.version), "--date", DAY, "--replicas", "3"]
    shown = CliRunner().invoke(app, [*args, "-w", str(workspace_copy)], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "run-to-run spread over 3 seed replicas" in shown.output and "replica_2" in shown.output
    as_json = CliRunner().invoke(app, [*args, "--json", "-w", str(workspace_copy)])
    assert json.loads(as_json.stdout)["replica_spread"] == details["replica_spread"]
