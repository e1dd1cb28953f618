"""Shared by the benchmarks: the benchmark-only venv (Feast, whylogs, pandas, Polars) and
running one engine in a child process with its peak memory."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
BENCH_VENV = ROOT / ".venv-bench"
BENCH_PACKAGES = ["feast[duckdb]", "whylogs", "pandas", "polars", "psutil"]
# Both must be set before the process starts (malloc) or torch loads (OpenMP); see the Makefile.
TORCH_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "MALLOC_MMAP_THRESHOLD_": "1073741824",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def reexec_with_torch_env() -> None:
    """Re-run this script with ``TORCH_ENV`` set unless it already is (call before any import
    of numpy or torch)."""
    if any(os.environ.get(k) != v for k, v in TORCH_ENV.items()):
        os.environ.update(TORCH_ENV)
        os.execv(sys.executable, [sys.executable, *sys.argv])


def bench_python() -> tuple[Path | None, str | None]:
    """The benchmark venv's python, created on first use; or None and the reason it is missing."""
    python = BENCH_VENV / "bin" / "python"
    if python.exists():
        return python, None
    print(f"creating {BENCH_VENV} (Feast, whylogs, pandas, Polars) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-c",
                str(ROOT / "constraints-bench.txt"),
                *BENCH_PACKAGES,
            ],
            check=True,
            timeout=1800,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create {BENCH_VENV}: {exc}"
    return python, None


def run_child(python: Path | str, script: Path, args: list[str]) -> dict[str, Any]:
    """Run ``script --child ...`` and return its JSON line (or the error it died with)."""
    env = {
        **os.environ,
        "OMP_WAIT_POLICY": "PASSIVE",
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [str(python), str(script), *args], capture_output=True, text=True, env=env, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"unavailable": f"exit {proc.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_s() -> float:
    """CPU seconds (user + system, every thread) used by this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_model() -> dict[str, Any]:
    """The processor: its name, family and model, and the vector extensions that decide which
    kernels DuckDB, oneDNN and NumPy run (two "2-core AMD EPYC" machines can differ here)."""
    info: dict[str, Any] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model_name": platform.processor()}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            info.setdefault("model_name", value)
        elif key == "cpu family":
            info.setdefault("family", int(value))
        elif key == "model":
            info.setdefault("model", int(value))
        elif key == "flags" and "isa" not in info:
            flags = set(value.split())
            info["isa"] = sorted(
                f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags
            )
    return info


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def summarise(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """One engine's runs as its median run (by wall time) with the min and max, and rates."""
    timed = sorted((r for r in runs if "seconds" in r), key=lambda r: r["seconds"])
    if not timed:
        return runs[-1] if runs else {"unavailable": "no run"}
    outcome = dict(timed[(len(timed) - 1) // 2])  # the lower median: an actual run
    seconds = [r["seconds"] for r in timed]
    outcome["runs_s"] = [round(r["seconds"], 3) for r in runs if "seconds" in r]
    outcome["min_s"], outcome["max_s"] = round(seconds[0], 3), round(seconds[-1], 3)
    outcome["rows_per_s"] = round(rows / outcome["seconds"])
    outcome["rows_per_s_range"] = [round(rows / seconds[-1]), round(rows / seconds[0])]
    cpu = sorted(r["cpu_s"] for r in timed)
    outcome["rows_per_cpu_s"] = round(rows / max(cpu[(len(cpu) - 1) // 2], 1e-9))
    outcome["cpu_s"] = round(outcome["cpu_s"], 3)
    outcome["seconds"] = round(outcome["seconds"], 3)
    return outcome


def add_ratios(
    result: dict[str, Any], rates: dict[str, dict[str, Any]], pairs: tuple[tuple[str, str], ...]
) -> None:
    """Add ``key`` (spindle ÷ ``other``, wall) and ``key_per_cpu`` (per CPU-second) for each pair."""

    def rate(name: str, key: str = "rows_per_s") -> float | None:
        value = rates.get(name, {}).get(key)
        return float(value) if value else None

    spindle = rate("spindle")
    for key, other in pairs:
        base = rate(other)
        result[key] = round(spindle / base, 2) if spindle and base else None
        # per CPU-second: the machine is shared, so wall time also measures the neighbours
        cpu, cpu_base = rate("spindle", "rows_per_cpu_s"), rate(other, "rows_per_cpu_s")
        result[key + "_per_cpu"] = round(cpu / cpu_base, 2) if cpu and cpu_base else None
