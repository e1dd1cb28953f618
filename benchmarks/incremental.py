"""Incremental (warm start + new day) vs from-scratch daily training: CPU-seconds and NDCG@10.

Simulates ``--days`` days of YarnIt, ingests them, and fits one transform on the first
``--window`` days. Then for every later day D, two daily models of ``search_ranker`` are trained
for D and scored on D (the unseen day):

- ``scratch``: a fresh model on the ``--window`` days before D, ``training.epochs`` epochs;
- ``incremental``: yesterday's incremental model (day one: the scratch model) warm started and
  trained on day D-1 plus ``--replay-days`` earlier days, ``training.warm_start_epochs`` epochs.

CPU-seconds are those of the training loops (``TrainResult.cpu_s``); NDCG@10 is per query on
day D's holdout, with a paired bootstrap interval of incremental − scratch per day.

Usage::

    .venv/bin/python benchmarks/incremental.py [--days 14] [--window 7] [--scale 0.3]
        [--replay-days 1] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from _bench_env import reexec_with_torch_env

reexec_with_torch_env()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from spindle.evaluate import ndcg_at_k, paired_bootstrap  # noqa: E402
from spindle.features import Transform  # noqa: E402
from spindle.orchestrate import (  # noqa: E402
    Context,
    build_training_set,
    ingest,
    init_workspace,
    load_config,
    validate,
)
from spindle.sim import simulate  # noqa: E402
from spindle.train import InputSpec, predict, train_model  # noqa: E402

START = dt.date(2026, 1, 1)
MODEL = "search_ranker"


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--replay-days", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = run(Path(tmp), args)
    if args.json:
        print(json.dumps(out))
        return
    for row in out["per_day"]:
        print(row)
    print({k: v for k, v in out.items() if k != "per_day"})


def run(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    workspace = root / "yarnit"
    init_workspace(workspace, "yarnit")
    simulate(workspace / "raw", start=START, days=args.days, seed=7, scale=args.scale)
    with Context.open(workspace) as ctx:
        for i in range(args.days):
            ingest(ctx, day(i))
            validate(ctx, day(i))
        loaded = load_config(ctx, MODEL)
        cfg = loaded.config
        first = pq.read_table(
            build_training_set(ctx, loaded, [day(i) for i in range(args.window)]).uri
        )
        transform = Transform.fit(first, loaded.definitions)
        spec = InputSpec.from_dict(transform.input_spec())

        def data(days: list[str], purpose: str = "train") -> tuple[Any, ...]:
            table = pq.read_table(build_training_set(ctx, loaded, days, purpose=purpose).uri)
            labels = table.column(cfg.label).to_numpy(zero_copy_only=False).astype(np.float32)
            groups = (
                pa.compute.cast(table.column(cfg.group_key), pa.string()).to_numpy(
                    zero_copy_only=False
                )
                if cfg.group_key
                else None
            )
            return transform.transform(table), labels, groups

        models = root / "models"
        per_day, previous = [], None
        totals = {"scratch_cpu_s": 0.0, "incremental_cpu_s": 0.0}
        for d in range(args.window, args.days):
            window = [day(i) for i in range(d - args.window, d)]
            recent = [day(i) for i in range(max(0, d - 1 - args.replay_days), d)]
            inputs, labels, _ = data(window)
            scratch = train_model(
                inputs,
                labels,
                spec,
                cfg.training,
                models / f"scratch-{d}",
                checkpoint_dir=root / "ckpt" / f"scratch-{d}",
            )
            if previous is None:
                incremental = scratch
            else:
                inputs, labels, _ = data(recent)
                incremental = train_model(
                    inputs,
                    labels,
                    spec,
                    cfg.training,
                    models / f"inc-{d}",
                    checkpoint_dir=root / "ckpt" / f"inc-{d}",
                    base_weights=previous.out_dir,
                )
                totals["scratch_cpu_s"] += scratch.cpu_s
                totals["incremental_cpu_s"] += incremental.cpu_s
            previous = incremental
            hold_inputs, hold_labels, groups = data([day(d)], "holdout")
            s_scores = predict(scratch.out_dir, hold_inputs).astype(np.float64)
            i_scores = predict(incremental.out_dir, hold_inputs).astype(np.float64)
            interval = paired_bootstrap(ndcg_at_k, hold_labels, i_scores, s_scores, groups)
            per_day.append(
                {
                    "date": day(d),
                    "scratch_ndcg": round(interval.value_b, 4),
                    "incremental_ndcg": round(interval.value_a, 4),
                    "diff": round(interval.estimate, 4),
                    "ci": [round(interval.lower, 4), round(interval.upper, 4)],
                    "scratch_cpu_s": round(scratch.cpu_s, 2),
                    "incremental_cpu_s": round(incremental.cpu_s, 2) if d > args.window else None,
                }
            )
    compared = per_day[1:]  # day one: both are the same scratch model
    return {
        "days": args.days,
        "window": args.window,
        "replay_days": args.replay_days,
        "scale": args.scale,
        "per_day": per_day,
        "scratch_cpu_s": round(totals["scratch_cpu_s"], 2),
        "incremental_cpu_s": round(totals["incremental_cpu_s"], 2),
        "cpu_ratio": round(totals["incremental_cpu_s"] / totals["scratch_cpu_s"], 3),
        "mean_scratch_ndcg": round(float(np.mean([r["scratch_ndcg"] for r in compared])), 4),
        "mean_incremental_ndcg": round(
            float(np.mean([r["incremental_ndcg"] for r in compared])), 4
        ),
        "days_incremental_significantly_worse": sum(r["ci"][1] < 0 for r in compared),
    }


if __name__ == "__main__":
    main()
