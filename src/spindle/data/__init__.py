"""Raw sources: schemas, ingestion into Delta tables, quarantine, and data validation."""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
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
    from spindle.data._undo import IngestUndo, remove_day
    from spindle.data._validate import HISTORY_DAYS, ValidationReport, report_json, validate_day

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "Anomaly": "spindle.data._checks",
    "HISTORY_DAYS": "spindle.data._validate",
    "INGEST_ORDER": "spindle.data._schemas",
    "IngestUndo": "spindle.data._undo",
    "MAX_LATENESS_DAYS": "spindle.data._schemas",
    "PROFILE_SCHEMA": "spindle.data._profile",
    "QUARANTINE_SCHEMA": "spindle.data._ingest",
    "SCHEMAS": "spindle.data._schemas",
    "SourceSchema": "spindle.data._schemas",
    "ValidationReport": "spindle.data._validate",
    "ingest_day": "spindle.data._ingest",
    "load_profiles": "spindle.data._profile",
    "partition_files": "spindle.data._ingest",
    "profile_day": "spindle.data._profile",
    "profile_relation": "spindle.data._profile",
    "profile_sql": "spindle.data._profile",
    "raw_fingerprint": "spindle.data._ingest",
    "remove_day": "spindle.data._undo",
    "report_json": "spindle.data._validate",
    "shed_mask": "spindle.data._shedding",
    "store_profile": "spindle.data._profile",
    "validate_day": "spindle.data._validate",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "HISTORY_DAYS",
    "INGEST_ORDER",
    "MAX_LATENESS_DAYS",
    "PROFILE_SCHEMA",
    "QUARANTINE_SCHEMA",
    "SCHEMAS",
    "Anomaly",
    "IngestUndo",
    "SourceSchema",
    "ValidationReport",
    "ingest_day",
    "load_profiles",
    "partition_files",
    "profile_day",
    "profile_relation",
    "profile_sql",
    "raw_fingerprint",
    "remove_day",
    "report_json",
    "shed_mask",
    "store_profile",
    "validate_day",
]
