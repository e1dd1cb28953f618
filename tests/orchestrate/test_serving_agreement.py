"""The registry's production alias and routing.json always agree: push, run-all, route,
rollback, a crash between the two writes, a hand-edited routing.json, and warm start after
rollback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.core import GateBlocked
from spindle.orchestrate import Context, Problem, choose_base

MODEL = "search_ranker"
OLD_DAY, NEW_DAY = "2026-01-03", "2026-01-04"


def _routing(root: Path) -> dict[str, float]:
    path = root / ".spindle" / "model_repo" / MODEL / "routing.json"
    weights: dict[str, float] = json.loads(path.read_text())["weights"]
    return weights


def _serving_problems(ctx: Context) -> list[Problem]:
    kinds = {"serving_mismatch", "corrupt_routing", "pending_deployment", "routing"}
    return [p for p in spindle.doctor(ctx) if p.kind in kinds]


@pytest.fixture(scope="module")
def deployed(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Version 1 (trained for OLD_DAY) pushed, then version 2 (for NEW_DAY) pushed: production
    is 2, routing {2: 1.0} with previous 1."""
    root = tmp_path_factory.mktemp("agree") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        for version, day in ((1, OLD_DAY), (2, NEW_DAY)):
            spindle.train_version(ctx, MODEL, day, from_scratch=True)
            evaluation, _ = spindle.evaluate_version(ctx, MODEL, version, day)
            passed = evaluation.decision == "pass"
            spindle.push(ctx, MODEL, version, force=not passed, reason=None if passed else "test")
        assert ctx.store.get_alias(MODEL, "production") == 2
    assert _routing(root) == {"2": 1.0}
    yield root


@pytest.fixture
def ws(deployed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "yarnit"
    shutil.copytree(deployed, target, symlinks=True)
    return target


def test_an_older_version_never_replaces_production_unless_asked(ws: Path) -> None:
    with Context.open(ws) as ctx:
        with pytest.raises(GateBlocked, match=r"older than production .*--allow-older"):
            spindle.push(ctx, MODEL, 1, infra=False, force=True, reason="older")
        assert ctx.store.get_alias(MODEL, "production") == 2
        assert _routing(ws) == {"2": 1.0}
        (refused,) = ctx.store.deployments(MODEL, status="refused")
        assert refused.weights == {1: 1.0} and "older than production" in (refused.detail or "")
        # called from Python too, the refusal is a failed push run (what the metric counts)
        (failed,) = ctx.store.runs(model=MODEL, step="push", status="failed")
        assert "GateBlocked" in (failed.error or "") and "older than production" in failed.error
        # a canary share of an older version replaces nothing: allowed
        spindle.push(ctx, MODEL, 1, weight=0.2, infra=False, force=True, reason="canary")
        assert ctx.store.get_alias(MODEL, "production") == 2
        assert _routing(ws) == {"1": 0.2, "2": pytest.approx(0.8)}
        spindle.push(ctx, MODEL, 1, infra=False, allow_older=True, force=True, reason="older")
        assert ctx.store.get_alias(MODEL, "production") == 1
        assert _routing(ws) == {"1": 1.0}
        last = ctx.store.deployments(MODEL, status="done")[-1]
        assert last.main == 1 and "older data allowed" in last.reason
        assert _serving_problems(ctx) == []


def test_run_all_for_an_older_day_keeps_production_and_says_so(ws: Path) -> None:
    """The reported case: run-all for a day before production's day pushed the older version
    and set routing to it while the registry kept production."""
    with Context.open(ws) as ctx:
        reports = spindle.run_all(ctx, OLD_DAY)
        (report,) = [r for r in reports if r.model == MODEL]
        assert report.version == 1  # the same day, data and config: the recorded version
        assert report.serving_version == 2
        assert "older than production" in " ".join([report.error or "", *report.gate_reasons])
        assert ctx.store.get_alias(MODEL, "production") == 2
        assert _routing(ws) == {"2": 1.0}
        assert ctx.store.deployments(MODEL, status="refused")
        assert _serving_problems(ctx) == []
        allowed = spindle.run_day(ctx, MODEL, OLD_DAY, allow_older=True)
        assert allowed.serving_version == 1, allowed.error
        assert _routing(ws) == {"1": 1.0}


def test_doctor_fix_routes_a_hand_edited_routing_back_to_the_registry(ws: Path) -> None:
    path = ws / ".spindle" / "model_repo" / MODEL / "routing.json"
    path.write_text(json.dumps({"model": MODEL, "weights": {"1": 1.0}, "previous": None}))
    with Context.open(ws) as ctx:
        (problem,) = _serving_problems(ctx)
        assert problem.kind == "serving_mismatch" and not problem.fixed
        assert "doctor --fix" in problem.message
        fixed = [p for p in spindle.doctor(ctx, fix=True) if p.kind == "serving_mismatch"]
        assert fixed and all(p.fixed for p in fixed)
        assert _routing(ws) == {"2": 1.0}
        assert ctx.store.get_alias(MODEL, "production") == 2
        assert _serving_problems(ctx) == []

        path.write_text("{not json")
        (corrupt,) = _serving_problems(ctx)
        assert corrupt.kind == "corrupt_routing" and "routing file" in corrupt.message
        spindle.doctor(ctx, fix=True)
        assert _routing(ws) == {"2": 1.0}
        assert spindle.doctor(ctx) == []  # healthy: nothing else was disturbed either


def _route_killed_at(ws: Path, point: str) -> None:
    env = os.environ | {"SPINDLE_KILL_AT": point, "OMP_WAIT_POLICY": "PASSIVE"}
    code = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "route", MODEL, "1=1", "-w", str(ws)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == -9, done.stderr  # SIGKILL at the kill point


@pytest.mark.parametrize(
    ("point", "routing", "production"),
    [("deploy:recorded", {"2": 1.0}, 2), ("deploy:routed", {"1": 1.0}, 1)],
)
def test_a_crash_between_registry_and_routing_is_repaired(
    ws: Path, point: str, routing: dict[str, float], production: int
) -> None:
    _route_killed_at(ws, point)
    with Context.open(ws) as ctx:
        assert "pending_deployment" in {p.kind for p in _serving_problems(ctx)}
        spindle.doctor(ctx, fix=True)
        assert _serving_problems(ctx) == []
        assert _routing(ws) == routing
        assert ctx.store.get_alias(MODEL, "production") == production
        (record,) = [d for d in ctx.store.deployments(MODEL) if d.actor == "spindle route"]
        assert record.status == ("done" if production == 1 else "abandoned")


def test_rollback_moves_both_and_the_next_day_warm_starts_from_production(ws: Path) -> None:
    with Context.open(ws) as ctx:
        cfg = spindle.load_config(ctx, MODEL).config
        assert choose_base(ctx, cfg, "2026-01-05", False)[0] == 2
        assert spindle.rollback(ctx, MODEL, reason="v2 is bad") == 1
        assert ctx.store.get_alias(MODEL, "production") == 1
        assert _routing(ws) == {"1": 1.0}
        event = ctx.store.alias_history(MODEL, "production")[-1]
        assert (event.version, event.actor, event.reason) == (1, "spindle rollback", "v2 is bad")
        base, why = choose_base(ctx, cfg, "2026-01-05", False)
        assert base == 1, why  # what is in production, not the rolled-back version 2
        # re-running the day after production's own day still picks the base it had
        assert choose_base(ctx, cfg, NEW_DAY, False)[0] == 1
        assert _serving_problems(ctx) == []
