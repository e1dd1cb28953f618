"""Pipeline steps for data: ingest a day, compute its features, validate it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from spindle.core import IngestResult, RawPartition, TableVersion, sha256_json
from spindle.data import (
    HISTORY_DAYS,
    INGEST_ORDER,
    Anomaly,
    ValidationReport,
    ingest_day,
    partition_files,
    raw_fingerprint,
    validate_day,
)
from spindle.features import compute_features, pin_versions
from spindle.orchestrate._context import Context


@dataclass(frozen=True)
class DayIngest:
    """The outcome of ingesting one day (raw tables, features, online store)."""

    result: IngestResult
    features: tuple[TableVersion, ...]
    skipped: bool


def _raw_partitions(ctx: Context, date: str) -> list[RawPartition]:
    parts = []
    fingerprint = raw_fingerprint(ctx.workspace.raw_dir, date)
    for source in INGEST_ORDER:
        files = partition_files(ctx.workspace.raw_dir, source, date)
        if files:
            parts.append(
                RawPartition(
                    source, date, str(files[0].parent), sha256_json(fingerprint[source]), len(files)
                )
            )
    return parts


def ingest(ctx: Context, date: str) -> DayIngest:
    """Ingest raw partitions of ``date`` and compute that day's feature rows (idempotent)."""
    ws = ctx.workspace
    partitions = _raw_partitions(ctx, date)
    for part in partitions:
        ctx.store.record_artifact(part)

    def load() -> tuple[IngestResult | TableVersion, ...]:
        result = ingest_day(ws.raw_dir, ws.tables_dir, date)
        return (result, *result.tables)

    loaded = ctx.runner.run(
        "ingest",
        load,
        identity={"raw": [p.content_hash for p in partitions]},
        date=date,
        inputs=[p.id for p in partitions],
        rebuild=lambda artifacts: tuple(artifacts),
    )
    result: IngestResult = next(a for a in loaded.value if isinstance(a, IngestResult))
    definitions = sha256_json([d.ref + (d.sql or "") for d in ctx.features.definitions.values()])

    def compute() -> tuple[TableVersion, ...]:
        computed = compute_features(ws.tables_dir, ctx.features, date)
        _materialize(ctx, date, {g: rows for g, (_, rows) in computed.items()})
        return tuple(v for v, _ in computed.values())

    feats = ctx.runner.run(
        "features",
        compute,
        identity={"ingest": result.content_hash, "definitions": definitions},
        date=date,
        inputs=[t.id for t in result.tables],
        rebuild=lambda artifacts: tuple(artifacts),
    )
    return DayIngest(result, feats.value, loaded.skipped and feats.skipped)


def _materialize(ctx: Context, date: str, rows: dict[str, pa.Table]) -> None:
    """Copy a day's feature rows to the online store unless it already holds a later day."""
    store = ctx.online_store()
    try:
        current = store.as_of("product")
        if current is not None and current > date:
            return
        for group, table in rows.items():
            store.materialize(group, table, date)
    finally:
        store.close()


def validate(ctx: Context, date: str) -> ValidationReport:
    """Validate the ingested day and record the report (idempotent for unchanged tables)."""
    ws = ctx.workspace
    versions = pin_versions(ws.tables_dir)
    day = dt.date.fromisoformat(date)
    window = [(day - dt.timedelta(days=i)).isoformat() for i in range(1, HISTORY_DAYS + 1)]
    # History is the trailing window of *healthy* days: a day that failed is not a baseline.
    exclude = tuple(d for d in window if day_verdict(ctx, d) == "fail")
    outcome = ctx.runner.run(
        "validate",
        lambda: validate_day(ws.tables_dir, date, exclude=exclude),
        identity={"tables": versions, "exclude": list(exclude)},
        date=date,
        rebuild=lambda artifacts: _report_from(artifacts[0].properties()),
    )
    report: ValidationReport = outcome.value
    return report


def _report_from(props: dict[str, Any]) -> ValidationReport:
    anomalies = tuple(Anomaly(**a) for a in props["anomalies"])
    return ValidationReport(
        props["date"],
        props["verdict"],
        anomalies,
        tuple(props["history_days"]),
        stats=props.get("stats", {}),
    )


def day_verdict(ctx: Context, date: str) -> str | None:
    """The verdict of the latest validation of ``date`` (None when never validated)."""
    record = ctx.store.latest_artifact("validation_report", date=date)
    return None if record is None else str(record.properties["verdict"])
