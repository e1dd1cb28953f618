"""The data steps in-process vs as Ray tasks (one node, and two nodes), side by side.

    .venv/bin/python benchmarks/data_steps_ray.py [--scale 16] [--days 4] [--repeat 3] [--json]

One simulated workspace (the yarnit example at ``--scale``) is copied once per executor; on
each copy the same work runs and is timed (wall seconds, the driver's own CPU-seconds):

- ``ingest``: ingest + features + validate of ``--days`` days as ``spindle ingest --since
  --until`` does it (on Ray every day's load is a task, all at once; then each day's features,
  a task, and validation in order);
- ``backfill``: a new feature version (``product.price_usd@2``) backfilled over those days
  (first day alone, then the others as tasks at once);
- ``training_set``: the search ranker's training set of the first ``days - 1`` days.

Ray runs on a cluster started before the timing, as a user's cluster would be: one node of 2
CPUs, or a head of 0 CPUs plus two worker nodes of 1 CPU each, every node a separate
``ray start`` process with its own temp dir (all on this machine: the nodes share its cores, so
this measures what placing tasks costs, not a speed-up from more machines). The results of
each executor are checked equal (rows ingested, days backfilled, training-set rows and hash).
The three executors run ``--repeat`` rounds on fresh copies, the order rotated so that each
comes first once (after a warm-up that pays the imports); the figures are min/median/max of
the rounds' wall seconds and of the per-round ratios to in-process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import START, make_workspace
from tests.features.test_backfill import NEW_VERSION, REF
from tests.raycluster import start_cluster

import spindle
from spindle.orchestrate import Context, build_training_set, load_config


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def _timed(fn: Any) -> tuple[Any, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, {
        "wall_s": round(time.perf_counter() - wall, 2),
        "driver_cpu_s": round(time.process_time() - cpu, 2),
    }


def _work(root: Path, kind: str, address: str | None, days: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nodes: set[str] = set()
    with Context.open(root) as ctx:
        ctx.use_executor(kind, address)

        def ingest() -> int:
            rows = 0
            # as `spindle ingest --since --until` does: on Ray every day's load at once first
            spindle.load_days(ctx, [_day(i) for i in range(days)])
            for i in range(days):
                rows += spindle.ingest(ctx, _day(i)).result.rows_ingested
                spindle.validate(ctx, _day(i))
            return rows

        out["rows_ingested"], out["ingest"] = _timed(ingest)
        nodes |= {node for _, node in getattr(ctx.tasks, "placements", [])}
    features = root / "features" / "product.yaml"  # a new version, after its days were ingested
    features.write_text(features.read_text() + NEW_VERSION)
    with Context.open(root) as ctx:
        ctx.use_executor(kind, address)
        run, out["backfill"] = _timed(lambda: spindle.backfill(ctx, REF, _day(0), _day(days - 1)))
        out["days_backfilled"] = len(run.result.written)
        loaded = load_config(ctx, "search_ranker")
        window = [_day(i) for i in range(days - 1)]
        trainset, out["training_set"] = _timed(lambda: build_training_set(ctx, loaded, window))
        out["training_set_rows"] = trainset.rows
        out["training_set_hash"] = trainset.content_hash
        nodes |= {node for _, node in getattr(ctx.tasks, "placements", [])}
    out["nodes_used"] = len(nodes)
    return out


EXECUTORS: dict[str, list[int] | None] = {
    "in-process": None,
    "ray-1-node": [2],
    "ray-2-nodes": [1, 1],
}
PHASES = ("ingest", "backfill", "training_set")
SAME = ("rows_ingested", "days_backfilled", "training_set_rows", "training_set_hash")


def _one(ws: Path, root: Path, name: str, days: int) -> dict[str, Any]:
    """The work on a fresh copy of ``ws`` with executor ``name`` (its cluster started first)."""
    import ray

    copy = root / f"ws-{name}"
    shutil.copytree(ws, copy, symlinks=True)
    nodes = EXECUTORS[name]
    cluster = None
    if nodes is not None:  # one node: a head with the CPUs; else a head of 0 and the nodes
        cluster = start_cluster(nodes[0], []) if len(nodes) == 1 else start_cluster(0, nodes)
    try:
        address = None if cluster is None else cluster.address
        return _work(copy, "in-process" if cluster is None else "ray", address, days)
    finally:
        if cluster is not None:
            ray.shutdown()
            cluster.stop()  # its own processes only
        shutil.rmtree(copy, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=16)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds, the order rotated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="spindle-raydata-"))
    start = time.perf_counter()
    ws = make_workspace(root / "ws", days=args.days, scale=args.scale)
    simulated_s = time.perf_counter() - start
    _one(make_workspace(root / "warm", days=2, scale=0.3), root, "in-process", 2)  # imports
    names = list(EXECUTORS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.repeat):
        for name in names[round_ % 3 :] + names[: round_ % 3]:  # each executor first once
            runs[name].append(_one(ws, root, name, args.days))
    base = runs["in-process"][0]
    for name in names:
        for run in runs[name]:
            assert all(run[k] == base[k] for k in SAME), (name, {k: run[k] for k in SAME})
    summary: dict[str, Any] = {
        "scale": args.scale,
        "days": args.days,
        "repeat": args.repeat,
        "rows_ingested": base["rows_ingested"],
        "training_set_rows": base["training_set_rows"],
        "simulate_s": round(simulated_s, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_1m_end": os.getloadavg()[0],
        "wall_s": {
            name: {phase: _spread([r[phase]["wall_s"] for r in runs[name]]) for phase in PHASES}
            for name in names
        },
        "wall_vs_in_process": {
            name: {
                phase: _spread(
                    [
                        r[phase]["wall_s"] / b[phase]["wall_s"]
                        for r, b in zip(runs[name], runs["in-process"], strict=True)
                    ]
                )
                for phase in PHASES
            }
            for name in names[1:]
        },
        "nodes_used": {name: runs[name][0]["nodes_used"] for name in names},
    }
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary, indent=None if args.json else 2))


def _spread(values: list[float]) -> dict[str, float]:
    """min, median and max of ``values``, rounded."""
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


if __name__ == "__main__":
    main()
