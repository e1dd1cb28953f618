"""Pipeline steps for data: ingest a day, compute its features, validate it."""

from __future__ import annotations

import datetime as dt
import logging
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
from spindle.features import catch_up_online, compute_features, pin_versions
from spindle.orchestrate._context import Context

log = logging.getLogger(__name__)


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
    definitions = ctx.features.fingerprint()

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
    """Bring the online store up to ``date``, one partition at a time (see ``catch_up_online``).

    Only new or changed rows are written, each partition in one transaction; days an outage
    left out are applied in order first, and a day before the store's watermark is skipped.
    """
    store = ctx.online_store()
    try:
        for done in catch_up_online(store, ctx.workspace.tables_dir, date, rows):
            log.info("online store: %s", done.summary())
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
