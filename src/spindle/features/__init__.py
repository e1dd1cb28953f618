"""Feature store: definitions, feature tables, point-in-time training sets, transforms, online store."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.features._backfill import BackfillResult, backfill_feature, latest_feature_day
    from spindle.features._baselines import baseline_scores
    from spindle.features._catalog import feature_catalog
    from spindle.features._compute import (
        compute_features,
        compute_group,
        feature_table_path,
        view_rows,
    )
    from spindle.features._cutoff import cutoff_literals, register_as_of, substitute_times
    from spindle.features._definitions import RESTRICTED_TAGS, EncodingSpec, FeatureDefinition
    from spindle.features._online import (
        OnlineStore,
        catch_up_online,
        open_online_backend,
        refresh_online_day,
    )
    from spindle.features._online_backend import MaterializeResult, OnlineStoreBackend
    from spindle.features._online_postgres import PostgresOnlineStore
    from spindle.features._online_sqlite import SQLiteOnlineStore
    from spindle.features._pit import bounded_connection, pit_join, pit_join_sql, ttl_select
    from spindle.features._python import PythonComputation
    from spindle.features._registry import FeatureRegistry
    from spindle.features._request import (
        RequestFeature,
        apply_request_features,
        assemble_request_rows,
    )
    from spindle.features._training_set import (
        TrainingRows,
        TrainingStream,
        build_rows,
        pin_versions,
        retracted_rows_read,
        stream_rows,
        training_tables,
    )
    from spindle.features._trainset_file import (
        WrittenRows,
        merge_training_parts,
        write_training_rows,
    )
    from spindle.features._transform import TEXT_VOCAB_SIZE, ColumnEncoding, Transform, stable_hash
    from spindle.features._views import FeatureView

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "baseline_scores": "spindle.features._baselines",
    "BackfillResult": "spindle.features._backfill",
    "ColumnEncoding": "spindle.features._transform",
    "EncodingSpec": "spindle.features._definitions",
    "FeatureDefinition": "spindle.features._definitions",
    "FeatureRegistry": "spindle.features._registry",
    "FeatureView": "spindle.features._views",
    "MaterializeResult": "spindle.features._online_backend",
    "OnlineStore": "spindle.features._online",
    "OnlineStoreBackend": "spindle.features._online_backend",
    "PythonComputation": "spindle.features._python",
    "RequestFeature": "spindle.features._request",
    "RESTRICTED_TAGS": "spindle.features._definitions",
    "SQLiteOnlineStore": "spindle.features._online_sqlite",
    "PostgresOnlineStore": "spindle.features._online_postgres",
    "TEXT_VOCAB_SIZE": "spindle.features._transform",
    "TrainingRows": "spindle.features._training_set",
    "TrainingStream": "spindle.features._training_set",
    "Transform": "spindle.features._transform",
    "apply_request_features": "spindle.features._request",
    "assemble_request_rows": "spindle.features._request",
    "backfill_feature": "spindle.features._backfill",
    "bounded_connection": "spindle.features._pit",
    "build_rows": "spindle.features._training_set",
    "catch_up_online": "spindle.features._online",
    "refresh_online_day": "spindle.features._online",
    "compute_features": "spindle.features._compute",
    "compute_group": "spindle.features._compute",
    "cutoff_literals": "spindle.features._cutoff",
    "register_as_of": "spindle.features._cutoff",
    "substitute_times": "spindle.features._cutoff",
    "view_rows": "spindle.features._compute",
    "feature_catalog": "spindle.features._catalog",
    "feature_table_path": "spindle.features._compute",
    "latest_feature_day": "spindle.features._backfill",
    "open_online_backend": "spindle.features._online",
    "pin_versions": "spindle.features._training_set",
    "retracted_rows_read": "spindle.features._training_set",
    "pit_join": "spindle.features._pit",
    "pit_join_sql": "spindle.features._pit",
    "stable_hash": "spindle.features._transform",
    "stream_rows": "spindle.features._training_set",
    "training_tables": "spindle.features._training_set",
    "ttl_select": "spindle.features._pit",
    "write_training_rows": "spindle.features._trainset_file",
    "merge_training_parts": "spindle.features._trainset_file",
    "WrittenRows": "spindle.features._trainset_file",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "RESTRICTED_TAGS",
    "TEXT_VOCAB_SIZE",
    "BackfillResult",
    "ColumnEncoding",
    "EncodingSpec",
    "FeatureDefinition",
    "FeatureRegistry",
    "FeatureView",
    "MaterializeResult",
    "OnlineStore",
    "OnlineStoreBackend",
    "PostgresOnlineStore",
    "PythonComputation",
    "RequestFeature",
    "SQLiteOnlineStore",
    "TrainingRows",
    "TrainingStream",
    "Transform",
    "WrittenRows",
    "apply_request_features",
    "assemble_request_rows",
    "backfill_feature",
    "baseline_scores",
    "bounded_connection",
    "build_rows",
    "catch_up_online",
    "compute_features",
    "compute_group",
    "cutoff_literals",
    "feature_catalog",
    "feature_table_path",
    "latest_feature_day",
    "merge_training_parts",
    "open_online_backend",
    "pin_versions",
    "pit_join",
    "pit_join_sql",
    "refresh_online_day",
    "register_as_of",
    "retracted_rows_read",
    "stable_hash",
    "stream_rows",
    "substitute_times",
    "training_tables",
    "ttl_select",
    "view_rows",
    "write_training_rows",
]
