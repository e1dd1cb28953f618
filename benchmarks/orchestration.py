"""Orchestration overhead per daily run, and one day on Ray vs in-process, side by side.

    .venv/bin/python benchmarks/orchestration.py [--scale 0.3] [--json]

Overhead = wall time of `run_day` minus the wall time the steps themselves report (recording,
idempotency lookups, lineage, config loading). The executor comparison runs the same day for
both models on two copies of one workspace: in-process, then as Ray tasks on a local Ray
(start-up included, as a cluster user would pay it once per driver).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import START, make_workspace

from spindle.orchestrate import Context, InProcessExecutor, RayExecutor, run_all, run_day


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="spindle-orch-"))
    ws = make_workspace(root / "ws", days=5, scale=args.scale)
    with Context.open(ws) as ctx:
        for i in range(3):
            run_day(ctx, "search_ranker", _day(i), train_model=i > 0)
        run_day(ctx, "purchase_propensity", _day(2))
        t0 = time.perf_counter()
        report = run_day(ctx, "search_ranker", _day(3))
        total = time.perf_counter() - t0
        steps = [
            r
            for r in ctx.store.runs(limit=50)
            if r.date in (_day(3), None) and r.started_at.timestamp() >= time.time() - total - 5
        ]
        step_s = sum(float(r.resources.get("wall_s", 0.0)) for r in steps)
    copies = {name: root / f"ws-{name}" for name in ("inprocess", "ray")}
    for target in copies.values():
        shutil.copytree(ws, target, symlinks=True)
    timings = {}
    for name, executor in (("inprocess", InProcessExecutor()), ("ray", RayExecutor())):
        with Context.open(copies[name]) as ctx:
            t0 = time.perf_counter()
            reports = run_all(ctx, _day(4), executor=executor)
            timings[name] = time.perf_counter() - t0
            assert all(r.error is None for r in reports), [r.error for r in reports]
    result = {
        "scale": args.scale,
        "day_run_s": round(total, 2),
        "steps_s": round(step_s, 2),
        "overhead_s": round(total - step_s, 2),
        "overhead_share": round((total - step_s) / total, 3),
        "steps": len(steps),
        "version": report.version,
        "run_all_inprocess_s": round(timings["inprocess"], 2),
        "run_all_ray_s": round(timings["ray"], 2),
        "ray_vs_inprocess": round(timings["ray"] / timings["inprocess"], 2),
    }
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
