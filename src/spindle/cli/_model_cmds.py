"""``spindle evaluate|push|validate-infra|rollback|route|models|run``."""

from __future__ import annotations

from typing import Any

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
from spindle.cli._output import console, emit_json, fmt, progress_reporter, table


@app.command()
@handles_errors
def evaluate(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    version: int = typer.Option(..., help="Candidate version."),
    date: str = typer.Option(..., help="Holdout day."),
    replicas: int | None = typer.Option(
        None,
        min=1,
        help="K seed replicas including the candidate: train K-1 more (cached, not registered) "
        "to measure the run-to-run spread (default: evaluation.replicas of the model config).",
    ),
    overrides: list[str] | None = SetOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a version against production, popularity and the oracle on a holdout day, and gate it."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        ctx.store.get_version(model, version)  # unknown: NotFound names those that exist
        evaluation, details = spindle.evaluate_version(
            ctx,
            model,
            version,
            date,
            overrides=overrides,
            replicas=replicas,
            progress=report.event,
        )
    if as_json:
        emit_json(details)
        return
    metrics = evaluation.metrics
    names = sorted({k for m in metrics.values() for k in m})
    table(
        f"{model}@{version} on {date}: gate {evaluation.decision.upper()}",
        ["system", *names],
        [[system, *(fmt(m.get(n), 4) for n in names)] for system, m in metrics.items()],
    )
    _spread_table(details.get("replica_spread", []), details.get("replicas", []))
    _reasons_table(details.get("reasons", []))


def _spread_table(spread: list[dict[str, Any]], replicas: list[dict[str, Any]]) -> None:
    """The run-to-run spread of every metric over the seed replicas (whole holdout)."""
    overall = [s for s in spread if s["slice"] is None]
    if not overall:
        return
    seeds = ", ".join(f"{r['system']}={r['seed']}" for r in replicas)
    table(
        f"run-to-run spread over {overall[0]['k']} seed replicas ({seeds})",
        ["metric", "k", "std", "min", "max", "noise allowance"],
        [
            [
                s["metric"],
                s["k"],
                fmt(s["std"], 4),
                fmt(s["min"], 4),
                fmt(s["max"], 4),
                fmt(s["noise"], 4),
            ]
            for s in overall
        ],
    )


def _interval(value: list[float | None] | None) -> str:
    if not value:
        return "-"
    return f"[{fmt(value[0], 4)}, {fmt(value[1], 4)}]"


def _reasons_table(reasons: list[dict[str, Any]]) -> None:
    """Every check with its evidence: failures first, then warnings, then passes."""
    order = {"fail": 0, "warn": 1, "pass": 2}
    rows = [
        [
            r["level"].upper(),
            r["check"],
            r["metric"],
            r["slice"] or "all",
            fmt(r["candidate"], 4),
            fmt(r["baseline"], 4),
            _interval(r["interval"]),
            fmt(r["threshold"], 4),
        ]
        for r in sorted(reasons, key=lambda r: order.get(r["level"], 3))
    ]
    table(
        "gate checks",
        ["level", "check", "metric", "slice", "candidate", "baseline", "interval", "threshold"],
        rows,
    )
    for r in reasons:
        if r["level"] != "pass":
            console.print(
                f"  {r['level'].upper()} {r['check']} [{r['slice'] or 'all'}]: {r['message']}"
            )


@app.command()
@handles_errors
def push(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    version: int = typer.Option(..., help="The gated version to push."),
    weight: float | None = typer.Option(
        None, min=0, max=1, help="Traffic share for the new version, 0-1 (default: all of it)."
    ),
    force: bool = typer.Option(
        False, help="Push a version the gate or infra validation blocked (needs --reason)."
    ),
    reason: str | None = typer.Option(None, help="Why a blocked version is forced (audited)."),
    allow_older: bool = typer.Option(
        False, "--allow-older", help="Let a version trained for an earlier day replace production."
    ),
    workspace: str = WorkspaceOption,
) -> None:
    """Validate the serving infra, push a gated version atomically and make it production."""
    with spindle.Context.open(workspace) as ctx, progress_reporter() as report:
        deployment = spindle.push(
            ctx,
            model,
            version,
            weight=weight,
            force=force,
            reason=reason,
            allow_older=allow_older,
            progress=report.event,
        )
    forced = f"; FORCED: {deployment.forced_reason}" if deployment.forced_reason else ""
    console.print(
        f"pushed {model}@{deployment.version} to {deployment.uri} (weight {deployment.weight})"
        + forced
    )


@app.command("validate-infra")
@handles_errors
def validate_infra(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    version: int = typer.Option(..., help="The version to serve in the canary."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Serve a version in a canary process: scores vs training, p99 latency, peak RSS."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as bar:
        report = spindle.infra_validate(ctx, model, version, progress=bar.event)
    data = report.to_dict()
    if as_json:
        emit_json(data)
    else:
        table(
            f"{model}@{version}: infra validation {'PASS' if report.passed else 'FAIL'}",
            ["check", "value", "limit"],
            [
                ["max |serving - training| score", fmt(report.max_abs_diff, 8), "1e-05"],
                ["p50 latency ms wall (rank request)", fmt(report.p50_ms, 1), "-"],
                ["p99 latency ms wall", fmt(report.p99_ms, 1), "-"],
                ["p50 CPU ms (rank request)", fmt(report.cpu_p50_ms, 1), "-"],
                [
                    "p99 CPU ms (rank request)",
                    fmt(report.cpu_p99_ms, 1),
                    fmt(report.latency_budget_ms, 1),
                ],
                ["peak RSS MB", fmt(report.peak_rss_mb, 0), fmt(report.max_rss_mb, 0)],
                ["requests / rows", f"{report.requests} / {report.rows}", "-"],
            ],
        )
        for failure in report.failures:
            console.print(f"  FAIL {failure}")
    if not report.passed:
        raise typer.Exit(code=1)


@app.command()
@handles_errors
def rollback(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    reason: str = typer.Option("manual rollback", help="Why (recorded in the alias history)."),
    workspace: str = WorkspaceOption,
) -> None:
    """Route all traffic back to the previous version and make it production, in one step."""
    with spindle.Context.open(workspace) as ctx:
        version = spindle.rollback(ctx, model, reason=reason)
    console.print(f"{model}: serving version {version}")


@app.command()
@handles_errors
def route(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    weights: list[str] = typer.Argument(
        ..., help="VERSION=WEIGHT pairs summing to 1, e.g. 3=0.8 4=0.2"
    ),
    reason: str = typer.Option("", help="Why traffic moves (recorded in the alias history)."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Set the routing weights of a model exactly (the versions must be pushed)."""
    with spindle.Context.open(workspace) as ctx:
        requested = spindle.parse_weights(weights)
        for version in requested:  # a version that does not exist says so (not "push it first")
            ctx.store.get_version(model, version)
        result = spindle.route(ctx, model, requested, reason=reason)
    if as_json:
        emit_json(result)
        return
    shares = ", ".join(f"v{v}: {w:g}" for v, w in result["weights"].items())
    console.print(f"{model}: routing {shares} (previous {result['previous']})")


models_app = typer.Typer(help="Model versions, aliases and their history.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
@handles_errors
def models_list(workspace: str = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Every model in the registry: versions, aliases, routing."""
    with spindle.Context.open_reader(workspace) as ctx:
        rows = spindle.models_report(ctx)
    if as_json:
        emit_json(rows)
        return
    table(
        "models",
        ["model", "versions", "latest", "aliases", "routing"],
        [
            [
                r["model"],
                r["versions"],
                fmt(r["latest"]),
                " ".join(f"{a}={v}" for a, v in r["aliases"].items()) or "-",
                " ".join(f"v{v}={w:g}" for v, w in r["routing"].items()) or "-",
            ]
            for r in rows
        ],
    )


@models_app.command("show")
@handles_errors
def models_show(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Versions of a model (oldest first) with aliases, metrics and verdicts; alias history."""
    with spindle.Context.open_reader(workspace) as ctx:
        data = spindle.model_report(ctx, model)
    if as_json:
        emit_json(data)
        return
    metric_names = sorted({m for v in data["versions"] for m in v["metrics"]})[:4]
    table(
        f"{model}: versions",
        ["version", "date", "status", "base", "aliases", "verdict", *metric_names, "created"],
        [
            [
                v["version"],
                v["date"],
                v["status"],
                fmt(v["base_version"]),
                ",".join(v["aliases"]) or "-",
                (v["verdict"] or "-") + (" (forced)" if v["forced_reason"] else ""),
                *(fmt(v["metrics"].get(m), 4) for m in metric_names),
                v["created_at"][:19],
            ]
            for v in data["versions"]
        ],
    )
    for v in data["versions"]:
        if v["block_reasons"]:
            console.print(f"version {v['version']} blocked ({v['holdout_date']}):")
            for line in v["block_reasons"]:
                console.print(f"  {line}", markup=False)
    table(
        f"{model}: alias history",
        ["at", "alias", "version", "from", "actor", "reason"],
        [
            [
                e["at"][:19],
                e["alias"],
                fmt(e["version"]),
                fmt(e["previous_version"]),
                e["actor"],
                e["reason"],
            ]
            for e in data["alias_history"]
        ],
    )


@app.command()
@handles_errors
def run(
    model: str = typer.Argument(..., help="Model name (its config is models/<name>.yaml)."),
    date: str = typer.Option(
        ..., help="The day to run (YYYY-MM-DD); trains on the days before it."
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Do not warm-start from production."
    ),
    allow_older: bool = typer.Option(
        False, "--allow-older", help="Let this day's version replace a production trained later."
    ),
    overrides: list[str] | None = SetOption,
    executor: str | None = ExecutorOption,
    ray_address: str | None = RayAddressOption,
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The whole daily pipeline for one model: ingest → validate → train → evaluate → push (idempotent)."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as bar:
        ctx.use_executor(executor, ray_address)
        report = spindle.run_day(
            ctx,
            model,
            date,
            from_scratch=from_scratch,
            overrides=overrides,
            allow_older=allow_older,
            progress=bar.event,
        )
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
                [
                    "evaluate",
                    " ".join(f"{k}={fmt(v)}" for k, v in report.gate_scores().items()),
                ],
                ["gate", report.gate],
                ["serving", report.serving_version],
                ["skipped (already done)", ", ".join(report.skipped_steps) or "-"],
            ],
        )
        if report.error:
            console.print(f"[red]{report.error}[/]", highlight=False, soft_wrap=True)
    if report.exit_code:  # 2: the day's data or a gate refused the run; 1: a step failed
        raise typer.Exit(code=report.exit_code)
