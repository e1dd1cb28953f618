"""The version page: effective config, lineage drawn, the gate's verdict with every reason and
its evidence, metrics per slice, and the resources the training used."""

from __future__ import annotations

from typing import Any

import spindle
from spindle.core import read_package
from spindle.registry import latest_by_version
from spindle.ui import _charts as charts
from spindle.ui import _lineage as lineage
from spindle.ui._model import known_model, primary_metric
from spindle.ui._reading import report_file
from spindle.ui._retractions import retractions_reaching

_LEVELS = {"fail": 0, "warn": 1, "pass": 2}


def manifest(ctx: spindle.ReadContext, model: str, version: int) -> dict[str, Any]:
    """The version's manifest (config, feature pins, seed, code and library versions); empty
    when its directory is gone or unreadable."""
    record = ctx.store.get_version(model, version)
    if record.artifact_id is None:
        return {}
    try:
        return read_package(ctx.store.get_artifact(record.artifact_id).uri).to_json()
    except spindle.SpindleError:
        return {}


def evaluation_report(ctx: spindle.ReadContext, model: str, version: int) -> dict[str, Any] | None:
    """The full report of the version's newest evaluation (metrics, slices, reasons)."""
    found = latest_by_version(ctx.store, "evaluation", model, [version]).get(version)
    if found is None:
        return None
    report = report_file(found.uri)
    return None if report is None else report | {"id": found.id}


def slice_chart(report: dict[str, Any], metric: str) -> charts.Figure | None:
    slices = report.get("slices") or {}
    if not slices:
        return None
    names = sorted(slices)
    systems = sorted({s for m in slices.values() for s in m}, key=lambda s: (s != "candidate", s))
    series = {s: [slices[n].get(s, {}).get(metric) for n in names] for s in systems}
    return charts.bars(f"{metric} per slice", names, series, y_title=metric)


def version_view(ctx: spindle.ReadContext, model: str, version: int) -> dict[str, Any]:
    """The version page's data.

    Raises:
        NotFound: no such model or version (naming those that exist).
    """
    known_model(ctx, model)
    record = ctx.store.get_version(model, version)
    report = spindle.lineage_report(ctx, model, version)
    package = manifest(ctx, model, version)
    evaluation = evaluation_report(ctx, model, version)
    metric = primary_metric(ctx, model) or (evaluation or {}).get("primary_metric")
    reasons = sorted(
        (evaluation or {}).get("reasons", []), key=lambda r: _LEVELS.get(str(r.get("level")), 3)
    )
    trained = {}
    if record.artifact_id is not None:
        trained = dict(ctx.store.get_artifact(record.artifact_id).properties.get("metrics", {}))
    run = report.get("training_run") or {}
    return {
        "charts": True,
        "model": model,
        "version": version,
        "record": record,
        "aliases": sorted(a for a, v in ctx.store.aliases(model).items() if v == version),
        "config": package.get("config"),
        "package": {
            k: package.get(k)
            for k in (
                "seed",
                "code_version",
                "framework",
                "python",
                "why",
                "config_hash",
                "workers",
                "threads",
            )
        },
        "features": package.get("features", []),
        "lineage": lineage.svg(lineage.columns(model, report)),
        "report": report,
        "evaluation": evaluation,
        "reasons": reasons,
        "metric": metric,
        "figures": {"slices": slice_chart(evaluation, metric) if evaluation and metric else None},
        "resources": run.get("resources", {}),
        "trained": trained,
        "run": run,
        "retracted": retractions_reaching(ctx, f"{model}@{version}"),
    }
