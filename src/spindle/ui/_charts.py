"""Plotly figures as plain JSON (``{"data": [...], "layout": {...}}``), drawn by plotly.js.

Built as dicts, not through ``plotly.graph_objects``: validating a figure there costs more than
the page's queries, and the browser does the drawing anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Figure = dict[str, Any]

STATUS_COLOURS = {
    "succeeded": "#2f9e44",
    "skipped": "#adb5bd",
    "failed": "#e03131",
    "running": "#1c7ed6",
}
VERDICT_CODES = {"pass": 1, "warn": 2, "fail": 3, "accepted": 1}


#: line colours in order (plotly's default sequence), a band taking its line's colour
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _translucent(colour: str, alpha: float = 0.18) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def layout(title: str, **extra: Any) -> dict[str, Any]:
    """A compact layout shared by every chart."""
    base: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 14}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "height": 300,
        "legend": {"orientation": "h", "y": -0.25},
        "hovermode": "closest",
    }
    return base | extra


def lines(
    title: str,
    series: Mapping[str, tuple[Sequence[Any], Sequence[float | None]]],
    *,
    y_title: str = "",
    bands: Mapping[str, tuple[Sequence[Any], Sequence[float | None], Sequence[float | None]]]
    | None = None,
) -> Figure:
    """Lines of ``{name: (x, y)}``; each band ``{name: (x, low, high)}`` is a shaded interval,
    in the colour of the line of the same name when there is one."""
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    data: list[dict[str, Any]] = []
    for i, (name, (x, low, high)) in enumerate((bands or {}).items()):
        colour = colours.get(name, PALETTE[(len(series) + i) % len(PALETTE)])
        data.append(
            {
                "x": list(x),
                "y": list(high),
                "mode": "lines",
                "line": {"width": 0},
                "showlegend": False,
                "hoverinfo": "skip",
                "name": f"{name} high",
            }
        )
        data.append(
            {
                "x": list(x),
                "y": list(low),
                "mode": "lines",
                "line": {"width": 0},
                "fill": "tonexty",
                "fillcolor": _translucent(colour),
                "name": f"{name} interval",
            }
        )
    for name, (x, y) in series.items():
        data.append(
            {
                "x": list(x),
                "y": list(y),
                "mode": "lines+markers",
                "name": name,
                "line": {"color": colours[name]},
                "marker": {"color": colours[name]},
            }
        )
    return {"data": data, "layout": layout(title, yaxis={"title": {"text": y_title}})}


def bars(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    errors: Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]] | None = None,
    y_title: str = "",
    stacked: bool = False,
) -> Figure:
    """Grouped (or stacked) bars; ``errors`` gives ``(minus, plus)`` error bars per series."""
    data = []
    for name, values in series.items():
        trace: dict[str, Any] = {
            "type": "bar",
            "x": list(categories),
            "y": list(values),
            "name": name,
        }
        if errors and name in errors:
            minus, plus = errors[name]
            trace["error_y"] = {
                "type": "data",
                "symmetric": False,
                "array": list(plus),
                "arrayminus": list(minus),
            }
        data.append(trace)
    extra: dict[str, Any] = {
        "barmode": "stack" if stacked else "group",
        "yaxis": {"title": {"text": y_title}},
    }
    return {"data": data, "layout": layout(title, **extra)}


def gantt(title: str, bars_: Sequence[Mapping[str, Any]]) -> Figure:
    """Horizontal bars from ``start`` (ISO time) lasting ``ms``, one row per ``row``, coloured
    by ``status``; ``text`` is the hover text."""
    data = []
    for status in sorted({str(b["status"]) for b in bars_}):
        mine = [b for b in bars_ if b["status"] == status]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": status,
                "y": [b["row"] for b in mine],
                "base": [b["start"] for b in mine],
                "x": [max(float(b["ms"]), 200.0) for b in mine],  # a skip still shows
                "text": [b["text"] for b in mine],
                "hoverinfo": "text",
                "marker": {"color": STATUS_COLOURS.get(status, "#868e96")},
            }
        )
    rows = len({b["row"] for b in bars_})
    return {
        "data": data,
        "layout": layout(
            title,
            barmode="overlay",
            height=max(220, 60 + 22 * rows),
            xaxis={"type": "date"},
            yaxis={"automargin": True, "autorange": "reversed"},
        ),
    }


def grid(
    title: str,
    x: Sequence[str],
    y: Sequence[str],
    z: Sequence[Sequence[float | None]],
    text: Sequence[Sequence[str]],
    scale: Sequence[tuple[float, str]],
    *,
    zmax: float,
) -> Figure:
    """A heatmap of codes (``z`` rows by ``y``), coloured by ``scale``, hover ``text``."""
    return {
        "data": [
            {
                "type": "heatmap",
                "x": list(x),
                "y": list(y),
                "z": [list(r) for r in z],
                "text": [list(r) for r in text],
                "hoverinfo": "text",
                "colorscale": [list(s) for s in scale],
                "zmin": 0,
                "zmax": zmax,
                "showscale": False,
                "xgap": 2,
                "ygap": 2,
            }
        ],
        "layout": layout(
            title,
            height=max(200, 80 + 26 * len(y)),
            yaxis={"automargin": True, "autorange": "reversed"},
            # one cell per day or week, however few: dates as categories, not a time axis
            xaxis={"type": "category", "nticks": 12},
        ),
    }


#: run outcome codes for :func:`grid`: 0 nothing ran, 1 succeeded, 2 skipped, 3 failed, 4 running
RUN_SCALE = [
    (0.0, "#f1f3f5"),
    (0.125, "#f1f3f5"),
    (0.125, "#2f9e44"),
    (0.375, "#2f9e44"),
    (0.375, "#adb5bd"),
    (0.625, "#adb5bd"),
    (0.625, "#e03131"),
    (0.875, "#e03131"),
    (0.875, "#1c7ed6"),
    (1.0, "#1c7ed6"),
]
RUN_CODES = {"succeeded": 1, "skipped": 2, "failed": 3, "running": 4}
#: verdict codes: 0 none, 1 pass, 2 warn, 3 fail
VERDICT_SCALE = [
    (0.0, "#f1f3f5"),
    (0.167, "#f1f3f5"),
    (0.167, "#2f9e44"),
    (0.5, "#2f9e44"),
    (0.5, "#f59f00"),
    (0.833, "#f59f00"),
    (0.833, "#e03131"),
    (1.0, "#e03131"),
]
