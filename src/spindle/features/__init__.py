"""Feature store: definitions, feature tables, point-in-time training sets, transforms, online store."""

from __future__ import annotations

from spindle.features._backfill import BackfillResult, backfill_feature, latest_feature_day
from spindle.features._catalog import feature_catalog
from spindle.features._compute import (
    compute_features,
    compute_group,
    connect_raw,
    feature_table_path,
)
from spindle.features._definitions import (
    GROUP_ENTITIES,
    RESTRICTED_TAGS,
    EncodingSpec,
    FeatureDefinition,
    FeatureRegistry,
)
from spindle.features._online import (
    ONLINE_ENTITIES,
    OnlineStore,
    catch_up_online,
    open_online_backend,
)
from spindle.features._online_backend import MaterializeResult, OnlineStoreBackend
from spindle.features._online_sqlite import SQLiteOnlineStore
from spindle.features._pit import bounded_connection, pit_join, pit_join_sql, ttl_select
from spindle.features._python import PythonComputation
from spindle.features._request import QUERY_COLUMN, add_request_features, assemble_request_rows
from spindle.features._training_set import (
    TTL_S,
    TrainingRows,
    TrainingStream,
    build_rows,
    pin_versions,
    stream_rows,
)
from spindle.features._transform import TEXT_VOCAB_SIZE, ColumnEncoding, Transform, stable_hash

__all__ = [
    "GROUP_ENTITIES",
    "ONLINE_ENTITIES",
    "QUERY_COLUMN",
    "RESTRICTED_TAGS",
    "TEXT_VOCAB_SIZE",
    "TTL_S",
    "BackfillResult",
    "ColumnEncoding",
    "EncodingSpec",
    "FeatureDefinition",
    "FeatureRegistry",
    "MaterializeResult",
    "OnlineStore",
    "OnlineStoreBackend",
    "PythonComputation",
    "SQLiteOnlineStore",
    "TrainingRows",
    "TrainingStream",
    "Transform",
    "add_request_features",
    "assemble_request_rows",
    "backfill_feature",
    "bounded_connection",
    "build_rows",
    "catch_up_online",
    "compute_features",
    "compute_group",
    "connect_raw",
    "feature_catalog",
    "feature_table_path",
    "latest_feature_day",
    "open_online_backend",
    "pin_versions",
    "pit_join",
    "pit_join_sql",
    "stable_hash",
    "stream_rows",
    "ttl_select",
]
