"""Shared vocabulary of spindle: artifacts, the error tree, configs, the workspace, hashing."""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from spindle.core._artifacts import (
        Artifact,
        Deployment,
        Evaluation,
        GateDecision,
        IngestResult,
        ModelVersion,
        RawPartition,
        TableVersion,
        TrainingSet,
        Verdict,
        artifact_fields,
        artifact_from_fields,
    )
    from spindle.core._atomic import (
        atomic_directory,
        atomic_write_bytes,
        atomic_write_json,
        atomic_write_text,
        file_lock,
    )
    from spindle.core._config import (
        EvaluationConfig,
        ModelConfig,
        ModelServingConfig,
        ScheduleConfig,
        ServingConfig,
        SimulationConfig,
        SourceConfig,
        TrainingConfig,
        WorkspaceConfig,
    )
    from spindle.core._delta import current_version, open_dataset, table_exists, write_partition
    from spindle.core._errors import (
        ConfigError,
        DataError,
        FeatureError,
        GateBlocked,
        NotFound,
        OrchestrationError,
        RegistryError,
        SchemaError,
        ServingError,
        SpindleError,
        TrainingError,
        TransientError,
        ValidationFailed,
        WorkspaceError,
    )
    from spindle.core._hashing import (
        canonical_json,
        sha256_bytes,
        sha256_dir,
        sha256_file,
        sha256_json,
    )
    from spindle.core._killpoints import KILL_ENV, kill_point
    from spindle.core._progress import Progress, ProgressEvent, step_progress
    from spindle.core._sources import SourceDeclaration, check_order, load_sources
    from spindle.core._workspace import WORKSPACE_FILE, Workspace
    from spindle.core._yaml import apply_overrides, load_yaml_model, parse_overrides

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "Artifact": "spindle.core._artifacts",
    "ConfigError": "spindle.core._errors",
    "DataError": "spindle.core._errors",
    "Deployment": "spindle.core._artifacts",
    "Evaluation": "spindle.core._artifacts",
    "EvaluationConfig": "spindle.core._config",
    "FeatureError": "spindle.core._errors",
    "GateBlocked": "spindle.core._errors",
    "GateDecision": "spindle.core._artifacts",
    "IngestResult": "spindle.core._artifacts",
    "KILL_ENV": "spindle.core._killpoints",
    "ModelConfig": "spindle.core._config",
    "ModelServingConfig": "spindle.core._config",
    "Progress": "spindle.core._progress",
    "ProgressEvent": "spindle.core._progress",
    "ModelVersion": "spindle.core._artifacts",
    "NotFound": "spindle.core._errors",
    "OrchestrationError": "spindle.core._errors",
    "RawPartition": "spindle.core._artifacts",
    "RegistryError": "spindle.core._errors",
    "ScheduleConfig": "spindle.core._config",
    "SchemaError": "spindle.core._errors",
    "ServingConfig": "spindle.core._config",
    "ServingError": "spindle.core._errors",
    "SimulationConfig": "spindle.core._config",
    "SourceConfig": "spindle.core._config",
    "SourceDeclaration": "spindle.core._sources",
    "SpindleError": "spindle.core._errors",
    "TableVersion": "spindle.core._artifacts",
    "TrainingConfig": "spindle.core._config",
    "TrainingError": "spindle.core._errors",
    "TrainingSet": "spindle.core._artifacts",
    "TransientError": "spindle.core._errors",
    "ValidationFailed": "spindle.core._errors",
    "Verdict": "spindle.core._artifacts",
    "WORKSPACE_FILE": "spindle.core._workspace",
    "Workspace": "spindle.core._workspace",
    "WorkspaceConfig": "spindle.core._config",
    "WorkspaceError": "spindle.core._errors",
    "apply_overrides": "spindle.core._yaml",
    "artifact_fields": "spindle.core._artifacts",
    "artifact_from_fields": "spindle.core._artifacts",
    "atomic_directory": "spindle.core._atomic",
    "atomic_write_bytes": "spindle.core._atomic",
    "atomic_write_json": "spindle.core._atomic",
    "atomic_write_text": "spindle.core._atomic",
    "canonical_json": "spindle.core._hashing",
    "check_order": "spindle.core._sources",
    "current_version": "spindle.core._delta",
    "file_lock": "spindle.core._atomic",
    "kill_point": "spindle.core._killpoints",
    "load_sources": "spindle.core._sources",
    "load_yaml_model": "spindle.core._yaml",
    "open_dataset": "spindle.core._delta",
    "parse_overrides": "spindle.core._yaml",
    "sha256_bytes": "spindle.core._hashing",
    "sha256_dir": "spindle.core._hashing",
    "sha256_file": "spindle.core._hashing",
    "sha256_json": "spindle.core._hashing",
    "step_progress": "spindle.core._progress",
    "table_exists": "spindle.core._delta",
    "write_partition": "spindle.core._delta",
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
    "KILL_ENV",
    "WORKSPACE_FILE",
    "Artifact",
    "ConfigError",
    "DataError",
    "Deployment",
    "Evaluation",
    "EvaluationConfig",
    "FeatureError",
    "GateBlocked",
    "GateDecision",
    "IngestResult",
    "ModelConfig",
    "ModelServingConfig",
    "ModelVersion",
    "NotFound",
    "OrchestrationError",
    "Progress",
    "ProgressEvent",
    "RawPartition",
    "RegistryError",
    "ScheduleConfig",
    "SchemaError",
    "ServingConfig",
    "ServingError",
    "SimulationConfig",
    "SourceConfig",
    "SourceDeclaration",
    "SpindleError",
    "TableVersion",
    "TrainingConfig",
    "TrainingError",
    "TrainingSet",
    "TransientError",
    "ValidationFailed",
    "Verdict",
    "Workspace",
    "WorkspaceConfig",
    "WorkspaceError",
    "apply_overrides",
    "artifact_fields",
    "artifact_from_fields",
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "check_order",
    "current_version",
    "file_lock",
    "kill_point",
    "load_sources",
    "load_yaml_model",
    "open_dataset",
    "parse_overrides",
    "sha256_bytes",
    "sha256_dir",
    "sha256_file",
    "sha256_json",
    "step_progress",
    "table_exists",
    "write_partition",
]
