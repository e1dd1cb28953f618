"""The ``spindle`` command line (Typer + Rich); uses only the public API."""

from __future__ import annotations

from spindle.cli import _data_cmds, _info_cmds, _model_cmds, _workspace_cmds
from spindle.cli._app import app

_COMMANDS = (_data_cmds, _info_cmds, _model_cmds, _workspace_cmds)


def main() -> None:
    """Entry point of the ``spindle`` console script."""
    app()


__all__ = ["app", "main"]
