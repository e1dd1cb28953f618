"""Create a workspace from a bundled example."""

from __future__ import annotations

import shutil
from pathlib import Path

from spindle.core import WORKSPACE_FILE, WorkspaceError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def init_workspace(directory: str | Path, example: str = "yarnit") -> Path:
    """Write ``spindle.yaml``, feature definitions and model configs of ``example`` into ``directory``.

    Raises:
        WorkspaceError: the example does not exist, or ``directory`` already holds a workspace.
    """
    source = EXAMPLES / example
    if not (source / WORKSPACE_FILE).is_file():
        known = sorted(p.name for p in EXAMPLES.iterdir() if (p / WORKSPACE_FILE).is_file())
        raise WorkspaceError(f"no example named {example!r}; available: {', '.join(known)}")
    target = Path(directory)
    if (target / WORKSPACE_FILE).exists():
        raise WorkspaceError(f"{target / WORKSPACE_FILE} exists already; choose an empty directory")
    target.mkdir(parents=True, exist_ok=True)
    for item in ("spindle.yaml", "features", "models"):
        src = source / item
        if src.is_dir():
            shutil.copytree(src, target / item, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target / item)
    return target
