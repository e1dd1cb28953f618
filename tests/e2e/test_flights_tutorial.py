"""docs/your-data.md runs as written: the flights tutorial's commands, verbatim, in order.

The ```bash block of "From sources to training sets" is run by one bash process in a temporary
directory with the test venv's ``bin`` first on ``PATH``; its ``pip install`` line is skipped
(the test environment has the ``examples`` extra already). Every command must exit 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "your-data.md"
SECTION = "## From sources to training sets: the flights example, step by step"


def tutorial_commands(text: str) -> list[str]:
    """The commands of the section's ```bash block, comments stripped, pip lines left out."""
    start = text.index(SECTION)
    block = text[text.index("```bash\n", start) + len("```bash\n") :]
    block = block[: block.index("```")]
    commands = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [c for c in commands if c and not c.startswith("pip ")]


def test_the_tutorial_block_holds_the_steps() -> None:
    commands = tutorial_commands(DOC.read_text())
    assert commands[0] == "spindle init flights --example flights"
    assert any(c.startswith("spindle ingest --since") for c in commands)
    assert any(c.startswith("spindle train delay") for c in commands)


def test_the_flights_tutorial_runs_as_written(tmp_path: Path) -> None:
    commands = tutorial_commands(DOC.read_text())
    script = "set -euo pipefail\n" + "\n".join(f"echo '$ {c}' >&2\n{c}" for c in commands)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    assert "delay@1" in done.stdout  # the model version trained on the training set
