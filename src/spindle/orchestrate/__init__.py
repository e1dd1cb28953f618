"""Orchestration: the runner that records steps, the daily pipeline, the demo."""

from __future__ import annotations

from spindle.orchestrate._context import Context
from spindle.orchestrate._daily import DayReport, days_between, run_day
from spindle.orchestrate._data_steps import DayIngest, day_verdict, ingest, validate
from spindle.orchestrate._demo import run_demo, serve_and_probe
from spindle.orchestrate._evaluate_step import evaluate_version
from spindle.orchestrate._inspect import lineage_report, status_report
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    deployed_before,
    load_config,
    model_dir,
    training_window,
)
from spindle.orchestrate._push_step import push
from spindle.orchestrate._resources import ResourceMeter
from spindle.orchestrate._runner import Runner, StepOutcome
from spindle.orchestrate._train_step import choose_base, train_version
from spindle.orchestrate._workspace_init import init_workspace

__all__ = [
    "Context",
    "DayIngest",
    "DayReport",
    "LoadedConfig",
    "ResourceMeter",
    "Runner",
    "StepOutcome",
    "build_training_set",
    "choose_base",
    "day_verdict",
    "days_between",
    "deployed_before",
    "evaluate_version",
    "ingest",
    "init_workspace",
    "lineage_report",
    "load_config",
    "model_dir",
    "push",
    "run_day",
    "run_demo",
    "serve_and_probe",
    "status_report",
    "train_version",
    "training_window",
    "validate",
]
