"""``spindle train`` (and, later, ``spindle speed-check``)."""

from __future__ import annotations

import typer

import spindle
from spindle.cli._app import JsonOption, SetOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt


@app.command()
@handles_errors
def train(
    model: str,
    date: str = typer.Option(..., help="Train the version for this day, on the days before it."),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Do not warm-start from production."
    ),
    overrides: list[str] | None = SetOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a new model version (warm-started from production unless a full retrain is due)."""
    with spindle.Context.open(workspace) as ctx:
        version, result, skipped = spindle.train_version(
            ctx, model, date, from_scratch=from_scratch, overrides=overrides
        )
    m = version.metrics
    payload = {
        "model": model,
        "version": version.version,
        "base_version": version.base_version,
        "skipped": skipped,
        "weights_sha256": result.weights_sha256 if result else None,
        "resumed_from_step": result.resumed_from_step if result else None,
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
