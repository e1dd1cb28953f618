"""Output for every command: a Rich table on a terminal, the same data with ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
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


@contextmanager
def progress_reporter(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Yield ``report(task, done, total)``: a progress bar on a terminal, plain lines otherwise."""
    if not enabled:
        yield lambda task, done, total: None
        return
    if err_console.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        ) as bar:
            tasks: dict[str, Any] = {}

            def report(task: str, done: int, total: int) -> None:
                if task not in tasks:
                    tasks[task] = bar.add_task(task, total=total)
                bar.update(tasks[task], completed=done, total=total)

            yield report
    else:

        def plain(task: str, done: int, total: int) -> None:
            err_console.print(f"{task}: {done}/{total}", highlight=False)

        yield plain


def fail(exc: spindle.SpindleError) -> typer.Exit:
    """Print a SpindleError without a traceback and return the exit to raise."""
    # soft_wrap: one line however long (scripts and CI grep it); escape: a "[x]" is no markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)
