"""The verdict of a speed check: did training at the configured parallelism cost quality?

``spindle speed-check`` (``orchestrate``) trains a model twice on one window, at its configured
parallelism and at half, and scores both on one holdout. The verdict is the evaluation's:
the model's gate metric, the paired bootstrap interval of slow − fast on the task's resampling
units (result lists for ranking, rows otherwise), and "training too fast" when the slower run
is significantly better (the interval excludes 0 on its side) or the configured run's scores
are constant (it diverged or collapsed). Every task and every gate metric goes through
``evaluate_task``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from spindle.evaluate._bootstrap import Interval
from spindle.evaluate._metrics import sigmoid
from spindle.evaluate._systems import _softmax
from spindle.evaluate._tasks import evaluate_task

#: Below this standard deviation of its holdout scores a run has collapsed to one answer.
MIN_SCORE_STD = 1e-6


@dataclass(frozen=True)
class SpeedVerdict:
    """``verdict`` with its evidence: ``interval`` is slow − fast on ``metric``."""

    metric: str
    interval: Interval
    verdict: Literal["ok", "training too fast"]
    reason: str


def model_predictions(task: str, outputs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A model's raw outputs as the task's metrics read them: probabilities from binary and
    ranking logits, class probabilities from multiclass logits, regression values as they are.
    """
    values = np.asarray(outputs, dtype=np.float64)
    if task in ("binary", "ranking"):
        return sigmoid(values)
    if task == "multiclass":
        return _softmax(values)  # the gate's own conversion of a model's logits
    return values


def speed_verdict(
    task: str,
    metric: str,
    labels: npt.ArrayLike,
    fast: npt.ArrayLike,
    slow: npt.ArrayLike,
    parallelism: tuple[int, int],
    groups: npt.ArrayLike | None = None,
    confidence: float = 0.95,
) -> SpeedVerdict:
    """Judge the configured (``fast``) run against the halved (``slow``) one on one holdout.

    Args:
        task: the model's task.
        metric: its gate metric (``evaluation.metric``).
        labels: the holdout's labels.
        fast, slow: each run's raw outputs per holdout row (logits; values for regression).
        parallelism: (fast, slow) parallelism, for the message.
        groups: result lists for ranking (required there).
        confidence: of the interval.

    Example:
        >>> y = np.array([0, 1] * 50)
        >>> v = speed_verdict("binary", "auc", y, np.zeros(100), y * 2.0 - 1, (4, 2))
        >>> v.verdict
        'training too fast'
    """
    result = evaluate_task(
        task,
        labels,
        {"slow": model_predictions(task, slow), "fast": model_predictions(task, fast)},
        groups=groups,
        reference="fast",
        confidence=confidence,
    )
    interval = result.deltas[metric]["slow"]
    higher = result.higher_is_better[metric]
    better = interval.lower > 0 if higher else interval.upper < 0
    collapsed = float(np.std(np.asarray(fast, dtype=np.float64))) < MIN_SCORE_STD
    fast_p, slow_p = parallelism
    reason = (
        f"the run at parallelism {fast_p} scores every holdout row the same "
        "(it diverged or collapsed); "
        if collapsed
        else ""
    ) + (
        f"{metric} at parallelism {slow_p}: {interval.value_a:.4f}, at {fast_p}: "
        f"{interval.value_b:.4f}; slow − fast {interval.estimate:+.4f} "
        f"[{interval.lower:+.4f}, {interval.upper:+.4f}] "
        f"({interval.confidence:.0%} paired bootstrap)"
        + (": the slower run is significantly better" if better else ": no significant loss")
    )
    verdict: Literal["ok", "training too fast"] = (
        "training too fast" if better or collapsed else "ok"
    )
    return SpeedVerdict(metric, interval, verdict, reason)
