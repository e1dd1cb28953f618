"""Pipeline steps for data: ingest a day, compute its features, validate it."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from spindle.core import DataError, IngestResult, RawPartition, TableVersion, sha256_json
from spindle.data import (
    HISTORY_DAYS,
    INGEST_ORDER,
    Anomaly,
    IngestUndo,
    ValidationAccept,
    ValidationReport,
    ingest_day,
    partition_files,
    raw_fingerprint,
    remove_day,
    unread_files,
    validate_day,
)
from spindle.features import catch_up_online, compute_features, pin_versions
from spindle.orchestrate._context import Context
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


def _raw_partitions(ctx: Context, date: str) -> list[RawPartition]:
    parts = []
    fingerprint = raw_fingerprint(ctx.workspace.raw_dir, date)
    for source in INGEST_ORDER:
        files = partition_files(ctx.workspace.raw_dir, source, date)
        if files:
            parts.append(
                RawPartition(
                    source, date, str(files[0].parent), sha256_json(fingerprint[source]), len(files)
                )
            )
    return parts


def _refuse_future(date: str, allow_future: bool) -> None:
    today = dt.datetime.now(dt.UTC).date()
    if not allow_future and dt.date.fromisoformat(date) > today:
        raise DataError(
            f"{date} is in the future (today is {today.isoformat()} UTC): its logs cannot be "
            "complete yet. Pass `--allow-future` to ingest it anyway (e.g. a simulated calendar)."
        )


def ingest(ctx: Context, date: str, *, allow_future: bool = False) -> DayIngest:
    """Ingest raw partitions of ``date`` and compute that day's feature rows (idempotent).

    Args:
        allow_future: ingest a day after today's date (UTC); refused by default, since a day's
            logs are complete only once it is over.

    Raises:
        DataError: ``date`` is in the future, has no raw partition of any source (nothing is
            recorded), or a file cannot be read (recorded as a failed ``ingest`` run).
        SchemaError: a required column is missing or has the wrong type (recorded likewise).
    """
    ws = ctx.workspace
    _refuse_future(date, allow_future)
    partitions = _raw_partitions(ctx, date)
    unread = tuple(p.relative_to(ws.raw_dir).as_posix() for p in unread_files(ws.raw_dir, date))
    if not partitions:
        found = (
            f" Found {len(unread)} file(s) of that day that spindle does not read: "
            f"{', '.join(unread[:5])}{' ...' if len(unread) > 5 else ''} (known sources: "
            f"{', '.join(INGEST_ORDER)})."
            if unread
            else ""
        )
        raise DataError(
            f"no raw data for {date}: no source has a partition {ws.raw_dir}/<source>/date={date}/; "
            f"export (or `spindle simulate`) that day first. Nothing was recorded.{found}"
        )
    # After `spindle ingest --undo`, the same raw files must load again: the undo count is part
    # of the identity (absent before any undo, so earlier keys are unchanged).
    undone = len(ctx.store.find_artifacts(IngestUndo.kind, date=date))
    redo = {"undone": undone} if undone else {}
    for part in partitions:
        ctx.store.record_artifact(part)

    def load() -> tuple[IngestResult | TableVersion, ...]:
        result = ingest_day(ws.raw_dir, ws.tables_dir, date)
        return (result, *result.tables)

    loaded = ctx.runner.run(
        "ingest",
        load,
        identity={"raw": [p.content_hash for p in partitions], **redo},
        date=date,
        inputs=[p.id for p in partitions],
        rebuild=lambda artifacts: tuple(artifacts),
    )
    result: IngestResult = next(a for a in loaded.value if isinstance(a, IngestResult))
    definitions = ctx.features.fingerprint()

    def compute() -> tuple[TableVersion, ...]:
        computed = compute_features(ws.tables_dir, ctx.features, date)
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
    loads = [
        r.ended_at or r.started_at
        for r in ctx.store.runs(step="ingest", status="succeeded", limit=None)
        if r.date == date
    ]
    if not loads:
        return "never"
    last_undo = ctx.store.latest_artifact(IngestUndo.kind, date=date)
    return "undone" if last_undo is not None and last_undo.created_at >= max(loads) else "ingested"


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
    reference = reference_days(ctx, date, HISTORY_DAYS)
    undone = len(ctx.store.find_artifacts(IngestUndo.kind, date=date))

    def check() -> ValidationReport:
        report = validate_day(ws.tables_dir, date, reference=tuple(reference))
        return replace(report, ingest_round=undone, history_verdicts=reference)

    outcome = ctx.runner.run(
        "validate",
        check,
        identity={"tables": versions, "reference": reference},
        date=date,
        rebuild=lambda artifacts: _report_from(artifacts[0].properties()),
    )
    report: ValidationReport = outcome.value
    return report


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
        result = remove_day(ws.tables_dir, date, reason=reason)
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
