"""Two DDP ranks on a training set of a few million rows: in memory vs each streaming its shard.

The rows are the ranker's synthetic rows of ``benchmarks/train_throughput.py`` (6 categorical
ids, 2 x 8 word ids, 8 dense values, a label with signal), written once to a Parquet file of
row groups of 65,536 rows, one int64/float32 column per input position (``--rows``, default
3,000,000: 31 columns, 46 row groups, ~0.63 GB of model inputs in memory).

- ``memory``: the file read whole and encoded in this process, then
  ``train_model(workers=2)``: every rank receives the whole set (``DDPRecipe``).
- ``stream``: ``train_from_parquet(workers=2)``: each rank reads only its row groups, with its
  own shuffle buffer of ``training.stream_buffer_rows`` (262,144) rows (``ShardBatches``).

Each run is a fresh child process (so ``RUSAGE_CHILDREN`` is that run's ranks): it reports the
launching process's peak RSS, the ranks' peak RSS (the largest rank; streamed runs also report
each rank's own, from ``ShardRead``) and examples/s of the training loop (rank 0's wall time,
all ranks' rows). One epoch, batch 1024, one step thread per rank (2 ranks on 2 cores), with
the Makefile's torch environment. Runs alternate (memory, stream, memory, ...) so both see the
same machine state; min/median/max of ``--rounds``.

Usage::

    .venv/bin/python benchmarks/ddp_stream.py [--rows 3000000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_env import cpu_model, reexec_with_torch_env

if __name__ == "__main__":
    reexec_with_torch_env()

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import TrainingConfig
from spindle.train import InputSpec, train_from_parquet, train_model

CATS = (20_000, 10_000, 7, 8, 8, 2)
VOCAB, N_TEXT, TEXT_LEN, N_DENSE = 5_000, 2, 8, 8
SPEC = InputSpec(CATS, VOCAB, N_TEXT, TEXT_LEN, N_DENSE)
GROUP_ROWS = 65_536
BUFFER_ROWS = 262_144  # training.stream_buffer_rows' default
CONFIG = TrainingConfig(
    epochs=1, batch_size=1024, threads=1, workers=2, checkpoint_every_steps=10**9, seed=1
)


class Encoder:
    """Arrow columns -> model inputs, vectorised (a module-level class: it pickles to ranks)."""

    def __call__(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        inputs = {}
        for name, shape in SPEC.shapes().items():
            width = int(np.prod(shape))
            cols = [table.column(f"{name}{j}").to_numpy() for j in range(width)]
            inputs[name] = np.stack(cols, axis=1).reshape(table.num_rows, *shape)
        return inputs, table.column("label").to_numpy().astype(np.float32)


def write_rows(rows: int, path: Path) -> None:
    """The synthetic rows, written chunk by chunk (never all in this process at once)."""
    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, rows, GROUP_ROWS):
        n = min(GROUP_ROWS, rows - start)
        cat = np.stack([rng.integers(0, c, n) for c in CATS], axis=1).astype(np.int64)
        text = rng.integers(1, VOCAB, (n, N_TEXT, TEXT_LEN)).astype(np.int64)
        text[:, :, 5:] = 0
        dense = rng.standard_normal((n, N_DENSE)).astype(np.float32)
        logit = dense[:, 0] - dense[:, 1] + (cat[:, 2] == 3) - 1.0
        labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
        columns: dict[str, np.ndarray] = {"label": labels}
        for name, array in {"cat": cat, "text": text, "dense": dense}.items():
            flat = array.reshape(n, -1)
            columns.update({f"{name}{j}": flat[:, j] for j in range(flat.shape[1])})
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=GROUP_ROWS)
    assert writer is not None
    writer.close()


def one_run(mode: str, path: Path) -> dict[str, Any]:
    """Train once in this process (the ranks are its children) and measure."""
    with tempfile.TemporaryDirectory() as tmp:
        out, ckpt = Path(tmp) / "v", Path(tmp) / "c"
        if mode == "memory":
            table = pq.read_table(path)
            inputs, labels = Encoder()(table)
            del table
            result = train_model(inputs, labels, SPEC, CONFIG, out, checkpoint_dir=ckpt)
        else:
            result = train_from_parquet(
                path, Encoder(), SPEC, CONFIG, out, checkpoint_dir=ckpt, data_id="bench",
                buffer_rows=BUFFER_ROWS,
            )  # fmt: skip
    ranks_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "mode": mode,
        "examples": result.examples,
        "examples_per_s": result.examples_per_s,
        "final_loss": result.final_loss,
        "launcher_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_rank_peak_rss_mb": ranks_mb,
        "rank_peak_rss_mb": [s.peak_rss_mb for s in result.shards],
        "peak_rows_held_per_rank": (
            [s.peak_rows_held for s in result.shards] if result.shards else [result.examples]
        ),
        "row_groups_per_rank": [len(s.groups[0][1]) for s in result.shards],
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", choices=["memory", "stream"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.path)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.parquet"
        t0 = time.perf_counter()
        write_rows(args.rows, path)
        written_s = time.perf_counter() - t0
        runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            for mode in ("memory", "stream"):
                command = [sys.executable, __file__, "--one", mode, "--path", str(path)]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
                print(json.dumps(runs[-1]), file=sys.stderr)
        file_mb = path.stat().st_size / 2**20
    report: dict[str, Any] = {
        "rows": args.rows,
        "row_groups": -(-args.rows // GROUP_ROWS),
        "parquet_mb": round(file_mb, 1),
        "write_s": round(written_s, 1),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "load_after": os.getloadavg(),
    }
    for mode in ("memory", "stream"):
        mine = [r for r in runs if r["mode"] == mode]
        report[mode] = {
            key: _spread([float(r[key]) for r in mine])
            for key in ("examples_per_s", "launcher_peak_rss_mb", "max_rank_peak_rss_mb")
        }
        report[mode]["runs"] = mine
    print(json.dumps(report, indent=1 if args.json else None))


if __name__ == "__main__":
    main()
