"""spindle: a reliable ML training system — daily logs to served models, every step recorded.

The public API. ``cli`` and ``ui`` use only these names.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
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
        evaluate_version,
        ingest,
        init_workspace,
        lineage_report,
        load_config,
        push,
        run_day,
        run_demo,
        status_report,
        train_version,
        validate,
    )
    from spindle.registry import MetadataStore
    from spindle.serve import create_app, read_routing, rollback, serve_forever, set_routing
    from spindle.sim import FAULT_KINDS, Fault, simulate

# Names resolve lazily (PEP 562), so `import spindle.registry` does not pay for torch.
_LAZY: dict[str, str] = {
    "ConfigError": "spindle.core",
    "Context": "spindle.orchestrate",
    "DataError": "spindle.core",
    "DayReport": "spindle.orchestrate",
    "FAULT_KINDS": "spindle.sim",
    "Fault": "spindle.sim",
    "FeatureError": "spindle.core",
    "FeatureRegistry": "spindle.features",
    "GateBlocked": "spindle.core",
    "MetadataStore": "spindle.registry",
    "ModelConfig": "spindle.core",
    "NotFound": "spindle.core",
    "OnlineStore": "spindle.features",
    "OrchestrationError": "spindle.core",
    "RegistryError": "spindle.core",
    "SchemaError": "spindle.core",
    "ServingError": "spindle.core",
    "SpindleError": "spindle.core",
    "TrainingError": "spindle.core",
    "Transform": "spindle.features",
    "ValidationFailed": "spindle.core",
    "Workspace": "spindle.core",
    "WorkspaceConfig": "spindle.core",
    "WorkspaceError": "spindle.core",
    "build_training_set": "spindle.orchestrate",
    "create_app": "spindle.serve",
    "days_between": "spindle.orchestrate",
    "evaluate_version": "spindle.orchestrate",
    "ingest": "spindle.orchestrate",
    "init_workspace": "spindle.orchestrate",
    "lineage_report": "spindle.orchestrate",
    "load_config": "spindle.orchestrate",
    "push": "spindle.orchestrate",
    "read_routing": "spindle.serve",
    "rollback": "spindle.serve",
    "run_day": "spindle.orchestrate",
    "run_demo": "spindle.orchestrate",
    "serve_forever": "spindle.serve",
    "set_routing": "spindle.serve",
    "simulate": "spindle.sim",
    "status_report": "spindle.orchestrate",
    "train_version": "spindle.orchestrate",
    "validate": "spindle.orchestrate",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spindle' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "evaluate_version",
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
    "train_version",
    "validate",
]
