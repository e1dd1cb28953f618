"""Raw sources: schemas, ingestion into Delta tables, quarantine, and data validation."""

from __future__ import annotations

from spindle.data._checks import Anomaly
from spindle.data._ingest import QUARANTINE_SCHEMA, ingest_day, partition_files, raw_fingerprint
from spindle.data._profile import (
    PROFILE_SCHEMA,
    load_profiles,
    profile_day,
    profile_relation,
    profile_sql,
    store_profile,
)
from spindle.data._schemas import INGEST_ORDER, MAX_LATENESS_DAYS, SCHEMAS, SourceSchema
from spindle.data._shedding import shed_mask
from spindle.data._validate import HISTORY_DAYS, ValidationReport, report_json, validate_day

__all__ = [
    "HISTORY_DAYS",
    "INGEST_ORDER",
    "MAX_LATENESS_DAYS",
    "PROFILE_SCHEMA",
    "QUARANTINE_SCHEMA",
    "SCHEMAS",
    "Anomaly",
    "SourceSchema",
    "ValidationReport",
    "ingest_day",
    "load_profiles",
    "partition_files",
    "profile_day",
    "profile_relation",
    "profile_sql",
    "raw_fingerprint",
    "report_json",
    "shed_mask",
    "store_profile",
    "validate_day",
]
