"""Feature store: definitions, feature tables, point-in-time training sets, transforms, online store."""

from __future__ import annotations

from spindle.features._compute import (
    compute_features,
    compute_group,
    connect_raw,
    feature_table_path,
)
from spindle.features._definitions import (
    GROUP_ENTITIES,
    EncodingSpec,
    FeatureDefinition,
    FeatureRegistry,
)
from spindle.features._online import OnlineStore
from spindle.features._request import QUERY_COLUMN, add_request_features, assemble_request_rows
from spindle.features._training_set import TTL_S, TrainingRows, build_rows, pin_versions
from spindle.features._transform import TEXT_VOCAB_SIZE, ColumnEncoding, Transform, stable_hash

__all__ = [
    "GROUP_ENTITIES",
    "QUERY_COLUMN",
    "TEXT_VOCAB_SIZE",
    "TTL_S",
    "ColumnEncoding",
    "EncodingSpec",
    "FeatureDefinition",
    "FeatureRegistry",
    "OnlineStore",
    "TrainingRows",
    "Transform",
    "add_request_features",
    "assemble_request_rows",
    "build_rows",
    "compute_features",
    "compute_group",
    "connect_raw",
    "feature_table_path",
    "pin_versions",
    "stable_hash",
]
