"""Throughput of the YarnIt simulator: impressions per second, with and without Parquet writing.

    python benchmarks/simulator.py [--days N] [--scale S] [--repeat R] [--json]

Three measurements, side by side in one process:

- ``generate``: the world plus every day's tables built in memory as Arrow (no encoding, no I/O);
- ``encode``: the same plus Parquet encoding of every table into memory buffers (no disk);
- ``simulate``: the public ``simulate`` into a temporary directory (atomic, fsync-ed writes).

Each is reported per wall-clock second and per CPU second of this process (``process_time``),
so that a busy machine shows up as the gap between the two rather than as a slower simulator.
The best of ``--repeat`` runs is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from spindle.sim import simulate
from spindle.sim._faults import FaultPlan
from spindle.sim._simulate import iter_partitions, parquet_bytes
from spindle.sim._world import build_world

START = dt.date(2026, 1, 1)


def _generate(days: int, scale: float, encode: bool) -> int:
    dates = [START + dt.timedelta(days=i) for i in range(days)]
    world = build_world(7, scale, START, dates[-1])
    impressions = 0
    for _, tables in iter_partitions(world, dates, FaultPlan(())):
        impressions += tables["impressions"].num_rows if tables["impressions"] else 0
        if encode:
            for table in tables.values():
                if table is not None:
                    parquet_bytes(table)
    return impressions


def _simulate(days: int, scale: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        return simulate(Path(tmp) / "raw", start=START, days=days, scale=scale).impressions


def _measure(run: Callable[[], int], repeat: int) -> dict[str, float]:
    best: dict[str, float] = {}
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        impressions = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if not best or wall < best["wall_s"]:
            best = {
                "impressions": impressions,
                "wall_s": round(wall, 4),
                "cpu_s": round(cpu, 4),
                "impressions_per_s": round(impressions / wall),
                "impressions_per_cpu_s": round(impressions / cpu),
            }
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    _generate(1, 0.1, encode=True)  # warm up imports and allocators
    results = {
        "generate": _measure(lambda: _generate(args.days, args.scale, False), args.repeat),
        "encode": _measure(lambda: _generate(args.days, args.scale, True), args.repeat),
        "simulate": _measure(lambda: _simulate(args.days, args.scale), args.repeat),
    }
    report = {
        "benchmark": "simulator",
        "days": args.days,
        "scale": args.scale,
        "impressions_per_s": results["simulate"]["impressions_per_s"],
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"simulator: {args.days} days at scale {args.scale} (best of {args.repeat})")
    for name, r in results.items():
        print(
            f"  {name:<9} {r['impressions']:>10,} impressions  {r['wall_s']:7.3f} s wall"
            f"  {r['impressions_per_s']:>11,}/s  {r['impressions_per_cpu_s']:>11,}/CPU-s"
        )
    print(json.dumps({"impressions_per_s": report["impressions_per_s"]}))


if __name__ == "__main__":
    main()
