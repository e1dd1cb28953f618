"""Which days are data: the latest validation verdict of a day, unless its ingest was undone.

Kept apart from the data steps (DuckDB, SciPy, Delta) so that `spindle status`, which asks
only which days are validated, stays light.
"""

from __future__ import annotations

from datetime import datetime

from spindle.data import HISTORY_DAYS, IngestUndo
from spindle.orchestrate._context import Context, ReadContext


def day_verdict(ctx: Context | ReadContext, date: str) -> str | None:
    """The verdict of the latest validation of ``date``.

    None when the day was never validated, or its ingest was undone since (it is then no
    longer ingested: not training data, not history, not counted by freshness).
    """
    record = ctx.store.latest_artifact("validation_report", date=date)
    if record is None:
        return None
    undo = ctx.store.latest_artifact(IngestUndo.kind, date=date)
    if undo is not None and undo.created_at >= record.created_at:
        return None
    return str(record.properties["verdict"])


def validated_days(ctx: Context | ReadContext) -> list[str]:
    """Every day with a validation verdict that was not undone since, oldest first."""
    days = {
        str(r.properties["date"])
        for r in ctx.store.find_artifacts("validation_report")
        if r.properties.get("date")
    }
    return sorted(d for d in days if day_verdict(ctx, d) is not None)


def accepted_days(ctx: Context | ReadContext) -> set[str]:
    """Days an operator accepted into the reference window (``spindle validate accept``)."""
    return {
        str(r.properties["date"])
        for r in ctx.store.find_artifacts("validation_accept")
        if r.properties.get("date")
    }


def reference_days(ctx: Context | ReadContext, date: str, n: int = HISTORY_DAYS) -> dict[str, str]:
    """The days ``date`` is judged against, oldest first, each with its verdict.

    The last ``n`` ingested (and not undone) days before ``date`` that did not FAIL validation, or that an
    operator accepted (verdict ``accepted``), however far back: a fault that lasts longer than
    the window never becomes the reference by itself, and the window never empties because
    recent days failed.
    """
    accepted = accepted_days(ctx)
    chosen: dict[str, str] = {}
    for day in reversed([d for d in _ingested_days(ctx) if d < date]):
        verdict = day_verdict(ctx, day)
        if day in accepted:
            chosen[day] = "accepted"
        elif verdict != "fail":  # None: ingested, not validated yet
            chosen[day] = verdict or "unvalidated"
        if len(chosen) == n:
            break
    return dict(sorted(chosen.items()))


def _ingested_days(ctx: Context | ReadContext) -> list[str]:
    """Days with a succeeded ingest run that was not undone since, oldest first."""
    last: dict[str, datetime] = {}
    for run in ctx.store.runs(step="ingest", status="succeeded", limit=None):
        at = run.ended_at or run.started_at
        if run.date and (run.date not in last or at > last[run.date]):
            last[run.date] = at
    undone: dict[str, datetime] = {}  # one query for every day's undo, not one per day
    for undo in ctx.store.find_artifacts(IngestUndo.kind):
        day = str(undo.properties.get("date"))
        if day not in undone or undo.created_at > undone[day]:
            undone[day] = undo.created_at
    return sorted(day for day, at in last.items() if day not in undone or undone[day] < at)
