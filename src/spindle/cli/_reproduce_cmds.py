"""``spindle reproduce MODEL@V``: rebuild a version from its record and report the difference."""

from __future__ import annotations

from typing import Any

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, fail, fmt, progress_reporter, table


def parse_target(target: str) -> tuple[str, int]:
    """``MODEL@V`` as (model, version).

    Raises:
        SpindleError: not of the form MODEL@V with a positive integer V.
    """
    model, sep, version = target.rpartition("@")
    if not sep or not model or not version.isdigit() or int(version) < 1:
        raise spindle.SpindleError(
            f"{target!r}: expected MODEL@VERSION, e.g. search_ranker@3 "
            "(`spindle models list` shows the versions)"
        )
    return model, int(version)


@app.command()
@handles_errors
def reproduce(
    target: str = typer.Argument(..., metavar="MODEL@V", help="The version to rebuild."),
    register: bool = typer.Option(
        False, "--register", help="Register the rebuild as a new version (a new number)."
    ),
    restore: bool = typer.Option(
        False,
        "--restore",
        help="Put a bit-identical rebuild back as version V (its files and its model-repository "
        "copy), rebuilding a warm-start base whose files are missing first; refused when the "
        "rebuild is not bit-identical.",
    ),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="For a warm-started version, also train from scratch on the chain's days and "
        "report how far it lands from the incremental model.",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="Train with N threads instead of the recorded count (the report names it).",
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Rebuild version V of MODEL from its record (config, data versions, seed, threads,
    base) and report how the rebuild compares: weights, metrics, scores, and why they differ."""
    model, version = parse_target(target)
    with spindle.Context.open(workspace) as ctx, progress_reporter(not as_json) as progress:
        report = spindle.reproduce_version(
            ctx,
            model,
            version,
            register=register,
            restore=restore,
            from_scratch=from_scratch,
            threads=threads,
            progress=progress.event,
        )
    if as_json:
        emit_json(report)
    else:
        _print(report)
    refused = report["restore"] is not None and not report["restore"]["done"]
    if refused:  # the rebuild ran, but what was asked of it (restore) was refused
        raise fail(spindle.SpindleError(report["restore"]["why"]))


def _diff_rows(metric_diff: dict[str, Any] | None, names: tuple[str, str]) -> list[list[str]]:
    if not metric_diff:
        return []
    rows = []
    for metric, values in metric_diff["metrics"].items():
        gated = " (gate)" if metric == metric_diff["metric"] else ""
        interval = f"[{fmt(values['lower'], 4)}, {fmt(values['upper'], 4)}]"
        rows.append(
            [
                metric + gated,
                fmt(values[names[0]], 4),
                fmt(values[names[1]], 4),
                fmt(values["diff"], 4),
                interval,
            ]
        )
    return rows


def _prediction_line(diff: dict[str, Any] | None) -> str:
    if not diff:
        return "not compared"
    return (
        f"max |diff| {fmt(diff['max_abs'], 6)}, mean {fmt(diff['mean_abs'], 6)}, Spearman "
        f"{fmt(diff['spearman'], 4)}, top-{diff['top_k']} overlap {fmt(diff['top_k_overlap'], 3)}"
    )


def _print(report: dict[str, Any]) -> None:
    label = f"{report['model']}@{report['version']}"
    same = "bit-identical" if report["content_hash"]["same"] else "NOT identical"
    console.print(f"{label}: rebuilt from its record ({report['record']}): {same}")
    console.print(f"  chain: {' <- '.join(report['chain'])}")
    console.print(f"  weights identical: {report['weights_identical']}")
    differ = [name for name, f in report["files"].items() if not f["same"]]
    console.print(f"  files differing: {', '.join(differ) or 'none'}")
    threads = report["threads"]
    console.print(f"  threads: recorded {threads['recorded']}, used {threads['used']}")
    console.print(f"  predictions: {_prediction_line(report['prediction_diff'])}")
    rows = _diff_rows(report["metric_diff"], ("original", "rebuilt"))
    if rows:
        table(
            "metrics on the original holdout (rebuilt - original)",
            ["metric", "original", "rebuilt", "diff", "CI"],
            rows,
        )
    elif report.get("compare_note"):
        console.print(f"  {report['compare_note']}")
    scratch = report.get("from_scratch")
    if scratch and "metric_diff" in scratch:
        console.print(f"  from scratch on {', '.join(scratch['days'])}:")
        console.print(f"    predictions: {_prediction_line(scratch['prediction_diff'])}")
        table(
            "from scratch vs incremental (from_scratch - incremental)",
            ["metric", "incremental", "from scratch", "diff", "CI"],
            _diff_rows(scratch["metric_diff"], ("incremental", "from_scratch")),
        )
    code = report["code_version"]
    console.print(f"  code version: {'same' if code['same'] else 'differs'} ({code['recorded']})")
    console.print("  causes: " + ("; ".join(report["causes"]) or "none known"))
    if report["restore"] and report["restore"]["done"]:
        for step in report["restore"]["steps"]:
            console.print(f"  restore: {step}")
    if report["registered_version"] is not None:
        console.print(f"  registered as {report['model']}@{report['registered_version']}")
