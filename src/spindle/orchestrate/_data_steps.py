"""Pipeline steps for data: ingest a day, compute its features, validate it."""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from spindle.core import DataError, IngestResult, RawPartition, SpindleError, TableVersion
from spindle.data import (
    Anomaly,
    IngestUndo,
    SourceRoot,
    ValidationAccept,
    ValidationReport,
    day_content_hash,
    ingest_day,
    last_event_day,
    list_partition_dates,
    raw_partitions,
    remove_day,
    unread_files,
    validate_day,
)
from spindle.features import catch_up_online, compute_features, pin_versions
from spindle.orchestrate._context import Context
from spindle.orchestrate._retract_step import retracted_keys
from spindle.orchestrate._runner import StepOutcome
from spindle.orchestrate._tasks import call
from spindle.orchestrate._verdicts import day_verdict, reference_days

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayIngest:
    """The outcome of ingesting one day (raw tables, features, online store)."""

    result: IngestResult
    features: tuple[TableVersion, ...]
    skipped: bool
    # files of the day under the raw folder that ingest did not read (relative to it): said,
    # never silently ignored
    unread_files: tuple[str, ...] = ()


def sources_root(ctx: Context) -> SourceRoot:
    """Where the readers find the sources: the workspace's folder and its ``raw_dir`` (the
    storage options of ``s3://`` locations)."""
    return SourceRoot(str(ctx.workspace.root), ctx.workspace.raw_location)


def raw_data_of_day(ctx: Context, date: str) -> list[RawPartition]:
    """The raw inputs of ``date`` among the declared sources (dimensions aside, which hold on
    every day): empty when no source has data for the day yet.

    Example:
        >>> bool(raw_data_of_day(ctx, "2026-01-02"))  # doctest: +SKIP
        True
    """
    parts = raw_partitions(sources_root(ctx), ctx.sources, date)
    return [p for p in parts if ctx.sources[p.source].layout != "static"]


def _no_raw_data(ctx: Context, date: str, unread: tuple[str, ...]) -> DataError:
    """The error for a day no declared source has data for, listing where each is looked for."""
    ws = ctx.workspace
    if not ctx.sources:
        return DataError(
            f"no raw data for {date}: the workspace declares no source (add sources/*.yaml,"
            f" see docs/your-data.md). Nothing was recorded."
        )
    where = "; ".join(f"{name} at {decl.location}" for name, decl in ctx.sources.items())
    found = (
        f" Found {len(unread)} file(s) of that day that spindle does not read: "
        f"{', '.join(unread[:5])}{' ...' if len(unread) > 5 else ''}."
        if unread
        else ""
    )
    return DataError(
        f"no raw data for {date}: no declared source has data for that day (declared: {where};"
        f" locations relative to {ws.root}). Export (or `spindle simulate`) that day first."
        f" Nothing was recorded.{found}"
    )


def _refuse_future(date: str, allow_future: bool) -> None:
    today = dt.datetime.now(dt.UTC).date()
    if not allow_future and dt.date.fromisoformat(date) > today:
        raise DataError(
            f"{date} is in the future (today is {today.isoformat()} UTC): its logs cannot be "
            "complete yet. Pass `--allow-future` to ingest it anyway (e.g. a simulated calendar)."
        )


