"""Crash anywhere: SIGKILL `spindle run` at named points, re-run, and require a consistent result.

Each point kills a real `spindle run` subprocess (SIGKILL, no cleanup). Re-running the same
command must complete the day, create no duplicate version, and leave the metadata store
consistent (`spindle doctor`, after it marks the dead run failed, finds nothing else).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import make_workspace

from spindle.orchestrate import Context, doctor

STEPS = (
    "ingest",
    "features",
    "validate",
    "training_set:train",
    "train",
    "training_set:holdout",
    "evaluate",
    "push",
)
ALL_POINTS = [f"{when}:{step}" for step in STEPS for when in ("before", "after-work", "after")]
QUICK_POINTS = ["after-work:train", "after-work:push"]
DAY = "2026-01-04"
# Small and quick; the gate is loosened so that every day reaches push (the push points must fire).
ARGS = [
    "--set",
    "training.epochs=1",
    "--set",
    "training.window_days=3",
    "--set",
    "evaluation.max_regression=1.0",
    "--set",
    "evaluation.max_calibration_error=null",
    "--set",
    "evaluation.max_score_psi=null",
]


def _spindle(
    ws: Path, *args: str, kill_at: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, killed at ``kill_at`` if given; ``env`` adds variables."""
    inherited = {k: v for k, v in os.environ.items() if k != "SPINDLE_KILL_AT"}
    env = dict(inherited, OMP_WAIT_POLICY="PASSIVE", **(env or {}))
    if kill_at:
        env["SPINDLE_KILL_AT"] = kill_at
    code = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args, "-w", str(ws)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def base_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Days 1-3 ingested and a first version trained for day 3; day 4 is the day to crash on."""
    root = make_workspace(tmp_path_factory.mktemp("kill") / "ws", days=4, scale=0.2)
    for day in ("2026-01-01", "2026-01-02"):
        assert _spindle(root, "ingest", "--date", day).returncode == 0
        assert _spindle(root, "validate", "--date", day).returncode == 0
    result = _spindle(root, "run", "search_ranker", "--date", "2026-01-03", *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _check(point: str, base: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(base, ws, symlinks=True)
    killed = _spindle(ws, "run", "search_ranker", "--date", DAY, *ARGS, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{point}: not killed ({killed.returncode}): {killed.stderr[-2000:]}"
    )
    again = _spindle(ws, "run", "search_ranker", "--date", DAY, *ARGS, "--json")
    assert again.returncode == 0, (
        f"{point}: rerun failed: {again.stdout[-2000:]} {again.stderr[-2000:]}"
    )
    report = json.loads(again.stdout)
    assert report["error"] is None and report["version"] is not None
    with Context.open(ws) as ctx:
        problems = doctor(ctx, fix=True)
        assert all(p.fixed for p in problems), [p.to_dict() for p in problems]
        assert all(p.kind == "stale_run" for p in problems), [p.to_dict() for p in problems]
        day_versions = [
            v for v in ctx.store.versions("search_ranker") if v.date == DAY and v.status == "ready"
        ]
        assert len(day_versions) == 1, f"{point}: {len(day_versions)} versions for {DAY}"
        assert doctor(ctx) == []


@pytest.mark.parametrize("point", QUICK_POINTS)
def test_kill_and_rerun(point: str, base_workspace: Path, tmp_path: Path) -> None:
    _check(point, base_workspace, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("point", [p for p in ALL_POINTS if p not in QUICK_POINTS])
def test_kill_matrix(point: str, base_workspace: Path, tmp_path: Path) -> None:
    _check(point, base_workspace, tmp_path)


# --- rollback, route and push: killed between their writes, re-run, and the same end state ---
#
# Each of these commands records its intent (op, arguments, the routing it planned from and the
# routing it intends) before it writes anything. Killed anywhere and re-run as the runbook says,
# it must complete that same intent: end exactly where one uninterrupted run of it ends, with
# one recorded deployment, and a clean doctor report.

MODEL = "search_ranker"
DEPLOY_OPS: dict[str, tuple[str, ...]] = {
    "rollback": ("rollback", MODEL),
    "route": ("route", MODEL, "2=0.7", "3=0.3"),
    "push": ("push", MODEL, "--version", "4", "--force", "--reason", "kill test"),
}
DEPLOY_POINTS = {
    "rollback": ("deploy:recorded", "deploy:routed"),
    "route": ("deploy:recorded", "deploy:routed"),
    "push": ("deploy:recorded", "repository:copied", "deploy:prepared", "deploy:routed"),
}
QUICK_DEPLOY = {("rollback", "deploy:routed"), ("route", "deploy:recorded")}
QUICK_DEPLOY |= {("push", "repository:copied"), ("push", "deploy:routed")}


@pytest.fixture(scope="module")
def deployed_workspace(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1-3 pushed in turn (3 serves, previous 2); version 4 trained (warm started),
    infra-validated and not pushed."""
    from spindle import push, train_version
    from spindle.orchestrate import checked_infra

    root = tmp_path_factory.mktemp("deploy-kill") / "ws"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        for version, day in ((1, "2026-01-02"), (2, "2026-01-03"), (3, "2026-01-04")):
            trained, _, _ = train_version(ctx, MODEL, day, from_scratch=True)
            assert trained.version == version
            push(ctx, MODEL, version, infra=False, force=True, reason="fixture")
        trained, _, _ = train_version(ctx, MODEL, "2026-01-04")
        assert trained.version == 4 and trained.base_version is not None
        assert checked_infra(ctx, MODEL, 4).passed  # kept: the CLI push reuses the report
    return root


