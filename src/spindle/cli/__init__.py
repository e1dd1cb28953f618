"""The ``spindle`` command line (Typer + Rich); uses only the public API."""

from __future__ import annotations

import os

# Before torch loads (the public API imports it lazily): OpenMP threads that spin while waiting
# make 2-thread training 10-30x slower on a busy 2-core machine (measured in spindle.train).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from spindle.cli import (
    _data_cmds,
    _features_cmds,
    _forget_cmds,
    _info_cmds,
    _model_cmds,
    _ops_cmds,
    _reproduce_cmds,
    _retract_cmds,
    _source_cmds,
    _train_cmds,
    _ui_cmds,
    _workspace_cmds,
)
from spindle.cli._app import app

_COMMANDS = (
    _data_cmds,
    _features_cmds,
    _forget_cmds,
    _info_cmds,
    _model_cmds,
    _ops_cmds,
    _reproduce_cmds,
    _retract_cmds,
    _source_cmds,
    _train_cmds,
    _ui_cmds,
    _workspace_cmds,
)


def main() -> None:
    """Entry point of the ``spindle`` console script."""
    app()


__all__ = ["app", "main"]
