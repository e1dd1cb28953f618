"""Output for every command: a Rich table on a terminal, the same data with ``--json``."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import spindle

# Off a terminal (CI logs, pipes) Rich would wrap tables at 80 columns; keep rows whole.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    console.print(out)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class Reporter:
    """What ``progress_reporter`` yields: ``report(task, done, total)`` for counted work (days,
    tasks) and ``report.event(e)`` for training, whose events carry a rate and an epoch.

    On a terminal both draw one Rich bar per task (done/total, epoch or phase, examples/s,
    ETA). Off a terminal, counted work prints a line per call and training at most one line
    every ``plain_interval_s`` per task (and its last step), so CI logs stay short.
    """

    def __init__(self, bar: Progress | None, plain_interval_s: float = 2.0) -> None:
        self._bar = bar
        self._tasks: dict[str, TaskID] = {}
        self._plain_interval_s = plain_interval_s
        self._started: dict[str, tuple[float, int]] = {}
        self._printed: dict[str, float] = {}

    def __call__(self, task: str, done: int, total: int) -> None:
        if self._bar is None:
            err_console.print(f"{task}: {done}/{total}", highlight=False)
            return
        self._update(self._bar, task, done, total, "", "")

    def event(self, event: spindle.ProgressEvent) -> None:
        rate = "" if event.examples_per_s is None else f"{event.examples_per_s:,.0f} ex/s"
        if self._bar is not None:
            # the bar's M/N counts the unit; the detail (epoch, phase) says more in less room
            self._update(self._bar, event.task, event.done, event.total, event.detail, rate)
            return
        now = time.monotonic()
        first = self._started.setdefault(event.task, (now, event.done))
        finished = event.done >= event.total
        # phases are few and each says what is happening: every one is printed
        recent = now - self._printed.get(event.task, -math.inf) < self._plain_interval_s
        if not finished and event.unit != "phases" and recent:
            return
        self._printed[event.task] = now
        parts = [f"{event.task}: {event.unit} {event.done}/{event.total}"]
        if event.detail:
            parts[0] += f" ({event.detail})"
        if rate:
            parts.append(rate)
        done_here, seconds = event.done - first[1], now - first[0]
        # an ETA from phases of unequal length (infra validation) would mislead
        if not finished and done_here > 0 and seconds > 0 and event.unit != "phases":
            parts.append(f"ETA {(event.total - event.done) * seconds / done_here:.0f} s")
        err_console.print(", ".join(parts), highlight=False, soft_wrap=True)

    def _update(
        self, bar: Progress, task: str, done: int, total: int, unit: str, rate: str
    ) -> None:
        if task not in self._tasks:
            self._tasks[task] = bar.add_task(task, total=total, unit=unit, rate=rate)
        bar.update(self._tasks[task], completed=done, total=total, unit=unit, rate=rate)


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[Reporter]:
    """Yield a :class:`Reporter`: Rich bars on a terminal, plain lines otherwise, or nothing
    (``enabled=False``, e.g. with ``--json``)."""
    if not enabled:
        yield _Silent(None)
        return
    if not err_console.is_terminal:
        yield Reporter(None)
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(compact=True),
        console=err_console,
    ) as bar:
        yield Reporter(bar)


class _Silent(Reporter):
    def __call__(self, task: str, done: int, total: int) -> None:
        return

    def event(self, event: spindle.ProgressEvent) -> None:
        return


def fail(exc: spindle.SpindleError) -> typer.Exit:
    """Print a SpindleError without a traceback and return the exit to raise."""
    # soft_wrap: one line however long (scripts and CI grep it); escape: a "[x]" is no markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)
