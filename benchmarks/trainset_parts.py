"""A training set built as N parts (``examples.partitions``) against one task, side by side.

    .venv/bin/python benchmarks/trainset_parts.py [--scale 16] [--days 3] [--parts 4]
        [--repeat 3] [--json]

One simulated yarnit workspace at ``--scale`` with ``--days`` days ingested; per round, two
fresh copies: on one the search ranker's training set of those days is built as one task, on
the other as ``--parts`` parts by ``user_id`` hash and merged (in this process, one part after
another: what each part costs is what a cluster would spread over nodes). Timed: wall and
CPU seconds (this process's and DuckDB's threads). The two files are checked equal. The
figures are min/median/max over the rounds of each build's seconds and of the ratio parts /
one task, which on one machine says what the split costs (every part reads the examples'
sources; each reads only its own entities' rows of a view keyed by the partition key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq
from tests.conftest import START, make_workspace

import spindle
from spindle.orchestrate import Context, build_training_set, load_config


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _build(root: Path, days: list[str], overrides: list[str]) -> tuple[str, dict[str, float]]:
    with Context.open(root) as ctx:
        loaded = load_config(ctx, "search_ranker", overrides)
        wall, cpu = time.perf_counter(), _cpu_s()
        trainset = build_training_set(ctx, loaded, days)
        figures = {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu_s() - cpu}
    return trainset.uri, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=16.0)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    parts = [f"examples.partitions={args.parts}", "examples.partition_key=user_id"]
    with tempfile.TemporaryDirectory(prefix="spindle-parts-") as tmp:
        base = make_workspace(Path(tmp) / "ws", days=args.days, scale=args.scale)
        days = [(START + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
        with Context.open(base) as ctx:
            for day in days:
                spindle.ingest(ctx, day)
        rounds: list[dict[str, Any]] = []
        rows = 0
        for i in range(args.repeat):
            order = [("one", []), ("parts", parts)]
            if i % 2:
                order.reverse()
            done: dict[str, Any] = {}
            for name, overrides in order:
                root = Path(tmp) / f"{name}-{i}"
                shutil.copytree(base, root, symlinks=True)
                done[name] = _build(root, days, overrides)
            one, split = done["one"], done["parts"]
            assert pq.read_table(one[0]).equals(pq.read_table(split[0])), "the files differ"
            rows = pq.ParquetFile(one[0]).metadata.num_rows
            rounds.append(
                {
                    "one": one[1],
                    "parts": split[1],
                    "ratio_wall": split[1]["wall_s"] / one[1]["wall_s"],
                    "ratio_cpu": split[1]["cpu_s"] / one[1]["cpu_s"],
                }
            )
            for name in ("one", "parts"):
                shutil.rmtree(Path(tmp) / f"{name}-{i}", ignore_errors=True)

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
        }

    report = {
        "scale": args.scale,
        "days": args.days,
        "parts": args.parts,
        "rows": rows,
        "one_wall_s": spread([r["one"]["wall_s"] for r in rounds]),
        "parts_wall_s": spread([r["parts"]["wall_s"] for r in rounds]),
        "one_cpu_s": spread([r["one"]["cpu_s"] for r in rounds]),
        "parts_cpu_s": spread([r["parts"]["cpu_s"] for r in rounds]),
        "ratio_wall": spread([r["ratio_wall"] for r in rounds]),
        "ratio_cpu": spread([r["ratio_cpu"] for r in rounds]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
