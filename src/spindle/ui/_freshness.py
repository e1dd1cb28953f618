"""The workspace's present for the freshness SLOs, read in two queries.

``spindle.freshness_report(ctx)`` finds it by asking each validated day's verdict in turn (two
queries a day: ~0.1 s on a year of days); this reads the same facts at once and applies the same
rule as ``spindle.orchestrate.workspace_now``: the start of the day after the newest day whose
latest validation came after its latest ingest undo. tests/ui checks that both agree.
"""

from __future__ import annotations

import datetime as dt

import spindle
from spindle.registry import artifact_fields


def workspace_now(ctx: spindle.ReadContext) -> dt.datetime:
    validated: dict[str, dt.datetime] = {}
    for r in artifact_fields(ctx.store, "validation_report", ["date"]):
        if r["date"]:
            validated[str(r["date"])] = r["created_at"]  # oldest first: the newest wins
    undone: dict[str, dt.datetime] = {}
    for r in artifact_fields(ctx.store, "ingest_undo", ["date"]):
        if r["date"]:
            undone[str(r["date"])] = r["created_at"]
    days = [d for d, at in validated.items() if d not in undone or undone[d] < at]
    if not days:
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return dt.datetime.combine(dt.date.fromisoformat(max(days)) + dt.timedelta(days=1), dt.time())
