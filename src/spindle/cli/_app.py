"""The ``spindle`` command: one Typer app, commands grouped in modules by stage."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer

import spindle
from spindle.cli._days import option_problems
from spindle.cli._output import fail

app = typer.Typer(
    name="spindle",
    help="spindle: daily logs to served models — versioned, validated, gated, observable, recoverable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    # Imported here: `--version` is the only command that reads package metadata.
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("spindle")
    except PackageNotFoundError:  # running from a source tree that was never installed
        installed = spindle.__version__
    typer.echo(f"spindle {installed}")
    raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print spindle's version and exit.",
    ),
) -> None:
    """spindle: daily logs to served models — versioned, validated, gated, observable, recoverable."""


F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOption = typer.Option(
    ".", "--workspace", "-w", help="Workspace directory (or any folder below it)."
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
ExecutorOption = typer.Option(
    None,
    "--executor",
    help="Where the steps' tasks run: in-process or ray (default: executor.kind in spindle.yaml).",
)
RayAddressOption = typer.Option(
    None,
    "--ray-address",
    help="Ray cluster address for --executor ray (default: executor.address).",
)
SetOption = typer.Option(
    None, "--set", help="Override a model config key, e.g. training.epochs=3 (repeatable)."
)


def handles_errors(fn: F) -> F:
    """Turn SpindleErrors, and storage failures (a full, read-only or unwritable disk) of any
    library, into a clear message and exit code 1 (no traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        problems = option_problems(kwargs)  # malformed --date/--since/--until/--now: one line
        # a --set of a model's name, owner or team is refused before any work (access policies
        # judge the team); Workspace.model_config refuses it too, for callers of the API
        if kwargs.get("overrides"):
            model = str(kwargs.get("model") or "MODEL")
            problems += spindle.Workspace.refused_overrides(model, kwargs["overrides"])
        if problems:
            raise fail(spindle.SpindleError("; ".join(problems)))
        try:
            return fn(*args, **kwargs)
        except spindle.SpindleError as exc:
            raise fail(storage_failure(exc, kwargs.get("workspace")) or exc) from None
        except Exception as exc:  # a library's OSError, sqlite3, DuckDB or delta-rs error
            translated = storage_failure(exc, kwargs.get("workspace"))
            if translated is None:
                raise
            raise fail(translated) from None

    return wrapper  # type: ignore[return-value]


def storage_failure(exc: Exception, workspace: object = None) -> spindle.StorageError | None:
    """The StorageError ``exc`` amounts to, naming the workspace (``--workspace``, else the
    current directory) when it names no path itself; None when ``exc`` is no disk failure."""
    where = Path(workspace).absolute() if isinstance(workspace, (str, Path)) else Path.cwd()
    return spindle.storage_error(exc, where)
