"""Create a workspace from a bundled example (every folder of ``spindle/examples`` holding a
``spindle.yaml``: ``yarnit``, the simulated shop; ``flights``, New York flights of 2013)."""

from __future__ import annotations

import shutil
from pathlib import Path

from spindle.core import WORKSPACE_FILE, WorkspaceError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: What an example may hold that a workspace gets (those present are copied).
EXAMPLE_ITEMS = ("spindle.yaml", "sources", "features", "models", "validation.yaml")


def list_examples() -> list[str]:
    """The names of the bundled examples, sorted."""
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / WORKSPACE_FILE).is_file())


def init_workspace(directory: str | Path, example: str = "yarnit") -> Path:
    """Write ``spindle.yaml``, source declarations, feature definitions and model configs of
    ``example`` (those it has) into ``directory``.

    Raises:
        WorkspaceError: the example does not exist, or ``directory`` already holds a workspace.
    """
    source = EXAMPLES / example
    if "/" in example or not (source / WORKSPACE_FILE).is_file():
        raise WorkspaceError(
            f"no example named {example!r}; available: {', '.join(list_examples())}"
        )
    target = Path(directory)
    if (target / WORKSPACE_FILE).exists():
        raise WorkspaceError(f"{target / WORKSPACE_FILE} exists already; choose an empty directory")
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in EXAMPLE_ITEMS:
        src = source / item
        if src.is_dir():
            shutil.copytree(src, target / item, dirs_exist_ok=True, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, target / item)
    return target
