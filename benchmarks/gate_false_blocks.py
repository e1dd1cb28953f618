"""The evaluation gate on simulated YarnIt: false blocks on healthy days, and faults it must catch.

Runs the daily loop (ingest → validate → train → evaluate → push) of ``search_ranker`` day by
day on a simulated workspace and tabulates the gate's decision and failing reasons per day.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/gate_false_blocks.py --days 15
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/gate_false_blocks.py --days 8 \
        --fault label_flip@7

    .venv/bin/python benchmarks/gate_false_blocks.py --regate WORKSPACE [--set KEY=VALUE]

``--regate`` re-runs only the gate (current code, thresholds from ``--set``) on every version
an earlier run (``--dir``) trained, against the same baselines: thresholds can be compared
without retraining. With no fault, every candidate is healthy, so each block is a false block (the target is at
most 1 in 14). With a fault, the day of the fault should be blocked, with the reason printed.
The first day has no training data, so it is not a candidate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "search_ranker"
START = dt.date(2026, 1, 1)


def _run(
    root: Path, days: int, scale: float, faults: list[str], sets: list[str]
) -> list[dict[str, Any]]:
    import spindle
    from spindle.sim import Fault, simulate

    spindle.init_workspace(root, "yarnit")
    simulate(
        root / "raw",
        start=START,
        days=days,
        seed=7,
        scale=scale,
        faults=[Fault.parse(f, START) for f in faults],
    )
    rows = []
    with spindle.Context.open(root) as ctx:
        for i in range(days):
            date = (START + dt.timedelta(days=i)).isoformat()
            t0 = time.perf_counter()
            report = spindle.run_day(ctx, MODEL, date, overrides=sets or None)
            rows.append(
                {
                    "date": date,
                    "version": report.version,
                    "gate": report.gate,
                    "reasons": report.gate_reasons,
                    "ndcg@10": report.gate_scores(),
                    "error": report.error,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _regate(root: Path, sets: list[str]) -> list[dict[str, Any]]:
    import spindle

    rows = []
    with spindle.Context.open(root) as ctx:
        for record in sorted(ctx.store.versions(MODEL), key=lambda r: r.version):
            if record.status != "ready" or not record.date:
                continue
            evaluation, _ = spindle.evaluate_version(
                ctx, MODEL, record.version, record.date, overrides=sets or None
            )
            ndcg = {s: m.get("ndcg@10") for s, m in evaluation.metrics.items()}
            rows.append(
                {
                    "date": record.date,
                    "version": record.version,
                    "gate": evaluation.decision,
                    "reasons": list(evaluation.reasons),
                    "ndcg@10": ndcg,
                    "error": None,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=15)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--fault", action="append", default=[], help="KIND@DAY (1-based)")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--dir", default=None, help="workspace dir (default: a temp dir)")
    parser.add_argument("--regate", default=None, help="re-gate the versions of this workspace")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.regate:
        rows = _regate(Path(args.regate), args.sets)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.dir) if args.dir else Path(tmp) / "ws"
            rows = _run(root, args.days, args.scale, args.fault, args.sets)
    candidates = [r for r in rows if r["gate"] in ("pass", "block")]
    blocked = [r for r in candidates if r["gate"] == "block"]
    summary = {
        "days": args.days,
        "scale": args.scale,
        "faults": args.fault,
        "candidates": len(candidates),
        "blocked": len(blocked),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{'date':<11} {'v':>3} {'gate':<6} {'cand':>6} {'prod':>6} {'pop':>6}  failing reasons")
    for r in rows:
        n = r["ndcg@10"] or {}
        cells = [
            f"{n[k]:.3f}" if n.get(k) is not None else "-"
            for k in ("candidate", "production", "popularity")
        ]
        print(
            f"{r['date']:<11} {r['version'] or '-':>3} {r['gate']:<6} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6}  "
            + (" | ".join(r["reasons"]) or r["error"] or "")
        )
    print(
        f"blocked {len(blocked)} of {len(candidates)} candidates (faults: {args.fault or 'none'})"
    )


if __name__ == "__main__":
    main()
