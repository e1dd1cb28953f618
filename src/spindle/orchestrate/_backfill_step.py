"""The backfill step: recompute one feature version for past days as a recorded run.

:func:`spindle.features.backfill_feature` does the work (per day, idempotent, resumable); this
step pins what it reads (the raw tables of the feature's group and the feature table's current
version), runs it through the runner, and records a ``feature_backfill`` report and the feature
table version written, with lineage edges from every table read. Identity is the feature's
reference and computation fingerprint, the days, and those table versions: a rerun with nothing
new to read is the recorded run, returned without work; a rerun after the tables moved on runs
again and, when every day is already right, records a run that wrote no table version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spindle.core import (
    Artifact,
    FeatureError,
    TableVersion,
    current_version,
    sha256_json,
    table_exists,
)
from spindle.features import (
    BackfillResult,
    backfill_feature,
    feature_table_path,
    latest_feature_day,
    refresh_online_day,
)
from spindle.orchestrate._context import Context
from spindle.orchestrate._daily import days_between
from spindle.orchestrate._retract_step import retracted_keys

log = logging.getLogger(__name__)

REPORT_KIND = "feature_backfill"


@dataclass(frozen=True)
class BackfillRun:
    """A recorded backfill: each day's status, the table version written, and the run."""

    result: BackfillResult
    table: TableVersion | None
    """The feature table version the backfill wrote (None when every day was already right)."""
    skipped: bool
    """True when an identical backfill had already run: its recorded result is returned."""
    run_id: str


def _pinned(ctx: Context, ref: str) -> tuple[dict[str, int], TableVersion]:
    """The raw tables the feature's group reads, and the feature table, at their versions now."""
    definition = ctx.features.get(ref)
    tables = ctx.workspace.tables_dir
    raw = {
        f"raw/{source}": current_version(tables / "raw" / source, f"raw/{source}").version
        for source in definition.sources or sorted(p.name for p in (tables / "raw").iterdir())
        if table_exists(tables / "raw" / source)
    }
    feature = feature_table_path(tables, definition.group)
    return raw, current_version(feature, f"features/{definition.group}")


def _report(ref: str, uri: str, identity: dict[str, Any], result: BackfillResult) -> Artifact:
    props = result.to_dict()
    content_hash = sha256_json({"identity": identity, "days": props["days"]})
    return Artifact(REPORT_KIND, f"backfill:{ref}:{content_hash[:12]}", uri, content_hash, props)


def _rebuild(artifacts: list[Any]) -> tuple[BackfillResult, TableVersion | None]:
    report = next(a for a in artifacts if a.kind == REPORT_KIND).properties()
    table = next((a for a in artifacts if isinstance(a, TableVersion)), None)
    result = BackfillResult(
        report["ref"], report["column"], dict(report["days"]), report["table_version"]
    )
    return result, table


def backfill(
    ctx: Context,
    ref: str,
    since: str,
    until: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BackfillRun:
    """Recompute feature ``ref`` for the days ``since``..``until`` and record it as a run.

    Args:
        ref: the feature version, ``group.name@V``.
        since: first day, ``YYYY-MM-DD``.
        until: last day; the newest day of the feature table when None.
        progress: called as ``progress("backfill REF", done, total)`` after each day.

    Returns:
        Each day's status, the feature table version written (if any), whether the run was
        an already-recorded one, and the run id (lineage: raw and feature table versions read →
        report and feature table version written).

    Raises:
        FeatureError: ``ref`` is unknown or per-request, its feature table does not exist, its
            computation changed since it was first materialised, or the computation failed
            (the run is recorded as failed; days already committed stay committed).

    Example:
        >>> backfill(ctx, "account.minutes_28d@2", "2026-01-01").result.written
        ['2026-01-01', '2026-01-02']
    """
    definition = ctx.features.get(ref)
    if definition.computation == "request":
        raise FeatureError(
            f"{ref} is computed per request (group {definition.group}); it has no table to backfill"
        )
    tables = ctx.workspace.tables_dir
    last = until or latest_feature_day(tables, ref, ctx.features)
    days = days_between(since, last)
    raw, feature = _pinned(ctx, ref)
    read = [TableVersion.at(name, v, str(tables / name)) for name, v in raw.items()] + [feature]
    for table in read:
        ctx.store.record_artifact(table)
    identity = {
        "ref": ref,
        "fingerprint": definition.fingerprint,
        "days": days,
        "tables": {t.table: t.version for t in read},
    }
    retracted = retracted_keys(ctx)  # their rows are not read; a new one is new work
    if retracted:
        identity["retractions"] = sorted(k.retraction_id for ks in retracted.values() for k in ks)

    def work() -> tuple[Artifact] | tuple[Artifact, TableVersion]:
        pool = ctx.tasks
        result = backfill_feature(
            tables,
            ctx.features,
            ref,
            days,
            progress=progress,
            versions=raw,
            exclusions=retracted,
            # days as tasks of the cluster; one at a time here in-process
            map_days=None
            if pool.name == "in-process"
            else lambda fn, calls, label: pool.map(fn, calls, label=label),
        )
        report = _report(ref, feature.uri, identity, result)
        if result.table_version is None:
            return (report,)
        return report, TableVersion.at(feature.table, result.table_version, feature.uri)

    outcome = ctx.runner.run(
        "backfill",
        work,
        identity=identity,
        inputs=[t.id for t in read],
        params={"ref": ref, "since": since, "until": last},
        rebuild=lambda artifacts: tuple(artifacts),
    )
    result, written = _rebuild(list(outcome.value))
    _refresh_online(ctx, definition.group, definition.entity_keys, days, definition.ttl_s)
    return BackfillRun(result, written, outcome.skipped, outcome.run_id)


def _refresh_online(
    ctx: Context, view: str, keys: tuple[str, ...], days: list[str], ttl_s: int | None
) -> None:
    """Serve what the backfill added: the online store's current day of the view is restated
    from the table when the backfill covered it (a new version's column reaches serving)."""
    store = ctx.online_store()
    try:
        done = refresh_online_day(store, ctx.workspace.tables_dir, view, keys or None, days, ttl_s)
        if done is not None:
            log.info("online store: %s", done.summary())
    finally:
        store.close()
