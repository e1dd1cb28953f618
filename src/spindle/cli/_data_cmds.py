"""``spindle ingest`` and ``spindle validate``."""

from __future__ import annotations

from typing import Any

import typer

import spindle
from spindle.cli._app import (
    ExecutorOption,
    JsonOption,
    RayAddressOption,
    WorkspaceOption,
    app,
    handles_errors,
)
from spindle.cli._output import console, emit_json, err_console, progress_reporter, table


def _dates(date: str | None, since: str | None, until: str | None) -> list[str]:
    if date:
        return [date]
    if since and until:
        return spindle.days_between(since, until)
    raise typer.BadParameter("give --date D, or --since D --until D")


@app.command()
@handles_errors
def ingest(
    date: str | None = typer.Option(None, help="Day to ingest (YYYY-MM-DD)."),
    since: str | None = typer.Option(None, help="First day of a range (with --until)."),
    until: str | None = typer.Option(None, help="Last day of a range (with --since)."),
    allow_future: bool = typer.Option(
        False, "--allow-future", help="Ingest days after today (UTC), e.g. a simulated calendar."
    ),
    undo: bool = typer.Option(
        False,
        "--undo",
        help="Remove the days' rows from the tables instead (a new table version; history stays).",
    ),
    reason: str = typer.Option("ingest undone", help="Why a day is undone (recorded)."),
    executor: str | None = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Check and load every declared source (sources/*.yaml) of each day into Delta tables (bad rows go to quarantine, with their reason), compute features, validate the day.

    Every day of a range is tried; exit code 1 when any day could not be ingested (each day's
    outcome is listed), 0 otherwise: a day that FAILs validation is ingested, and its verdict
    is shown (`spindle validate` exits 2 for it).
    """
    days = _dates(date, since, until)
    if undo:
        _undo(days, reason, workspace, as_json)
        return
    out: list[dict[str, Any]] = []
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        ctx.use_executor(executor, ray_address)
        # on a cluster, every day's rows are loaded at once first (each day a task); each day's
        # features and validation then follow in order
        unloaded = spindle.load_days(ctx, days, allow_future=allow_future)
        for i, day in enumerate(days):
            if day in unloaded:
                out.append({"date": day, "status": "failed", "error": str(unloaded[day])})
            else:
                out.append(_ingest_one(ctx, day, allow_future))
            report("ingest", i + 1, len(days))
    failed = [o for o in out if o["status"] == "failed"]
    if as_json:
        emit_json(out)
    else:
        _ingest_table(out)
    for o in out:  # never silently ignored
        if o.get("unread_files"):
            files = o["unread_files"]
            err_console.print(
                f"[bold yellow]warning:[/] {o['date']}: {len(files)} file(s) not read (no declared "
                f"source reads them): {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}",
                highlight=False,
                soft_wrap=True,
            )
    if failed:
        err_console.print(
            f"[bold red]error:[/] {len(failed)} of {len(out)} day(s) not ingested: "
            + ", ".join(o["date"] for o in failed),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _ingest_one(ctx: spindle.Context, day: str, allow_future: bool) -> dict[str, Any]:
    """Ingest and validate one day; a day that cannot be ingested is an outcome, not a stop."""
    try:
        result = spindle.ingest(ctx, day, allow_future=allow_future)
        verdict = spindle.validate(ctx, day)
    except spindle.SpindleError as exc:
        return {"date": day, "status": "failed", "error": str(exc)}
    r = result.result
    return {
        "date": day,
        "status": "ingested",
        "rows_ingested": r.rows_ingested,
        "rows_quarantined": r.rows_quarantined,
        "quarantine_reasons": r.quarantine_reasons,
        "missing_sources": list(r.missing_sources),
        "notes": list(r.notes),
        "skipped": result.skipped,
        "validation": verdict.verdict,
        "unread_files": list(result.unread_files),
    }


def _ingest_table(out: list[dict[str, Any]]) -> None:
    table(
        "ingested",
        [
            "date",
            "status",
            "rows",
            "quarantined",
            "missing",
            "validation",
            "skipped (already done)",
        ],
        [
            [
                o["date"],
                o["status"],
                o.get("rows_ingested", "-"),
                o.get("rows_quarantined", "-"),
                ", ".join(o.get("missing_sources", [])) or "-",
                o.get("validation", "-"),
                o.get("skipped", "-"),
            ]
            for o in out
        ],
    )
    for o in out:
        if o.get("error"):
            console.print(f"  {o['date']} FAILED: {o['error']}", highlight=False)
        for reason, n in o.get("quarantine_reasons", {}).items():
            console.print(f"  {o['date']} quarantined {n}: {reason}")
        for note in o.get("notes", []):
            console.print(f"  {o['date']} {note}")


def _undo(days: list[str], reason: str, workspace: str, as_json: bool) -> None:
    with spindle.Context.open(workspace) as ctx:
        undone = [spindle.undo_ingest(ctx, day, reason=reason) for day in days]
    if as_json:
        emit_json([u.properties() for u in undone])
        return
    for u in undone:
        tables = ", ".join(f"{t.table} v{t.version}" for t in u.tables) or "no table held it"
        console.print(
            f"undid the ingest of {u.date}: {u.rows_removed} rows removed ({tables}); "
            f"`spindle ingest --date {u.date}` loads it again"
        )


validate_app = typer.Typer(no_args_is_help=False)  # help: the callback's docstring
app.add_typer(validate_app, name="validate")


@validate_app.callback(invoke_without_command=True)
@handles_errors
def validate(
    typer_ctx: typer.Context,
    date: str | None = typer.Option(None, help="Day to validate (YYYY-MM-DD)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on WARN too."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Validate an ingested day against its reference window (the last healthy or accepted days):
    completeness, slice shares, missing-data bias, statistics (nulls, distribution shift, label
    rate), duplicates, late rows, schema. A day with too few reference days is a WARN
    (no_baseline), never a PASS.

    Exit code: 0 PASS (and WARN), 1 WARN with --strict, 2 FAIL, 1 for an error."""
    if typer_ctx.invoked_subcommand is not None:
        return
    if date is None:
        raise typer.BadParameter("give --date D (or `spindle validate accept --date D`)")
    with spindle.Context.open(workspace) as ctx:
        report = spindle.validate(ctx, date)
    if as_json:
        emit_json(report.properties())
    else:
        _validation_table(date, report)
    if report.verdict == "fail":
        raise typer.Exit(code=2)
    if report.verdict == "warn" and strict:
        raise typer.Exit(code=1)


@validate_app.command("accept")
@handles_errors
def validate_accept(
    date: str = typer.Option(..., help="Validated day to accept (YYYY-MM-DD)."),
    reason: str = typer.Option(
        "accepted as the new normal", help="Why the day is accepted (recorded with the run)."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Take a validated (typically FAILed) day into the reference window of later days.

    For a real, lasting change; recorded as a run with the reason. The day's own verdict is unchanged."""
    with spindle.Context.open(workspace) as ctx:
        accepted = spindle.accept_validation(ctx, date, reason=reason)
    if as_json:
        emit_json(accepted.properties())
        return
    console.print(
        f"accepted {accepted.date} (verdict {accepted.verdict.upper()}) into the reference "
        f"window: {accepted.reason}"
    )


def _validation_table(date: str, report: Any) -> None:
    reference = ", ".join(f"{d} {report.history_verdicts.get(d, '?')}" for d in report.history_days)
    console.print(
        f"validation of {date}: [bold]{report.verdict.upper()}[/] (reference: "
        f"{len(report.history_days)} days{': ' + reference if reference else ''})"
    )
    table(
        "anomalies",
        ["severity", "kind", "source", "column/slice", "expected", "observed", "message"],
        [
            [
                a.severity,
                a.kind,
                a.source,
                a.slice or a.column or "-",
                "-" if a.expected is None else f"{a.expected:.4g}",
                "-" if a.observed is None else f"{a.observed:.4g}",
                a.message,
            ]
            for a in report.anomalies
        ],
    )
    for note in report.stats.get("notes", []):  # e.g. no rows on a calendar-closed day
        console.print(f"note: {note}", highlight=False)
