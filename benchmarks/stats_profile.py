"""Column statistics benchmark: spindle's single-pass DuckDB profile vs DuckDB ``SUMMARIZE``,
a pandas full profile and whylogs, on the same Parquet file, in one run.

    .venv/bin/python benchmarks/stats_profile.py --rows 10000000 --json

Data: ``N`` rows x 20 columns (12 float64, 4 int64, 2 low-cardinality strings, 2 booleans).
The profile is the one ``spindle validate`` stores per partition: count, nulls, mean, std, min,
max, deciles plus the 1st/99th percentiles, and a distinct count. pandas computes the same
(``describe`` + ``quantile`` + ``nunique``, exact); whylogs its standard profile (KLL
quantiles, HLL distinct). Each engine runs in its own child process (pandas and whylogs in
``benchmarks/.venv-bench``), timed from the Parquet file to the finished profile, best of
``--repeat``. ``same_values`` compares spindle with pandas per numeric column: count, nulls,
min and max exactly, mean and std to 1e-9 relative, each quantile within 2.5% in rank (the
share of values below it; spindle's quantiles come from a reservoir sample, pandas
interpolates) and distinct counts within 10% (HyperLogLog).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_env import add_ratios, bench_python, cpu_s, machine, peak_rss_mb, run_child

QUANTILES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
PROJECT_ENGINES = ("spindle", "duckdb_summarize")
# A reservoir of 8,192 values has a rank standard error of at most 0.55%: 2.5% is ~4.5 sigma.
RANK_TOLERANCE = 0.025
BENCH_ENGINES = ("pandas", "whylogs")


def generate(path: Path, rows: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(12):
        values = rng.lognormal(i % 4, 1.0, rows) if i % 2 else rng.normal(i, 1 + i, rows)
        mask = rng.random(rows) < 0.01 * (i % 3)  # some columns have 1-2% nulls
        columns[f"f{i}"] = pa.array(values, mask=mask)
    for i in range(4):
        columns[f"i{i}"] = pa.array(rng.integers(0, 10 ** (i + 2), rows))
    for i in range(2):
        words = np.array([f"v{k}" for k in range(20 * (i + 1))])
        columns[f"s{i}"] = pa.array(words[rng.integers(0, len(words), rows)])
    for i in range(2):
        columns[f"b{i}"] = pa.array(rng.random(rows) < 0.3)
    pq.write_table(pa.table(columns), path, row_group_size=1 << 20)


# -- engines (each in a child process) ------------------------------------------------------------
def engine_spindle(path: Path) -> dict[str, Any]:
    import duckdb

    from spindle.data import profile_relation

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    rows = profile_relation(con, f"read_parquet('{path}')", "bench", "-")
    return {r["column"]: r for r in rows}


def engine_duckdb_summarize(path: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    rows = con.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall()
    return {str(r[0]): {"rows": len(r)} for r in rows}


def engine_pandas(path: Path) -> dict[str, Any]:
    import pandas as pd

    df = pd.read_parquet(path)
    numeric = df.select_dtypes(include=["number", "bool"]).astype("float64")
    described = numeric.describe()
    quantiles = numeric.quantile(list(QUANTILES))
    distinct = df.nunique()
    nulls = df.isna().sum()
    out: dict[str, Any] = {}
    for column in df.columns:
        record: dict[str, Any] = {
            "count": len(df),
            "nulls": int(nulls[column]),
            "distinct": int(distinct[column]),
        }
        if column in numeric.columns:
            quantile_values = (
                None
                if df[column].dtype == bool
                else [float(quantiles.loc[q, column]) for q in QUANTILES]
            )
            record |= {
                "mean": float(described.loc["mean", column]),
                "std": float(described.loc["std", column]),
                "min": float(described.loc["min", column]),
                "max": float(described.loc["max", column]),
                "quantiles": quantile_values,
            }
        out[column] = record
    return out


def engine_whylogs(path: Path) -> dict[str, Any]:
    import pandas as pd
    import whylogs as why

    df = pd.read_parquet(path)
    view = why.log(df).view()
    return {c: {"columns": len(view.get_columns())} for c in df.columns}


ENGINES = {
    "spindle": engine_spindle,
    "duckdb_summarize": engine_duckdb_summarize,
    "pandas": engine_pandas,
    "whylogs": engine_whylogs,
}


def child(engine: str, path: Path, out: Path) -> None:
    import duckdb  # noqa: F401  (imports are not the profile)

    if engine == "spindle":
        import spindle.data  # noqa: F401
    elif engine in BENCH_ENGINES:
        import pandas  # noqa: F401

        if engine == "whylogs":
            import whylogs  # noqa: F401
    started, cpu_started = time.perf_counter(), cpu_s()
    profile = ENGINES[engine](path)
    seconds, cpu = time.perf_counter() - started, cpu_s() - cpu_started
    out.write_text(json.dumps(profile, default=str))
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}))


# -- the check -----------------------------------------------------------------------------------
def compare(spindle: dict[str, Any], pandas: dict[str, Any], data: Path) -> list[str]:
    """Differences beyond the documented tolerances (empty when the profiles agree)."""
    import duckdb

    con = duckdb.connect()
    problems = []
    for column, ref in pandas.items():
        got = spindle[column]
        for key in ("count", "nulls"):
            if got[key] != ref[key]:
                problems.append(f"{column}.{key}: {got[key]} vs {ref[key]}")
        if abs(got["distinct"] - ref["distinct"]) > 0.1 * max(ref["distinct"], 20):
            problems.append(f"{column}.distinct: {got['distinct']} vs {ref['distinct']}")
        if "mean" not in ref:
            continue
        for key in ("min", "max"):
            if got[key] != ref[key]:
                problems.append(f"{column}.{key}: {got[key]} vs {ref[key]}")
        for key in ("mean", "std"):
            if abs(got[key] - ref[key]) > 1e-9 * max(abs(ref[key]), 1.0):
                problems.append(f"{column}.{key}: {got[key]} vs {ref[key]}")
        problems += _quantile_ranks(con, data, column, got["quantiles"] or [])
    return problems


def _quantile_ranks(con: Any, data: Path, column: str, values: list[float]) -> list[str]:
    """An approximate q-quantile v is right when the share of values below v is at most
    q + tolerance and the share at or below v at least q - tolerance (a rank check, so
    interpolation rules do not matter)."""
    if not values:
        return []
    parts = []
    for v in values:
        parts += [f'avg(("{column}" < {v!r})::DOUBLE)', f'avg(("{column}" <= {v!r})::DOUBLE)']
    row = con.execute(
        f"SELECT {', '.join(parts)} FROM read_parquet('{data}') WHERE \"{column}\" IS NOT NULL"
    ).fetchall()[0]
    out = []
    for i, (q, v) in enumerate(zip(QUANTILES, values, strict=True)):
        below, at_or_below = row[2 * i], row[2 * i + 1]
        if below > q + RANK_TOLERANCE or at_or_below < q - RANK_TOLERANCE:
            out.append(f"{column}.q{q}: {v} has rank [{below:.4f}, {at_or_below:.4f}]")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default=",".join(PROJECT_ENGINES + BENCH_ENGINES))
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine (best is kept)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.out)
        return
    engines = [e for e in args.engines.split(",") if e]
    result: dict[str, Any] = {
        "rows": args.rows,
        "columns": 20,
        "repeat": args.repeat,
        "machine": machine(),
    }
    rates: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stats-bench-") as tmp:
        data = Path(tmp) / "data.parquet"
        generate(data, args.rows)
        python, why = bench_python()
        for engine in engines:
            if engine in BENCH_ENGINES and python is None:
                rates[engine] = {"unavailable": why}
                continue
            exe = sys.executable if engine in PROJECT_ENGINES else str(python)
            out = Path(tmp) / f"{engine}.json"
            runs = [
                run_child(
                    exe,
                    Path(__file__),
                    ["--child", engine, "--data", str(data), "--out", str(out)],
                )
                for _ in range(args.repeat)
            ]
            timed = [r for r in runs if "seconds" in r]
            outcome = min(timed, key=lambda r: r["seconds"]) if timed else runs[-1]
            if timed:
                outcome["runs_s"] = [round(r["seconds"], 3) for r in timed]
                outcome["seconds"] = round(outcome["seconds"], 3)
                outcome["rows_per_s"] = round(args.rows / outcome["seconds"])
                outcome["rows_per_cpu_s"] = round(args.rows / max(outcome["cpu_s"], 1e-9))
                outcome["cpu_s"] = round(outcome["cpu_s"], 3)
                profiles[engine] = json.loads(out.read_text())
            rates[engine] = outcome
            print(f"{engine}: {outcome}", file=sys.stderr)
        if "spindle" in profiles and "pandas" in profiles:
            problems = compare(profiles["spindle"], profiles["pandas"], data)
            result["same_values"] = not problems
            result["differences"] = problems[:20]
        else:
            result["same_values"] = None
            result["differences"] = ["pandas profile unavailable: nothing to compare with"]
    result["engines"] = rates

    add_ratios(
        result,
        rates,
        (
            ("ratio_vs_pandas", "pandas"),
            ("ratio_vs_whylogs", "whylogs"),
            ("ratio_vs_summarize", "duckdb_summarize"),
        ),
    )
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
