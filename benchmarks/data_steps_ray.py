"""The data steps in-process vs as Ray tasks (one node, and two nodes), side by side.

    .venv/bin/python benchmarks/data_steps_ray.py [--scale 16] [--days 4] [--json]

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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
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

import spindle
from spindle.orchestrate import Context, build_training_set, load_config

RAY = Path(sys.executable).parent / "ray"


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def _start_cluster(nodes: list[int], temp: Path, port: int) -> str:
    """``ray start`` a head (0 CPUs when there are worker nodes) and one node per entry."""
    head_cpus = nodes[0] if len(nodes) == 1 else 0
    base = [str(RAY), "start", "--disable-usage-stats"]
    subprocess.run(
        [
            *base,
            "--head",
            f"--port={port}",
            f"--num-cpus={head_cpus}",
            "--include-dashboard=false",
            f"--temp-dir={temp / 'head'}",
        ],
        check=True,
        capture_output=True,
    )
    for i, cpus in enumerate(nodes if len(nodes) > 1 else []):
        subprocess.run(
            [
                *base,
                f"--address=127.0.0.1:{port}",
                f"--num-cpus={cpus}",
                f"--temp-dir={temp / f'node{i}'}",
            ],
            check=True,
            capture_output=True,
        )
    return f"127.0.0.1:{port}"


def _stop_cluster() -> None:
    import ray

    ray.shutdown()
    subprocess.run([str(RAY), "stop", "--force"], capture_output=True, check=False)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=16)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="spindle-raydata-"))
    start = time.perf_counter()
    ws = make_workspace(root / "ws", days=args.days, scale=args.scale)
    simulated_s = time.perf_counter() - start
    results: dict[str, Any] = {}
    for name, nodes in (("in-process", None), ("ray-1-node", [2]), ("ray-2-nodes", [1, 1])):
        copy = root / f"ws-{name}"
        shutil.copytree(ws, copy, symlinks=True)
        address = None
        if nodes is not None:
            # a short folder: Ray's socket paths under it must fit in 107 characters
            temp = Path(tempfile.mkdtemp(prefix="sr", dir="/tmp"))
            address = _start_cluster(nodes, temp, 6390 + len(results))
        try:
            results[name] = _work(
                copy, "in-process" if nodes is None else "ray", address, args.days
            )
        finally:
            if nodes is not None:
                _stop_cluster()
    base = results["in-process"]
    for name in ("ray-1-node", "ray-2-nodes"):
        other = results[name]
        for key in ("rows_ingested", "days_backfilled", "training_set_rows", "training_set_hash"):
            assert other[key] == base[key], (name, key, other[key], base[key])
        other["wall_vs_in_process"] = {
            phase: round(other[phase]["wall_s"] / base[phase]["wall_s"], 2)
            for phase in ("ingest", "backfill", "training_set")
        }
    summary = {
        "scale": args.scale,
        "days": args.days,
        "simulate_s": round(simulated_s, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_1m": os.getloadavg()[0],
        "results": results,
    }
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
