"""The README runs as written: every command of its tour, verbatim, on a fresh workspace.

The ```bash blocks from the README's "A tour" section onwards (up to "What happens in a day")
are run in order by one bash process in a temporary directory, whose ``.venv`` links to the
venv running the tests, so ``source .venv/bin/activate`` works as written. A command succeeds
when it exits 0, or with the code its comment names (``# ... (exit 2)``). A line ending in
``&`` starts a background process that is killed when the tour ends. Lines that are prose (a
``|`` alternative such as ``list | show``) are not allowed: the README shows real commands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
FIRST_SECTION = "## A tour"
END_SECTION = "## What happens in a day"
EXPECTED_EXIT = re.compile(r"\(exit (\d+)\)")


@dataclass(frozen=True)
class Command:
    line: int
    text: str
    expected_exit: int
    background: bool


def tour_commands(readme: str) -> list[Command]:
    """The commands of the README's tour, continuation lines joined, comments stripped."""
    start = readme.index(FIRST_SECTION)
    end = readme.index(END_SECTION, start)
    first_line = readme.count("\n", 0, start) + 1
    commands: list[Command] = []
    in_block, pending, pending_line = False, "", 0
    for offset, raw in enumerate(readme[start:end].splitlines()):
        number = first_line + offset
        if raw.startswith("```"):
            in_block = raw.strip() == "```bash"
            continue
        if not in_block or not raw.strip():
            continue
        if not pending:
            pending_line = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        full = pending + raw
        pending = ""
        code, _, comment = _split_comment(full)
        code = code.strip()
        if not code:
            continue
        match = EXPECTED_EXIT.search(comment)
        background = code.endswith("&") and not code.endswith("&&")
        commands.append(
            Command(
                line=pending_line,
                text=code.removesuffix("&").strip() if background else code,
                expected_exit=int(match.group(1)) if match else 0,
                background=background,
            )
        )
    return commands


def _split_comment(line: str) -> tuple[str, str, str]:
    """Split ``line`` at its first ``#`` that starts a word outside quotes."""
    quote: str | None = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], "#", line[i + 1 :]
    return line, "", ""


def tour_script(commands: list[Command]) -> str:
    """One bash script running every command, checking each exit code, killing jobs at the end."""
    lines = [
        "set -u",
        "pids=()",
        'cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }',
        "trap cleanup EXIT",
    ]
    for cmd in commands:
        echo = shlex.quote(f"$ {cmd.text}   # README line {cmd.line}")
        lines.append(f"echo {echo} >&2")
        if cmd.background:
            lines.append(f"{cmd.text} > bg-{cmd.line}.log 2>&1 &")
            lines.append("pids+=($!)")
            continue
        where = shlex.quote(f"README line {cmd.line}: `{cmd.text}`")
        lines.append(cmd.text)
        lines.append(
            f'rc=$?; if [ "$rc" -ne {cmd.expected_exit} ]; then '
            f'echo "TOUR FAILED at "{where}" exited $rc, expected {cmd.expected_exit}" >&2; '
            "exit 1; fi"
        )
    lines.append('echo "TOUR OK" >&2')
    return "\n".join(lines) + "\n"


def test_the_tour_has_only_real_commands() -> None:
    commands = tour_commands(README.read_text())
    assert len(commands) > 20
    for cmd in commands:
        assert "[" not in cmd.text.split("#")[0] or "'" in cmd.text, (
            f"README line {cmd.line}: optional [...] syntax is not a command: {cmd.text}"
        )
        assert " | " not in cmd.text or cmd.text.startswith(("curl", "echo")), (
            f"README line {cmd.line}: `a | b` alternatives are not a command: {cmd.text}"
        )


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    script = tmp_path / "tour.sh"
    script.write_text(tour_script(tour_commands(README.read_text())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    tail = "\n".join((proc.stdout + "\n" + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0 and "TOUR OK" in proc.stderr, tail
    assert "Traceback" not in proc.stderr, tail
