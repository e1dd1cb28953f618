"""spindle: a reliable ML training system — daily logs to served models, every step recorded.

The public API. ``cli`` and ``ui`` use only these names.
"""

from __future__ import annotations

from spindle.core import (
    ConfigError,
    DataError,
    FeatureError,
    GateBlocked,
    ModelConfig,
    NotFound,
    OrchestrationError,
    RegistryError,
    SchemaError,
    ServingError,
    SpindleError,
    TrainingError,
    ValidationFailed,
    Workspace,
    WorkspaceConfig,
    WorkspaceError,
)
from spindle.features import FeatureRegistry, OnlineStore, Transform
from spindle.orchestrate import (
    Context,
    DayReport,
    build_training_set,
    days_between,
    evaluate,
    ingest,
    init_workspace,
    lineage_report,
    load_config,
    push,
    run_day,
    run_demo,
    status_report,
    train,
    validate,
)
from spindle.registry import MetadataStore
from spindle.serve import create_app, read_routing, rollback, serve_forever, set_routing
from spindle.sim import FAULT_KINDS, Fault, simulate

__version__ = "0.1.0"

__all__ = [
    "FAULT_KINDS",
    "ConfigError",
    "Context",
    "DataError",
    "DayReport",
    "Fault",
    "FeatureError",
    "FeatureRegistry",
    "GateBlocked",
    "MetadataStore",
    "ModelConfig",
    "NotFound",
    "OnlineStore",
    "OrchestrationError",
    "RegistryError",
    "SchemaError",
    "ServingError",
    "SpindleError",
    "TrainingError",
    "Transform",
    "ValidationFailed",
    "Workspace",
    "WorkspaceConfig",
    "WorkspaceError",
    "__version__",
    "build_training_set",
    "create_app",
    "days_between",
    "evaluate",
    "ingest",
    "init_workspace",
    "lineage_report",
    "load_config",
    "push",
    "read_routing",
    "rollback",
    "run_day",
    "run_demo",
    "serve_forever",
    "set_routing",
    "simulate",
    "status_report",
    "train",
    "validate",
]
