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
# Both must be set before the process starts (malloc) or torch loads (OpenMP); see DESIGN §5.
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
            [str(python), "-m", "pip", "install", "--quiet", *BENCH_PACKAGES],
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


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


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
