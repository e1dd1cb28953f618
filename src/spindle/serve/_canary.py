"""The canary: a model version loaded by the serving runtime, alone in its own process.

Infra validation runs ``python -m spindle.serve._canary REQUEST.json OUT_DIR`` so that what is
measured is what serving does: ``ModelRuntime.load`` (checksums), then per request the serving
feature path (online store → ``assemble_request_rows`` → transform → onnxruntime). It writes
``rows.arrow`` (the exact rows scored, for the caller to score with the training-time model),
``scores.npy`` (no pickle) and ``result.json`` (latencies, peak RSS, counts).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spindle.features import OnlineStore, assemble_request_rows
from spindle.serve._ranking import RETRIEVE_N
from spindle.serve._runtime import ModelRuntime

ROWS_FILE = "rows.arrow"
SCORES_FILE = "scores.npy"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class CanaryResult:
    """What the canary process measured (latencies per ranking request, feature path included).

    ``p50_ms``/``p99_ms`` are wall times; ``cpu_*`` the CPU time of the request (the runtime is
    single-threaded, so this is its service time without waiting for a busy core).
    """

    model: str
    version: int
    sha256: str
    requests: int
    rows: int
    mean_candidates: float
    load_ms: float
    p50_ms: float
    p99_ms: float
    cpu_p50_ms: float
    cpu_p99_ms: float
    peak_rss_mb: float


def peak_rss_mb() -> float:
    """This process's peak resident set, in MB.

    ``VmHWM`` of the current address space where Linux has it: ``ru_maxrss`` survives
    ``fork`` + ``exec`` and would report the parent's peak (a test runner with torch loaded)
    instead of the canary's own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_canary(
    version_dir: Path, store_path: Path, requests: list[dict[str, Any]], out_dir: Path
) -> CanaryResult:
    """Load ``version_dir`` and rank every request: a warm-up pass, then two timed passes.

    The latencies reported are those of the timed pass with the lower CPU p99, so that one
    burst of load from other processes on the machine does not decide the verdict alone.
    """
    t0 = time.perf_counter()
    runtime = ModelRuntime.load(version_dir)
    load_ms = (time.perf_counter() - t0) * 1000
    store = OnlineStore(store_path)
    try:
        tables, scores, passes = [], [], []
        for pass_index in range(3):
            latencies: list[tuple[float, float]] = []
            for request in requests:
                start, start_cpu = time.perf_counter(), time.thread_time()
                ids = request.get("candidates") or store.retrieve(request["query"], RETRIEVE_N)
                products = store.products(ids)
                user = store.user(request["user_id"])
                rows = assemble_request_rows(
                    products,
                    user,
                    runtime.user_columns,
                    {"query": str(request["query"]).lower()},
                    runtime.transform.request,
                )
                result = runtime.score(rows)
                wall, cpu = time.perf_counter() - start, time.thread_time() - start_cpu
                latencies.append((wall * 1000, cpu * 1000))
                if pass_index == 1:
                    tables.append(rows)
                    scores.append(result)
            if pass_index > 0:
                passes.append(np.asarray(latencies if latencies else [(0.0, 0.0)]).reshape(-1, 2))
    finally:
        store.close()
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        pa.OSFile(str(out_dir / ROWS_FILE), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as w,
    ):
        w.write_table(table)
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    np.save(out_dir / SCORES_FILE, all_scores, allow_pickle=False)
    lat = min(passes, key=lambda p: float(np.percentile(p[:, 1], 99)))
    outcome = CanaryResult(
        model=runtime.model,
        version=runtime.version,
        sha256=runtime.sha256,
        requests=len(requests),
        rows=table.num_rows,
        mean_candidates=table.num_rows / max(len(requests), 1),
        load_ms=load_ms,
        p50_ms=float(np.percentile(lat[:, 0], 50)),
        p99_ms=float(np.percentile(lat[:, 0], 99)),
        cpu_p50_ms=float(np.percentile(lat[:, 1], 50)),
        cpu_p99_ms=float(np.percentile(lat[:, 1], 99)),
        peak_rss_mb=peak_rss_mb(),
    )
    (out_dir / RESULT_FILE).write_text(json.dumps(asdict(outcome)))
    return outcome


def main(argv: list[str]) -> int:
    """``python -m spindle.serve._canary REQUEST.json OUT_DIR``; errors go to stderr, exit 1."""
    spec = json.loads(Path(argv[0]).read_text())
    try:
        run_canary(Path(spec["version_dir"]), Path(spec["store"]), spec["requests"], Path(argv[1]))
    except Exception as exc:  # reported to the parent as text: any failure fails validation
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
