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


def _spindle(ws: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env.pop("SPINDLE_KILL_AT", None)
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