def _load_raw(
    ctx: Context, date: str, allow_future: bool
) -> tuple[StepOutcome[Any], dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """The ``ingest`` step of ``date`` (its raw partitions checked and loaded, one task).

    Returns:
        The step's outcome, what makes its identity new work (undos, retractions), the
        recorded retractions, and the day's files no source reads.
    """
    ws = ctx.workspace
    _refuse_future(date, allow_future)
    unread = tuple(unread_files(sources_root(ctx), ctx.sources, ws.raw_location, date))
    partitions = raw_partitions(sources_root(ctx), ctx.sources, date)
    if all(ctx.sources[p.source].layout == "static" for p in partitions):
        raise _no_raw_data(ctx, date, unread)
    # After `spindle ingest --undo`, the same raw files must load again: the undo count is part
    # of the identity (absent before any undo, so earlier keys are unchanged).
    undone = len(ctx.store.find_artifacts(IngestUndo.kind, date=date))
    redo: dict[str, Any] = {"undone": undone} if undone else {}
    # Recorded retractions: their rows are set aside (reason retracted:<id>) and left out of
    # the features; a new one makes the day's ingest new work (absent when none is recorded).
    retracted = retracted_keys(ctx)
    if retracted:
        redo["retractions"] = sorted(k.retraction_id for ks in retracted.values() for k in ks)
    for part in partitions:
        ctx.store.record_artifact(part)

    def load() -> tuple[IngestResult | TableVersion, ...]:
        result = call(
            ctx.tasks,
            ingest_day,
            sources_root(ctx),
            ctx.sources,
            ws.tables_dir,
            date,
            retracted,
            label=f"ingest {date}",
        )
        return (result, *result.tables)

    loaded = ctx.runner.run(
        "ingest",
        load,
        identity={"raw": [p.content_hash for p in partitions], **redo},
        date=date,
        inputs=[p.id for p in partitions],
        rebuild=lambda artifacts: tuple(artifacts),
    )
    return loaded, redo, retracted, unread


def load_days(
    ctx: Context, dates: list[str], *, allow_future: bool = False
) -> dict[str, SpindleError]:
    """Load the raw partitions of ``dates`` at once, each day a task of the context's pool.

    The first phase of ingesting a range of days on a cluster: each day's ``ingest`` step
    (checked and loaded rows; see :func:`ingest`) is recorded as it always is, and runs
    beside the others. :func:`ingest` of each day, in order, then finds its load done and
    computes the day's features, which may read the days before it. In this process (the
    in-process pool) nothing runs here: :func:`ingest` loads each day itself.

    Returns:
        Per day that could not be loaded, its error (recorded as a failed run when the step
        ran); the other days are loaded.
    """
    if ctx.tasks.name == "in-process" or len(dates) < 2:
        return {}
    failed: dict[str, SpindleError] = {}
    _ = ctx.sources  # loaded once here, not by each thread
    ctx.tasks.start()  # Ray is started (or reached) from this, the main, thread
    with ThreadPoolExecutor(max_workers=min(len(dates), 16)) as threads:
        futures = {day: threads.submit(_load_raw, ctx, day, allow_future) for day in dates}
        for day, future in futures.items():
            try:
                future.result()
            except SpindleError as exc:
                failed[day] = exc
    return failed


def ingest(ctx: Context, date: str, *, allow_future: bool = False) -> DayIngest:
    """Ingest raw partitions of ``date`` and compute that day's feature rows (idempotent).

    Args:
        allow_future: ingest a day after today's date (UTC); refused by default, since a day's
            logs are complete only once it is over.

    Raises:
        DataError: ``date`` is in the future, no declared source has data for it (nothing is
            recorded; the message lists the sources and their locations), or a partition
            cannot be read (recorded as a failed ``ingest`` run).
        ConfigError: a source declaration (or validation.yaml) is invalid.
        SchemaError: a required column is missing or has the wrong type (recorded likewise).
    """
    ws = ctx.workspace
    loaded, redo, retracted, unread = _load_raw(ctx, date, allow_future)
    result: IngestResult = next(a for a in loaded.value if isinstance(a, IngestResult))
    definitions = ctx.features.fingerprint()

    def compute() -> tuple[TableVersion, ...]:
        computed = call(
            ctx.tasks,
            compute_features,
            ws.tables_dir,
            ctx.features,
            date,
            retracted,
            label=f"features {date}",
        )
        _materialize(ctx, date, {g: rows for g, (_, rows) in computed.items()})
        return tuple(v for v, _ in computed.values())

    feats = ctx.runner.run(
        "features",
        compute,
        identity={"ingest": result.content_hash, "definitions": definitions, **redo},
        date=date,
        inputs=[t.id for t in result.tables],
        rebuild=lambda artifacts: tuple(artifacts),
    )
    return DayIngest(result, feats.value, loaded.skipped and feats.skipped, unread)


def _materialize(ctx: Context, date: str, rows: dict[str, pa.Table]) -> None:
    """Bring the online store up to ``date``, one partition at a time (see ``catch_up_online``).

    Only new or changed rows are written, each partition in one transaction; days an outage
    left out are applied in order first, and a day before the store's watermark is skipped.
    """
    store = ctx.online_store()
    try:
        for done in catch_up_online(store, ctx.workspace.tables_dir, date, rows):
            log.info("online store: %s", done.summary())
    finally:
        store.close()


def _ingest_state(ctx: Context, date: str) -> str:
    """``never`` ingested, ``undone`` since its last ingest, or ``ingested``."""
    # the latest ingest *run* (a re-ingest of the same files records no new artifact)
    loads = _ingest_runs_of(ctx, date)
    if not loads:
        return "never"
    last_undo = ctx.store.latest_artifact(IngestUndo.kind, date=date)
    return "undone" if last_undo is not None and last_undo.created_at >= max(loads) else "ingested"


def _ingest_runs_of(ctx: Context, date: str) -> list[dt.datetime]:
    """When the succeeded ingest runs of ``date`` ended: those among the newest runs that hold
    any (a window of 8, 64, ... runs, then all), so the latest of them is the day's last load.

    Runs come newest first: validating the day just ingested reads a few runs instead of every
    ingest run of a year, once per day (0.16 CPU-s per call at day 143 of the flights year).

    Returns:
        The end (or start) times of those runs; empty when the day was never ingested.
    """
    limit: int | None = 8
    while True:
        runs = ctx.store.runs(step="ingest", status="succeeded", limit=limit)
        loads = [r.ended_at or r.started_at for r in runs if r.date == date]
        if loads or limit is None or len(runs) < limit:
            return loads
        limit = limit * 8 if limit < 4096 else None


def validate(ctx: Context, date: str) -> ValidationReport:
    """Validate the ingested day and record the report (idempotent for unchanged tables).

    Raises:
        DataError: the day was never ingested, or its ingest was undone (nothing is recorded:
            an empty day is not a FAIL verdict).
    """
    ws = ctx.workspace
    state = _ingest_state(ctx, date)
    if state != "ingested":
        why = "was never ingested" if state == "never" else "had its ingest undone"
        raise DataError(f"{date} {why}: run `spindle ingest --date {date}` first")
    versions = pin_versions(ws.tables_dir)
    # The reference is the last healthy (or accepted) days, however far back: never a FAIL day.
    reference = reference_days(ctx, date, ctx.validation.history_days)
    undone = len(ctx.store.find_artifacts(IngestUndo.kind, date=date))
    missing = _missing_at_ingest(ctx, date)

    def check() -> ValidationReport:
        report = validate_day(
            ws.tables_dir,
            date,
            reference=tuple(reference),
            sources=ctx.sources,
            config=ctx.validation,
            missing=missing,
        )
        return replace(report, ingest_round=undone, history_verdicts=reference)

    outcome = ctx.runner.run(
        "validate",
        check,
        # an edited validation.yaml validates the day again (an edited source declaration
        # re-ingests it, which changes the tables)
        identity={
            "tables": versions,
            "reference": reference,
            "validation": ctx.validation.model_dump(mode="json"),
            **({"missing": list(missing)} if missing else {}),
        },
        date=date,
        rebuild=lambda artifacts: _report_from(artifacts[0].properties()),
    )
    report: ValidationReport = outcome.value
    return report


def _missing_at_ingest(ctx: Context, date: str) -> tuple[str, ...]:
    """The declared sources the day's ingest found no data for (``IngestResult.missing_sources``)
    of the ingest of today's raw files (its content hash), else of the latest ingest."""
    found = ctx.store.find_artifacts(IngestResult.kind, date=date)
    if not found:
        return ()
    current = day_content_hash(sources_root(ctx), ctx.sources, date)
    same = [a for a in found if a.content_hash == current]
    latest = max(same or found, key=lambda a: a.created_at)
    return tuple(latest.properties.get("missing_sources", ()))


def _report_from(props: dict[str, Any]) -> ValidationReport:
    anomalies = tuple(Anomaly(**a) for a in props["anomalies"])
    return ValidationReport(
        props["date"],
        props["verdict"],
        anomalies,
        tuple(props["history_days"]),
        stats=props.get("stats", {}),
        ingest_round=int(props.get("ingest_round", 0)),
        history_verdicts=dict(props.get("history_verdicts", {})),
    )


def accept_validation(ctx: Context, date: str, *, reason: str) -> ValidationAccept:
    """Accept the validated day ``date`` into the reference window (a recorded run with the reason).

    For a real, lasting change (a new partner, a pricing policy): later days are judged against
    the accepted day instead of flagging the new level as a fault forever. The day's own verdict
    (and so whether training uses it) is unchanged.

    Raises:
        DataError: the day has no validation verdict (never validated, or its ingest was undone).
    """
    verdict = day_verdict(ctx, date)
    if verdict is None:
        raise DataError(
            f"{date} has no validation verdict: run `spindle validate --date {date}` before accepting it"
        )

    def accept() -> ValidationAccept:
        return ValidationAccept(date, reason, verdict)

    outcome = ctx.runner.run(
        "validate_accept",
        accept,
        identity={"date": date, "reason": reason, "verdict": verdict},
        date=date,
        params={"reason": reason},
        rebuild=lambda artifacts: ValidationAccept(**artifacts[0].properties()),
    )
    accepted: ValidationAccept = outcome.value
    return accepted


def undo_ingest(ctx: Context, date: str, *, reason: str) -> IngestUndo:
    """Remove ``date``'s rows from every table its ingest wrote (a recorded ``ingest_undo`` run).

    The tables get new versions without the day (Delta time travel keeps the old rows); the
    day then counts as not ingested (no verdict, so not training data nor history, and not
    fresh data), and a later ``ingest`` of it runs again instead of being skipped as done.
    The online store keeps the rows it served (it holds the latest value per entity).

    Raises:
        DataError: the day was never ingested (nothing to undo).
    """
    ws = ctx.workspace
    state = _ingest_state(ctx, date)
    if state == "never":
        raise DataError(f"{date} was never ingested: nothing to undo")
    if state == "undone":
        raise DataError(
            f"the ingest of {date} was undone already; `spindle ingest --date {date}` loads it again"
        )
    versions = pin_versions(ws.tables_dir)

    def undo() -> tuple[IngestUndo | TableVersion, ...]:
        dimensions = [n for n, d in ctx.sources.items() if d.layout == "static"]
        result = remove_day(ws.tables_dir, date, reason=reason, dimensions=dimensions)
        return (result, *result.tables)

    outcome = ctx.runner.run(
        "ingest_undo",
        undo,
        identity={"tables": versions, "reason": reason},
        date=date,
        params={"reason": reason},
        rebuild=lambda artifacts: tuple(artifacts),
    )
    found = next(a for a in outcome.value if a.kind == IngestUndo.kind)
    if isinstance(found, IngestUndo):
        return found
    props = found.properties()  # a skipped re-run: rebuilt from the recorded artifact
    tables = tuple(a for a in outcome.value if isinstance(a, TableVersion))
    return IngestUndo(date, found.uri, props["reason"], int(props["rows_removed"]), tables)


def latest_raw_day(ctx: Context) -> str | None:
    """The last day any declared source has data for (None when none has any).

    Daily sources are listed by their partitions; a dump or Delta source is read (once per
    process, see ``dump_cache_stats``) and its last event day taken. Dimensions hold no days.
    """
    days: list[str] = []
    for decl in ctx.sources.values():
        if decl.layout == "daily":
            days.extend(list_partition_dates(sources_root(ctx), decl)[-1:])
        else:
            last = last_event_day(sources_root(ctx), decl)
            days.extend([last] if last else [])
    return max(days) if days else None
