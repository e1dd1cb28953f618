"""The runs page: a filtered, paged list of runs, a timeline of one day's steps and a day by
step grid that shows which days of a backfill or catch-up are missing or failed."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import spindle
from spindle.registry import DayStep, RunRecord, day_steps, run_facets, runs_page
from spindle.ui import _charts as charts

PAGE_SIZE = 50
GRID_DAYS = 31
TIMELINE_RUNS = 400


def _day(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _bar(run: RunRecord) -> dict[str, Any]:
    ms = 1000 * (run.duration_s or 0.0)
    return {
        "row": f"{run.model or '-'} · {run.step}",
        "start": run.started_at.isoformat(),
        "ms": ms,
        "status": run.status,
        "text": f"{run.step} {run.model or ''} {run.date}: {run.status} in {ms / 1000:.2f} s",
    }


def runs_view(ctx: spindle.ReadContext, query: dict[str, str]) -> dict[str, Any]:
    """The runs page's data for the query string's filters (model, step, status, since,
    until, page, day)."""
    facets = run_facets(ctx.store)
    model = query.get("model") or None
    step = query.get("step") or None
    status = query.get("status") or None
    if status is not None and status not in facets.statuses:
        status = None
    since, until = _day(query.get("since")), _day(query.get("until"))
    page = max(1, int(query["page"])) if query.get("page", "").isdigit() else 1
    found = runs_page(
        ctx.store,
        model=model,
        step=step,
        status=status,
        since=since,
        until=until,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    last = until or facets.last_date
    first = since or facets.first_date
    grid = _grid(ctx, model, first, last) if last else None
    day = _day(query.get("day")) or last
    timeline = None
    if day:
        day_runs = runs_page(
            ctx.store,
            model=model,
            step=step,
            status=status,
            since=day,
            until=day,
            limit=TIMELINE_RUNS,
        ).runs
        if day_runs:
            timeline = charts.gantt(f"steps run for {day}", [_bar(r) for r in day_runs])
    filters = {"model": model, "step": step, "status": status, "since": since, "until": until}
    return {
        "charts": True,
        "query": urlencode({k: v for k, v in filters.items() if v}),
        "facets": facets,
        "filters": filters,
        "page": page,
        "pages": max(1, -(-found.total // PAGE_SIZE)),
        "found": found,
        "day": day,
        "timeline": timeline,
        "grid": grid,
    }


_WORST = {"failed": 4, "running": 3, "succeeded": 2, "skipped": 1}


def _grid(
    ctx: spindle.ReadContext, model: str | None, since: str | None, last: str
) -> dict[str, Any]:
    """Days by step: the worst of the newest outcome of each model's runs of the step that
    day. A day where a step ran on days before and after it but not that day is a gap
    (missing); gaps and failures are listed."""
    end = dt.date.fromisoformat(last)
    start = end - dt.timedelta(days=GRID_DAYS - 1)
    if since:  # from the first day asked for (or recorded), a year at most
        start = max(dt.date.fromisoformat(since), end - dt.timedelta(days=366))
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    by_cell: dict[tuple[str, str], list[DayStep]] = {}
    for cell in day_steps(ctx.store, since=days[0], until=days[-1], model=model):
        by_cell.setdefault((cell.step, cell.date), []).append(cell)
    steps = sorted({step for step, _ in by_cell})
    z, text, problems = [], [], []
    for step in steps:
        ran = [day for s, day in by_cell if s == step]
        z_row, t_row = [], []
        for day in days:
            cells = by_cell.get((step, day), [])
            if not cells:
                z_row.append(0)
                t_row.append(f"{day} {step}: no run")
                if min(ran) < day < max(ran):  # a gap between days it ran: missing
                    problems.append({"date": day, "step": step, "models": "", "problem": "missing"})
                continue
            worst = max(cells, key=lambda c: _WORST.get(c.last_status, 0)).last_status
            z_row.append(charts.RUN_CODES.get(worst, 0))
            t_row.append(f"{day} {step}: " + "; ".join(_describe(c) for c in cells))
            if worst == "failed":
                who = ", ".join(c.model or "-" for c in cells if c.last_status == "failed")
                problems.append({"date": day, "step": step, "models": who, "problem": "failed"})
        z.append(z_row)
        text.append(t_row)
    figure = (
        charts.grid(
            f"newest outcome per day, {days[0]} to {days[-1]} (grey: nothing ran)",
            days,
            steps,
            z,
            text,
            charts.RUN_SCALE,
            zmax=4,
        )
        if steps
        else None
    )
    return {"figure": figure, "problems": problems, "since": days[0], "until": days[-1]}


def _describe(cell: DayStep) -> str:
    retries = f" after {cell.runs} runs ({cell.failed} failed)" if cell.runs > 1 else ""
    return f"{cell.model or 'all'} {cell.last_status}{retries}"
