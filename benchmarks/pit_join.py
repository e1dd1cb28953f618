"""Point-in-time join benchmark: spindle vs Feast (file and DuckDB offline stores), a bare
DuckDB ASOF JOIN and Polars ``join_asof``, on the same generated data, in one run.

    .venv/bin/python benchmarks/pit_join.py --events 1000000 --json

``spindle`` is ``spindle.features.pit_join`` as training sets run it: on an in-memory connection
the Arrow as-of join (``spindle.features._asof``), on a spilling one (``--memory-limit-mb``)
DuckDB's ASOF join; ``spindle_duckdb`` is the same call forced to DuckDB's ASOF join
(``engine="duckdb"``), the join spindle used before.

Data: ``N`` events over 30 days for ``N/20`` entities; each entity has a feature row at 00:00
on ~70% of the days (so the 2-day TTL matters), with columns ``f_a__v1``, ``f_a__v2`` and
``f_b__v1``. Every engine pins ``f_a@2`` and ``f_b@1`` with a 2-day TTL (the bare DuckDB join
has no TTL; its TTL is applied only when checking values). Each engine runs in its own child
process (Feast, Polars in ``benchmarks/.venv-bench``, created on first use), timed from reading
the Parquet files to the joined result in Arrow (writing it to Parquet for the value check comes
after the clock stops; ``spindle_stream`` writes batch by batch, inside the clock); its peak RSS
is reported. ``same_values``
checks every engine's pinned values against spindle's, event by event (an event that Feast's
file store drops counts as null: reported as ``dropped_events``).

``--memory-limit-mb M`` runs the spindle engines as training sets are built: DuckDB limited to
``M`` MB, its tables in a database file and its joins spilling to a temporary directory
(``spindle.features.bounded_connection``), so their peak RSS shows what the limit holds.

    .venv/bin/python benchmarks/pit_join.py --events 10000000 --engines spindle,spindle_stream \
        --memory-limit-mb 500 --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_env import (
    add_ratios,
    bench_python,
    cpu_s,
    machine,
    peak_rss_mb,
    run_child,
    summarise,
)

TTL_S = 2 * 86400
DAYS = 30
PINNED = ["f_a__v2", "f_b__v1"]
T0 = dt.datetime(2026, 1, 1)
PROJECT_ENGINES = ("spindle", "spindle_duckdb", "spindle_stream", "duckdb")
BENCH_ENGINES = ("polars", "feast_duckdb", "feast_file")


# -- data --------------------------------------------------------------------------------------
def generate(directory: Path, n_events: int, seed: int = 7) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_entities = max(n_events // 20, 100)
    day_us = 86_400_000_000
    start = int(T0.timestamp() * 1_000_000) - int(dt.datetime(1970, 1, 1).timestamp() * 1_000_000)
    ent, day = np.meshgrid(np.arange(n_entities), np.arange(DAYS), indexing="ij")
    keep = rng.random(ent.shape) < 0.7
    ent, day = ent[keep], day[keep]
    n_rows = len(ent)
    feature_ts = pa.array(start + day.astype(np.int64) * day_us, pa.timestamp("us"))
    features = pa.table(
        {
            "entity": pa.array(ent, pa.int64()),
            "feature_ts": feature_ts,
            "f_a__v1": rng.normal(size=n_rows),
            "f_a__v2": rng.normal(size=n_rows),
            "f_b__v1": rng.integers(0, 1000, n_rows),
        }
    )
    events = pa.table(
        {
            "event_id": pa.array(np.arange(n_events), pa.int64()),
            "entity": pa.array(rng.integers(0, n_entities, n_events), pa.int64()),
            "ts": pa.array(
                start + day_us + rng.integers(0, (DAYS - 1) * day_us, n_events),
                pa.timestamp("us"),
            ),
        }
    )
    pq.write_table(features, directory / "features.parquet")
    pq.write_table(events, directory / "events.parquet")
    utc = pa.timestamp("us", tz="UTC")
    pq.write_table(
        features.set_column(1, "feature_ts", features["feature_ts"].cast(utc)),
        directory / "features_utc.parquet",
    )


# -- engines (each runs in a child process) -------------------------------------------------------
def _duckdb_tables(directory: Path) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_parquet('{directory / 'events.parquet'}')")
    con.execute(
        f"CREATE TABLE ft AS SELECT * FROM read_parquet('{directory / 'features.parquet'}')"
    )
    return con


def _bounded_tables(directory: Path, memory_limit_mb: int) -> Any:
    from spindle.features import bounded_connection

    con = bounded_connection(
        Path(tempfile.mkdtemp(prefix="spill-", dir=directory)), memory_limit_mb
    )
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_parquet('{directory / 'events.parquet'}')")
    con.execute(
        f"CREATE TABLE ft AS SELECT * FROM read_parquet('{directory / 'features.parquet'}')"
    )
    return con


def engine_spindle(
    directory: Path, stream: bool, memory_limit_mb: int | None, engine: str = "auto"
) -> Any:
    import pyarrow.parquet as pq

    from spindle.features import pit_join

    if memory_limit_mb is None:
        con = _duckdb_tables(directory)
    else:
        con = _bounded_tables(directory, memory_limit_mb)
    reader = pit_join(con, "ev", "ft", "entity", PINNED, TTL_S, engine=engine)
    if not stream:
        return reader.read_all()
    rows = 0
    with pq.ParquetWriter(directory / "out-spindle_stream.parquet", reader.schema) as writer:
        for batch in reader:  # bounded memory: one batch at a time goes to disk
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows  # streamed: the clock includes writing it, batch by batch


def engine_duckdb(directory: Path) -> Any:
    con = _duckdb_tables(directory)
    return con.sql(
        "SELECT e.*, f.f_a__v2, f.f_b__v1, f.feature_ts FROM ev e "
        "ASOF LEFT JOIN ft f ON e.entity = f.entity AND e.ts >= f.feature_ts"
    ).to_arrow_table()


def engine_polars(directory: Path) -> Any:
    import polars as pl

    events = pl.read_parquet(directory / "events.parquet").sort("ts")
    features = pl.read_parquet(directory / "features.parquet").sort("feature_ts")
    joined = events.join_asof(
        features.select(["entity", "feature_ts", *PINNED]),
        left_on="ts",
        right_on="feature_ts",
        by="entity",
        strategy="backward",
        tolerance=dt.timedelta(seconds=TTL_S),
    )
    return joined.to_arrow()


def _feast_store(directory: Path, kind: str) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.repo_config import RepoConfig
    from feast.types import Float64, Int64

    if kind == "duckdb":
        from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig

        offline: Any = DuckDBOfflineStoreConfig()
    else:
        # Feast's default offline store ("file"), implemented with Dask.
        from feast.infra.offline_stores.dask import DaskOfflineStoreConfig

        offline = DaskOfflineStoreConfig()
    repo = directory / f"feast-{kind}"
    repo.mkdir(exist_ok=True)
    config = RepoConfig(
        project="bench",
        registry=str(repo / "registry.db"),
        provider="local",
        offline_store=offline,
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
        repo_path=str(repo),
    )
    store = FeatureStore(config=config)
    entity = Entity(name="entity", join_keys=["entity"], value_type=ValueType.INT64)
    source = FileSource(path=str(directory / "features_utc.parquet"), timestamp_field="feature_ts")
    view = FeatureView(
        name="fv",
        entities=[entity],
        ttl=dt.timedelta(seconds=TTL_S),
        schema=[
            Field(name="f_a__v1", dtype=Float64),
            Field(name="f_a__v2", dtype=Float64),
            Field(name="f_b__v1", dtype=Int64),
        ],
        source=source,
    )
    store.apply([entity, view])
    return store


def engine_feast(directory: Path, kind: str, started: list[float], cpu_started: list[float]) -> Any:
    import pandas as pd

    store = _feast_store(directory, kind)
    started[0] = time.perf_counter()  # registry set-up is not part of the join
    cpu_started[0] = cpu_s()
    entity_df = pd.read_parquet(directory / "events.parquet")
    entity_df["event_timestamp"] = entity_df.pop("ts").dt.tz_localize("UTC")
    job = store.get_historical_features(entity_df=entity_df, features=[f"fv:{c}" for c in PINNED])
    return job.to_arrow()


def _import_engine(engine: str) -> None:
    """Load the engine's libraries before the clock starts (imports are not the join)."""
    import duckdb  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if engine.startswith("spindle"):
        import spindle.features  # noqa: F401
    elif engine == "polars":
        import polars  # noqa: F401
    elif engine.startswith("feast"):
        import feast  # noqa: F401
        import pandas  # noqa: F401


