"""``spindle run-all``, ``catch-up``, ``doctor``, ``schedule``, ``monitor`` and ``export``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt, progress_reporter, table

monitor_app = typer.Typer(
    help="Prometheus metrics and alerting rules for the pipeline.", no_args_is_help=True
)
export_app = typer.Typer(help="Export pipelines to other orchestrators.", no_args_is_help=True)
app.add_typer(monitor_app, name="monitor")
app.add_typer(export_app, name="export")


@app.command("run-all")
@handles_errors
def run_all(
    date: str = typer.Option(..., help="The day to run (YYYY-MM-DD)."),
    max_parallel: int = typer.Option(1, min=1, help="Models run at once."),
    capacity_hours: float | None = typer.Option(
        None, min=0, help="Stop starting models once their estimated hours exceed this."
    ),
    allow_older: bool = typer.Option(
        False, "--allow-older", help="Let this day's versions replace production trained later."
    ),
    executor: str = typer.Option(
        "in-process",
        help="Where the models run: in-process (threads) or ray (a local or --ray-address cluster).",
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster address for --executor ray (default: start a local one)."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Run every model due on a day, most important first, within a capacity."""
    runner = spindle.make_executor(executor, max_parallel=max_parallel, address=ray_address)
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        reports = spindle.run_all(
            ctx,
            date,
            max_parallel=max_parallel,
            capacity_hours=capacity_hours,
            allow_older=allow_older,
            executor=runner,
            progress=report.event,
        )
    if as_json:
        emit_json([r.to_dict() for r in reports])
    else:
        table(
            f"run-all {date}",
            ["model", "version", "gate", "serving", "error"],
            [
                [r.model, fmt(r.version), r.gate, fmt(r.serving_version), r.error or ""]
                for r in reports
            ],
        )
    # deferred models (over capacity) are not failures; 1 if a step failed, else 2 if refused
    codes = {r.exit_code for r in reports if not (r.error or "").startswith("deferred")}
    if codes - {0}:
        raise typer.Exit(code=1 if 1 in codes else 2)


