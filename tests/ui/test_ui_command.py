"""`spindle ui` as a user runs it: a real process on a free loopback port serving the pages;
and the CLI stays light (the dashboard's libraries load only when `spindle ui` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

SPINDLE = str(Path(sys.executable).parent / "spindle")


def test_spindle_ui_serves_the_dashboard_on_the_port_it_prints(demo_workspace: Path) -> None:
    proc = subprocess.Popen(
        [SPINDLE, "ui", "--port", "0", "--host", "127.0.0.1", "-w", str(demo_workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the port is bound
        assert "spindle dashboard on http://127.0.0.1:" in line, line
        url = line.strip().rsplit(" ", 1)[-1]
        page = httpx.get(url + "/", timeout=60)
        assert page.status_code == 200 and "search_ranker" in page.text
        assert httpx.get(url + "/runs", timeout=60).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_spindle_ui_refuses_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    proc = subprocess.run(
        [SPINDLE, "ui", "--port", "0", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "spindle.yaml" in proc.stdout + proc.stderr


def test_the_cli_loads_no_dashboard_library_until_spindle_ui_runs() -> None:
    probe = (
        "import json, sys; import spindle.cli; "
        "print(json.dumps([m for m in ('fastapi', 'jinja2', 'spindle.ui') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_spindle_ui_takes_its_token_from_a_file(demo_workspace: Path, tmp_path: Path) -> None:
    """``--token-file`` (as ``spindle serve``'s) turns the actions on; a file with no token is a
    one-line error before anything listens."""
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    refused = subprocess.run(
        [SPINDLE, "ui", "--port", "0", "--token-file", str(empty), "-w", str(demo_workspace)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "expected one token" in refused.stdout + refused.stderr
    token = tmp_path / "ui.token"
    token.write_text("s3cret-token\n")
    proc = subprocess.Popen(
        [SPINDLE, "ui", "--port", "0", "--token-file", str(token), "-w", str(demo_workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        page = httpx.get(url + "/models/search_ranker", timeout=60)
        assert page.status_code == 200 and 'name="token"' in page.text  # the action forms
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
