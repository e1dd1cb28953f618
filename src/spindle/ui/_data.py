"""The data page: per source and day, rows and quarantined rows by reason; the validation verdict
calendar; completeness against recent days; drift of column statistics; the day's anomalies;
and the quarantined rows themselves, a page at a time."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any
from urllib.parse import urlencode

import spindle
from spindle.data import load_profiles, quarantined_rows
from spindle.registry import artifact_fields
from spindle.ui import _charts as charts
from spindle.ui._reading import page_of

WINDOW_DAYS = 30
CALENDAR_DAYS = 365
TRAILING = 7
QUARANTINE_PAGE = 50


def _day(value: str | None) -> str | None:
    try:
        return dt.date.fromisoformat(value or "").isoformat()
    except ValueError:
        return None


def _shift(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()


def _newest(found: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The newest record of each key (records come oldest first)."""
    return {tuple(r[k] for k in keys): r for r in found}


def calendar(verdicts: dict[str, str], until: str) -> charts.Figure | None:
    """Weeks by weekday, coloured by the newest verdict of each day."""
    if not verdicts:
        return None
    end = dt.date.fromisoformat(until)
    start = max(dt.date.fromisoformat(min(verdicts)), end - dt.timedelta(days=CALENDAR_DAYS - 1))
    monday = start - dt.timedelta(days=start.weekday())
    weeks = [(monday + dt.timedelta(weeks=i)) for i in range((end - monday).days // 7 + 1)]
    names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    z: list[list[float | None]] = [[None] * len(weeks) for _ in names]
    text = [[""] * len(weeks) for _ in names]
    for w, week in enumerate(weeks):
        for d in range(7):
            day = week + dt.timedelta(days=d)
            if start <= day <= end:
                verdict = verdicts.get(day.isoformat())
                z[d][w] = charts.VERDICT_CODES.get(verdict or "", 0)
                text[d][w] = f"{day}: {verdict or 'not validated'}"
    return charts.grid(
        f"validation verdicts {start} to {end}",
        [w.isoformat() for w in weeks],
        names,
        z,
        text,
        charts.VERDICT_SCALE,
        zmax=3,
    )


def _completeness(
    rows: dict[tuple[Any, ...], dict[str, Any]], sources: list[str], days: list[str]
) -> charts.Figure | None:
    """Each source's rows as a share of the median of its previous days in the window."""
    series = {}
    for source in sources:
        counts = [rows.get((source, d), {}).get("rows") for d in days]
        ratio: list[float | None] = []
        for i, n in enumerate(counts):
            before = [c for c in counts[max(0, i - TRAILING) : i] if c]
            ratio.append(None if n is None or not before else n / statistics.median(before))
        if any(r is not None for r in ratio):
            series[source] = (days, ratio)
    if not series:
        return None
    return charts.lines(
        f"completeness: rows / median of the {TRAILING} days before", series, y_title="share"
    )


def _slices(anomalies: list[dict[str, Any]]) -> charts.Figure | None:
    """Each slice validation flagged (vanished, shrunk, grew): its observed share over the
    expected one, on the days it was flagged."""
    series: dict[str, tuple[list[str], list[float | None]]] = {}
    for a in sorted(anomalies, key=lambda a: a["date"]):
        if not a.get("slice") or not a.get("expected"):
            continue
        days, ratios = series.setdefault(f"{a['source']} {a['slice']}", ([], []))
        days.append(a["date"])
        ratios.append(float(a.get("observed") or 0.0) / float(a["expected"]))
    if not series:
        return None
    return charts.lines(
        "slices flagged by validation: observed share / expected share", series, y_title="ratio"
    )


SLICES_SHOWN = 10


def slice_dimensions(reports: dict[tuple[Any, ...], dict[str, Any]]) -> list[str]:
    """Every ``source.column`` whose daily rows by slice validation stored in the window."""
    return sorted(
        {
            f"{source}.{column}"
            for r in reports.values()
            for source, columns in (((r["stats"] or {}).get("slices")) or {}).items()
            for column in columns
        }
    )


def slice_shares(
    reports: dict[tuple[Any, ...], dict[str, Any]],
    anomalies: list[dict[str, Any]],
    dimension: str,
) -> charts.Figure | None:
    """Every slice's share of ``dimension``'s rows (``source.column``) on each day of the window,
    as validation counted them (the :data:`SLICES_SHOWN` largest, the rest as ``(other)``); the
    days validation flagged a slice (vanished, shrunk, grew) are marked on its line."""
    source, _, column = dimension.partition(".")
    days, counts = [], []
    for (day,), r in sorted(reports.items()):
        found = (((r["stats"] or {}).get("slices") or {}).get(source) or {}).get(column)
        if found:
            days.append(str(day))
            counts.append({str(k): int(n) for k, n in found.items()})
    if not days:
        return None
    shares = [{k: n / max(sum(c.values()), 1) for k, n in c.items()} for c in counts]
    keys = sorted({k for c in shares for k in c}, key=lambda k: -sum(c.get(k, 0.0) for c in shares))
    shown, rest = keys[:SLICES_SHOWN], keys[SLICES_SHOWN:]
    series: dict[str, tuple[list[str], list[float | None]]] = {
        f"{column}={k}": (days, [c.get(k, 0.0) for c in shares]) for k in shown
    }
    if rest:
        series["(other)"] = (days, [sum(c.get(k, 0.0) for k in rest) for c in shares])
    figure = charts.lines(
        f"slices of {source} by {column}: share of the day's rows", series, y_title="share"
    )
    flagged = [
        a
        for a in sorted(anomalies, key=lambda a: a["date"])
        if a.get("source") == source and str(a.get("slice") or "").startswith(f"{column}=")
    ]
    if flagged:
        figure["data"].append(
            {
                "x": [a["date"] for a in flagged],
                "y": [a.get("observed") for a in flagged],
                "mode": "markers",
                "name": "flagged by validation",
                "marker": {"symbol": "x", "size": 12, "color": "#e03131"},
                "text": [f"{a['slice']}: {a['kind']} ({a['severity']})" for a in flagged],
            }
        )
    return figure


def _drift(
    tables_dir: Any, days: list[str], source: str | None
) -> tuple[charts.Figure | None, list[str]]:
    """Column means of ``source`` in standard deviations from their mean over the window, and
    null shares: the stored daily profiles (``spindle.data.load_profiles``)."""
    profiles = load_profiles(tables_dir, days)
    found = sorted({p["source"] for day in profiles.values() for p in day})
    source = source if source in found else (found[0] if found else None)
    if source is None:
        return None, found
    means: dict[str, dict[str, float]] = {}
    nulls: dict[str, dict[str, float]] = {}
    for day, entries in profiles.items():
        for p in entries:
            if p["source"] != source:
                continue
            if p.get("mean") is not None:
                means.setdefault(p["column"], {})[day] = float(p["mean"])
            if p.get("count"):
                nulls.setdefault(p["column"], {})[day] = float(p["nulls"] or 0) / float(p["count"])
    series = {}
    for column, by_day in sorted(means.items()):
        values = list(by_day.values())
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        centre = statistics.fmean(values)
        series[f"{column} mean"] = (
            sorted(by_day),
            [0.0 if spread == 0 else (by_day[d] - centre) / spread for d in sorted(by_day)],
        )
    for column, by_day in sorted(nulls.items()):
        if any(v > 0 for v in by_day.values()):
            series[f"{column} null share"] = (sorted(by_day), [by_day[d] for d in sorted(by_day)])
    if not series:
        return None, found
    return charts.lines(
        f"drift of {source}: column means (std from the window mean), null shares",
        series,
        y_title="std / share",
    ), found


def data_view(ctx: spindle.ReadContext, query: dict[str, str]) -> dict[str, Any]:
    """The data page for a window of days (``since``..``until``, default the newest 30)."""
    verdict_rows = artifact_fields(
        ctx.store, "validation_report", ["date", "verdict"], limit=4 * CALENDAR_DAYS
    )
    verdicts = {str(r["date"]): str(r["verdict"]) for r in verdict_rows if r["date"]}
    ingests = artifact_fields(ctx.store, "ingest", ["date"], limit=1)
    newest = max([*verdicts, *(str(r["date"]) for r in ingests if r["date"])], default=None)
    until = _day(query.get("until")) or newest
    if until is None:
        return {"charts": True, "empty": True}
    since = _day(query.get("since")) or _shift(until, -(WINDOW_DAYS - 1))
    since = max(since, _shift(until, -CALENDAR_DAYS))
    ingested = _newest(
        artifact_fields(
            ctx.store,
            "ingest",
            ["date", "rows_ingested", "rows_quarantined", "quarantine_reasons", "missing_sources"],
            since=since,
            until=until,
        ),
        "date",
    )
    reports = _newest(
        artifact_fields(
            ctx.store, "validation_report", ["date", "stats", "anomalies"], since=since, until=until
        ),
        "date",
    )
    # rows per source and day: what validation counted in the loaded tables
    raw = {
        (source, day): {"rows": n}
        for (day,), r in reports.items()
        for source, n in ((r["stats"] or {}).get("rows") or {}).items()
    }
    anomalies = [a | {"date": day} for (day,), r in reports.items() for a in (r["anomalies"] or [])]
    days = sorted({d for _, d in raw} | {d for (d,) in ingested} | {d for (d,) in reports})
    sources = sorted({s for s, _ in raw})
    rows_chart = (
        charts.lines(
            "rows per source and day",
            {s: (days, [raw.get((s, d), {}).get("rows") for d in days]) for s in sources},
            y_title="rows",
        )
        if sources
        else None
    )
    drift, profiled = _drift(ctx.workspace.tables_dir, days, query.get("source"))
    dimensions = slice_dimensions(reports)
    dimension = query.get("slices") if query.get("slices") in dimensions else None
    dimension = dimension or (dimensions[0] if dimensions else None)
    table = [
        {
            "date": d,
            "verdict": verdicts.get(d),
            "rows": {s: raw.get((s, d), {}).get("rows") for s in sources},
            "ingest": ingested.get((d,), {}),
        }
        for d in reversed(days)
    ]
    return {
        "charts": True,
        "empty": False,
        "since": since,
        "until": until,
        "earlier": {"since": _shift(since, -WINDOW_DAYS), "until": _shift(since, -1)},
        "sources": sources,
        "profiled": profiled,
        "drift_source": query.get("source") if query.get("source") in profiled else None,
        "dimensions": dimensions,
        "dimension": dimension,
        "flagged_slices": sum(1 for a in anomalies if a.get("slice") and a.get("expected")),
        "days": table,
        "anomalies": sorted(
            anomalies, key=lambda a: (a["date"], a["severity"] != "fail"), reverse=True
        ),
        "figures": {
            "calendar": calendar(verdicts, until),
            "rows": rows_chart,
            "completeness": _completeness(raw, sources, days),
            # every slice's share over the days (older reports stored only the flagged ones)
            "slices": slice_shares(reports, anomalies, dimension) if dimension else None,
            "flagged": None if dimension else _slices(anomalies),
            "drift": drift,
        },
    }


def quarantine_view(ctx: spindle.ReadContext, query: dict[str, str]) -> dict[str, Any]:
    """One page of a day's quarantined rows (``date``, ``source``, ``reason``, ``page``)."""
    date = _day(query.get("date"))
    if date is None:
        raise spindle.NotFound("give the day: /data/quarantine?date=YYYY-MM-DD")
    page = page_of(query.get("page"))
    source, reason = query.get("source") or None, query.get("reason") or None
    found = quarantined_rows(
        ctx.workspace.tables_dir,
        date,
        source=source,
        reason=reason,
        offset=(page - 1) * QUARANTINE_PAGE,
        limit=QUARANTINE_PAGE,
    )
    filters = {"date": date, "source": source, "reason": reason}
    return {
        "date": date,
        "filters": filters,
        "query": urlencode({k: v for k, v in filters.items() if v}),
        "found": found,
        "page": page,
        "pages": max(1, -(-found.total // QUARANTINE_PAGE)),
    }
