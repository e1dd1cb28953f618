"""Raw sources: schemas, ingestion into Delta tables, quarantine, and data validation."""

from __future__ import annotations

from spindle.data._ingest import QUARANTINE_SCHEMA, ingest_day, partition_files, raw_fingerprint
from spindle.data._schemas import INGEST_ORDER, MAX_LATENESS_DAYS, SCHEMAS, SourceSchema
from spindle.data._validate import HISTORY_DAYS, Anomaly, ValidationReport, validate_day

__all__ = [
    "HISTORY_DAYS",
    "INGEST_ORDER",
    "MAX_LATENESS_DAYS",
    "QUARANTINE_SCHEMA",
    "SCHEMAS",
    "Anomaly",
    "SourceSchema",
    "ValidationReport",
    "ingest_day",
    "partition_files",
    "raw_fingerprint",
    "validate_day",
]