def _serving_state(ws: Path) -> dict[str, object]:
    routing = json.loads((ws / ".spindle" / "model_repo" / MODEL / "routing.json").read_text())
    with Context.open(ws) as ctx:
        return {
            "weights": routing["weights"],
            "previous": routing["previous"],
            "aliases": ctx.store.aliases(MODEL),
            "deployments": [(d.status, d.weights) for d in ctx.store.deployments(MODEL)],
        }


@pytest.fixture(scope="module")
def uninterrupted(deployed_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Where one uninterrupted run of each command ends."""
    ends = {}
    for op, args in DEPLOY_OPS.items():
        ws = tmp_path_factory.mktemp(f"clean-{op}") / "ws"
        shutil.copytree(deployed_workspace, ws, symlinks=True)
        done = _spindle(ws, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        ends[op] = _serving_state(ws)
    return ends


def _check_deploy(op: str, point: str, base: Path, ends: dict, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(base, ws, symlinks=True)
    killed = _spindle(ws, *DEPLOY_OPS[op], kill_at=point)
    assert killed.returncode == -signal.SIGKILL, (
        f"{op} at {point}: not killed ({killed.returncode}): {killed.stderr[-2000:]}"
    )
    with Context.open(ws) as ctx:
        (pending,) = ctx.store.deployments(MODEL, status="pending")
        found = doctor(ctx)
    (hint,) = [p.message for p in found if p.kind == "pending_deployment"]
    assert f"re-run `spindle {op} {MODEL}" in hint  # the runbook's step, named by the doctor
    leftover = {p.kind for p in found} & {"leftover"}
    assert bool(leftover) == (point == "repository:copied")  # the copy's temp dir is reported
    again = _spindle(ws, *DEPLOY_OPS[op])  # re-run as the runbook says
    assert again.returncode == 0, f"{op} at {point}: rerun failed: {again.stderr[-2000:]}"
    assert _serving_state(ws) == ends[op], f"{op} killed at {point}, then re-run"
    with Context.open(ws) as ctx:
        # the rerun completed the intent the killed command recorded, never a second one
        (record,) = [d for d in ctx.store.deployments(MODEL) if d.seq == pending.seq]
        assert record.status == "done"
        problems = doctor(ctx, fix=True)
        assert all(p.kind == "stale_run" and p.fixed for p in problems), [
            p.to_dict() for p in problems
        ]
        assert doctor(ctx) == []


@pytest.mark.parametrize(
    ("op", "point"),
    [
        pytest.param(op, point, marks=() if (op, point) in QUICK_DEPLOY else pytest.mark.slow)
        for op, points in DEPLOY_POINTS.items()
        for point in points
    ],
)
def test_deploy_kill_and_rerun(
    op: str, point: str, deployed_workspace: Path, uninterrupted: dict, tmp_path: Path
) -> None:
    _check_deploy(op, point, deployed_workspace, uninterrupted, tmp_path)
