"""Orchestration: the runner that records steps, the daily pipeline, the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.orchestrate._airflow import export_airflow
    from spindle.orchestrate._backfill_step import BackfillRun, backfill
    from spindle.orchestrate._context import Context, ReadContext
    from spindle.orchestrate._cron import Cron
    from spindle.orchestrate._daily import DayReport, days_between, run_day
    from spindle.orchestrate._data_steps import (
        DayIngest,
        accept_validation,
        ingest,
        load_days,
        undo_ingest,
        validate,
    )
    from spindle.orchestrate._demo import run_demo, serve_and_probe
    from spindle.orchestrate._deploy import Deployed, deploy, rollback
    from spindle.orchestrate._doctor import Problem, doctor
    from spindle.orchestrate._evaluate_step import evaluate_version
    from spindle.orchestrate._executors import (
        InProcessExecutor,
        RayExecutor,
        make_executor,
        run_job,
    )
    from spindle.orchestrate._fleet import (
        CatchUpPlan,
        PlannedTask,
        catch_up,
        due_models,
        plan_catch_up,
        run_all,
    )
    from spindle.orchestrate._forget import forget_rows, forget_status, resume_forget
    from spindle.orchestrate._forget_journal import ForgetReport
    from spindle.orchestrate._freshness import freshness_report, workspace_now
    from spindle.orchestrate._infra_validation import InfraReport, infra_validate
    from spindle.orchestrate._inspect import lineage_report, serving_check, status_report
    from spindle.orchestrate._leftovers import Leftover, clean_leftovers, find_leftovers
    from spindle.orchestrate._model_common import (
        LoadedConfig,
        build_training_set,
        load_config,
        model_dir,
        training_window,
    )
    from spindle.orchestrate._models_view import model_report, models_report, parse_weights, route
    from spindle.orchestrate._policy import check_served_policies
    from spindle.orchestrate._push_step import checked_infra, push
    from spindle.orchestrate._replicas import Replica, replica_seed, train_replicas
    from spindle.orchestrate._reproduce import reproduce_version
    from spindle.orchestrate._resources import ResourceMeter
    from spindle.orchestrate._retract_impact import (
        ExposedVersion,
        RetractionImpact,
        RetrainTask,
        retraction_impact,
        retractions_with_impact,
        retrain_plan,
        run_retrain,
    )
    from spindle.orchestrate._retract_step import (
        RetractionInfo,
        RetractOutcome,
        get_retraction,
        record_retraction,
        retractions,
    )
    from spindle.orchestrate._runner import Runner, StepOutcome, current_step_key, is_transient
    from spindle.orchestrate._schedule import read_heartbeat, run_schedule, tick
    from spindle.orchestrate._speed_check import SpeedCheck, SpeedRun, speed_check
    from spindle.orchestrate._train_step import choose_base, train_version
    from spindle.orchestrate._verdicts import day_verdict
    from spindle.orchestrate._workspace_init import init_workspace

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "RetractOutcome": "spindle.orchestrate._retract_step",
    "RetractionInfo": "spindle.orchestrate._retract_step",
    "get_retraction": "spindle.orchestrate._retract_step",
    "record_retraction": "spindle.orchestrate._retract_step",
    "retractions": "spindle.orchestrate._retract_step",
    "ExposedVersion": "spindle.orchestrate._retract_impact",
    "RetractionImpact": "spindle.orchestrate._retract_impact",
    "RetrainTask": "spindle.orchestrate._retract_impact",
    "retraction_impact": "spindle.orchestrate._retract_impact",
    "retractions_with_impact": "spindle.orchestrate._retract_impact",
    "retrain_plan": "spindle.orchestrate._retract_impact",
    "run_retrain": "spindle.orchestrate._retract_impact",
    "BackfillRun": "spindle.orchestrate._backfill_step",
    "CatchUpPlan": "spindle.orchestrate._fleet",
    "Context": "spindle.orchestrate._context",
    "Cron": "spindle.orchestrate._cron",
    "DayIngest": "spindle.orchestrate._data_steps",
    "DayReport": "spindle.orchestrate._daily",
    "Deployed": "spindle.orchestrate._deploy",
    "InProcessExecutor": "spindle.orchestrate._executors",
    "InfraReport": "spindle.orchestrate._infra_validation",
    "Leftover": "spindle.orchestrate._leftovers",
    "LoadedConfig": "spindle.orchestrate._model_common",
    "PlannedTask": "spindle.orchestrate._fleet",
    "Problem": "spindle.orchestrate._doctor",
    "RayExecutor": "spindle.orchestrate._executors",
    "ReadContext": "spindle.orchestrate._context",
    "Replica": "spindle.orchestrate._replicas",
    "ResourceMeter": "spindle.orchestrate._resources",
    "Runner": "spindle.orchestrate._runner",
    "SpeedCheck": "spindle.orchestrate._speed_check",
    "SpeedRun": "spindle.orchestrate._speed_check",
    "StepOutcome": "spindle.orchestrate._runner",
    "backfill": "spindle.orchestrate._backfill_step",
    "build_training_set": "spindle.orchestrate._model_common",
    "catch_up": "spindle.orchestrate._fleet",
    "check_served_policies": "spindle.orchestrate._policy",
    "checked_infra": "spindle.orchestrate._push_step",
    "choose_base": "spindle.orchestrate._train_step",
    "current_step_key": "spindle.orchestrate._runner",
    "clean_leftovers": "spindle.orchestrate._leftovers",
    "day_verdict": "spindle.orchestrate._verdicts",
    "days_between": "spindle.orchestrate._daily",
    "deploy": "spindle.orchestrate._deploy",
    "doctor": "spindle.orchestrate._doctor",
    "due_models": "spindle.orchestrate._fleet",
    "evaluate_version": "spindle.orchestrate._evaluate_step",
    "export_airflow": "spindle.orchestrate._airflow",
    "ForgetReport": "spindle.orchestrate._forget_journal",
    "forget_rows": "spindle.orchestrate._forget",
    "forget_status": "spindle.orchestrate._forget",
    "resume_forget": "spindle.orchestrate._forget",
    "find_leftovers": "spindle.orchestrate._leftovers",
    "freshness_report": "spindle.orchestrate._freshness",
    "infra_validate": "spindle.orchestrate._infra_validation",
    "ingest": "spindle.orchestrate._data_steps",
    "load_days": "spindle.orchestrate._data_steps",
    "init_workspace": "spindle.orchestrate._workspace_init",
    "is_transient": "spindle.orchestrate._runner",
    "lineage_report": "spindle.orchestrate._inspect",
    "load_config": "spindle.orchestrate._model_common",
    "make_executor": "spindle.orchestrate._executors",
    "model_dir": "spindle.orchestrate._model_common",
    "model_report": "spindle.orchestrate._models_view",
    "models_report": "spindle.orchestrate._models_view",
    "parse_weights": "spindle.orchestrate._models_view",
    "plan_catch_up": "spindle.orchestrate._fleet",
    "push": "spindle.orchestrate._push_step",
    "read_heartbeat": "spindle.orchestrate._schedule",
    "replica_seed": "spindle.orchestrate._replicas",
    "reproduce_version": "spindle.orchestrate._reproduce",
    "rollback": "spindle.orchestrate._deploy",
    "route": "spindle.orchestrate._models_view",
    "run_all": "spindle.orchestrate._fleet",
    "run_day": "spindle.orchestrate._daily",
    "run_demo": "spindle.orchestrate._demo",
    "run_job": "spindle.orchestrate._executors",
    "run_schedule": "spindle.orchestrate._schedule",
    "serve_and_probe": "spindle.orchestrate._demo",
    "serving_check": "spindle.orchestrate._inspect",
    "speed_check": "spindle.orchestrate._speed_check",
    "status_report": "spindle.orchestrate._inspect",
    "tick": "spindle.orchestrate._schedule",
    "train_replicas": "spindle.orchestrate._replicas",
    "train_version": "spindle.orchestrate._train_step",
    "training_window": "spindle.orchestrate._model_common",
    "undo_ingest": "spindle.orchestrate._data_steps",
    "accept_validation": "spindle.orchestrate._data_steps",
    "validate": "spindle.orchestrate._data_steps",
    "workspace_now": "spindle.orchestrate._freshness",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "BackfillRun",
    "CatchUpPlan",
    "Context",
    "Cron",
    "DayIngest",
    "DayReport",
    "Deployed",
    "ExposedVersion",
    "ForgetReport",
    "InProcessExecutor",
    "InfraReport",
    "Leftover",
    "LoadedConfig",
    "PlannedTask",
    "Problem",
    "RayExecutor",
    "ReadContext",
    "Replica",
    "ResourceMeter",
    "RetractOutcome",
    "RetractionImpact",
    "RetractionInfo",
    "RetrainTask",
    "Runner",
    "SpeedCheck",
    "SpeedRun",
    "StepOutcome",
    "accept_validation",
    "backfill",
    "build_training_set",
    "catch_up",
    "check_served_policies",
    "checked_infra",
    "choose_base",
    "clean_leftovers",
    "current_step_key",
    "day_verdict",
    "days_between",
    "deploy",
    "doctor",
    "due_models",
    "evaluate_version",
    "export_airflow",
    "find_leftovers",
    "forget_rows",
    "forget_status",
    "freshness_report",
    "get_retraction",
    "infra_validate",
    "ingest",
    "init_workspace",
    "is_transient",
    "lineage_report",
    "load_config",
    "load_days",
    "make_executor",
    "model_dir",
    "model_report",
    "models_report",
    "parse_weights",
    "plan_catch_up",
    "push",
    "read_heartbeat",
    "record_retraction",
    "replica_seed",
    "reproduce_version",
    "resume_forget",
    "retraction_impact",
    "retractions",
    "retractions_with_impact",
    "retrain_plan",
    "rollback",
    "route",
    "run_all",
    "run_day",
    "run_demo",
    "run_job",
    "run_retrain",
    "run_schedule",
    "serve_and_probe",
    "serving_check",
    "speed_check",
    "status_report",
    "tick",
    "train_replicas",
    "train_version",
    "training_window",
    "undo_ingest",
    "validate",
    "workspace_now",
]
