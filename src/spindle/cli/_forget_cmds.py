"""``spindle forget resume|status``: physical deletion of a deletion request's rows.

``spindle retract ... --reason deletion`` starts the forget; these commands finish one a crash
or the retention interrupted, and say where each stands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, table

if TYPE_CHECKING:
    from spindle import ForgetReport

forget_app = typer.Typer(
    help="Physical deletion of a deletion request's rows: resume one, or see where each stands.",
    no_args_is_help=True,
)
app.add_typer(forget_app, name="forget")


def _print(report: ForgetReport) -> None:
    console.print(
        f"forget {report.retraction_id} ({report.source}.{report.column}, {report.ids} id(s)): "
        f"{report.status}, {report.total_rows} row(s) removed"
    )
    rows = [[place, n] for place, n in report.rows_removed.items()]
    if rows:
        table("rows removed", ["place", "rows"], rows)
    for label, items in (
        ("files rewritten", report.files_rewritten),
        ("tables purged (older versions removed)", report.tables_purged),
        ("retrain these model versions", report.model_versions),
        ("recompute (spindle features backfill)", report.recompute),
        ("not scrubbed", report.not_scrubbed),
    ):
        if items:
            console.print(f"{label}: " + ", ".join(items))
    if report.status == "waiting":
        console.print(
            f"older table versions are kept until {report.vacuum_after} (forget.retention_hours); "
            f"then run `spindle forget resume {report.retraction_id}`"
        )


@forget_app.command("resume")
@handles_errors
def resume(
    retraction_id: str = typer.Argument(..., help="The retraction id of the forget."),
    json_out: bool = JsonOption,
    workspace: str = WorkspaceOption,
) -> None:
    """Continue a forget from its journal (a finished one prints its record)."""
    with spindle.Context.open(workspace) as ctx:
        report = spindle.resume_forget(ctx, retraction_id)
    if json_out:
        emit_json(report.to_dict())
        return
    _print(report)


@forget_app.command("status")
@handles_errors
def status(
    retraction_id: str | None = typer.Argument(None, help="One forget (default: all)."),
    json_out: bool = JsonOption,
    workspace: str = WorkspaceOption,
) -> None:
    """Forgets in progress, waiting for the retention, and done (as recorded)."""
    with spindle.Context.open(workspace) as ctx:
        reports = spindle.forget_status(ctx, retraction_id)
    if json_out:
        emit_json([r.to_dict() for r in reports])
        return
    if retraction_id is not None:
        _print(reports[0])
        return
    if not reports:
        console.print("no forget in this workspace")
        return
    table(
        "forgets",
        ["retraction", "source.column", "status", "rows", "models to retrain"],
        [
            [
                r.retraction_id,
                f"{r.source}.{r.column}",
                r.status,
                r.total_rows,
                ", ".join(r.model_versions) or "-",
            ]
            for r in reports
        ],
    )
