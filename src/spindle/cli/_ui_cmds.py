"""``spindle ui``: the web dashboard."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from spindle.cli._app import WorkspaceOption, app, handles_errors
from spindle.cli._output import console

TOKEN_ENV = "SPINDLE_UI_TOKEN"


@app.command()
@handles_errors
def ui(
    port: int = typer.Option(8790, min=0, max=65535, help="Port to listen on (0: any free one)."),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on (127.0.0.1: this machine only)."
    ),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="File holding the token that unlocks rollback and routing (default: the "
        "SPINDLE_UI_TOKEN environment variable; neither: read-only).",
    ),
    workspace: str = WorkspaceOption,
) -> None:
    """Serve the dashboard: models, runs, versions, comparisons, lineage, data health, features.

    Read-only, unless a token is given (--token-file, or the environment variable
    SPINDLE_UI_TOKEN): then rollback and routing are offered to requests carrying it, and
    recorded like the CLI's.
    """
    # Imported here: FastAPI, Jinja2 and the pages are what every other command does without.
    from spindle.cli._info_cmds import read_token
    from spindle.ui import serve_ui

    token = read_token(token_file, "--token-file") if token_file is not None else None
    serve_ui(
        workspace,
        host=host,
        port=port,
        token=token or os.environ.get(TOKEN_ENV) or None,
        on_listening=lambda url: console.print(f"spindle dashboard on {url}"),
    )
