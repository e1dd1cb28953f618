"""Compare two versions of a model: the config keys that changed, metric differences with
intervals overall and per slice, and the feature versions each pins."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import spindle
from spindle.ui._model import known_model, primary_metric
from spindle.ui._version import evaluation_report, manifest


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as ``{"a.b.c": json value}``; lists stay whole values."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): json.dumps(value, sort_keys=True)}


def config_diff(a: Any, b: Any) -> list[dict[str, Any]]:
    """Only the keys whose values differ (absent on one side included), sorted."""
    left, right = flatten(a or {}), flatten(b or {})
    return [
        {"key": k, "a": left.get(k), "b": right.get(k)}
        for k in sorted(set(left) | set(right))
        if left.get(k) != right.get(k)
    ]


def _paired_intervals(
    newer: dict[str, Any] | None, older_version: int, sign: float
) -> dict[tuple[str, str | None], tuple[float, float]]:
    """The intervals of ``newer``'s evaluation against ``older_version`` (when that was its
    baseline), by (metric, slice), as intervals of B minus A (``sign`` -1 flips them)."""
    if not newer or newer.get("baseline_version") != older_version:
        return {}
    out = {}
    for r in newer.get("reasons", []):
        if r.get("check") in ("regression", "slice_regression") and r.get("interval"):
            low, high = r["interval"]
            if low is None or high is None:
                continue
            pair = (sign * low, sign * high)
            out[(str(r["metric"]), r.get("slice"))] = (min(pair), max(pair))
    return out


def _rows(
    a: dict[str, Any],
    b: dict[str, Any],
    intervals: dict[tuple[str, str | None], tuple[float, float]],
    slice_: str | None,
) -> list[dict[str, Any]]:
    names = sorted(set(a) | set(b))
    out = []
    for name in names:
        va, vb = a.get(name), b.get(name)
        diff = None if va is None or vb is None else vb - va
        out.append(
            {
                "metric": name,
                "slice": slice_,
                "a": va,
                "b": vb,
                "diff": diff,
                "interval": intervals.get((name, slice_)),
            }
        )
    return out


def compare_view(ctx: spindle.ReadContext, model: str, query: dict[str, str]) -> dict[str, Any]:
    """The compare page's data for versions ``a`` and ``b`` of the query string (default: the
    two newest).

    Raises:
        NotFound: no such model or version.
    """
    known_model(ctx, model)
    versions = [v.version for v in ctx.store.versions(model) if v.status == "ready"]
    try:
        va = int(query.get("a") or (versions[-2] if len(versions) > 1 else versions[-1]))
        vb = int(query.get("b") or versions[-1])
    except (ValueError, IndexError) as exc:
        raise spindle.NotFound(f"{model} has no two versions to compare ({versions})") from exc
    ctx.store.get_version(model, va)
    ctx.store.get_version(model, vb)
    ma, mb = manifest(ctx, model, va), manifest(ctx, model, vb)
    ea, eb = evaluation_report(ctx, model, va), evaluation_report(ctx, model, vb)
    # (report, system of A, system of B): one holdout when one was evaluated against the
    # other (the candidate and its production baseline); else each its own candidate scores
    sides: tuple[tuple[dict[str, Any], str], tuple[dict[str, Any], str]]
    intervals = _paired_intervals(eb, va, 1.0)
    if intervals and eb is not None:
        sides = ((eb, "production"), (eb, "candidate"))
    elif (intervals := _paired_intervals(ea, vb, -1.0)) and ea is not None:
        sides = ((ea, "candidate"), (ea, "production"))
    else:
        sides = ((ea or {}, "candidate"), (eb or {}, "candidate"))
    (ra, sys_a), (rb, sys_b) = sides
    overall = _rows(
        ra.get("metrics", {}).get(sys_a, {}), rb.get("metrics", {}).get(sys_b, {}), intervals, None
    )
    metric = primary_metric(ctx, model)
    slices = []
    sa, sb = ra.get("slices", {}), rb.get("slices", {})
    for name in sorted(set(sa) | set(sb)):
        slices += _rows(
            _only(sa.get(name, {}).get(sys_a, {}), metric),
            _only(sb.get(name, {}).get(sys_b, {}), metric),
            intervals,
            name,
        )
    fa, fb = set(ma.get("features", [])), set(mb.get("features", []))
    return {
        "model": model,
        "a": va,
        "b": vb,
        "versions": versions[-200:],
        "config": config_diff(ma.get("config"), mb.get("config")),
        "configs_found": bool(ma) and bool(mb),
        "overall": overall,
        "slices": slices,
        "metric": metric,
        "paired": bool(intervals),
        "paired_holdout": ra.get("holdout") if intervals else None,
        "holdouts": ((ea or {}).get("holdout"), (eb or {}).get("holdout")),
        "features": [{"ref": f, "a": f in fa, "b": f in fb} for f in sorted(fa | fb)],
    }


def _only(metrics: dict[str, Any], metric: str | None) -> dict[str, Any]:
    """The gated metric of a slice's metrics (all of them when it is unknown or absent)."""
    return {metric: metrics[metric]} if metric and metric in metrics else metrics
