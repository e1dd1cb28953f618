"""Which days are data: the latest validation verdict of a day, unless its ingest was undone.

Kept apart from the data steps (DuckDB, SciPy, Delta) so that `spindle status`, which asks
only which days are validated, stays light.
"""

from __future__ import annotations

from spindle.data import IngestUndo
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
