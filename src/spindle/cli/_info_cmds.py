"""``spindle status``, ``spindle lineage`` and ``spindle serve``."""

from __future__ import annotations

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt, table


@app.command()
@handles_errors
def status(
    model: str | None = typer.Argument(None),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Production version, aliases and the last training run of each model."""
    with spindle.Context.open(workspace) as ctx:
        rows = spindle.status_report(ctx, model)
    if as_json:
        emit_json(rows)
        return
    out = []
    for r in rows:
        res = (r["last_train"] or {}).get("resources", {})
        out.append(
            [
                r["model"],
                fmt(r["production"]),
                r["production_date"],
                r["versions"],
                (r["last_train"] or {}).get("status"),
                fmt(res.get("wall_s"), 1),
                fmt(res.get("cpu_s"), 1),
                fmt(res.get("peak_rss_mb"), 0),
            ]
        )
    table(
        "models",
        [
            "model",
            "production",
            "trained for",
            "versions",
            "last train",
            "wall s",
            "cpu s",
            "peak MB",
        ],
        out,
    )


@app.command()
@handles_errors
def lineage(
    target: str = typer.Argument(..., metavar="MODEL@VERSION"),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The chain raw partitions → tables → training set → run → model version → evaluation → deployment."""
    model, sep, version = target.partition("@")
    if not sep or not version.isdigit():
        raise typer.BadParameter(f"expected MODEL@VERSION, e.g. search_ranker@3; got {target!r}")
    with spindle.Context.open(workspace) as ctx:
        report = spindle.lineage_report(ctx, model, int(version))
    if as_json:
        emit_json(report)
        return
    for link in report["chain"]:
        items = link["artifacts"]
        shown = ", ".join(a["id"] for a in items[:6]) + (
            f", … (+{len(items) - 6})" if len(items) > 6 else ""
        )
        console.print(f"[bold]{link['kind']}[/] ({len(items)}): {shown or '-'}")
        if link["kind"] == "training_set" and "training_run" in report:
            run = report["training_run"]
            console.print(
                f"[bold]training run[/]: {run['id']} {run['status']} config {str(run['config_hash'])[:12]} "
                f"wall {fmt(run['resources'].get('wall_s'), 1)} s"
            )


@app.command()
@handles_errors
def serve(
    port: int | None = typer.Option(None, help="Port (default from spindle.yaml)."),
    host: str | None = typer.Option(None, help="Interface (default 127.0.0.1)."),
    repo: str | None = typer.Option(None, help="Model repository (default from spindle.yaml)."),
    workspace: str = WorkspaceOption,
) -> None:
    """Serve models: /v1/rank, KServe V2 endpoints, /metrics; popularity fallback."""
    ws = spindle.Workspace.load(workspace)
    cfg = ws.config.serving
    app_ = spindle.create_app(
        repo or ws.model_repo, ws.online_store_path, default_model=cfg.default_model
    )
    console.print(
        f"serving {repo or ws.model_repo} on http://{host or cfg.host}:{port or cfg.port}"
    )
    spindle.serve_forever(app_, host or cfg.host, port or cfg.port)
