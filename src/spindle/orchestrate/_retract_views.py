"""A retraction's reach through feature views: the views computed from its source hold values
(aggregates such as a user's purchases in 28 days) that counted its rows, until a backfill
since the retraction recomputes them without the rows.

A version is exposed through a view when its training set pinned the view's feature table,
its days reach a day on or after one of the retraction's days (within the view's lookback),
and no backfill of the view's features covering those days finished after the retraction
and before the training set was built. The retraining plan backfills those features first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from spindle.orchestrate._context import Context, ReadContext
from spindle.orchestrate._retract_step import RetractionInfo


@dataclass(frozen=True)
class DerivedView:
    """A view computed from the retraction's source, and how far back a day's rows reach."""

    name: str
    table: str
    refs: tuple[str, ...]
    lookback_days: int | None


def derived_views(ctx: Context | ReadContext, source: str) -> list[DerivedView]:
    """The declared views whose SQL reads ``source``, with their feature versions."""
    registry = _registry(ctx)
    found = []
    for view in registry.feature_views.values():
        if source not in view.sources:
            continue
        refs = tuple(
            sorted(
                ref
                for ref, definition in registry.definitions.items()
                if definition.group == view.name and definition.computation != "request"
            )
        )
        lookback = None if view.lookback_s is None else -(-view.lookback_s // 86400)
        found.append(DerivedView(view.name, f"features/{view.name}", refs, lookback))
    return found


def _registry(ctx: Context | ReadContext) -> Any:
    if isinstance(ctx, Context):
        return ctx.features
    from spindle.features import FeatureRegistry

    return FeatureRegistry.load(ctx.workspace.features_dir)


def exposed_views(
    ctx: Context | ReadContext,
    info: RetractionInfo,
    trainset: dict[str, Any],
    built_at: dt.datetime | None,
    views: list[DerivedView],
    pins: list[str],
) -> list[str]:
    """The views through which a training set (its manifest's ``training_set``; ``pins``, the
    version's feature versions) read values computed over the retraction's rows."""
    dates = sorted(trainset.get("dates") or ())
    pinned = trainset.get("table_versions") or {}
    if not info.days or not dates:
        return []
    found = []
    for view in views:
        refs = [r for r in view.refs if r in pins]
        if not refs or view.table not in pinned or dates[-1] < info.days[0]:
            continue
        if view.lookback_days is not None:
            last_reached = _shift(info.days[-1], view.lookback_days)
            if dates[0] > last_reached:
                continue
        if built_at is not None and _recomputed(ctx, info, refs, built_at):
            continue
        found.append(view.name)
    return found


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def _recomputed(
    ctx: Context | ReadContext, info: RetractionInfo, refs: list[str], built_at: dt.datetime
) -> bool:
    """Whether every feature of ``refs`` was backfilled from the retraction's first day after
    it was recorded and before ``built_at``."""
    recorded = dt.datetime.fromisoformat(info.at)
    done: set[str] = set()
    for run in ctx.store.runs(step="backfill", status="succeeded", limit=None):
        params = dict(run.params)
        finished = _aware(run.ended_at or run.started_at)
        if not recorded <= finished <= built_at:
            continue
        if params.get("ref") in refs and str(params.get("since")) <= info.days[0]:
            done.add(str(params["ref"]))
    return bool(refs) and done >= set(refs)


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def backfills_needed(ctx: Context, info: RetractionInfo, refs: list[str]) -> list[str]:
    """The pinned feature versions of views computed from the retraction's source that no
    backfill since the retraction recomputed: the retraining backfills them first."""
    now = dt.datetime.now(dt.UTC)
    stale = []
    for view in derived_views(ctx, info.source):
        pinned = [r for r in view.refs if r in refs]
        if info.days and pinned and not _recomputed(ctx, info, pinned, now):
            stale += pinned
    return sorted(set(stale))
