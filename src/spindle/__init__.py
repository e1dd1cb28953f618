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
    from spindle.features import (
        FeatureRegistry,
        OnlineStore,
        OnlineStoreBackend,
        Transform,
        backfill_feature,
        feature_catalog,
        latest_feature_day,
    )
    from spindle.monitor import PipelineCollector, alert_rules
    from spindle.orchestrate import (
        Context,
        DayReport,
        InfraReport,
        backfill,
        build_training_set,
        catch_up,
        days_between,
        doctor,
        evaluate_version,
        export_airflow,
        freshness_report,
        infra_validate,
        ingest,
        init_workspace,
        lineage_report,
        load_config,
        make_executor,
        model_report,
        models_report,
        parse_weights,
        plan_catch_up,
        push,
        route,
        run_all,
        run_day,
        run_demo,
        run_schedule,
        serving_check,
        speed_check,
        status_report,
        train_version,
        validate,
    )
    from spindle.orchestrate._deploy import rollback
    from spindle.registry import MetadataStore
    from spindle.serve import create_app, read_routing, serve_forever, set_routing
    from spindle.sim import FAULT_KINDS, Fault, simulate

# Names resolve lazily (PEP 562), so `import spindle.registry` does not pay for torch.
_LAZY: dict[str, str] = {
    "serving_check": "spindle.orchestrate",
    "make_executor": "spindle.orchestrate",
    "InfraReport": "spindle.orchestrate",
    "infra_validate": "spindle.orchestrate",
    "model_report": "spindle.orchestrate",
    "models_report": "spindle.orchestrate",
    "parse_weights": "spindle.orchestrate",
    "route": "spindle.orchestrate",
    "PipelineCollector": "spindle.monitor",
    "alert_rules": "spindle.monitor",
    "doctor": "spindle.orchestrate",
    "run_all": "spindle.orchestrate",
    "plan_catch_up": "spindle.orchestrate",
    "catch_up": "spindle.orchestrate",
    "freshness_report": "spindle.orchestrate",
    "run_schedule": "spindle.orchestrate",
    "export_airflow": "spindle.orchestrate",
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
    "OnlineStoreBackend": "spindle.features",
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
    "backfill": "spindle.orchestrate",
    "backfill_feature": "spindle.features",
    "build_training_set": "spindle.orchestrate",
    "create_app": "spindle.serve",
    "days_between": "spindle.orchestrate",
    "evaluate_version": "spindle.orchestrate",
    "feature_catalog": "spindle.features",
    "ingest": "spindle.orchestrate",
    "init_workspace": "spindle.orchestrate",
    "latest_feature_day": "spindle.features",
    "lineage_report": "spindle.orchestrate",
    "load_config": "spindle.orchestrate",
    "push": "spindle.orchestrate",
    "read_routing": "spindle.serve",
    "rollback": "spindle.orchestrate._deploy",
    "run_day": "spindle.orchestrate",
    "run_demo": "spindle.orchestrate",
    "serve_forever": "spindle.serve",
    "set_routing": "spindle.serve",
    "simulate": "spindle.sim",
    "speed_check": "spindle.orchestrate",
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
    "InfraReport",
    "MetadataStore",
    "ModelConfig",
    "NotFound",
    "OnlineStore",
    "OnlineStoreBackend",
    "OrchestrationError",
    "PipelineCollector",
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
    "alert_rules",
    "backfill",
    "backfill_feature",
    "build_training_set",
    "catch_up",
    "create_app",
    "days_between",
    "doctor",
    "evaluate_version",
    "export_airflow",
    "feature_catalog",
    "freshness_report",
    "infra_validate",
    "ingest",
    "init_workspace",
    "latest_feature_day",
    "lineage_report",
    "load_config",
    "make_executor",
    "model_report",
    "models_report",
    "parse_weights",
    "plan_catch_up",
    "push",
    "read_routing",
    "rollback",
    "route",
    "run_all",
    "run_day",
    "run_demo",
    "run_schedule",
    "serve_forever",
    "serving_check",
    "set_routing",
    "simulate",
    "speed_check",
    "status_report",
    "train_version",
    "validate",
]
