"""Orchestration: the runner that records steps, the daily pipeline, the demo."""

from __future__ import annotations

from spindle.orchestrate._airflow import export_airflow
from spindle.orchestrate._backfill_step import BackfillRun, backfill
from spindle.orchestrate._context import Context
from spindle.orchestrate._cron import Cron
from spindle.orchestrate._daily import DayReport, days_between, run_day
from spindle.orchestrate._data_steps import DayIngest, day_verdict, ingest, validate
from spindle.orchestrate._demo import run_demo, serve_and_probe
from spindle.orchestrate._doctor import Problem, doctor
from spindle.orchestrate._evaluate_step import evaluate_version
from spindle.orchestrate._executors import InProcessExecutor, RayExecutor, make_executor, run_job
from spindle.orchestrate._fleet import (
    CatchUpPlan,
    PlannedTask,
    catch_up,
    due_models,
    plan_catch_up,
    run_all,
)
from spindle.orchestrate._freshness import freshness_report, workspace_now
from spindle.orchestrate._infra_validation import InfraReport, infra_validate
from spindle.orchestrate._inspect import lineage_report, serving_check, status_report
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    deployed_before,
    load_config,
    model_dir,
    training_window,
)
from spindle.orchestrate._models_view import model_report, models_report, parse_weights, route
from spindle.orchestrate._push_step import push
from spindle.orchestrate._replicas import Replica, replica_seed, train_replicas
from spindle.orchestrate._resources import ResourceMeter
from spindle.orchestrate._runner import Runner, StepOutcome, current_step_key, is_transient
from spindle.orchestrate._schedule import read_heartbeat, run_schedule, tick
from spindle.orchestrate._speed_check import SpeedCheck, SpeedRun, speed_check
from spindle.orchestrate._train_step import choose_base, train_version
from spindle.orchestrate._workspace_init import init_workspace

__all__ = [
    "BackfillRun",
    "CatchUpPlan",
    "Context",
    "Cron",
    "DayIngest",
    "DayReport",
    "InProcessExecutor",
    "InfraReport",
    "LoadedConfig",
    "PlannedTask",
    "Problem",
    "RayExecutor",
    "Replica",
    "ResourceMeter",
    "Runner",
    "SpeedCheck",
    "SpeedRun",
    "StepOutcome",
    "backfill",
    "build_training_set",
    "catch_up",
    "choose_base",
    "current_step_key",
    "day_verdict",
    "days_between",
    "deployed_before",
    "doctor",
    "due_models",
    "evaluate_version",
    "export_airflow",
    "freshness_report",
    "infra_validate",
    "ingest",
    "init_workspace",
    "is_transient",
    "lineage_report",
    "load_config",
    "make_executor",
    "model_dir",
    "model_report",
    "models_report",
    "parse_weights",
    "plan_catch_up",
    "push",
    "read_heartbeat",
    "replica_seed",
    "route",
    "run_all",
    "run_day",
    "run_demo",
    "run_job",
    "run_schedule",
    "serve_and_probe",
    "serving_check",
    "speed_check",
    "status_report",
    "tick",
    "train_replicas",
    "train_version",
    "training_window",
    "validate",
    "workspace_now",
]
