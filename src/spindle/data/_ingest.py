"""Ingest one day of raw logs into Delta tables: schema checks, row checks, quarantine.

Two phases: every source of the day is read and checked first, then written. A file that cannot
be used at all (unreadable, a required column missing or of an incompatible type) stops the day
before anything is written; a bad *row* never stops the day: it goes to the quarantine table with
its reason, and the good rows are written.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spindle.core import (
    DataError,
    IngestResult,
    SchemaError,
    TableVersion,
    sha256_file,
    sha256_json,
    write_partition,
)
from spindle.data._readers import REJECTED_SCHEMA
from spindle.data._schemas import INGEST_ORDER, MAX_LATENESS_DAYS, SCHEMAS, TS, SourceSchema

# The quarantine table holds what the readers set aside: one schema for both.
QUARANTINE_SCHEMA = REJECTED_SCHEMA


@dataclass(frozen=True)
class _Checked:
    source: str
    good: pa.Table
    bad: pa.Table
    files: dict[str, str]
    extra_columns: tuple[str, ...]


def partition_files(raw_dir: Path, source: str, date: str) -> list[Path]:
    """Parquet files of one raw partition (empty when the partition is missing)."""
    return sorted((raw_dir / source / f"date={date}").glob("*.parquet"))


def unread_files(raw_dir: Path, date: str) -> list[Path]:
    """Files of ``date`` under ``raw_dir`` that ingest does not read (to warn, never to ignore).

    A file belongs to ``date`` when the day appears in its path (``date=2026-01-01/``,
    ``2026-01-01.csv``, ...); it is unread when it is not a Parquet file of a known source's
    partition (``INGEST_ORDER``).
    """
    read = {f for source in INGEST_ORDER for f in partition_files(raw_dir, source, date)}
    if not raw_dir.is_dir():
        return []
    return sorted(
        path
        for path in raw_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(raw_dir).parts)
        and date in path.relative_to(raw_dir).as_posix()
        and path not in read
    )


def _read(files: list[Path]) -> pa.Table:
    tables = []
    for file in files:
        try:
            tables.append(pq.read_table(file))
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(
                f"{file}: cannot read Parquet ({exc}); re-export the file or delete the partition"
            ) from exc
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def _conform(table: pa.Table, schema: SourceSchema, where: str) -> tuple[pa.Table, tuple[str, ...]]:
    """Cast expected columns to their types; keep extra columns (additive schema evolution)."""
    columns, names = [], []
    for name, expected in schema.columns.items():
        if name not in table.column_names:
            if name in schema.required:
                raise SchemaError(
                    f"{where}: required column '{name}' ({expected}) is missing; found columns {table.column_names}. "
                    "Fix the export, or re-run `spindle ingest` once the partition is corrected."
                )
            columns.append(pa.nulls(table.num_rows, expected))
        else:
            try:
                columns.append(pc.cast(table.column(name), expected))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                found = table.schema.field(name).type
                raise SchemaError(
                    f"{where}: column '{name}' should be {expected}, found {found} ({exc})"
                ) from exc
        names.append(name)
    extra = tuple(c for c in table.column_names if c not in schema.columns and c != "date")
    for name in extra:
        columns.append(table.column(name))
        names.append(name)
    return pa.table(columns, names=names), extra


def _reasons(table: pa.Table, schema: SourceSchema, date: str, currencies: set[str]) -> np.ndarray:
    """One reason string per row (empty = good), the first failing check wins."""
    n = table.num_rows
    reasons = np.full(n, "", dtype=object)

    def flag(mask: pa.ChunkedArray | pa.Array | np.ndarray, reason: str) -> None:
        values = (
            mask
            if isinstance(mask, np.ndarray)
            else pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        )
        reasons[(reasons == "") & values.astype(bool)] = reason

    for column in schema.required:
        flag(pc.is_null(table.column(column)), f"null {column}")
    if schema.price_column:
        price = table.column(schema.price_column)
        flag(pc.is_nan(price), f"NaN {schema.price_column}")
        flag(pc.less(price, 0.0), f"negative {schema.price_column}")
    if schema.currency_column and currencies:
        known = pa.array(sorted(currencies), pa.string())
        flag(
            pc.invert(pc.is_in(table.column(schema.currency_column), value_set=known)),
            f"unknown {schema.currency_column}",
        )
    if schema.ts_column:
        day = dt.date.fromisoformat(date)
        lo = pa.scalar(
            dt.datetime.combine(day - dt.timedelta(days=MAX_LATENESS_DAYS), dt.time()), TS
        )
        hi = pa.scalar(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), TS)
        ts = table.column(schema.ts_column)
        flag(
            pc.or_(pc.less(ts, lo), pc.greater_equal(ts, hi)),
            f"{schema.ts_column} outside the partition day (or more than {MAX_LATENESS_DAYS} days late)",
        )
    return reasons


def _check_source(raw_dir: Path, source: str, date: str, currencies: set[str]) -> _Checked | None:
    files = partition_files(raw_dir, source, date)
    if not files:
        return None
    where = f"{raw_dir / source / f'date={date}'}"
    table, extra = _conform(_read(files), SCHEMAS[source], where)
    reasons = _reasons(table, SCHEMAS[source], date, currencies)
    bad_idx = np.flatnonzero(reasons != "")
    good = table.filter(pa.array(reasons == ""))
    bad_rows = table.take(pa.array(bad_idx, pa.int64())).to_pylist()
    bad = pa.table(
        {
            "source": pa.array([source] * len(bad_idx), pa.string()),
            "row_number": pa.array(bad_idx, pa.int64()),
            "reason": pa.array(reasons[bad_idx].tolist(), pa.string()),
            "row_json": pa.array(
                [json.dumps(r, default=str, sort_keys=True) for r in bad_rows], pa.string()
            ),
            "date": pa.array([date] * len(bad_idx), pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return _Checked(source, good, bad, {f.name: sha256_file(f) for f in files}, extra)


def check_day(raw_dir: Path, date: str) -> tuple[list[_Checked], list[str]]:
    """Read and check every raw source of one day, writing nothing (ingest's first phase).

    Returns:
        (the checked sources in ``INGEST_ORDER``: good rows, quarantined rows with their reason,
        file hashes, extra columns; the sources whose partition is missing).

    Raises:
        SchemaError, DataError: as ``ingest_day``.
    """
    fx = _check_source(raw_dir, "fx_rates", date, set())
    currencies = set(fx.good.column("currency").to_pylist()) if fx else set()
    checked: list[_Checked] = [] if fx is None else [fx]
    missing: list[str] = [] if fx else ["fx_rates"]
    for source in INGEST_ORDER[1:]:
        result = _check_source(raw_dir, source, date, currencies)
        if result is None:
            missing.append(source)
        else:
            checked.append(result)
    return checked, missing


def raw_fingerprint(raw_dir: Path, date: str) -> dict[str, dict[str, str]]:
    """Content hashes of every raw file of a day, by source (the ingest step's input identity)."""
    return {
        s: {f.name: sha256_file(f) for f in partition_files(raw_dir, s, date)} for s in INGEST_ORDER
    }


def ingest_day(raw_dir: Path, tables_dir: Path, date: str) -> IngestResult:
    """Validate and load one day of every raw source into Delta tables under ``tables_dir/raw``.

    Args:
        raw_dir: root of the raw logs (``<source>/date=YYYY-MM-DD/*.parquet``).
        tables_dir: root of the Delta tables.
        date: the day, ``YYYY-MM-DD``.

    Returns:
        An :class:`IngestResult` with the new table versions, row counts, quarantine reasons and
        the sources whose partition was missing.

    Raises:
        SchemaError: a file lacks a required column or has an incompatible type (nothing written).
        DataError: a file cannot be read (nothing written).
    """
    checked, missing = check_day(raw_dir, date)
    versions: list[TableVersion] = []
    for item in checked:
        versions.append(
            write_partition(tables_dir / "raw" / item.source, item.good, date, f"raw/{item.source}")
        )
    bad = pa.concat_tables([c.bad for c in checked]) if checked else QUARANTINE_SCHEMA.empty_table()
    versions.append(write_partition(tables_dir / "quarantine", bad, date, "quarantine"))
    reasons: dict[str, int] = {}
    for source, reason in zip(
        bad.column("source").to_pylist(), bad.column("reason").to_pylist(), strict=True
    ):
        key = f"{source}: {reason}"
        reasons[key] = reasons.get(key, 0) + 1
    notes = tuple(
        f"{c.source}: new column(s) {list(c.extra_columns)} kept (schema evolution)"
        for c in checked
        if c.extra_columns
    )
    fingerprint = {c.source: c.files for c in checked}
    return IngestResult(
        date=date,
        uri=str(tables_dir / "raw"),
        content_hash=sha256_json(fingerprint),
        rows_ingested=sum(c.good.num_rows for c in checked),
        rows_quarantined=bad.num_rows,
        tables=tuple(versions),
        quarantine_reasons=reasons,
        missing_sources=tuple(missing),
        notes=notes,
    )