def child(engine: str, directory: Path, memory_limit_mb: int | None) -> None:
    _import_engine(engine)
    started = [time.perf_counter()]
    cpu_started = [cpu_s()]
    if engine in ("spindle", "spindle_stream"):
        result = engine_spindle(directory, engine == "spindle_stream", memory_limit_mb)
    elif engine == "spindle_duckdb":
        result = engine_spindle(directory, False, memory_limit_mb, "duckdb")
    elif engine == "duckdb":
        result = engine_duckdb(directory)
    elif engine == "polars":
        result = engine_polars(directory)
    else:
        result = engine_feast(directory, engine.removeprefix("feast_"), started, cpu_started)
    seconds = time.perf_counter() - started[0]  # the joined result is in Arrow: stop the clock
    cpu = cpu_s() - cpu_started[0]
    if isinstance(result, int):
        rows = result
    else:  # written for the value check, outside the timed part
        import pyarrow.parquet as pq

        rows = int(result.num_rows)
        kept = result if engine == "duckdb" else result.select(["event_id", *PINNED])
        pq.write_table(kept, directory / f"out-{engine}.parquet")
    print(
        json.dumps({"seconds": seconds, "cpu_s": cpu, "rows": rows, "peak_rss_mb": peak_rss_mb()})
    )


