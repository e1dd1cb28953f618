"""``spindle forget status|resume`` through the real CLI (a subprocess), on a demo workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.orchestrate.forget_helpers import pick_user_ids

import spindle


def _spindle(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forget_cli") / "demo"
    spindle.run_demo(root, 2, scale=0.25)
    return root


def test_status_resume_and_errors(workspace: Path) -> None:
    ws = str(workspace)
    empty = _spindle("forget", "status", "-w", ws)
    assert empty.returncode == 0 and "no forget" in empty.stdout
    missing = _spindle("forget", "resume", "r-404", "-w", ws)
    assert missing.returncode == 1
    assert "no forget 'r-404'" in missing.stderr + missing.stdout
    assert "Traceback" not in missing.stderr and (missing.stderr + missing.stdout).count("\n") == 1
    bad = _spindle("forget", "status", "../x", "-w", ws)
    assert bad.returncode == 1 and "not usable" in bad.stderr + bad.stdout

    ids = pick_user_ids(workspace)[:2]
    with spindle.Context.open(workspace) as ctx:
        report = spindle.forget_rows(ctx, "r-cli", "users", "user_id", ids, retention_hours=1)
    assert report.status == "waiting"
    listed = _spindle("forget", "status", "--json", "-w", ws)
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["retraction_id"] == "r-cli" and entry["status"] == "waiting"
    assert not any(i in listed.stdout for i in ids)  # the report never names the ids
    waiting = _spindle("forget", "resume", "r-cli", "-w", ws)
    assert waiting.returncode == 0 and "spindle forget resume r-cli" in waiting.stdout

    journal = workspace / ".spindle" / "forget" / "r-cli" / "journal.json"
    data = json.loads(journal.read_text())
    data["deleted_at"] = "2000-01-01T00:00:00+00:00"  # the retention has passed
    journal.write_text(json.dumps(data))
    done = _spindle("forget", "resume", "r-cli", "--json", "-w", ws)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "done"
    one = _spindle("forget", "status", "r-cli", "-w", ws)
    assert one.returncode == 0 and "done" in one.stdout and "raw:users" in one.stdout
    assert not journal.parent.exists()
