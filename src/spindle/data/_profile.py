"""Column statistics per partition: one single-pass DuckDB query per source and day.

For every column: row count, nulls, distinct estimate (HyperLogLog); for numeric and boolean
columns also mean, standard deviation, min and max, and for numbers quantiles (deciles plus the
1st and 99th percentiles) from a reservoir sample. One ``SELECT`` computes every column of a
source at once, so a table is scanned once (measured at 10M rows x 20 columns: 1.36M rows per
CPU-second, ~7x DuckDB ``SUMMARIZE``; see ``benchmarks/stats_profile.py``). Profiles are stored
in the Delta table ``stats`` (partitioned by date), so trends and the history that anomaly
checks compare with are cheap.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from spindle.core import Location, TableVersion, open_dataset, table_exists, write_partition
from spindle.data._dimensions import register_dimension

QUANTILES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
RESERVOIR = 8192
"""Quantiles come from a uniform sample of this many values per column: exact for smaller
partitions, otherwise with a rank standard error of at most 0.55% (measured 2.3x faster than
t-digest ``approx_quantile`` for 11 quantiles; they serve as trends and PSI bin edges)."""
PROFILE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("column", pa.string()),
        ("dtype", pa.string()),
        ("count", pa.int64()),
        ("nulls", pa.int64()),
        ("distinct", pa.int64()),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("quantiles", pa.list_(pa.float64())),
        ("date", pa.string()),
    ]
)
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE", "BOOLEAN")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def profile_sql(relation: str, columns: list[tuple[str, str]]) -> str:
    """The single-pass profile query of ``relation`` for ``(column, duckdb_type)`` pairs.

    The result is one row: ``n`` then, per column ``i``, ``nulls_i``, ``distinct_i`` and for
    numeric columns ``mean_i``, ``std_i``, ``min_i``, ``max_i``, ``q_i`` (a list).
    """
    parts = ["count(*) AS n"]
    qs = "[" + ", ".join(str(q) for q in QUANTILES) + "]"
    for i, (name, dtype) in enumerate(columns):
        col = _q(name)
        parts += [
            f"count(*) - count({col}) AS nulls_{i}",
            f"approx_count_distinct({col}) AS distinct_{i}",
        ]
        if dtype.upper() in _NUMERIC:
            x = f"{col}::DOUBLE"
            parts += [
                f"avg({x}) AS mean_{i}",
                f"stddev_samp({x}) AS std_{i}",
                f"min({x}) AS min_{i}",
                f"max({x}) AS max_{i}",
            ]
            if dtype.upper() != "BOOLEAN":  # a boolean's quantiles say nothing its mean does not
                parts.append(f"reservoir_quantile({x}, {qs}, {RESERVOIR}) AS q_{i}")
    return f"SELECT {', '.join(parts)} FROM {relation}"


def profile_relation(
    con: duckdb.DuckDBPyConnection, relation: str, source: str, date: str, where: str = "true"
) -> list[dict[str, Any]]:
    """Profile every column of ``relation`` (rows matching ``where``) in one scan."""
    described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    columns = [(str(r[0]), str(r[1])) for r in described if r[0] != "date"]
    cursor = con.execute(profile_sql(f"(SELECT * FROM {relation} WHERE {where})", columns))
    names = [d[0] for d in cursor.description]
    fetched = cursor.fetchall()  # fetch to the end: DuckDB 2 refuses new work otherwise
    row = dict(zip(names, fetched[0] if fetched else [None] * len(names), strict=True))
    n = int(row.get("n") or 0)
    out = []
    for i, (name, dtype) in enumerate(columns):
        quantiles = row.get(f"q_{i}")
        out.append(
            {
                "source": source,
                "column": name,
                "dtype": dtype,
                "count": n,
                "nulls": int(row[f"nulls_{i}"] or 0),
                "distinct": int(row[f"distinct_{i}"] or 0),
                "mean": row.get(f"mean_{i}"),
                "std": row.get(f"std_{i}"),
                "min": row.get(f"min_{i}"),
                "max": row.get(f"max_{i}"),
                "quantiles": None if quantiles is None else [float(q) for q in quantiles],
                "date": date,
            }
        )
    return out


def profile_day(
    tables_dir: Location | Path,
    date: str,
    sources: Iterable[str] | None = None,
    dimensions: Collection[str] = (),
) -> pa.Table:
    """Profile every column of each ingested source's ``date`` partition.

    Args:
        tables_dir: root of the Delta tables (sources under ``raw/<source>``).
        date: the day, ``YYYY-MM-DD``.
        sources: the sources to profile (None: every ingested one); one not ingested is skipped.
        dimensions: the sources that are dimensions: their rows of ``date`` are their latest
            copy at or before it (see ``register_dimension``).

    Returns:
        One row per (source, column), in ``PROFILE_SCHEMA``.
    """
    if sources is None:
        raw = tables_dir / "raw"
        sources = sorted(p.name for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []
    rows: list[dict[str, Any]] = []
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        for source in sources:
            path = tables_dir / "raw" / source
            if not table_exists(path):
                continue
            # filtered in DuckDB: the ``date`` column may be text or a DATE
            if source in dimensions:
                register_dimension(con, source, path, date)
            else:
                con.register(source, open_dataset(path))
            rows += profile_relation(con, source, source, date, f"date = '{date}'")
    finally:
        con.close()
    return pa.Table.from_pylist(rows, schema=PROFILE_SCHEMA)


def store_profile(tables_dir: Location | Path, date: str, profile: pa.Table) -> TableVersion:
    """Write a day's profile to the ``stats`` Delta table (partition overwrite, idempotent)."""
    return write_partition(tables_dir / "stats", profile, date, "stats")


def load_profiles(tables_dir: Location | Path, dates: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Stored profiles of ``dates`` by day (days never profiled are absent)."""
    path = tables_dir / "stats"
    if not table_exists(path) or not dates:
        return {}
    table = open_dataset(path).to_table(filter=pads.field("date").isin(dates))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        out.setdefault(str(row["date"]), []).append(row)
    return out
