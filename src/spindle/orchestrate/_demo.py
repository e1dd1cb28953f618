"""``spindle demo``: an example workspace's daily loop, day by day, then served and probed.

The example's ``spindle.yaml`` says what the demo runs (``demo:``, ``core.DemoConfig``): which
model, and whether its days are simulated first (the shop) or read from the declared sources
(flights, from the data the package ships). Every day is ingested and validated; from the
second day on the model is trained (warm started), evaluated against production and its
declared baselines, gated and pushed. At the end the model repository is served on loopback
and the model answers real requests, ``POST /v1/models/{model}/predict`` with the last day's
examples as instances (a ranking model's request is one result list). ``demo.models`` names
more models run the same way beside the demo's ``model`` (the flights example's arrival delay
in minutes beside ``delay``), each reported under ``models`` of the result.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from spindle.core import WORKSPACE_FILE, ConfigError, DemoConfig, WorkspaceError
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._daily import DayReport, _train_evaluate_push, ingest_and_validate
from spindle.orchestrate._infra_validation import holdout_requests
from spindle.orchestrate._model_common import load_config
from spindle.orchestrate._workspace_init import init_workspace
from spindle.serve import ServerThread, ServingDeclarations, create_app

Progress = Callable[[str, int, int], None]


def _fresh_workspace(directory: Path, example: str) -> None:
    if directory.exists() and any(directory.iterdir()):
        if not (directory / WORKSPACE_FILE).is_file():
            raise WorkspaceError(
                f"{directory} is not empty and holds no {WORKSPACE_FILE}; pick another --dir"
            )
        shutil.rmtree(directory)
    init_workspace(directory, example)


def _demo_config(ctx: Context, example: str) -> DemoConfig:
    demo = ctx.workspace.config.demo
    if demo is None:
        raise ConfigError(
            WORKSPACE_FILE,
            [f"the example {example!r} declares no demo: block (model, data) to run"],
        )
    return demo


def _probe(
    client: httpx.Client, ctx: Context, model: str, day: str, n_requests: int
) -> dict[str, Any]:
    """Send ``model`` its day's holdout examples one request at a time; summarize the answers."""
    loaded = load_config(ctx, model)
    requests = holdout_requests(ctx, loaded, day, n_requests)
    errors, fallbacks = 0, 0
    versions: dict[str, int] = {}
    latencies: list[float] = []
    values: list[float] = []
    for instances in requests:
        t0 = time.perf_counter()
        response = client.post(f"/v1/models/{model}/predict", json={"instances": instances})
        latencies.append(time.perf_counter() - t0)
        if response.status_code != 200:
            errors += 1
            continue
        payload = response.json()
        versions[str(payload["version"])] = versions.get(str(payload["version"]), 0) + 1
        fallbacks += payload["fallback"] is not None
        values += [p["value"] for p in payload["predictions"] if "value" in p]
    latencies.sort()
    probe: dict[str, Any] = {
        "requests": len(latencies),
        "errors": errors,
        "fallbacks": fallbacks,
        "version": max(versions, key=lambda v: versions[v]) if versions else None,
        "versions": versions,
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
    }
    if values:  # a regression model answers values in its label's unit
        probe["values"] = {
            "mean": round(sum(values) / len(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    return probe


def serve_models_and_probe(
    ctx: Context, models: Sequence[str], day: str, n_requests: int
) -> dict[str, dict[str, Any]]:
    """Serve the model repository on loopback; send each of ``models`` real predict requests.

    Args:
        models: the models probed, in order; the first is the server's default model.
        day: the day whose holdout examples are sent as instances.
        n_requests: requests per model (a ranking model's request is one result list).

    Returns:
        Per model: ``{"requests", "errors", "fallbacks", "version", "versions", "p50_ms",
        "p99_ms"}``, and ``"values"`` (mean, min, max) for a model answering values.
    """
    app = create_app(
        ctx.workspace.model_repo,
        ctx.workspace.online_store_url,
        default_model=models[0],
        declarations=ServingDeclarations.of(
            ctx.features,
            models={
                name: ctx.workspace.model_config(name)[0] for name in ctx.workspace.model_names()
            },
        ),
        registry_url=ctx.workspace.metadata_url,
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        return {model: _probe(client, ctx, model, day, n_requests) for model in models}


def serve_and_probe(ctx: Context, model: str, day: str, n_requests: int) -> dict[str, Any]:
    """Serve the model repository on loopback and send ``model`` real predict requests.

    Returns:
        ``{"requests", "errors", "fallbacks", "version", "versions", "p50_ms", "p99_ms"}``
        (and ``"values"`` for a model answering values).
    """
    return serve_models_and_probe(ctx, [model], day, n_requests)[model]


def _first_day(
    ctx: Context, demo: DemoConfig, days: int, scale: float | None, progress: Progress | None
) -> dt.date:
    """The demo's first day; with ``data: simulate`` the days are simulated first."""
    sim = ctx.workspace.config.simulation
    start = demo.start or sim.start_date
    if demo.data == "simulate":
        from spindle.sim import simulate  # only the simulated example needs the simulator

        simulate(
            ctx.workspace.raw_dir,
            start=start,
            days=days,
            seed=sim.seed,
            scale=scale or sim.scale,
            progress=(lambda d: progress("simulate", (d - start).days + 1, days))
            if progress
            else None,
        )
    return start


def run_demo(
    directory: str | Path,
    days: int = 7,
    *,
    example: str = "yarnit",
    scale: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Create a fresh workspace of ``example`` in ``directory`` and run its demo for ``days``.

    Args:
        scale: the simulator's traffic multiplier (a simulated example only).

    Returns:
        ``{"example", "model", "metric", "days": [...], "serving": {...}, "models": {...},
        "workspace", "seconds"}`` (the ``--json`` form); each day holds ``date``,
        ``validation``, ``gate``, ``serving_version`` and ``metrics`` (every system's:
        candidate, production, the declared baselines). ``days`` and ``serving`` are the
        demo's ``model``'s; ``models`` holds the other models of the demo (``demo.models``)
        by name: ``{"metric", "days", "serving"}`` of the same shape.

    Raises:
        WorkspaceError: ``directory`` holds something that is not a workspace.
        ConfigError: the example declares no ``demo:``.
    """
    t0 = time.perf_counter()
    target = Path(directory).resolve()
    _fresh_workspace(target, example)
    with Context.open(target) as ctx:
        demo = _demo_config(ctx, example)
        models = list(dict.fromkeys([demo.model, *demo.models]))
        runs: dict[str, dict[str, Any]] = {
            name: {"metric": load_config(ctx, name).config.evaluation.metric, "days": []}
            for name in models
        }
        start = _first_day(ctx, demo, days, scale, progress)
        dates = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
        for i, date in enumerate(dates):
            _run_day(ctx, models, date, i > 0, runs)
            if progress:
                progress("day", i + 1, days)
        probes = serve_models_and_probe(ctx, models, dates[-1], demo.requests)
        for name in models:
            runs[name]["serving"] = probes[name]
    primary = runs[demo.model]
    return {
        "example": example,
        "model": demo.model,
        "metric": primary["metric"],
        "workspace": str(target),
        "days": primary["days"],
        "serving": primary["serving"],
        "models": {name: runs[name] for name in models[1:]},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _run_day(
    ctx: Context, models: list[str], date: str, train: bool, runs: dict[str, dict[str, Any]]
) -> None:
    """Ingest and validate ``date``; then train, evaluate, gate and push each model on it."""
    first = DayReport(models[0], date)
    ingest_and_validate(ctx, date, first)
    for name in models:
        day = first if name == models[0] else DayReport(name, date)
        if day is not first:
            day.rows_ingested, day.rows_quarantined = first.rows_ingested, first.rows_quarantined
            day.validation, day.anomalies = first.validation, list(first.anomalies)
        if train:
            try:
                _train_evaluate_push(ctx, name, date, day, False, None)
            except Exception as exc:
                day.error = f"{type(exc).__name__}: {exc}"
        day.serving_version = production_version(ctx, name)
        runs[name]["days"].append(_day_row(day))


def _day_row(day: DayReport) -> dict[str, Any]:
    return {
        "date": day.date,
        "rows_ingested": day.rows_ingested,
        "rows_quarantined": day.rows_quarantined,
        "validation": day.validation,
        "train_examples_per_s": day.train_examples_per_s,
        "metrics": day.metrics,
        "score": day.gate_scores(),
        "gate": day.gate,
        "serving_version": day.serving_version,
        "version": day.version,
        "base_version": day.base_version,
        "error": day.error,
        "gate_reasons": day.gate_reasons,
    }
