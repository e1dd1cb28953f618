"""The canary: a model version loaded by the serving runtime, alone in its own process.

Infra validation runs ``python -m spindle.serve._canary REQUEST.json OUT_DIR`` so that what is
measured is what serving does: ``ModelRuntime.load`` (checksums), then per request the path of
``POST /v1/models/{model}/predict`` (the request schema checked, each view's online row looked
up by the instance's entity keys, the recorded request features, the transform, onnxruntime).
A request is a list of instances (a ranking model's: one result list). It writes ``rows.arrow``
(the exact rows scored, for the caller to score with the training-time model), ``scores.npy``
(no pickle) and ``result.json`` (latencies, peak RSS, counts).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spindle.features import FeatureRegistry, OnlineStore
from spindle.serve._predict import Predictor
from spindle.serve._runtime import ModelRuntime
from spindle.serve._schema import ServingDeclarations

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
    rows_per_request: float
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
    version_dir: Path,
    store_path: str | Path,
    requests: list[list[dict[str, Any]]],
    out_dir: Path,
    features_dir: Path | None = None,
) -> CanaryResult:
    """Load ``version_dir`` and score every request: a warm-up pass, then two timed passes.

    Args:
        version_dir: the model version's package.
        store_path: the online store (a SQLite file, or any backend's URL).
        requests: each a list of instances (entity keys and request columns).
        out_dir: where the rows, scores and result are written.
        features_dir: the workspace's ``features/`` (views' keys, request groups' columns);
            None reads the views' keys from the online store.

    The latencies reported are those of the timed pass with the lower CPU p99, so that one
    burst of load from other processes on the machine does not decide the verdict alone.

    Raises:
        ServingError: an instance does not fit the version's request schema.
    """
    t0 = time.perf_counter()
    runtime = ModelRuntime.load(version_dir)
    load_ms = (time.perf_counter() - t0) * 1000
    store = OnlineStore(store_path)
    declarations = (
        ServingDeclarations.of(FeatureRegistry.load(features_dir)) if features_dir else None
    )
    # the canary calls the predictor's row path directly (no executor, no latency budget)
    predictor = Predictor(store, ThreadPoolExecutor(max_workers=1), 1000.0, declarations)
    try:
        schema = predictor.schema(runtime)
        tables, scores, passes = [], [], []
        for pass_index in range(3):
            latencies: list[tuple[float, float]] = []
            for instances in requests:
                start, start_cpu = time.perf_counter(), time.thread_time()
                schema.check(instances)
                rows, _unknown = predictor.rows(runtime, schema, instances)
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
        rows_per_request=table.num_rows / max(len(requests), 1),
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
        features = spec.get("features_dir")
        run_canary(
            Path(spec["version_dir"]),
            str(spec["store"]),  # a URL: a Path would fold its "//"
            spec["requests"],
            Path(argv[1]),
            Path(features) if features else None,
        )
    except Exception as exc:  # reported to the parent as text: any failure fails validation
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
