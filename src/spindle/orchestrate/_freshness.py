"""Freshness SLOs that count recovery: age of the serving model + time to detect + time to retrain.

A model's data age is the time since the end of the data its serving version saw (the version
trained for day D saw data up to D 00:00). Waiting for the age alone to cross the tolerance is
too late: fixing anything then takes the time to notice (the next scheduled run) plus a retrain.
So the state turns ``warn`` when age + expected recovery reaches 75% of the tolerance and
``critical`` when it reaches the tolerance — before the SLO is broken — and ``violated`` after.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from spindle.orchestrate._context import Context, ReadContext, production_date
from spindle.orchestrate._cron import Cron
from spindle.orchestrate._estimates import ingest_s, model_run_s
from spindle.orchestrate._verdicts import validated_days

WARN_SHARE = 0.75
THROUGHPUT_DROP = 0.5


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
    runs = [r for r in ctx.store.runs(model=model, step="train", status="succeeded", limit=8)]
    rates = [float(r.resources.get("examples_per_s", 0) or 0) for r in runs]
    rates = [r for r in rates if r > 0]
    if len(rates) < 4:
        return None
    last, history = rates[0], rates[1:]
    typical = statistics.median(history)
    if last < THROUGHPUT_DROP * min(history):
        return f"training throughput {last:,.0f} ex/s is below the recent range ({min(history):,.0f}-{max(history):,.0f}, median {typical:,.0f})"
    return None


def _efficiency(ctx: Context | ReadContext, model: str) -> dict[str, Any] | None:
    if model not in ctx.store.models():
        return None
    ready = [v for v in ctx.store.versions(model) if v.status == "ready" and v.artifact_id]
    if not ready:
        return None
    metrics = ctx.store.get_artifact(ready[-1].artifact_id or "").properties.get("metrics", {})
    keys = (
        "examples",
        "examples_per_s",
        "cpu_s",
        "m_examples_per_cpu_s",
        "utilisation",
        "peak_rss_mb",
    )
    return {"version": ready[-1].version} | {k: metrics.get(k) for k in keys}


def freshness_report(
    ctx: Context | ReadContext, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Per model: serving version, data age, expected recovery, tolerance, state and alerts."""
    present = now or workspace_now(ctx)
    rows = []
    for model in ctx.workspace.model_names():
        config, _ = ctx.workspace.model_config(model)
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
        if age_h is None:
            state, message = "critical", "no version is serving: the popularity fallback answers"
        elif age_h >= tolerance_h:
            state, message = (
                "violated",
                f"data age {age_h:.1f} h exceeds the tolerance {tolerance_h:.0f} h",
            )
        elif age_h + recovery_h >= tolerance_h:
            state, message = (
                "critical",
                f"age {age_h:.1f} h + recovery {recovery_h:.1f} h reaches the tolerance {tolerance_h:.0f} h: a failure now could not be fixed in time",
            )
        elif age_h + recovery_h >= WARN_SHARE * tolerance_h:
            state, message = (
                "warn",
                f"age {age_h:.1f} h + recovery {recovery_h:.1f} h is {100 * (age_h + recovery_h) / tolerance_h:.0f}% of the tolerance",
            )
        else:
            state, message = (
                "ok",
                f"age {age_h:.1f} h + recovery {recovery_h:.1f} h within {tolerance_h:.0f} h",
            )
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
