"""The retractions pages: every recorded retraction (fraud found later, a deletion request)
with how many model versions its rows reached, and one retraction's impact: the versions that
trained on its rows (or warm-started from one that did), the deployments that served them,
and, for a deletion, how far its physical removal got."""

from __future__ import annotations

from typing import Any

import spindle

IMPACT_KIND = "retraction_impact"  # the impact recorded when the retraction was recorded


def _recorded_reach(ctx: spindle.ReadContext) -> dict[str, dict[str, int]]:
    """``{retraction id: {"model@version": rows}}`` as recorded with each retraction: the list
    page reads these records only (the full impact re-reads every version's training data)."""
    found: dict[str, dict[str, int]] = {}
    for record in ctx.store.find_artifacts(IMPACT_KIND):
        rows = record.properties.get("rows") or {}
        found[str(record.properties.get("retraction"))] = {str(k): int(v) for k, v in rows.items()}
    return found


def retractions_reaching(ctx: spindle.ReadContext, version: str) -> list[dict[str, Any]]:
    """The retractions whose rows ``version`` (``model@V``) trained on, as recorded with each
    (its own training set's rows; the retraction's page also follows warm starts)."""
    return [
        {"id": rid, "rows": rows[version]}
        for rid, rows in sorted(_recorded_reach(ctx).items())
        if rows.get(version)
    ]


def _forget(ctx: spindle.ReadContext, retraction_id: str) -> Any:
    """A deletion's physical removal as recorded (a ``ForgetReport``; None when none was
    started)."""
    try:
        found = spindle.forget_status(ctx, retraction_id)  # type: ignore[arg-type]
    except spindle.SpindleError:
        return None
    return found[-1] if found else None


def retractions_view(ctx: spindle.ReadContext, query: dict[str, str]) -> dict[str, Any]:
    """Every retraction, newest first, with the versions its rows reached when recorded."""
    reach = _recorded_reach(ctx)
    rows = []
    for info in reversed(spindle.retractions(ctx)):
        reached = reach.get(info.id)
        rows.append(
            {
                "info": info,
                "versions": None if reached is None else sorted(reached),
                "rows_trained_on": None if reached is None else sum(reached.values()),
            }
        )
    return {"retractions": rows}


def retraction_view(ctx: spindle.ReadContext, retraction_id: str) -> dict[str, Any]:
    """One retraction's impact, as the registry and the pinned table versions tell now."""
    try:
        impact = spindle.retraction_impact(ctx, retraction_id)
    except spindle.DataError as exc:
        if "no retraction" in str(exc):
            raise spindle.NotFound(str(exc)) from None
        raise
    models = sorted({v.model for v in impact.versions})
    return {
        "info": impact.retraction,
        "versions": impact.versions,
        "deployments": impact.deployments,
        "unknown": impact.unknown,
        "models": models,
        "forget": _forget(ctx, retraction_id) if impact.retraction.reason == "deletion" else None,
    }
