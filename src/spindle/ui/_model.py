"""The model page: its versions (paged), the gated metric over days with its interval, training
efficiency and throughput, and who deployed or rolled back what, and why."""

from __future__ import annotations

from typing import Any

import spindle
from spindle.registry import artifact_fields, latest_by_version, versions_page
from spindle.ui import _charts as charts
from spindle.ui._reading import page_of, report_file

PAGE_SIZE = 25
CHART_DAYS = 365  # evaluations and versions drawn
BAND_DAYS = 60  # the newest evaluations whose intervals are read from their reports
HISTORY = 30


def known_model(ctx: spindle.ReadContext, model: str) -> None:
    """Raise NotFound (naming the models that exist) unless ``model`` is declared or trained."""
    names = sorted(set(ctx.workspace.model_names()) | set(ctx.store.models()))
    if model not in names:
        raise spindle.NotFound(f"no model {model!r} (models: {', '.join(names) or 'none yet'})")


def primary_metric(ctx: spindle.ReadContext, model: str) -> str | None:
    """The metric the model's gate judges (its config's ``evaluation.metric``)."""
    if model not in ctx.workspace.model_names():
        return None
    return ctx.workspace.model_config(model)[0].evaluation.metric


def _version_rows(
    ctx: spindle.ReadContext, model: str, offset: int, metric: str | None
) -> tuple[list[dict[str, Any]], int]:
    page = versions_page(ctx.store, model, offset=offset, limit=PAGE_SIZE)
    numbers = [v.version for v in page.versions]
    evaluations = latest_by_version(ctx.store, "evaluation", model, numbers)
    deployments = latest_by_version(ctx.store, "deployment", model, numbers)
    builds = latest_by_version(ctx.store, "model_version", model, numbers)
    aliases = ctx.store.aliases(model)
    rows = []
    for v in page.versions:
        evaluation = evaluations.get(v.version)
        props = evaluation.properties if evaluation else {}
        trained = builds[v.version].properties.get("metrics", {}) if v.version in builds else {}
        systems = props.get("metrics", {})
        deployment = deployments.get(v.version)
        rows.append(
            {
                "record": v,
                "aliases": sorted(a for a, n in aliases.items() if n == v.version),
                "verdict": props.get("decision"),
                "holdout_date": props.get("holdout_date"),
                "reasons": props.get("reasons", []),
                "metric": {s: m.get(metric) for s, m in systems.items()} if metric else {},
                "examples": trained.get("examples"),
                "m_examples_per_cpu_s": trained.get("m_examples_per_cpu_s"),
                "examples_per_s": trained.get("examples_per_s"),
                "pushed": deployment is not None,
                "forced": None
                if deployment is None
                else deployment.properties.get("forced_reason"),
            }
        )
    return rows, page.total


def _metric_chart(ctx: spindle.ReadContext, model: str, metric: str) -> charts.Figure | None:
    """Each system's metric per holdout day (the newest evaluation of each day), with its own
    bootstrap interval as a band on the newest evaluations, read from their reports (a report
    from before systems had intervals: the interval of candidate minus production, drawn around
    production)."""
    found = artifact_fields(
        ctx.store,
        "evaluation",
        ["version", "holdout_date", "metrics"],
        where={"model": model},
        limit=CHART_DAYS,
    )
    by_day = {str(e["holdout_date"]): e for e in found if e["holdout_date"]}
    if not by_day:
        return None
    days = sorted(by_day)
    systems = sorted({s for e in by_day.values() for s in (e["metrics"] or {})}, key=_system_order)
    series = {
        s: (days, [(by_day[d]["metrics"] or {}).get(s, {}).get(metric) for d in days])
        for s in systems
    }
    bands: dict[str, tuple[list[str], list[float], list[float]]] = {}
    for day in days[-BAND_DAYS:]:
        report = report_file(ctx.store.get_artifact(by_day[day]["id"]).uri) or {}
        for system, interval in _intervals(report, metric, series, days.index(day)).items():
            band_days, low, high = bands.setdefault(system, ([], [], []))
            band_days.append(day)
            low.append(interval[0])
            high.append(interval[1])
    ordered = {s: bands[s] for s in [*series, *bands] if s in bands}  # in the lines' order
    return charts.lines(f"{metric} per holdout day", series, y_title=metric, bands=ordered)


def _intervals(
    report: dict[str, Any],
    metric: str,
    series: dict[str, tuple[list[str], list[Any]]],
    at: int,
) -> dict[str, tuple[float, float]]:
    """The band of each system on one evaluation's day: its own interval of the primary metric,
    or (older reports) production's value plus the interval of candidate minus production."""
    if report.get("primary_metric") == metric and report.get("intervals"):
        return {
            str(s): (float(iv[0]), float(iv[1]))
            for s, iv in report["intervals"].items()
            if s in series and iv and None not in iv
        }
    production = series.get("production", ([], [None] * (at + 1)))[1][at]
    for reason in report.get("reasons", []) if production is not None else []:
        if reason.get("check") != "regression" or reason.get("slice") is not None:
            continue
        interval = reason.get("interval")
        if reason.get("metric") == metric and interval and None not in interval:
            low, high = production + interval[0], production + interval[1]
            return {"candidate vs production": (low, high)}
    return {}


def _efficiency_charts(ctx: spindle.ReadContext, model: str) -> list[charts.Figure]:
    found = artifact_fields(
        ctx.store,
        "model_version",
        ["version", "date", "metrics"],
        where={"model": model},
        limit=CHART_DAYS,
    )
    if not found:
        return []
    labels = [f"{e['date']} v{e['version']}" for e in found]
    metrics = [e["metrics"] or {} for e in found]
    return [
        charts.lines(
            "training efficiency: million examples per CPU-second",
            {"M examples / CPU-s": (labels, [m.get("m_examples_per_cpu_s") for m in metrics])},
            y_title="M ex / CPU-s",
        ),
        charts.lines(
            "training throughput",
            {"examples / s": (labels, [m.get("examples_per_s") for m in metrics])},
            y_title="examples / s",
        ),
    ]


def model_view(ctx: spindle.ReadContext, model: str, query: dict[str, str]) -> dict[str, Any]:
    """The model page's data; page N of the versions from the query string."""
    known_model(ctx, model)
    metric = primary_metric(ctx, model)
    page = page_of(query.get("page"))
    trained = model in ctx.store.models()
    rows, total = _version_rows(ctx, model, (page - 1) * PAGE_SIZE, metric) if trained else ([], 0)
    deployments = ctx.store.deployments(model)[-HISTORY:][::-1] if trained else []
    history = ctx.store.alias_history(model)[-HISTORY:][::-1] if trained else []
    figures = {"metric": _metric_chart(ctx, model, metric) if trained and metric else None}
    for i, fig in enumerate(_efficiency_charts(ctx, model) if trained else []):
        figures[f"efficiency{i}"] = fig
    systems = sorted({s for r in rows for s in r["metric"]}, key=_system_order)
    return {
        "charts": True,
        "model": model,
        "metric": metric,
        "trained": trained,
        "aliases": ctx.store.aliases(model) if trained else {},
        "versions": rows,
        "systems": systems,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "total": total,
        "deployments": deployments,
        "history": history,
        "figures": figures,
    }


def _system_order(name: str) -> tuple[int, str]:
    return ({"candidate": 0, "production": 1}.get(name, 2), name)
