"""Raw sources: declared reads, ingestion into Delta tables, quarantine, and data validation."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.data._checks import Anomaly
    from spindle.data._days import (
        DaysRead,
        DumpCacheStats,
        SourceRead,
        dump_cache_stats,
        last_event_day,
        read_source_day,
        read_source_days,
    )
    from spindle.data._forget import (
        forget_in_quarantine,
        forget_in_table,
        purge_table,
        table_columns,
    )
    from spindle.data._forget_files import forget_in_file, forget_in_parquet, raw_files_of
    from spindle.data._infer import infer_source
    from spindle.data._ingest import (
        QUARANTINE_SCHEMA,
        DayCheck,
        SourceCheck,
        check_day,
        day_content_hash,
        ingest_day,
        raw_partitions,
        unread_files,
    )
    from spindle.data._profile import (
        PROFILE_SCHEMA,
        load_profiles,
        profile_day,
        profile_relation,
        profile_sql,
        store_profile,
    )
    from spindle.data._quarantine import QuarantinePage, quarantined_rows
    from spindle.data._raw_store import SourceRoot, undeclared_files
    from spindle.data._readers import REJECTED_SCHEMA, list_partition_dates, source_files
    from spindle.data._retract import (
        RETRACTION_KIND,
        RetractedKeys,
        Retraction,
        count_matching,
        key_column,
        read_ids,
        read_keys,
        retractions_dir,
        stored_keys,
        workspace_salt,
        write_keys,
    )
    from spindle.data._row_rules import apply_rules, check_event_times, drop_duplicate_keys
    from spindle.data._shedding import shed_mask
    from spindle.data._undo import IngestUndo, remove_day
    from spindle.data._validate import (
        ValidationAccept,
        ValidationReport,
        report_json,
        validate_day,
    )
    from spindle.data._window import HISTORY_DAYS

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "Anomaly": "spindle.data._checks",
    "DayCheck": "spindle.data._ingest",
    "DaysRead": "spindle.data._days",
    "DumpCacheStats": "spindle.data._days",
    "HISTORY_DAYS": "spindle.data._window",
    "IngestUndo": "spindle.data._undo",
    "PROFILE_SCHEMA": "spindle.data._profile",
    "QuarantinePage": "spindle.data._quarantine",
    "QUARANTINE_SCHEMA": "spindle.data._ingest",
    "REJECTED_SCHEMA": "spindle.data._readers",
    "RETRACTION_KIND": "spindle.data._retract",
    "RetractedKeys": "spindle.data._retract",
    "Retraction": "spindle.data._retract",
    "count_matching": "spindle.data._retract",
    "key_column": "spindle.data._retract",
    "read_ids": "spindle.data._retract",
    "read_keys": "spindle.data._retract",
    "retractions_dir": "spindle.data._retract",
    "stored_keys": "spindle.data._retract",
    "workspace_salt": "spindle.data._retract",
    "write_keys": "spindle.data._retract",
    "SourceCheck": "spindle.data._ingest",
    "SourceRead": "spindle.data._days",
    "SourceRoot": "spindle.data._raw_store",
    "ValidationAccept": "spindle.data._validate",
    "ValidationReport": "spindle.data._validate",
    "apply_rules": "spindle.data._row_rules",
    "check_day": "spindle.data._ingest",
    "day_content_hash": "spindle.data._ingest",
    "check_event_times": "spindle.data._row_rules",
    "drop_duplicate_keys": "spindle.data._row_rules",
    "dump_cache_stats": "spindle.data._days",
    "forget_in_file": "spindle.data._forget_files",
    "forget_in_parquet": "spindle.data._forget_files",
    "forget_in_quarantine": "spindle.data._forget",
    "forget_in_table": "spindle.data._forget",
    "infer_source": "spindle.data._infer",
    "ingest_day": "spindle.data._ingest",
    "last_event_day": "spindle.data._days",
    "list_partition_dates": "spindle.data._readers",
    "load_profiles": "spindle.data._profile",
    "profile_day": "spindle.data._profile",
    "profile_relation": "spindle.data._profile",
    "profile_sql": "spindle.data._profile",
    "purge_table": "spindle.data._forget",
    "quarantined_rows": "spindle.data._quarantine",
    "raw_files_of": "spindle.data._forget_files",
    "raw_partitions": "spindle.data._ingest",
    "read_source_day": "spindle.data._days",
    "read_source_days": "spindle.data._days",
    "remove_day": "spindle.data._undo",
    "report_json": "spindle.data._validate",
    "shed_mask": "spindle.data._shedding",
    "source_files": "spindle.data._readers",
    "store_profile": "spindle.data._profile",
    "table_columns": "spindle.data._forget",
    "undeclared_files": "spindle.data._raw_store",
    "unread_files": "spindle.data._ingest",
    "validate_day": "spindle.data._validate",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "HISTORY_DAYS",
    "PROFILE_SCHEMA",
    "QUARANTINE_SCHEMA",
    "REJECTED_SCHEMA",
    "RETRACTION_KIND",
    "Anomaly",
    "DayCheck",
    "DaysRead",
    "DumpCacheStats",
    "IngestUndo",
    "QuarantinePage",
    "RetractedKeys",
    "Retraction",
    "SourceCheck",
    "SourceRead",
    "SourceRoot",
    "ValidationAccept",
    "ValidationReport",
    "apply_rules",
    "check_day",
    "check_event_times",
    "count_matching",
    "day_content_hash",
    "drop_duplicate_keys",
    "dump_cache_stats",
    "forget_in_file",
    "forget_in_parquet",
    "forget_in_quarantine",
    "forget_in_table",
    "infer_source",
    "ingest_day",
    "key_column",
    "last_event_day",
    "list_partition_dates",
    "load_profiles",
    "profile_day",
    "profile_relation",
    "profile_sql",
    "purge_table",
    "quarantined_rows",
    "raw_files_of",
    "raw_partitions",
    "read_ids",
    "read_keys",
    "read_source_day",
    "read_source_days",
    "remove_day",
    "report_json",
    "retractions_dir",
    "shed_mask",
    "source_files",
    "store_profile",
    "stored_keys",
    "table_columns",
    "undeclared_files",
    "unread_files",
    "validate_day",
    "workspace_salt",
    "write_keys",
]
