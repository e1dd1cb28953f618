"""``spindle ingest`` and ``spindle validate``."""

from __future__ import annotations

from typing import Any

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, progress_reporter, table


def _dates(date: str | None, since: str | None, until: str | None) -> list[str]:
    if date:
        return [date]
    if since and until:
        return spindle.days_between(since, until)
    raise typer.BadParameter("give --date D, or --since D --until D")


@app.command()
@handles_errors
def ingest(
    date: str | None = typer.Option(None, help="Day to ingest (YYYY-MM-DD)."),
    since: str | None = typer.Option(None),
    until: str | None = typer.Option(None),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Check and load raw partitions into Delta tables (bad rows go to quarantine), compute features, validate the day."""
    days = _dates(date, since, until)
    out: list[dict[str, Any]] = []
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as report:
        for i, day in enumerate(days):
            result = spindle.ingest(ctx, day)
            verdict = spindle.validate(ctx, day)
            r = result.result
            out.append(
                {
                    "date": day,
                    "rows_ingested": r.rows_ingested,
                    "rows_quarantined": r.rows_quarantined,
                    "quarantine_reasons": r.quarantine_reasons,
                    "missing_sources": list(r.missing_sources),
                    "notes": list(r.notes),
                    "skipped": result.skipped,
                    "validation": verdict.verdict,
                }
            )
            report("ingest", i + 1, len(days))
    if as_json:
        emit_json(out)
        return
    table(
        "ingested",
        ["date", "rows", "quarantined", "missing", "validation", "skipped (already done)"],
        [
            [
                o["date"],
                o["rows_ingested"],
                o["rows_quarantined"],
                ", ".join(o["missing_sources"]) or "-",
                o["validation"],
                o["skipped"],
            ]
            for o in out
        ],
    )
    for o in out:
        for reason, n in o["quarantine_reasons"].items():
            console.print(f"  {o['date']} quarantined {n}: {reason}")
        for note in o["notes"]:
            console.print(f"  {o['date']} {note}")


@app.command()
@handles_errors
def validate(
    date: str = typer.Option(..., help="Day to validate (YYYY-MM-DD)."),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Validate an ingested day against its healthy history: completeness, slices, missing-data
    bias, statistics (nulls, distribution shift, label rate), duplicates, late rows, schema."""
    with spindle.Context.open(workspace) as ctx:
        report = spindle.validate(ctx, date)
    if as_json:
        emit_json(report.properties())
        return
    console.print(
        f"validation of {date}: [bold]{report.verdict.upper()}[/] (history: {len(report.history_days)} days)"
    )
    table(
        "anomalies",
        ["severity", "kind", "source", "column/slice", "expected", "observed", "message"],
        [
            [
                a.severity,
                a.kind,
                a.source,
                a.slice or a.column or "-",
                "-" if a.expected is None else f"{a.expected:.4g}",
                "-" if a.observed is None else f"{a.observed:.4g}",
                a.message,
            ]
            for a in report.anomalies
        ],
    )
