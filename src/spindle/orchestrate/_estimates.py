"""Estimates from past runs: how long a model's daily pipeline and a day's ingest take."""

from __future__ import annotations

import statistics

from spindle.orchestrate._context import Context, ReadContext

DEFAULT_MODEL_S = 120.0
DEFAULT_INGEST_S = 10.0
_MODEL_STEPS = ("training_set:train", "train", "training_set:holdout", "evaluate", "push")


def _median_wall(ctx: Context | ReadContext, step: str, model: str | None) -> float | None:
    runs = [
        r
        for r in ctx.store.runs(step=step, model=model, status="succeeded", limit=20)
        if r.resources.get("wall_s")
    ]
    return statistics.median(float(r.resources["wall_s"]) for r in runs) if runs else None


def model_run_s(ctx: Context | ReadContext, model: str) -> float:
    """Expected seconds for one daily run of ``model`` (training set, train, evaluate, push)."""
    parts = [_median_wall(ctx, step, model) for step in _MODEL_STEPS]
    known = [p for p in parts if p is not None]
    return sum(known) if known else DEFAULT_MODEL_S


def ingest_s(ctx: Context | ReadContext) -> float:
    """Expected seconds to ingest, featurise and validate one day."""
    parts = [_median_wall(ctx, step, None) for step in ("ingest", "features", "validate")]
    known = [p for p in parts if p is not None]
    return sum(known) if known else DEFAULT_INGEST_S
