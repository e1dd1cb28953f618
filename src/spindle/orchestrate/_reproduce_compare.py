"""How a rebuilt version compares with its original: files, metrics and scores on a holdout.

The metrics of both models come from ``spindle.evaluate.evaluate_task`` on the same bootstrap
draws (a paired interval of rebuilt − original for every metric of the task); the scores'
differences from ``spindle.evaluate.prediction_difference``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from spindle.core import ModelConfig
from spindle.evaluate import evaluate_task, model_predictions, prediction_difference
from spindle.orchestrate._model_common import labels_and_groups
from spindle.serve import ModelRuntime

TOP_K = 10
"""The k of the top-k overlap (per result list for a ranking task, over all rows otherwise)."""


def files_comparison(manifest: dict[str, Any], rebuilt: dict[str, str]) -> dict[str, Any]:
    """Each file of the version: the recorded and the rebuilt sha256 and whether they match."""
    recorded = dict(manifest.get("files") or {})
    return {
        name: {
            "recorded": recorded.get(name),
            "rebuilt": rebuilt.get(name),
            "same": recorded.get(name) == rebuilt.get(name),
        }
        for name in sorted({*recorded, *rebuilt})
    }


def _number(value: float) -> float | None:
    """A JSON-able number (an undefined metric is None)."""
    return float(value) if np.isfinite(value) else None


def _metric_diff(
    config: ModelConfig,
    labels: np.ndarray,
    groups: np.ndarray | None,
    a: np.ndarray,
    b: np.ndarray,
    names: tuple[str, str],
) -> dict[str, Any]:
    """Every metric of the task for both, and the paired bootstrap interval of b − a."""
    first, second = names
    task = config.task
    result = evaluate_task(
        task,
        labels,
        {first: model_predictions(task, a), second: model_predictions(task, b)},
        groups=groups,
        reference=first,
        confidence=config.evaluation.confidence,
        seed=config.training.seed,
    )
    metrics = {}
    for metric, by_system in result.deltas.items():
        if second not in by_system:
            continue
        interval = by_system[second]
        metrics[metric] = {
            first: _number(result.metrics[metric][first].value),
            second: _number(result.metrics[metric][second].value),
            "diff": _number(interval.estimate),
            "lower": _number(interval.lower),
            "upper": _number(interval.upper),
        }
    gated = config.evaluation.metric
    return {
        "metric": gated,
        "gated": metrics.get(gated),
        "metrics": metrics,
        "confidence": result.confidence,
        "n_units": result.n_units,
        "of": f"{second} - {first}",
    }


def compare_scores(
    config: ModelConfig,
    holdout: Path,
    original: Path | None,
    rebuilt: Path,
    *,
    names: tuple[str, str] = ("original", "rebuilt"),
) -> dict[str, Any]:
    """Score both versions on the ``holdout`` file, a batch of rows at a time as the evaluation
    does, and compare (``original`` None: its files are gone).

    Returns:
        ``metric_diff`` and ``prediction_diff`` (None with a ``note`` when the original's files
        are gone: nothing to score).
    """
    if original is None:
        note = "the original's files are gone: its scores cannot be compared (see files)"
        return {"metric_diff": None, "prediction_diff": None, "compare_note": note}
    present = set(pq.read_schema(holdout).names)
    wanted = [c for c in (config.label, config.group_key) if c and c in present]
    table = pq.read_table(holdout, columns=wanted)  # the label and groups only
    labels, groups = labels_and_groups(table, config)
    a = ModelRuntime.load(original).score_file(holdout)
    b = ModelRuntime.load(rebuilt).score_file(holdout)
    diff = prediction_difference(a, b, groups=groups, k=TOP_K)
    return {
        "metric_diff": _metric_diff(config, labels, groups, a, b, names),
        "prediction_diff": diff.to_dict(),
        "holdout_rows": table.num_rows,
    }
