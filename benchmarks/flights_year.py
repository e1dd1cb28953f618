"""The flights year through spindle's data side: ingest + validate + features for 365 days, then
a year's training set, timed; the training set's joins against a hand-written DuckDB query.

    .venv/bin/python benchmarks/flights_year.py [--until 2013-12-31] [--repeat 3] [--json]

1. A fresh workspace (``spindle init --example flights``) and ``spindle ingest --since
   2013-01-01 --until UNTIL`` as the user runs it (a child process: wall and CPU seconds,
   rows/s). Every day's verdict is counted, and each WARN/FAIL day is listed with its anomalies
   (the healthy-data false alarms, to be explained from the data or fixed).
2. The ``delay`` training set over every day (``features.build_rows``): examples, the
   ASOF joins of four views (carrier, route, plane, hourly weather), TTLs, label maturity.
   Against it, side by side and interleaved (``--repeat`` rounds, median): a hand-written DuckDB
   query over the same Delta tables doing the same joins (every departure, the label, four
   ASOF LEFT JOINs with the same TTLs), to Arrow. And the same pair with the weather join
   alone (a model pinning only weather features), the figure the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from _bench_env import cpu_model, summarise
from spindle.core import ModelConfig, Workspace, load_sources, open_dataset
from spindle.features import FeatureRegistry, build_rows

SPINDLE = Path(sys.executable).parent / "spindle"
START = "2013-01-01"
WEATHER = ("temp", "wind_speed", "precip", "visib")


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ingest_year(ws: Path, until: str) -> dict[str, Any]:
    """Run ``spindle ingest`` over the range; wall, CPU, rows and the verdict of every day."""
    cpu0, t0 = _cpu_children(), time.perf_counter()
    out = subprocess.run(
        [str(SPINDLE), "ingest", "--since", START, "--until", until, "--json", "-w", str(ws)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if out.returncode != 0:
        raise SystemExit(f"spindle ingest failed ({out.returncode}): {out.stderr[-2000:]}")
    days = json.loads(out.stdout)
    rows = sum(d["rows_ingested"] + d["rows_quarantined"] for d in days)
    return {
        "days": len(days),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "rows": rows,
        "rows_per_s": round(rows / wall),
        "verdicts": dict(Counter(d["validation"] for d in days)),
        "quarantined": sum(d["rows_quarantined"] for d in days),
    }


def alarms(ws: Path, until: str) -> list[dict[str, Any]]:
    """Every WARN/FAIL day with its anomalies, as ingest recorded them (the last report of
    each day; re-validating would judge early days against tables that grew since)."""
    import spindle

    found = []
    with spindle.Context.open(ws) as ctx:
        for day in _days(until):
            record = ctx.store.latest_artifact("validation_report", date=day)
            if record is None:
                found.append({"date": day, "verdict": "missing", "anomalies": []})
                continue
            props = record.properties
            if props["verdict"] != "pass":
                found.append(
                    {
                        "date": day,
                        "verdict": props["verdict"],
                        "anomalies": [
                            f"{a['severity']}: {a['message']}"
                            for a in props["anomalies"]
                            if a["severity"] != "pass"
                        ],
                    }
                )
    return found


def _next(day: str) -> str:
    import datetime as dt

    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _days(until: str) -> tuple[str, ...]:
    out, day = [], START
    while day <= until:
        out.append(day)
        day = _next(day)
    return tuple(out)


def hand_written(
    tables: Path, registry: FeatureRegistry, config: ModelConfig, until: str
) -> pa.Table:
    """The same training set written by hand in DuckDB: the examples, the label, and one ASOF
    LEFT JOIN per pinned view on its keys with its TTL (what a user would otherwise write)."""
    definitions = registry.resolve(config)
    views = sorted({d.group for d in definitions})
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("src_flights", open_dataset(tables / "raw" / "flights"))
    con.execute(
        "CREATE TABLE e AS SELECT carrier, flight, origin, dest, tailnum, time_hour, "
        "arr_delay IS NULL OR arr_delay > 15 AS delayed FROM src_flights "
        f"WHERE time_hour >= TIMESTAMP '{START}' AND time_hour <= TIMESTAMP '{until}' + INTERVAL 12 HOUR"
    )
    select, joins = ["e.*"], []
    for name in views:
        view = registry.view(name)
        con.register(f"src_{name}", open_dataset(tables / "features" / name))
        columns = [d.column for d in definitions if d.group == name]
        con.execute(
            f"CREATE TABLE v_{name} AS SELECT {', '.join([*view.keys, 'feature_ts', *columns])} FROM src_{name}"
        )
        fresh = f"e.time_hour - v_{name}.feature_ts <= INTERVAL {view.ttl_s} SECOND"
        select += [f"CASE WHEN {fresh} THEN v_{name}.{c} END AS {c}" for c in columns]
        on = " AND ".join(f"e.{k} = v_{name}.{k}" for k in view.keys)
        joins.append(f"ASOF LEFT JOIN v_{name} ON {on} AND e.time_hour >= v_{name}.feature_ts")
    table = con.sql(f"SELECT {', '.join(select)} FROM e {' '.join(joins)}").to_arrow_table()
    con.close()
    return table


def _timed(fn: Any) -> tuple[dict[str, float], Any]:
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    value = fn()
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}, value


def training_sets(ws: Path, until: str, repeat: int) -> dict[str, Any]:
    """spindle's training set vs the hand-written query, all views and weather alone."""
    workspace = Workspace.load(ws)
    sources = load_sources(ws)
    registry = FeatureRegistry.load(workspace.features_dir, sources)
    declared, _ = workspace.model_config("delay")
    # the pinned view features: request features (Python over the request's columns) are not
    # joins, and the hand-written query has no counterpart for them
    views = registry.views()
    full = declared.model_copy(
        update={"features": [f for f in declared.features if f.split(".")[0] in views]}
    )
    weather = full.model_copy(update={"features": [f"weather.{c}@1" for c in WEATHER]})
    days = _days(until)
    out: dict[str, Any] = {}
    for label, config in (("all_views", full), ("weather_only", weather)):
        definitions = registry.resolve(config)
        runs: dict[str, list[dict[str, float]]] = {"spindle": [], "duckdb": []}
        rows = {}
        for _ in range(repeat):  # interleaved rounds: both sides see the same machine state
            timing, built = _timed(
                lambda c=config, d=definitions: build_rows(
                    workspace.tables_dir, c, d, days, sources=sources
                )
            )
            runs["spindle"].append(timing)
            rows["spindle"] = built.table.num_rows
            immature = built.immature_examples if hasattr(built, "immature_examples") else None
            timing, table = _timed(
                lambda c=config: hand_written(workspace.tables_dir, registry, c, until)
            )
            runs["duckdb"].append(timing)
            rows["duckdb"] = table.num_rows
        spindle_s = summarise(runs["spindle"], rows["spindle"])
        duck_s = summarise(runs["duckdb"], rows["duckdb"])
        out[label] = {
            "rows": rows,
            "immature_examples": immature,
            "spindle": spindle_s,
            "duckdb": duck_s,
            "ratio_rows_per_s": round(spindle_s["rows_per_s"] / duck_s["rows_per_s"], 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until", default="2013-12-31")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--workspace", type=Path, help="a flights workspace already ingested: skip the ingest"
    )
    args = parser.parse_args()
    result: dict[str, Any] = {"cpu": cpu_model(), "until": args.until}
    with tempfile.TemporaryDirectory(prefix="flights-year-") as tmp:
        ws = args.workspace or Path(tmp) / "flights"
        if args.workspace is None:
            subprocess.run(
                [str(SPINDLE), "init", str(ws), "--example", "flights"],
                check=True,
                capture_output=True,
            )
            result["ingest"] = ingest_year(ws, args.until)
            print(f"ingest: {json.dumps(result['ingest'])}", file=sys.stderr, flush=True)
        result["alarms"] = alarms(ws, args.until)
        result["training_set"] = training_sets(ws, args.until, args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    ing = result.get("ingest")
    if ing:
        print(
            f"ingest+validate+features: {ing['days']} days, {ing['wall_s']} s wall, "
            f"{ing['cpu_s']} s CPU, {ing['rows_per_s']} rows/s; verdicts {ing['verdicts']}"
        )
    for alarm in result["alarms"]:
        print(f"  {alarm['date']} {alarm['verdict']}: {'; '.join(alarm['anomalies'])}")
    for label, ts in result["training_set"].items():
        print(
            f"training set ({label}): {ts['rows']} rows; spindle {ts['spindle']['rows_per_s']} rows/s, "
            f"DuckDB by hand {ts['duckdb']['rows_per_s']} rows/s: {ts['ratio_rows_per_s']}x"
        )


if __name__ == "__main__":
    main()
