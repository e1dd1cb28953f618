"""Progress of long work (training, replicas, daily runs): what, how far, how fast.

Steps report a :class:`ProgressEvent` to an optional ``progress`` callback; the CLI draws a
bar on a terminal and prints plain lines otherwise. Nothing here knows about the CLI, and
reporting must never slow the work: :func:`step_progress` turns a training loop's per-step
``(done, total)`` hook into at most one event per ``min_interval_s`` (plus the last step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """How far one task is: ``done`` of ``total`` ``unit``, with its rate when known.

    Example:
        >>> ProgressEvent("train search_ranker", 40, 120, "steps", 51_000.0, "epoch 1/3").done
        40
    """

    task: str
    done: int
    total: int
    unit: str = "steps"
    examples_per_s: float | None = None
    detail: str = ""


Progress = Callable[[ProgressEvent], None]


def step_progress(
    progress: Progress,
    task: str,
    *,
    epochs: int,
    batch_size: int,
    min_interval_s: float = 0.5,
) -> Callable[[int, int], None]:
    """Adapt a training loop's ``(steps done, total steps)`` hook to ``progress``.

    Calls ``progress`` at most once per ``min_interval_s`` and always for the last step. The
    rate is measured from the first step seen by this hook (a resumed run starts mid-way), as
    steps x ``batch_size`` (the last batch of an epoch may be smaller: an estimate).

    Example:
        >>> events = []
        >>> hook = step_progress(events.append, "train m", epochs=2, batch_size=512)
        >>> hook(4, 4)
        >>> events[-1].detail
        'epoch 2/2'
    """
    first: tuple[int, float] | None = None

    def on_step(done: int, total: int) -> None:
        nonlocal first
        now = time.perf_counter()
        if first is None:
            first = (done, now)
        steps, seconds = done - first[0], now - first[1]
        rate = steps * batch_size / seconds if steps > 0 and seconds > 0 else None
        per_epoch = max(1, math.ceil(total / max(epochs, 1)))
        epoch = min(epochs, max(1, math.ceil(done / per_epoch)))
        progress(ProgressEvent(task, done, total, "steps", rate, f"epoch {epoch}/{epochs}"))

    return throttled(on_step, min_interval_s)


def throttled(
    hook: Callable[[int, int], None], min_interval_s: float = 0.5
) -> Callable[[int, int], None]:
    """``hook(done, total)`` called at most once per ``min_interval_s``, and always for the last
    step, so a training loop can report every step without paying for it.

    Example:
        >>> seen = []
        >>> hook = throttled(lambda done, total: seen.append(done), 3600)
        >>> for step in range(1, 5):
        ...     hook(step, 4)
        >>> seen
        [1, 4]
    """
    last_s = -math.inf

    def call(done: int, total: int) -> None:
        nonlocal last_s
        now = time.perf_counter()
        if done < total and now - last_s < min_interval_s:
            return
        last_s = now
        hook(done, total)

    return call