@app.command("catch-up")
@handles_errors
def catch_up(
    since: str = typer.Option(..., help="First day of the outage."),
    until: str | None = typer.Option(None, help="Last day to catch up (default: newest raw data)."),
    capacity_hours: float | None = typer.Option(
        None, min=0, help="Plan only the work that fits in these hours (estimated from past runs)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; run nothing."),
    allow_older: bool = typer.Option(
        False, "--allow-older", help="Let a run replace production trained for a later day."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Plan (and run) the backlog after an outage: priority first, then staleness, within capacity."""
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        plan = spindle.plan_catch_up(ctx, since, until, capacity_hours=capacity_hours)
        outcomes = (
            None
            if dry_run
            else spindle.catch_up(ctx, plan, allow_older=allow_older, progress=report.event)
        )
    failed = [o for o in outcomes or [] if o["status"] == "failed"]
    if as_json:
        emit_json(plan.to_dict() | ({"outcomes": outcomes} if outcomes is not None else {}))
        if failed:
            raise typer.Exit(code=1)
        return
    table(
        f"catch-up plan {plan.since}..{plan.until}",
        ["#", "task", "date", "model", "prio", "est s", "cum s", "fits", "why"],
        [
            [
                t.order,
                t.kind,
                t.date,
                t.model or "",
                fmt(t.priority),
                fmt(t.estimated_s, 0),
                fmt(t.cumulative_s, 0),
                "yes" if t.within_capacity else "deferred",
                t.reason,
            ]
            for t in plan.tasks
        ],
    )
    table(
        "expected freshness when the plan ends",
        ["model", "prio", "serving data until", "after plan", "ready after s"],
        [
            [
                f["model"],
                f["priority"],
                fmt(f["serving_data_until"]),
                fmt(f["after_plan_data_until"]),
                fmt(f["ready_after_s"], 0),
            ]
            for f in plan.freshness
        ],
    )
    if outcomes is not None:
        table(
            "outcomes",
            ["#", "task", "model", "status", "detail"],
            [
                [
                    o["order"],
                    o["kind"],
                    o["model"] or "",
                    o["status"],
                    o.get("error") or o.get("gate") or o.get("validation") or "",
                ]
                for o in outcomes
            ],
        )
    if failed:  # every task was tried; any failed one makes the catch-up fail
        raise typer.Exit(code=1)


@app.command()
@handles_errors
def doctor(
    fix: bool = typer.Option(
        False,
        help="Mark dead runs failed, release orphaned version numbers, resolve pending "
        "deployments, route serving back to the registry's production, copy damaged "
        "repository versions back from their artifacts and remove crash leftovers.",
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Check that the metadata store, the files on disk (against the registry's checksums) and
    serving agree, and that no crash left temp files behind."""
    with spindle.Context.open(workspace) as ctx:
        problems = spindle.doctor(ctx, fix=fix)
    if as_json:
        emit_json([p.to_dict() for p in problems])
    elif not problems:
        console.print(
            "healthy: every artifact and served version has the registry's checksums, "
            "no run or deployment is stuck, serving matches the registry, no crash leftovers"
        )
    else:
        table(
            "problems",
            ["kind", "subject", "message", "fixed"],
            [[p.kind, p.subject, p.message, p.fixed] for p in problems],
        )
    if any(not p.fixed for p in problems):
        raise typer.Exit(code=1)


@app.command()
@handles_errors
def schedule(
    once: bool = typer.Option(False, help="One tick, then exit."),
    poll_s: float = typer.Option(60.0, min=1, help="Seconds between ticks."),
    now: str | None = typer.Option(
        None, help="Pretend it is this time (ISO), e.g. to replay a simulated calendar."
    ),
    workspace: str = WorkspaceOption,
) -> None:
    """Run the models' cron schedules in the foreground with a heartbeat; missed slots run on restart."""
    clock = (lambda: dt.datetime.fromisoformat(now)) if now else None
    with spindle.Context.open(workspace) as ctx:
        spindle.run_schedule(
            ctx,
            poll_s=poll_s,
            once=once or now is not None,
            clock=clock,
            report=lambda a: console.print(f"{a['slot']} {a['model']} {a['date']}: {a['status']}"),
        )


@monitor_app.command("serve")
@handles_errors
def monitor_serve(
    port: int = typer.Option(9108, help="Port of the /metrics endpoint."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    workspace: str = WorkspaceOption,
) -> None:
    """Expose pipeline metrics (step durations, failures, last success, examples/s, freshness) for Prometheus."""
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    ctx = spindle.Context.open(workspace)
    registry = CollectorRegistry()
    registry.register(spindle.PipelineCollector(ctx.store, lambda: spindle.freshness_report(ctx)))
    start_http_server(port, addr=host, registry=registry)
    console.print(f"metrics on http://{host}:{port}/metrics")
    while True:
        time.sleep(3600)


@monitor_app.command("rules")
@handles_errors
def monitor_rules(
    out: Path = typer.Option(..., help="Where to write the Prometheus rules file."),
    workspace: str = WorkspaceOption,
) -> None:
    """Write Prometheus alerting rules for the freshness SLOs and step failures."""
    ws = spindle.Workspace.load(workspace)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spindle.alert_rules(ws.model_names()))
    console.print(f"wrote {out}")


@export_app.command("airflow")
@handles_errors
def export_airflow(
    out: Path = typer.Option(..., help="Directory for the DAG file."),
    workspace: str = WorkspaceOption,
) -> None:
    """Write an Airflow DAG per model whose tasks call `spindle` commands."""
    with spindle.Context.open(workspace) as ctx:
        path = spindle.export_airflow(ctx, out)
    console.print(f"wrote {path}")
