"""CPU-seconds a `spindle` command costs before it answers: start-up (imports) plus the work.

    .venv/bin/python benchmarks/cli_startup.py [--workspace DIR] [--repeat 5] [--json]

Each command runs ``--repeat`` times as a fresh subprocess of the installed ``spindle`` console
script; its CPU time (user + sys of the child, from ``resource.getrusage(RUSAGE_CHILDREN)``
before and after) is reported as median / min / max. Without ``--workspace`` a small workspace
is built once in a temp dir (``spindle init``, ``simulate --days 3``, ``ingest`` of those
days), outside the measured runs. Targets (issue 11): ``--help`` and ``models list`` <= 0.5
CPU-s, ``status`` <= 1 CPU-s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS_CPU_S = {"--help": 0.5, "models list": 0.5, "status": 1.0}


def spindle_exe() -> str:
    """The console script next to this Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "spindle"
    if local.exists():
        return str(local)
    found = shutil.which("spindle")
    if found is None:
        sys.exit("no `spindle` console script: run `make install` first")
    return found


def build_workspace(root: Path, exe: str) -> Path:
    ws = root / "shop"
    steps = [
        [exe, "init", str(ws), "--example", "yarnit"],
        [exe, "simulate", "--days", "3", "-w", str(ws)],
        [exe, "ingest", "--since", "2026-01-01", "--until", "2026-01-03", "-w", str(ws)],
    ]
    for cmd in steps:
        print("setup:", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return ws


def commands(ws: Path) -> dict[str, list[str]]:
    w = ["-w", str(ws)]
    return {
        "--help": ["--help"],
        "--version": ["--version"],
        "models list": ["models", "list", *w],
        "status": ["status", *w],
        "lineage": ["lineage", "search_ranker@1", *w],
        "validate --date <bad>": ["validate", "--date", "2026-13-01", *w],
    }


def cpu_s_of(cmd: list[str]) -> tuple[float, int]:
    """CPU-seconds (user + sys) of one child process and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", type=Path, help="reuse this workspace (else build one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    exe = spindle_exe()
    tmp = None
    if args.workspace is None:
        tmp = Path(tempfile.mkdtemp(prefix="spindle-startup-"))
        ws = build_workspace(tmp, exe)
    else:
        ws = args.workspace.resolve()
    results = []
    try:
        for name, argv in commands(ws).items():
            samples, codes = [], set()
            for _ in range(args.repeat):
                used, code = cpu_s_of([exe, *argv])
                samples.append(used)
                codes.add(code)
            target = TARGETS_CPU_S.get(name)
            median = statistics.median(samples)
            results.append(
                {
                    "command": f"spindle {name}",
                    "median_cpu_s": round(median, 3),
                    "min_cpu_s": round(min(samples), 3),
                    "max_cpu_s": round(max(samples), 3),
                    "exit_codes": sorted(codes),
                    "target_cpu_s": target,
                    "meets_target": None if target is None else median <= target,
                }
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    report = {"repeat": args.repeat, "cpus": os.cpu_count(), "commands": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'command':<32} {'median':>7} {'min':>7} {'max':>7}  exit  target")
    for r in results:
        target = "" if r["target_cpu_s"] is None else f"<= {r['target_cpu_s']}"
        mark = "" if r["meets_target"] is None else (" ok" if r["meets_target"] else " MISSED")
        codes = ",".join(str(c) for c in r["exit_codes"])
        print(
            f"{r['command']:<32} {r['median_cpu_s']:>7.2f} {r['min_cpu_s']:>7.2f} "
            f"{r['max_cpu_s']:>7.2f}  {codes:>4}  {target}{mark}"
        )


if __name__ == "__main__":
    main()
