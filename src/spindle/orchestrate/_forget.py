"""Forget: remove the rows of a deletion request physically, everywhere spindle copied them.

``forget_rows`` deletes the rows whose column holds one of the ids from the raw Delta table of
the source and of every source declaring a column of that name, from feature tables and other
tables holding that column, the quarantine, the online store, materialised training sets and
holdouts, and the landed raw files; removes scratch and spill leftovers; then, once the
retention allows, purges every older version of the tables touched (vacuum, checkpoint, old
log entries). Each place is journalled as it completes (``_forget_journal``), so a crash at
any point resumes where it stopped; the finished forget is recorded as a ``forget`` run (counts
and files per place, never the ids) and the journal is deleted.

Kill points (``SPINDLE_KILL_AT``, see ``core/_killpoints.py``): ``forget:counted`` (a place's
count journalled, nothing deleted), ``forget:acted`` (deleted, not yet journalled done),
``forget:purged`` (a table's older versions removed), ``forget:redacted`` (the store's records
redacted) and ``forget:recorded`` (the record written, the journal not yet deleted).
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Sequence
from typing import TYPE_CHECKING

from spindle.core import DataError, SpindleError, WorkspaceError, file_lock, kill_point
from spindle.data import purge_table
from spindle.orchestrate import _forget_places as places
from spindle.orchestrate._forget_impact import files_quoting, impact_of
from spindle.orchestrate._forget_journal import (
    ForgetReport,
    Journal,
    check_retraction_id,
    journals,
    now_iso,
)

if TYPE_CHECKING:
    from spindle.orchestrate._context import Context


def forget_rows(
    ctx: Context,
    retraction_id: str,
    source: str,
    column: str,
    ids: Sequence[str],
    *,
    retention_hours: float | None = None,
) -> ForgetReport:
    """Remove physically every row of ``source`` (and of every source declaring ``column``)
    whose ``column`` holds one of ``ids``, and every copy spindle made of them.

    Args:
        ctx: the open context of the workspace.
        retraction_id: the retraction recorded for the request (names the journal and record).
        source: the declared source the request is about.
        column: a declared column of ``source`` holding the ids.
        ids: the values to forget.
        retention_hours: how long replaced files stay before vacuum (default: the workspace's
            ``forget.retention_hours``, 0 unless set).

    Returns:
        The report; a rerun of a finished forget returns the recorded one and changes nothing.
        ``status == "waiting"`` when the retention has not passed: rerun (or
        ``spindle forget resume ID``) after ``vacuum_after``.

    Raises:
        WorkspaceError: an unknown source or column, no ids, an unusable retraction id, or a
            forget of this id in progress with another request (nothing is changed).

    Example:
        >>> report = forget_rows(ctx, "r-12", "users", "user_id", ["u42"])  # doctest: +SKIP
        >>> report.rows_removed["raw:users"]  # doctest: +SKIP
        1
    """
    check_retraction_id(retraction_id)
    state = ctx.workspace.state_dir
    journal = Journal.load(state, retraction_id)
    if journal is None:
        recorded = recorded_forget(ctx, retraction_id)
        if recorded is not None:
            return recorded
        wanted = _checked_request(ctx, source, column, ids)
        hours = ctx.workspace.config.forget.retention_hours
        request = {
            "retraction_id": retraction_id,
            "source": source,
            "column": column,
            "ids": wanted,
            "retention_hours": hours if retention_hours is None else float(retention_hours),
        }
        journal = Journal.create(state, request)
    elif (journal.data["source"], journal.data["column"], sorted(journal.data["ids"])) != (
        source,
        column,
        sorted({str(i) for i in ids}),
    ):
        raise WorkspaceError(
            f"forget {retraction_id} is in progress for another request; finish it with "
            f"`spindle forget resume {retraction_id}` or use a new retraction id"
        )
    return _locked_continue(ctx, retraction_id)


def resume_forget(ctx: Context, retraction_id: str) -> ForgetReport:
    """Continue the forget ``retraction_id`` from its journal (a finished one: its record).

    Raises:
        WorkspaceError: no forget of that id was started in this workspace.
    """
    check_retraction_id(retraction_id)
    journal = Journal.load(ctx.workspace.state_dir, retraction_id)
    if journal is not None:
        return _locked_continue(ctx, retraction_id)
    recorded = recorded_forget(ctx, retraction_id)
    if recorded is None:
        raise WorkspaceError(
            f"no forget {retraction_id!r} in {ctx.workspace.root}: none in progress and none "
            "recorded; `spindle forget status` lists them"
        )
    return recorded


def _locked_continue(ctx: Context, retraction_id: str) -> ForgetReport:
    """Continue the journal of ``retraction_id`` holding the workspace's forget lock: two
    processes never work on one forget at once, and the second reads the journal as the first
    left it (or the record, when the first finished it)."""
    state = ctx.workspace.state_dir
    with file_lock(state / "forget.lock"):
        journal = Journal.load(state, retraction_id)
        if journal is not None:
            try:
                return _continue(ctx, journal)
            except SpindleError as exc:  # a library's message may quote the ids: never shown
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                for value in sorted(journal.data["ids"], key=len, reverse=True):
                    text = text.replace(str(value), "[forgotten]")
                raise DataError(
                    f"forget {retraction_id} stopped: {text}; what it did is journalled: fix the "
                    f"cause and run `spindle forget resume {retraction_id}`"
                ) from None
    recorded = recorded_forget(ctx, retraction_id)
    if recorded is None:  # the journal vanished without a record: someone removed it
        raise WorkspaceError(
            f"forget {retraction_id}: its journal is gone and nothing was recorded; run the "
            "forget again with the ids"
        )
    return recorded


def forget_status(ctx: Context, retraction_id: str | None = None) -> list[ForgetReport]:
    """Forgets in progress (``status``: ``in progress`` or ``waiting``, rows counted so far)
    and finished ones (``done``, as recorded), oldest first; only ``retraction_id``'s if given.

    Raises:
        WorkspaceError: ``retraction_id`` names no forget of this workspace.
    """
    found = []
    for journal in journals(ctx.workspace.state_dir):
        if retraction_id in (None, journal.data["retraction_id"]):
            status = "waiting" if "deleted_at" in journal.data else "in progress"
            found.append(_report(ctx, journal, status, [], journal.data.get("vacuum_after")))
    running = {r.retraction_id for r in found}
    for run in reversed(ctx.store.runs(step="forget", status="succeeded", limit=None)):
        params = dict(run.params)
        rid = params.get("retraction_id")
        if rid not in running and retraction_id in (None, rid):
            found.append(ForgetReport.from_dict(params, run.id))
    if retraction_id is not None and not found:
        check_retraction_id(retraction_id)
        raise WorkspaceError(
            f"no forget {retraction_id!r} in {ctx.workspace.root}; `spindle forget status` "
            "lists them"
        )
    return found


def recorded_forget(ctx: Context, retraction_id: str) -> ForgetReport | None:
    """The report of the finished forget ``retraction_id`` (None when none was recorded)."""
    for run in ctx.store.runs(step="forget", status="succeeded", limit=None):
        params = dict(run.params)
        if params.get("retraction_id") == retraction_id:
            return ForgetReport.from_dict(params, run.id)
    return None


def _checked_request(ctx: Context, source: str, column: str, ids: Sequence[str]) -> list[str]:
    declared = ctx.sources
    if source not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise WorkspaceError(
            f"unknown source {source!r}: sources declared in {ctx.workspace.root / 'sources'}: "
            f"{known}"
        )
    if column not in declared[source].columns:
        raise WorkspaceError(
            f"source {source!r} declares no column {column!r}; its columns: "
            f"{', '.join(declared[source].columns)}"
        )
    wanted = sorted({str(i) for i in ids if str(i)})
    if not wanted:
        raise WorkspaceError("no ids to forget: give the values of the column, one a line")
    return wanted


def _continue(ctx: Context, journal: Journal) -> ForgetReport:
    data = journal.data
    column, ids = str(data["column"]), [str(i) for i in data["ids"]]
    sources = places.scrubbed_sources(ctx, str(data["source"]), column)
    tables = places.delta_places(ctx, [s.name for s in sources], column)
    places.delete_from_tables(journal, tables, ids)
    places.quarantine(ctx, journal, [s.name for s in sources], column, ids)
    places.online(ctx, journal, column, ids)
    places.parquet_artifacts(ctx, journal, column, ids)
    not_scrubbed = places.raw_files(ctx, journal, sources, column, ids)
    not_scrubbed += places.leftovers(ctx, journal)
    not_scrubbed += files_quoting(ctx, ids)
    data.setdefault("deleted_at", now_iso())
    due = dt.datetime.fromisoformat(data["deleted_at"]) + dt.timedelta(
        hours=float(data["retention_hours"])
    )
    if dt.datetime.now(dt.UTC) < due:
        data["vacuum_after"] = due.isoformat(timespec="seconds")
        journal.save()
        return _report(ctx, journal, "waiting", not_scrubbed, due.isoformat(timespec="seconds"))
    quarantine = ctx.workspace.tables_dir / "quarantine"
    purged = [*tables, *(["quarantine"] if (quarantine / "_delta_log").is_dir() else [])]
    for name in purged:
        path = quarantine if name == "quarantine" else tables[name][0]
        places.step(journal, f"purge:{name}", lambda: 1, lambda p=path: purge_table(p))  # type: ignore[misc]
        kill_point("forget:purged")
    if journal.place("metadata") is None:  # validation reports, errors quoting a value
        journal.finish("metadata", 0, redacted=ctx.store.redact(ids))
        kill_point("forget:redacted")
    report = _report(ctx, journal, "done", not_scrubbed, None)
    outcome = ctx.runner.run(
        "forget",
        lambda: None,
        identity={"retraction_id": data["retraction_id"]},
        params=report.to_dict(),
    )
    kill_point("forget:recorded")
    journal.remove()
    return ForgetReport.from_dict(report.to_dict(), outcome.run_id)


def _report(
    ctx: Context, journal: Journal, status: str, not_scrubbed: list[str], after: str | None
) -> ForgetReport:
    data, steps = journal.data, journal.data["places"]
    rows = {
        name: int(p["rows"])
        for name, p in steps.items()
        if not name.startswith(("purge:", "online:compact", "leftovers", "metadata")) and p["rows"]
    }
    rewritten = sorted(
        n.split(":", 1)[1] for n in rows if n.startswith(("trainset:", "raw_file:", "artifact:"))
    )
    models, evaluations, recompute = impact_of(ctx, rewritten, rows)
    return ForgetReport(
        retraction_id=str(data["retraction_id"]),
        source=str(data["source"]),
        column=str(data["column"]),
        ids=len(data["ids"]),
        status=status,
        rows_removed=dict(sorted(rows.items())),
        files_rewritten=rewritten,
        tables_purged=sorted(n.removeprefix("purge:") for n in steps if n.startswith("purge:")),
        leftovers_removed=list((steps.get("leftovers") or {}).get("removed", [])),
        records_redacted=dict((steps.get("metadata") or {}).get("redacted", {})),
        model_versions=models,
        evaluations=evaluations,
        recompute=recompute,
        not_scrubbed=not_scrubbed,
        vacuum_after=after,
        started_at=str(data.get("started_at")),
        finished_at=now_iso() if status == "done" else None,
        by=_user(),
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
