"""``spindle train`` and ``spindle speed-check``."""

from __future__ import annotations

import typer

import spindle
from spindle.cli._app import (
    ExecutorOption,
    JsonOption,
    RayAddressOption,
    SetOption,
    WorkspaceOption,
    app,
    handles_errors,
)
from spindle.cli._output import console, emit_json, fmt, progress_reporter


@app.command()
@handles_errors
def train(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    date: str = typer.Option(..., help="Train the version for this day, on the days before it."),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Do not warm-start from production."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Local DDP worker processes (same as --set training.workers=N).",
    ),
    overrides: list[str] | None = SetOption,
    executor: str | None = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a new model version (warm-started from production unless a full retrain is due)."""
    # An override like any other: validated, part of the effective (hashed, recorded) config.
    effective = [*(overrides or []), *([f"training.workers={workers}"] if workers else [])]
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        ctx.use_executor(executor, ray_address)
        version, result, skipped = spindle.train_version(
            ctx, model, date, from_scratch=from_scratch, overrides=effective, progress=report.event
        )
    m = version.metrics
    payload = {
        "model": model,
        "version": version.version,
        "base_version": version.base_version,
        "skipped": skipped,
        "weights_sha256": result.weights_sha256 if result else None,
        "resumed_from_step": result.resumed_from_step if result else None,
        "workers": result.workers if result else None,
        **m,
    }
    if as_json:
        emit_json(payload)
        return
    console.print(
        f"{model}@{version.version} ({'recorded earlier, skipped' if skipped else 'trained'}; base {version.base_version}): "
        f"{m.get('examples')} examples, {fmt(m.get('examples_per_s'), 0)} ex/s, {fmt(m.get('cpu_s'), 1)} CPU-s, "
        f"peak {fmt(m.get('peak_rss_mb'), 0)} MB"
    )


@app.command("speed-check")
@handles_errors
def speed_check(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    date: str = typer.Option(..., help="Holdout day; both runs train on the days before it."),
    overrides: list[str] | None = SetOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Train at the configured parallelism and at half; say whether training is too fast."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        check = spindle.speed_check(ctx, model, date, overrides=overrides, progress=report.event)
    if as_json:
        emit_json(check.to_dict())
        return
    for label, run in (("configured", check.fast), ("half", check.slow)):
        console.print(
            f"{label:>10}: parallelism {run.parallelism} (workers {run.workers}, staleness "
            f"{run.max_staleness_steps}): {check.metric} {fmt(run.metric_value, 4)}, "
            f"{fmt(run.examples_per_s, 0)} ex/s, {fmt(run.cpu_s, 1)} CPU-s"
        )
    console.print(f"{check.verdict.upper()}: {check.reason}")
