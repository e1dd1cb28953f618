"""How a page reads the workspace: one read-only context per request, and small shared helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import spindle
from spindle.registry import open_reader


@contextmanager
def reading(workspace: spindle.Workspace) -> Iterator[spindle.ReadContext]:
    """A read-only context for one request: the stdlib SQLite reader of the workspace's store.

    One per request, not one per app: a reader's connection is not shared across the threads
    that serve requests concurrently.
    """
    ctx = spindle.ReadContext(workspace, open_reader(workspace.metadata_url))
    try:
        yield ctx
    finally:
        ctx.close()


def report_file(uri: str) -> dict[str, Any] | None:
    """The JSON report an artifact's URI names (an evaluation's), or None when it is gone."""
    path = Path(uri.removeprefix("file://"))
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def page_of(value: str | None) -> int:
    """A 1-based page number from a query string value (1 when absent or malformed)."""
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1
