"""``spindle features list|show|backfill``: the feature catalogue and backfills."""

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
from spindle.cli._output import console, emit_json, progress_reporter, table

features_app = typer.Typer(
    help="Feature definitions: list, show (with the models using each version), backfill.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")


def _catalog(workspace: str, name: str | None, tag: str | None = None) -> list[dict[str, Any]]:
    with spindle.Context.open(workspace) as ctx:
        configs = {m: ctx.workspace.model_config(m)[0] for m in ctx.workspace.model_names()}
        provenance = {n: d.provenance for n, d in ctx.sources.items()}
        return spindle.feature_catalog(ctx.features, configs, provenance, name, tag=tag)


@features_app.command("list")
@handles_errors
def list_features(
    tag: str | None = typer.Option(
        None, help="Only the features with this tag, in any case (e.g. pii)."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Every feature version with its dtype, computation, owner, tags and the models that pin it."""
    records = _catalog(workspace, None, tag)
    if as_json:
        emit_json(records)
        return
    table(
        "features",
        ["feature", "dtype", "computed by", "owner", "tags", "used by", "description"],
        [
            [
                r["ref"],
                r["dtype"],
                " ".join([r["computation"]["kind"], r["computation"].get("python", "")]).strip(),
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
        console.print(f"[bold]{r['ref']}[/]  column {r['column']}")
        console.print(f"  {r['description']}")
        if r["entity"] is not None:
            ttl = "none" if r["ttl_s"] is None else f"{r['ttl_s'] / 86400:g}d"
            console.print(
                f"  view {r['group']}: entity {r['entity']} keys {', '.join(r['keys'])}; "
                f"ttl {ttl}; keep {', '.join(r['keep']) or '-'}; "
                f"sources {', '.join(r['sources']) or '-'}"
            )
            console.print("  view sql:")
            for line in (r["view_sql"] or "").strip().splitlines():
                console.print(f"    {line}", markup=False, highlight=False)
        console.print(
            f"  owner {r['owner']}; dtype {r['dtype']}; tags {', '.join(r['tags']) or '-'}"
        )
        if r["allowed_teams"] is not None:
            teams = ", ".join(r["allowed_teams"]) or "(none)"
            console.print(f"  policy: only teams {teams} may use it (tags are case-insensitive)")
        console.print(f"  computed by {_computation(r['computation'])}")
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
    executor: str | None = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Recompute one feature version from the raw logs for past days (idempotent, resumable).

    The backfill is recorded as a run in the metadata store, with lineage from the raw and
    feature table versions it read to the feature table version it wrote.
    """
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        ctx.use_executor(executor, ray_address)
        run = spindle.backfill(ctx, ref, since, until, progress=report)
    result = run.result
    if as_json:
        emit_json(
            result.to_dict()
            | {
                "run_id": run.run_id,
                "skipped": run.skipped,
                "table": None if run.table is None else run.table.id,
            }
        )
        return
    table("backfill " + ref, ["day", "status"], [[d, s] for d, s in result.days.items()])
    wrote = f"wrote {run.table.id}" if run.table is not None else "wrote no new table version"
    already = " (an identical backfill had already run)" if run.skipped else ""
    console.print(
        f"{len(result.written)} partition(s) written to column {result.column}; "
        f"unchanged days were already up to date. Run {run.run_id}{already}: {wrote}"
    )


def _computation(computation: dict[str, Any]) -> str:
    if "python" in computation:
        per_request = "per request: " if computation["kind"] == "request" else ""
        return (
            f"{per_request}python {computation['python']} (source sha256 "
            f"{computation['source_sha256'][:12]}, fingerprint {computation['fingerprint'][:12]})"
        )
    if computation["kind"] == "sql":
        return f"sql {computation['sql']} (fingerprint {computation['fingerprint'][:12]})"
    return f"per request (fingerprint {computation['fingerprint'][:12]})"
