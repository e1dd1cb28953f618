"""``spindle features list|show|backfill``: the feature catalogue and backfills."""

from __future__ import annotations

from typing import Any

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, progress_reporter, table

features_app = typer.Typer(
    help="Feature definitions: list, show (with the models using each version), backfill.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")


def _catalog(workspace: str, name: str | None) -> list[dict[str, Any]]:
    with spindle.Context.open(workspace) as ctx:
        configs = {m: ctx.workspace.model_config(m)[0] for m in ctx.workspace.model_names()}
        return spindle.feature_catalog(ctx.features, configs, ctx.workspace.config.sources, name)


@features_app.command("list")
@handles_errors
def list_features(workspace: str = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Every feature version with its owner, dtype, tags and the models that pin it."""
    records = _catalog(workspace, None)
    if as_json:
        emit_json(records)
        return
    table(
        "features",
        ["feature", "dtype", "owner", "tags", "used by", "description"],
        [
            [
                r["ref"],
                r["dtype"],
                r["owner"],
                ", ".join(r["tags"]) or "-",
                ", ".join(r["used_by"]) or "-",
                r["description"],
            ]
            for r in records
        ],
    )


@features_app.command("show")
@handles_errors
def show_feature(
    name: str = typer.Argument(..., help="group.name, group.name@V, or a unique name."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """One feature's versions: computation, encoding, policy, source provenance, users."""
    records = _catalog(workspace, name)
    if as_json:
        emit_json(records)
        return
    for r in records:
        console.print(f"[bold]{r['ref']}[/]  column {r['column']}  entity {r['entity']}")
        console.print(f"  {r['description']}")
        console.print(f"  owner {r['owner']}; dtype {r['dtype']}; tags {r['tags'] or '-'}")
        if r["allowed_teams"] is not None:
            console.print(f"  policy: only teams {r['allowed_teams'] or '(none)'} may use it")
        computation = r["computation"]
        console.print(
            f"  computed by {computation['kind']}: {computation.get('sql') or computation.get('function')}"
        )
        console.print(f"  encoding {r['encoding']}")
        console.print(f"  used by: {', '.join(r['used_by']) or 'no model'}")
        for source, prov in r["sources"].items():
            console.print(
                f"  source {source}: origin {prov.get('origin')}, licence {prov.get('licence', '-')}, "
                f"retention {prov.get('retention_days', '-')} days"
            )


@features_app.command("backfill")
@handles_errors
def backfill(
    ref: str = typer.Argument(..., help="The feature version to recompute, group.name@V."),
    since: str = typer.Option(..., help="First day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, help="Last day (default: the newest ingested day)."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Recompute one feature version from the raw logs for past days (idempotent, resumable)."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        last = until or spindle.latest_feature_day(ctx.workspace.tables_dir, ref, ctx.features)
        days = spindle.days_between(since, last)
        result = spindle.backfill_feature(
            ctx.workspace.tables_dir, ctx.features, ref, days, progress=report
        )
    if as_json:
        emit_json(result.to_dict())
        return
    table("backfill " + ref, ["day", "status"], [[d, s] for d, s in result.days.items()])
    console.print(
        f"{len(result.written)} partition(s) written to column {result.column}; "
        "unchanged days were already up to date"
    )
