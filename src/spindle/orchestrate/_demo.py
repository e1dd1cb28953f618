"""``spindle demo``: simulate YarnIt, run the daily loop day by day, serve, and report."""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow.dataset as pads

from spindle.core import WORKSPACE_FILE, WorkspaceError
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._daily import DayReport, _train_evaluate_push, ingest_and_validate
from spindle.orchestrate._workspace_init import init_workspace
from spindle.serve import ServerThread, create_app
from spindle.sim import simulate

DEMO_MODEL = "search_ranker"
Progress = Callable[[str, int, int], None]


def _fresh_workspace(directory: Path) -> None:
    if directory.exists() and any(directory.iterdir()):
        if not (directory / WORKSPACE_FILE).is_file():
            raise WorkspaceError(
                f"{directory} is not empty and holds no {WORKSPACE_FILE}; pick another --dir"
            )
        shutil.rmtree(directory)
    init_workspace(directory, "yarnit")


def _requests(ctx: Context, day: str, n: int, seed: int) -> list[dict[str, Any]]:
    """Real shop requests: searches of the last day (user and query), half with their candidates."""
    raw = ctx.workspace.raw_dir
    searches = (
        pads.dataset(raw / "searches" / f"date={day}")
        .to_table(columns=["search_id", "user_id", "query"])
        .to_pylist()
    )
    impressions = (
        pads.dataset(raw / "impressions" / f"date={day}")
        .to_table(columns=["search_id", "product_id"])
        .to_pylist()
    )
    by_search: dict[str, list[str]] = {}
    for row in impressions:
        by_search.setdefault(row["search_id"], []).append(row["product_id"])
    rng = random.Random(seed)
    chosen = rng.sample(searches, min(n, len(searches)))
    bodies = []
    for i, s in enumerate(chosen):
        body: dict[str, Any] = {"user_id": s["user_id"], "query": s["query"], "k": 10}
        if i % 2 == 0 and by_search.get(s["search_id"]):
            body["candidates"] = by_search[s["search_id"]]
        bodies.append(body)
    return bodies


def serve_and_probe(ctx: Context, day: str, n_requests: int = 200) -> dict[str, Any]:
    """Start the server on loopback, send real ranking requests, and count what came back."""
    app = create_app(
        ctx.workspace.model_repo, ctx.workspace.online_store_path, default_model=DEMO_MODEL
    )
    errors, fallbacks = 0, 0
    versions: dict[str, int] = {}
    latencies: list[float] = []
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for body in _requests(ctx, day, n_requests, seed=1):
            t0 = time.perf_counter()
            response = client.post("/v1/rank", json=body)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                errors += 1
                continue
            payload = response.json()
            versions[str(payload["version"])] = versions.get(str(payload["version"]), 0) + 1
            fallbacks += payload["fallback"] is not None
    latencies.sort()
    served = max(versions, key=lambda v: versions[v]) if versions else None
    return {
        "requests": len(latencies),
        "errors": errors,
        "fallbacks": fallbacks,
        "version": served,
        "versions": versions,
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
    }


def run_demo(
    directory: str | Path,
    days: int = 7,
    *,
    scale: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Create a fresh YarnIt workspace in ``directory``, simulate ``days`` days and run the loop.

    Returns:
        ``{"days": [...], "serving": {...}, "workspace": str, "seconds": float}`` (the ``--json`` form).
    """
    t0 = time.perf_counter()
    target = Path(directory).resolve()
    _fresh_workspace(target)
    report: dict[str, Any] = {"workspace": str(target), "days": []}
    with Context.open(target) as ctx:
        sim = ctx.workspace.config.simulation
        start = sim.start_date
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
        dates = [(start + dt.timedelta(days=i)).isoformat() for i in range(days)]
        for i, date in enumerate(dates):
            day = DayReport(DEMO_MODEL, date)
            ingest_and_validate(ctx, date, day)
            if i > 0:
                try:
                    _train_evaluate_push(ctx, DEMO_MODEL, date, day, False, None)
                except Exception as exc:
                    day.error = f"{type(exc).__name__}: {exc}"
            day.serving_version = production_version(ctx, DEMO_MODEL)
            report["days"].append(_day_row(day))
            if progress:
                progress("day", i + 1, days)
        report["serving"] = serve_and_probe(ctx, dates[-1])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _day_row(day: DayReport) -> dict[str, Any]:
    return {
        "date": day.date,
        "rows_ingested": day.rows_ingested,
        "rows_quarantined": day.rows_quarantined,
        "validation": day.validation,
        "train_examples_per_s": day.train_examples_per_s,
        "ndcg10": {
            k: day.ndcg10.get(k) for k in ("candidate", "production", "popularity", "oracle")
        },
        "gate": day.gate,
        "serving_version": day.serving_version,
        "version": day.version,
        "base_version": day.base_version,
        "error": day.error,
        "gate_reasons": day.gate_reasons,
    }
