"""``spindle source infer``: draft a source declaration from a data file."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

import spindle
from spindle.cli._app import app, handles_errors
from spindle.cli._output import console

source_app = typer.Typer(
    help="Raw sources declared in sources/*.yaml: draft one from a file.",
    no_args_is_help=True,
)
app.add_typer(source_app, name="source")


@source_app.command("infer")
@handles_errors
def infer(
    path: Path = typer.Argument(
        ..., help="A .parquet, .csv/.tsv or .jsonl file, or a Delta table."
    ),
    name: str | None = typer.Option(None, "--name", help="The source's name (default: file name)."),
    out: Path | None = typer.Option(None, "--out", help="Write the draft here, not to stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    workspace: str = typer.Option(
        ".", "--workspace", "-w", help="The workspace; the location is written relative to it."
    ),
    sample_rows: int = typer.Option(10_000, "--sample-rows", min=2, help="Rows read to guess."),
) -> None:
    """Draft a declaration (types, nullability, key, event time) for you to review."""
    if out is not None and out.exists() and not force:
        raise spindle.SpindleError(f"{out} exists; choose another --out or pass --force")
    text = spindle.infer_source(path, name=name, root=workspace, sample_rows=sample_rows)
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out}: review the lines marked REVIEW before the next ingest")
