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


@dataclass(frozen=True)
class ViewReach:
    """Where a retraction reaches through views: the views computed from its source, and the
    backfills since it was recorded (``(feature ref, finished)`` of each that started at or
    before its first day), read once per impact or plan."""

    info: RetractionInfo
    views: tuple[DerivedView, ...]
    backfills: tuple[tuple[str, dt.datetime], ...]

    def exposed(
        self, trainset: dict[str, Any], built_at: dt.datetime | None, pins: list[str]
    ) -> list[str]:
        """The views through which a training set (its manifest's ``training_set``; ``pins``,
        the version's feature versions) read values computed over the retraction's rows."""
        info = self.info
        dates = sorted(trainset.get("dates") or ())
        pinned = trainset.get("table_versions") or {}
        if not info.days or not dates:
            return []
        found = []
        for view in self.views:
            refs = [r for r in view.refs if r in pins]
            if not refs or view.table not in pinned or dates[-1] < info.days[0]:
                continue
            reach = view.lookback_days
            if reach is not None and dates[0] > _shift(info.days[-1], reach):
                continue  # its days are past the lookback of the last retracted day
            if built_at is not None and self._recomputed(refs, built_at):
                continue
            found.append(view.name)
        return found

    def stale(self, refs: list[str]) -> list[str]:
        """The pinned feature versions ``refs`` of views computed from the retraction's source
        that no backfill since the retraction recomputed: the retraining backfills them first."""
        now = dt.datetime.now(dt.UTC)
        found = []
        for view in self.views:
            pinned = [r for r in view.refs if r in refs]
            if self.info.days and pinned and not self._recomputed(pinned, now):
                found += pinned
        return sorted(set(found))

    def _recomputed(self, refs: list[str], built_at: dt.datetime) -> bool:
        """Whether every feature of ``refs`` was backfilled before ``built_at``."""
        done = {ref for ref, finished in self.backfills if finished <= built_at}
        return bool(refs) and done >= set(refs)


def view_reach(ctx: Context | ReadContext, info: RetractionInfo) -> ViewReach:
    """The retraction's :class:`ViewReach` (one read of the backfill runs)."""
    recorded = dt.datetime.fromisoformat(info.at)
    backfills = []
    for run in ctx.store.runs(step="backfill", status="succeeded", limit=None):
        params = dict(run.params)
        finished = _aware(run.ended_at or run.started_at)
        if finished < recorded or not info.days or str(params.get("since")) > info.days[0]:
            continue
        backfills.append((str(params.get("ref")), finished))
    return ViewReach(info, tuple(derived_views(ctx, info.source)), tuple(backfills))


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
