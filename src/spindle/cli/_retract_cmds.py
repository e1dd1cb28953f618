"""``spindle retract``: record a retraction once; list them; their impact; the retraining plan."""

from __future__ import annotations

from typing import Any

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt, table

retract_app = typer.Typer(
    help="Retract rows (fraud found later, a deletion request): recorded once, left out of "
    "every training set built after; list them, see which versions saw them, plan retraining.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(retract_app, name="retract")


@retract_app.callback()
@handles_errors
def retract(
    context: typer.Context,
    file: str | None = typer.Option(
        None, "--file", help="The ids: one per line, or a CSV/Parquet file with a column named C."
    ),
    reason: str | None = typer.Option(
        None, "--reason", help="fraud, deletion (only salted digests are kept), or another word."
    ),
    source: str | None = typer.Option(None, "--source", help="The declared source of the rows."),
    column: str | None = typer.Option(
        None, "--column", help="The column the ids are values of (default: the primary key)."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Record a retraction: `spindle retract --file IDS --reason fraud --source S`."""
    if context.invoked_subcommand is not None:
        return
    if file is None or reason is None or source is None:
        given = (("file", file), ("reason", reason), ("source", source))
        missing = [f"--{n}" for n, v in given if v is None]
        raise spindle.SpindleError(
            f"spindle retract needs {', '.join(missing)}: e.g. `spindle retract --file ids.txt "
            "--reason fraud --source orders` (or a subcommand: list, impact, retrain)"
        )
    with spindle.Context.open(workspace) as ctx:
        outcome = spindle.record_retraction(ctx, file, reason, source, column)
        removal = _forget(ctx, outcome) if outcome.retraction.reason == "deletion" else None
    info = outcome.retraction.to_dict()
    if as_json:
        emit_json({"retraction": info, "recorded": outcome.recorded, "physical_removal": removal})
        return
    said = "recorded" if outcome.recorded else "already recorded (nothing changed)"
    console.print(
        f"{info['id']} {said}: {info['ids']} id(s) of {info['source']}.{info['column']} "
        f"({info['reason']}), matching {info['rows_matched']} row(s) now; every training set "
        f"built from now on leaves them out. See `spindle retract impact {info['id']}`.",
        markup=False,
        highlight=False,
    )
    if removal is not None:
        console.print(f"physical removal: {removal}", markup=False, highlight=False)


def _forget(ctx: spindle.Context, outcome: Any) -> Any:
    """Remove a deletion's rows physically (``spindle.forget_rows``) when it is available."""
    forget = getattr(spindle, "forget_rows", None)
    if forget is None:
        return "not available yet"
    info = outcome.retraction
    try:
        report = forget(ctx, info.id, info.source, info.column, list(outcome.ids))
    except spindle.SpindleError as exc:  # the retraction stands: say so, and how to finish
        raise spindle.SpindleError(
            f"{info.id} is recorded (its rows are left out of training from now on), but "
            f"removing them physically failed: {exc} — run the same `spindle retract` again "
            "to finish the removal"
        ) from exc
    to_dict = getattr(report, "to_dict", None)
    return to_dict() if callable(to_dict) else str(report)


@retract_app.command("list")
@handles_errors
def retract_list(workspace: str = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Every recorded retraction, with how many versions and deployments saw its rows."""
    with spindle.Context.open(workspace) as ctx:
        rows = spindle.retractions_with_impact(ctx)
    if as_json:
        emit_json(rows)
        return
    table(
        "retractions",
        ["id", "source.column", "reason", "ids", "rows", "who", "at", "versions", "deployments"],
        [
            [
                r["id"],
                f"{r['source']}.{r['column']}",
                r["reason"],
                r["ids"],
                r["rows_matched"],
                r["who"],
                r["at"][:19],
                r["versions_exposed"],
                r["deployments_exposed"],
            ]
            for r in rows
        ],
    )


@retract_app.command("impact")
@handles_errors
def retract_impact(
    retraction: str = typer.Argument(..., metavar="ID", help="e.g. retraction-1"),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Every model version and deployment whose training data held the retracted rows."""
    with spindle.Context.open(workspace) as ctx:
        impact = spindle.retraction_impact(ctx, retraction)
    if as_json:
        emit_json(impact.to_dict())
        return
    table(
        f"versions that saw {retraction}'s rows",
        ["model", "version", "trained for", "days", "retracted rows read", "how"],
        [
            [
                v.model,
                v.version,
                fmt(v.date),
                f"{v.days[0]}..{v.days[-1]}" if v.days else "-",
                v.rows,
                _how(v),
            ]
            for v in impact.versions
        ],
    )
    table(
        "deployments that served them",
        ["model", "deployment", "versions", "at", "by", "serving now"],
        [
            [d["model"], d["deployment"], d["versions"], d["at"][:19], d["actor"], d["serving_now"]]
            for d in impact.deployments
        ],
    )
    for name in impact.unknown:
        console.print(f"{name}: manifest unreadable, exposure unknown", markup=False)


def _how(version: Any) -> str:
    """How a version saw the rows: its training data, its base, or views computed over them."""
    ways = []
    if version.rows:
        ways.append("its training data")
    if version.through is not None:
        ways.append(f"through its base v{version.through}")
    if version.views:
        ways.append(f"through views {', '.join(version.views)} computed over them")
    return "; ".join(ways) or "its training data"


@retract_app.command("retrain")
@handles_errors
def retract_retrain(
    retraction: str = typer.Argument(..., metavar="ID", help="e.g. retraction-1"),
    execute: bool = typer.Option(
        False, "--execute", "--yes", help="Run the plan (train, evaluate, push through the gate)."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Plan (or with --execute run) the retraining of every production model that saw the rows:
    from the last base that never saw them, or from scratch; most important model first."""
    with spindle.Context.open(workspace) as ctx:
        plan = spindle.retrain_plan(ctx, retraction)
        reports = spindle.run_retrain(ctx, plan) if execute else []
    if as_json:
        emit_json({"plan": [t.to_dict() for t in plan], "runs": [r.to_dict() for r in reports]})
    else:
        _print_plan(retraction, plan, reports, execute)
    worst = max((r.exit_code for r in reports), default=0)
    if worst:
        raise typer.Exit(code=worst)


def _print_plan(retraction: str, plan: list[Any], reports: list[Any], execute: bool) -> None:
    if not plan:
        console.print(f"no model in production saw {retraction}'s rows: nothing to retrain")
        return
    table(
        f"retraining for {retraction}" + ("" if execute else " (plan: --execute runs it)"),
        ["order", "model", "priority", "production", "train for", "from", "backfill first"],
        [
            [
                i,
                t.model,
                t.priority,
                f"v{t.production}",
                t.date,
                t.why,
                f"{len(t.backfill)} feature(s) from {t.since}" if t.backfill else "-",
            ]
            for i, t in enumerate(plan, start=1)
        ],
    )
    if reports:
        table(
            "runs",
            ["model", "version", "base", "gate", "serving", "status", "error"],
            [
                [
                    r.model,
                    fmt(r.version),
                    fmt(r.base_version),
                    r.gate,
                    fmt(r.serving_version),
                    r.status,
                    r.error or "",
                ]
                for r in reports
            ],
        )