# -- the check -----------------------------------------------------------------------------------
def compare(directory: Path, engines: list[str], n_events: int) -> dict[str, Any]:
    """Mismatching events of each engine vs spindle (dropped events count as null)."""
    import duckdb

    con = duckdb.connect()
    ref = directory / "out-spindle.parquet"
    out: dict[str, Any] = {}
    for engine in engines:
        path = directory / f"out-{engine}.parquet"
        if engine == "spindle" or not path.exists():
            continue
        ttl = (
            f"CASE WHEN epoch(o.ts) - epoch(o.feature_ts) <= {TTL_S} THEN {{c}} END"
            if engine == "duckdb"
            else "{c}"
        )
        a = ttl.format(c="o.f_a__v2")
        b = ttl.format(c="o.f_b__v1")
        row = con.execute(
            f"SELECT count(*) FILTER (WHERE o.event_id IS NULL AND (r.f_a__v2 IS NOT NULL OR r.f_b__v1 IS NOT NULL)), "
            f"count(*) FILTER (WHERE o.event_id IS NOT NULL AND ({a} IS DISTINCT FROM r.f_a__v2 OR "
            f"{b}::BIGINT IS DISTINCT FROM r.f_b__v1)), count(*) FILTER (WHERE o.event_id IS NULL), "
            f"count(*) FILTER (WHERE r.f_a__v2 IS NULL) "
            f"FROM read_parquet('{ref}') r LEFT JOIN read_parquet('{path}') o USING (event_id)"
        ).fetchall()[0]
        out[engine] = {
            "mismatches": int(row[0]) + int(row[1]),
            "dropped_events": int(row[2]),
            "events_without_value": int(row[3]),
        }
    out["all_events_kept_by_spindle"] = (
        con.execute(f"SELECT count(*) FROM read_parquet('{ref}')").fetchall()[0][0] == n_events
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--engines", default=",".join(PROJECT_ENGINES + BENCH_ENGINES))
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved rounds (the median run is reported)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        help="DuckDB memory limit of the spindle engines, spilling to disk (default: none)",
    )
    parser.add_argument("--child")
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data, args.memory_limit_mb)
        return
    engines = [e for e in args.engines.split(",") if e]
    if "spindle" not in engines:
        engines.insert(0, "spindle")  # the reference of the value check
    result: dict[str, Any] = {
        "events": args.events,
        "ttl_s": TTL_S,
        "repeat": args.repeat,
        "memory_limit_mb": args.memory_limit_mb,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="pit-bench-") as tmp:
        directory = Path(tmp)
        generate(directory, args.events)
        python, why = bench_python()
        rates: dict[str, Any] = {}
        argvs: dict[str, tuple[str, list[str]]] = {}
        for engine in engines:
            if engine in BENCH_ENGINES and python is None:
                rates[engine] = {"unavailable": why}
                continue
            exe = sys.executable if engine in PROJECT_ENGINES else str(python)
            argv = ["--child", engine, "--data", str(directory)]
            if args.memory_limit_mb is not None and engine.startswith("spindle"):
                argv += ["--memory-limit-mb", str(args.memory_limit_mb)]
            argvs[engine] = (exe, argv)
        # Interleaved rounds (every engine once per round), so a slow spell of the machine
        # touches every engine alike; the median run is reported, with min and max.
        runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in argvs}
        for _ in range(args.repeat):
            for engine, (exe, argv) in argvs.items():
                runs[engine].append(run_child(exe, Path(__file__), argv))
        for engine in argvs:
            rates[engine] = summarise(runs[engine], args.events)
            print(f"{engine}: {rates[engine]}", file=sys.stderr)
        check = compare(directory, engines, args.events)
    result["engines"] = rates

    add_ratios(
        result,
        rates,
        (
            ("ratio_vs_feast_duckdb", "feast_duckdb"),
            ("ratio_vs_feast_file", "feast_file"),
            ("ratio_vs_engine", "duckdb"),
            ("ratio_vs_polars", "polars"),
        ),
    )
    result["check"] = check
    result["same_values"] = bool(check["all_events_kept_by_spindle"]) and all(
        v["mismatches"] == 0 for k, v in check.items() if isinstance(v, dict)
    )
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
