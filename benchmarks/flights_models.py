"""The flights example's `delay` model against its baseline, day by day, per model family.

For each family (``tabular_nn``; ``lightgbm``), a fresh flights workspace runs the daily loop
from 2013-01-01 for ``--days`` days (``spindle.orchestrate.run_day``: ingest, validate; from
the second day on train with warm start on the days before, evaluate on the day itself, gate,
push), with ``training.framework`` set to the family and ``evaluation.must_beat:
[route_delay_rate]`` so that each evaluation report holds the paired-bootstrap interval of
the candidate's AUC minus the baseline's (the candidate is the model trained that night; the
day it is scored on was never in its training set). Printed per day: the candidate's AUC,
the route_delay_rate baseline's AUC, production's (the version that served that day), the
interval of candidate - baseline and whether it lies wholly above zero ("significantly
above"); per family: the share of days significantly above and the training CPU-seconds
(the sum over the versions' manifests' ``cpu_s``, else their ``seconds``).

    .venv/bin/python benchmarks/flights_models.py --days 30 [--families tabular_nn,lightgbm]
        [--dir /tmp/flights-models] [--set training.window_days=14 ...] [--json]

``--set KEY=VALUE`` (repeatable) adds config overrides to every family's loop, as
``spindle train --set`` does: how the README's training variants were run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MODEL, BASELINE, START = "delay", "route_delay_rate", "2013-01-01"


def _reports(workspace: Path) -> dict[str, dict[str, Any]]:
    """The model's evaluation reports (not infra), by holdout date."""
    found: dict[str, dict[str, Any]] = {}
    for path in (workspace / ".spindle" / "artifacts" / "evaluations" / MODEL).glob("*.json"):
        if "-infra" in path.stem:  # the infra validation reports, not the evaluation's
            continue
        date = "-".join(path.stem.split("-")[1:4])
        found[date] = json.loads(path.read_text())
    return found


def _train_cpu_s(workspace: Path) -> tuple[float, int]:
    """Training CPU-seconds summed over the model's versions, and the number of versions."""
    total, versions = 0.0, 0
    for manifest in (workspace / ".spindle" / "artifacts" / "models" / MODEL).glob(
        "*/manifest.json"
    ):
        metrics = json.loads(manifest.read_text()).get("metrics", {})
        total += float(metrics.get("cpu_s", metrics.get("seconds", 0.0)) or 0.0)
        versions += 1
    return total, versions


def _day(date: str, report: dict[str, Any] | None) -> dict[str, Any]:
    if report is None:
        return {"date": date, "candidate_auc": None, "significant": False}
    metrics = report["metrics"]
    reason = next((r for r in report["reasons"] if r["check"] == "must_beat"), None)
    interval = reason["interval"] if reason else None
    return {
        "date": date,
        "candidate_auc": metrics.get("candidate", {}).get("auc"),
        "baseline_auc": metrics.get(BASELINE, {}).get("auc"),
        "production_auc": metrics.get("production", {}).get("auc"),
        "interval": interval,
        "significant": bool(interval and interval[0] is not None and interval[0] > 0),
        "decision": report["decision"],
    }


def run_family(
    family: str, days: int, root: Path, extra: list[str] | None = None
) -> dict[str, Any]:
    """Run the loop for ``days`` days in a fresh workspace with ``family``; summarize it.

    Args:
        family: ``training.framework`` of the run.
        days: Days of the loop from 2013-01-01 (the first only ingests).
        root: Folder of the workspaces (``root/family``, replaced if present).
        extra: More ``KEY=VALUE`` config overrides, after the family and ``must_beat``.

    Returns:
        The per-day rows, the share of days significantly above, training CPU-s, versions.
    """
    import datetime as dt

    from spindle.orchestrate import Context, init_workspace, run_day

    workspace = root / family
    if workspace.exists():
        shutil.rmtree(workspace)
    init_workspace(workspace, "flights")
    overrides = [f"training.framework={family}", f"evaluation.must_beat=[{BASELINE}]"]
    overrides += extra or []
    start = dt.date.fromisoformat(START)
    dates = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
    t0 = time.perf_counter()
    with Context.open(workspace) as ctx:
        for i, date in enumerate(dates):
            day = run_day(ctx, MODEL, date, overrides=overrides, train_model=i > 0)
            print(f"  {family} {date}: gate {day.gate} {day.error or ''}", file=sys.stderr)
    wall = time.perf_counter() - t0
    reports = _reports(workspace)
    rows = [_day(date, reports.get(date)) for date in dates[1:]]
    cpu, versions = _train_cpu_s(workspace)
    return {
        "family": family,
        "overrides": extra or [],
        "days": rows,
        "significant_share": sum(r["significant"] for r in rows) / max(len(rows), 1),
        "train_cpu_s": round(cpu, 1),
        "versions": versions,
        "wall_s": round(wall, 1),
    }


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def _print(result: dict[str, Any]) -> None:
    print(f"\n{result['family']}: candidate vs {BASELINE} (AUC; 95% paired bootstrap of the gap)")
    print("date        cand   base   prod   cand-base CI        signif.")
    for r in result["days"]:
        iv = r.get("interval")
        ci = f"[{iv[0]:+.3f}, {iv[1]:+.3f}]" if iv and iv[0] is not None else "       -        "
        print(
            f"{r['date']}  {_fmt(r['candidate_auc'])}  {_fmt(r.get('baseline_auc'))}  "
            f"{_fmt(r.get('production_auc'))}  {ci}  {'yes' if r['significant'] else 'no'}"
        )
    print(
        f"significantly above on {result['significant_share']:.0%} of {len(result['days'])} "
        f"days; training {result['train_cpu_s']} CPU-s over {result['versions']} versions; "
        f"loop {result['wall_s']} s wall"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--families", default="tabular_nn,lightgbm")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/flights-models"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    results = [run_family(f, args.days, args.dir, args.set) for f in families]
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for result in results:
            _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
