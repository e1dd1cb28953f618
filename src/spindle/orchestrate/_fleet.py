"""Several models: ``run-all`` for one day, and the catch-up plan after an outage.

Both order work by model priority (1 = most important), then by staleness (the model whose
serving version is oldest first), and fit it into a capacity in hours using durations estimated
from past runs. One model's failure never stops the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from spindle.core import Progress, ProgressEvent, SpindleError
from spindle.orchestrate._context import Context, production_date
from spindle.orchestrate._cron import Cron
from spindle.orchestrate._daily import DayReport, days_between, ingest_and_validate, run_day
from spindle.orchestrate._data_steps import latest_raw_day, raw_data_of_day
from spindle.orchestrate._estimates import ingest_s, model_run_s
from spindle.orchestrate._executors import Executor, InProcessExecutor
from spindle.orchestrate._leftovers import clean_leftovers
from spindle.orchestrate._verdicts import day_verdict


@dataclass(frozen=True)
class PlannedTask:
    """One unit of catch-up work with its estimate and where it falls against the capacity."""

    order: int
    kind: str  # "ingest" or "run"
    date: str
    model: str | None
    priority: int | None
    estimated_s: float
    cumulative_s: float
    within_capacity: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CatchUpPlan:
    since: str
    until: str
    capacity_s: float | None
    tasks: list[PlannedTask] = field(default_factory=list)
    freshness: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "capacity_s": self.capacity_s,
            "tasks": [t.to_dict() for t in self.tasks],
            "freshness": self.freshness,
        }


def _ordered_models(ctx: Context, models: list[str]) -> list[tuple[int, str | None, str]]:
    """(priority, serving date, model) sorted: most important first, then most stale."""
    rows = []
    for name in models:
        config, _ = ctx.workspace.model_config(name)
        rows.append((config.priority, production_date(ctx, name)[1], name))
    return sorted(rows, key=lambda r: (r[0], r[1] or "", r[2]))


def due_models(ctx: Context, date: str) -> list[str]:
    """Models whose schedule fires on ``date``."""
    day = dt.date.fromisoformat(date)
    return [
        m
        for m in ctx.workspace.model_names()
        if Cron(ctx.workspace.model_config(m)[0].schedule.cron).due_on(day)
    ]


def run_all(
    ctx: Context,
    date: str,
    *,
    max_parallel: int = 1,
    capacity_hours: float | None = None,
    executor: Executor | None = None,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> list[DayReport]:
    """Run every model due on ``date`` in priority order, within ``capacity_hours``.

    ``progress`` hears ``run-all DATE``: models finished of those chosen, as each finishes.

    A model whose production version was trained for a later day than ``date`` keeps it: the
    new version is refused at push (recorded, and said in the report) unless ``allow_older``.

    The day is ingested and validated once, then each chosen model's pipeline runs on the
    executor (in-process by default; ``max_parallel`` threads, or Ray tasks). Models beyond the
    capacity are reported as deferred; a model's failure is reported and the others go on.
    """
    clean_leftovers(ctx)  # before any worker opens a context: crashed runs' temp files
    reports: list[DayReport] = []
    probe = DayReport("*", date)
    ingest_and_validate(ctx, date, probe)  # shared by every model, once
    budget = None if capacity_hours is None else capacity_hours * 3600
    chosen, used = [], 0.0
    for _, _, model in _ordered_models(ctx, due_models(ctx, date)):
        estimate = model_run_s(ctx, model)
        if budget is not None and used + estimate > budget:
            deferred = DayReport(model, date, validation=probe.validation)
            deferred.error = (
                f"deferred: needs ~{estimate:.0f} s, {max(budget - used, 0):.0f} s of capacity left"
            )
            reports.append(deferred)
            continue
        used += estimate
        chosen.append(model)
    runner = executor or InProcessExecutor(max_parallel)
    jobs = [(m, date) for m in chosen]
    finished: list[str] = []

    def on_done(report: DayReport) -> None:
        finished.append(report.model)
        if progress is not None:
            outcome = report.error.split(":")[0] if report.error else f"gate {report.gate}"
            detail = f"{report.model}: {outcome}"
            progress(
                ProgressEvent(f"run-all {date}", len(finished), len(jobs), "models", None, detail)
            )

    if progress is not None and jobs:
        progress(ProgressEvent(f"run-all {date}", 0, len(jobs), "models", None, ""))
    return runner.run(ctx.workspace.root, jobs, allow_older=allow_older, on_done=on_done) + reports


def plan_catch_up(
    ctx: Context, since: str, until: str | None = None, *, capacity_hours: float | None = None
) -> CatchUpPlan:
    """The backlog (days to ingest, models to retrain) ordered by priority and staleness.

    Every missing day is ingested (features need the history); each model is then retrained
    once, for the last day: incremental models warm-start from their serving version, so only
    the newest run is needed to become fresh.
    """
    end = until or latest_raw_day(ctx)
    if end is None:
        raise SpindleError(f"no raw data under {ctx.workspace.raw_location}; nothing to catch up")
    plan = CatchUpPlan(since, end, None if capacity_hours is None else capacity_hours * 3600)
    tasks: list[tuple[str, str, str | None, int | None, float, str]] = []
    per_day = ingest_s(ctx)
    for day in days_between(since, end):
        done = day_verdict(ctx, day) is not None  # an undone day is missing again
        if not done and raw_data_of_day(ctx, day):
            tasks.append(("ingest", day, None, None, per_day, "not ingested yet"))
    for priority, serving, model in _ordered_models(ctx, ctx.workspace.model_names()):
        if serving is not None and serving >= end:
            continue
        why = f"serving data up to {serving}" if serving else "no version serving"
        tasks.append(("run", end, model, priority, model_run_s(ctx, model), why))
    used = 0.0
    for i, (kind, day, task_model, task_priority, estimate, why) in enumerate(tasks, start=1):
        used += estimate
        fits = plan.capacity_s is None or used <= plan.capacity_s
        plan.tasks.append(
            PlannedTask(
                i,
                kind,
                day,
                task_model,
                task_priority,
                round(estimate, 1),
                round(used, 1),
                fits,
                why,
            )
        )
    for priority, serving, model in _ordered_models(ctx, ctx.workspace.model_names()):
        run = next((t for t in plan.tasks if t.model == model), None)
        fresh = run is not None and run.within_capacity
        plan.freshness.append(
            {
                "model": model,
                "priority": priority,
                "serving_data_until": serving,
                "after_plan_data_until": end if fresh else serving,
                "ready_after_s": run.cumulative_s if run else 0.0,
                "fresh_after_plan": fresh or (serving is not None and serving >= end),
            }
        )
    return plan


def catch_up(
    ctx: Context,
    plan: CatchUpPlan,
    *,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Carry out a plan's tasks within capacity, in order; report each task's outcome.

    A run never replaces a production version trained for a later day unless ``allow_older``.
    ``progress`` hears ``catch-up``: tasks done of the plan's, and each run's training steps.
    """
    clean_leftovers(ctx)  # crashed runs' temp files, when no other process is at work
    outcomes: list[dict[str, Any]] = []
    for task in plan.tasks:
        if progress is not None:
            what = f"now: {task.kind} {task.model + ' ' if task.model else ''}{task.date}"
            progress(ProgressEvent("catch-up", len(outcomes), len(plan.tasks), "tasks", None, what))
        if not task.within_capacity:
            outcomes.append(task.to_dict() | {"status": "deferred"})
            continue
        try:
            if task.kind == "ingest":
                report = DayReport("*", task.date)
                ingest_and_validate(ctx, task.date, report)
                outcomes.append(
                    task.to_dict() | {"status": "done", "validation": report.validation}
                )
            else:
                assert task.model is not None
                result = run_day(
                    ctx, task.model, task.date, allow_older=allow_older, progress=progress
                )
                status = "failed" if result.error else "done"
                outcomes.append(
                    task.to_dict()
                    | {
                        "status": status,
                        "version": result.version,
                        "gate": result.gate,
                        "error": result.error,
                    }
                )
        except SpindleError as exc:
            outcomes.append(task.to_dict() | {"status": "failed", "error": str(exc)})
    if progress is not None and plan.tasks:
        progress(ProgressEvent("catch-up", len(outcomes), len(plan.tasks), "tasks", None, "done"))
    return outcomes
