"""Freshness SLOs that count recovery: the figures of each model read from the records.

This module gathers the serving version's data date, the schedule's detection interval and the
expected retrain time (``_estimates``); the SLO arithmetic (age + recovery against the
tolerance), the throughput alert and the efficiency figures are ``spindle.monitor``'s.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from spindle.monitor import efficiency, freshness_state, throughput_alert
from spindle.orchestrate._context import Context, ReadContext, production_date
from spindle.orchestrate._cron import Cron
from spindle.orchestrate._estimates import ingest_s, model_run_s
from spindle.orchestrate._verdicts import validated_days


def workspace_now(ctx: Context | ReadContext) -> dt.datetime:
    """The workspace's present: the start of the day after the newest validated day.

    Logs arrive a day at a time, so that is "now" for data freshness; it also keeps simulated
    workspaces (dated in the simulator's calendar) meaningful. Commands accept ``--now``.
    """
    days = validated_days(ctx)  # a day whose ingest was undone is no longer data
    if not days:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return dt.datetime.combine(dt.date.fromisoformat(max(days)) + dt.timedelta(days=1), dt.time())


def _throughput_alert(ctx: Context | ReadContext, model: str) -> str | None:
    runs = ctx.store.runs(model=model, step="train", status="succeeded", limit=8)
    rates = [float(r.resources.get("examples_per_s", 0) or 0) for r in runs]
    return throughput_alert([r for r in rates if r > 0])


def _efficiency(ctx: Context | ReadContext, model: str) -> dict[str, Any] | None:
    if model not in ctx.store.models():
        return None
    ready = [v for v in ctx.store.versions(model) if v.status == "ready" and v.artifact_id]
    if not ready:
        return None
    metrics = ctx.store.get_artifact(ready[-1].artifact_id or "").properties.get("metrics", {})
    return efficiency(ready[-1].version, metrics)


def freshness_report(
    ctx: Context | ReadContext, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Per model: serving version, data age, expected recovery, tolerance, state and alerts."""
    present = now or workspace_now(ctx)
    rows = []
    for model in ctx.workspace.model_names():
        config, _ = ctx.workspace.model_config(model, check_sql=False)  # runs no SQL
        version, date = production_date(ctx, model)
        detect_h = Cron(config.schedule.cron).interval_h(present.date())
        retrain_h = (model_run_s(ctx, model) + ingest_s(ctx)) / 3600
        tolerance_h = config.schedule.freshness_tolerance_hours
        age_h = (
            None
            if date is None
            else (present - dt.datetime.fromisoformat(date)).total_seconds() / 3600
        )
        recovery_h = detect_h + retrain_h
        state, message = freshness_state(age_h, recovery_h, tolerance_h)
        alerts = [message] if state != "ok" else []
        throughput = _throughput_alert(ctx, model)
        if throughput:
            alerts.append(throughput)
        rows.append(
            {
                "model": model,
                "priority": config.priority,
                "serving_version": version,
                "serving_data_until": date,
                "now": present.isoformat(),
                "age_h": None if age_h is None else round(age_h, 2),
                "detect_h": round(detect_h, 2),
                "retrain_h": round(retrain_h, 3),
                "recovery_h": round(recovery_h, 2),
                "tolerance_h": tolerance_h,
                "state": state,
                "alerts": alerts,
                "efficiency": _efficiency(ctx, model),
            }
        )
    return rows
