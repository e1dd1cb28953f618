"""``spindle train|evaluate|push|rollback|run``."""

from __future__ import annotations

import typer

import spindle
from spindle.cli._app import JsonOption, SetOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt, table


@app.command()
@handles_errors
def evaluate(
    model: str,
    version: int = typer.Option(..., help="Candidate version."),
    date: str = typer.Option(..., help="Holdout day."),
    overrides: list[str] | None = SetOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a version against production, popularity and the oracle on a holdout day, and gate it."""
    with spindle.Context.open(workspace) as ctx:
        evaluation, details = spindle.evaluate_version(
            ctx, model, version, date, overrides=overrides
        )
    if as_json:
        emit_json(details)
        return
    metrics = evaluation.metrics
    names = sorted({k for m in metrics.values() for k in m})
    table(
        f"{model}@{version} on {date}: gate {evaluation.decision.upper()}",
        ["system", *names],
        [[system, *(fmt(m.get(n)) for n in names)] for system, m in metrics.items()],
    )
    for reason in evaluation.reasons:
        console.print(f"  blocked: {reason}")


@app.command()
@handles_errors
def push(
    model: str,
    version: int = typer.Option(...),
    weight: float | None = typer.Option(None, min=0, max=1),
    force: bool = typer.Option(False, help="Push a version the gate blocked (needs --reason)."),
    reason: str | None = typer.Option(None),
    workspace: str = WorkspaceOption,
) -> None:
    """Push a gated version to the model repository atomically and make it production."""
    with spindle.Context.open(workspace) as ctx:
        deployment = spindle.push(ctx, model, version, weight=weight, force=force, reason=reason)
    console.print(
        f"pushed {model}@{deployment.version} to {deployment.uri} (weight {deployment.weight})"
    )


@app.command()
@handles_errors
def rollback(model: str, workspace: str = WorkspaceOption) -> None:
    """Route all traffic back to the previous version in one step."""
    with spindle.Context.open(workspace) as ctx:
        version = spindle.rollback(ctx.workspace.model_repo, model)
        ctx.store.set_alias(
            model, "production", version, actor="spindle rollback", reason="manual rollback"
        )
    console.print(f"{model}: serving version {version}")


@app.command()
@handles_errors
def run(
    model: str,
    date: str = typer.Option(...),
    from_scratch: bool = typer.Option(False, "--from-scratch"),
    overrides: list[str] | None = SetOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The whole daily pipeline for one model: ingest → validate → train → evaluate → push (idempotent)."""
    with spindle.Context.open(workspace) as ctx:
        report = spindle.run_day(ctx, model, date, from_scratch=from_scratch, overrides=overrides)
    if as_json:
        emit_json(report.to_dict())
    else:
        table(
            f"{model} for {date}",
            ["step", "result"],
            [
                ["ingest", f"{report.rows_ingested} rows, {report.rows_quarantined} quarantined"],
                ["validate", report.validation],
                ["train", f"version {report.version} (base {report.base_version})"],
                ["evaluate", " ".join(f"{k}={fmt(v)}" for k, v in report.ndcg10.items())],
                ["gate", report.gate],
                ["serving", report.serving_version],
                ["skipped (already done)", ", ".join(report.skipped_steps) or "-"],
            ],
        )
        if report.error:
            console.print(f"[red]{report.error}[/]")
    if report.error:
        raise typer.Exit(code=1)
