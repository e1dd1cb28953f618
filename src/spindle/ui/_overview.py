"""The overview page: every model's serving versions, freshness SLO, last run and alerts, and
the newest day's data verdict."""

from __future__ import annotations

from typing import Any

import spindle
from spindle.registry import artifact_fields, runs_page
from spindle.ui._freshness import workspace_now


def overview(ctx: spindle.ReadContext) -> dict[str, Any]:
    """What the overview shows, read through the public API (as ``spindle status`` does)."""
    known = set(ctx.store.models())
    routing = {r["model"]: r for r in spindle.models_report(ctx)}
    fresh = {f["model"]: f for f in spindle.freshness_report(ctx, workspace_now(ctx))}
    models = []
    for name in ctx.workspace.model_names():
        last = runs_page(ctx.store, model=name, limit=1).runs
        failed = runs_page(ctx.store, model=name, status="failed", limit=1)
        f = fresh.get(name) or {}
        alerts = list(f.get("alerts", []))
        if last and last[0].status == "failed":
            alerts.append(f"last run {last[0].step} for {last[0].date} failed: {last[0].error}")
        models.append(
            {
                "model": name,
                "trained": name in known,
                "aliases": routing.get(name, {}).get("aliases", {}),
                "routing": routing.get(name, {}).get("routing", {}),
                "versions": routing.get(name, {}).get("versions", 0),
                "freshness": f,
                "last_run": last[0] if last else None,
                "failed_runs": failed.total,
                "alerts": alerts,
            }
        )
    verdicts = artifact_fields(
        ctx.store, "validation_report", ["date", "verdict", "anomalies"], limit=1
    )
    latest = verdicts[-1] if verdicts else None
    return {"models": models, "data": latest}
