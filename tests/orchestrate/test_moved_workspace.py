"""A workspace can be copied or moved (issue 14 item 9): the metadata store records artifact paths
relative to the workspace, and every command of the copy reads and reports the copy's files.

Everything is real: a workspace built by ``spindle demo`` (a version trained, gated and pushed),
copied with ``shutil.copytree`` (``cp -r``) or moved, and the commands run through the CLI.
Before the fix 41 of the demo's 43 recorded artifact paths named the original folder (the two
others are validation reports, which record none), and ``push`` in a copy reported the
original's repository.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spindle.cli import app

MODEL = "search_ranker"
runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-day demo workspace: version 1 trained, gated, pushed and served."""
    root = tmp_path_factory.mktemp("moved") / "demo"
    result = runner.invoke(app, ["demo", "--days", "2", "--scale", "0.1", "--dir", str(root)])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def original(demo: Path, tmp_path: Path) -> Path:
    """A private copy of the demo, to be copied or moved away (``A`` of the issue)."""
    target = tmp_path / "A"
    shutil.copytree(demo, target, symlinks=True)
    return target


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _texts(store: Path) -> list[str]:
    """Every text value of every table of the metadata store at ``store``."""
    with sqlite3.connect(store) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            value
            for table in tables
            for row in conn.execute(f'SELECT * FROM "{table}"')
            for value in row
            if isinstance(value, str)
        ]


def _pointing_into(workspace: Path, folder: Path) -> list[str]:
    return [t for t in _texts(workspace / ".spindle" / "metadata.db") if str(folder) in t]


def _artifact_uris(workspace: Path) -> list[str]:
    with sqlite3.connect(workspace / ".spindle" / "metadata.db") as conn:
        return [r[0] for r in conn.execute("SELECT uri FROM artifacts WHERE uri != ''")]


def _uris(report: str) -> list[str]:
    """Every ``uri`` anywhere in a ``--json`` report."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            found.extend(v for k, v in value.items() if k == "uri" and isinstance(v, str))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(report))
    return found


def _exercise(ws: Path, away: Path) -> None:
    """lineage, models show, train, push, rollback, route and doctor in ``ws``: every path they
    print is in ``ws``, none in ``away``, and the files they name exist."""
    named = [u for u in _uris(_cli("lineage", f"{MODEL}@1", "--json", "-w", str(ws))) if u]
    assert len(named) >= 10 and all(u.startswith(f"{ws}/") for u in named), named
    assert all(Path(u).exists() for u in named), named
    assert str(away) not in _cli("models", "show", MODEL, "-w", str(ws))
    _cli("train", MODEL, "--date", "2026-01-02", "--set", "training.epochs=1", "-w", str(ws))
    pushed = _cli("push", MODEL, "--version", "2", "--force", "--reason", "moved", "-w", str(ws))
    assert f"to {ws}/.spindle/model_repo/{MODEL}/2 " in pushed, pushed
    assert "serving version 1" in _cli("rollback", MODEL, "--reason", "moved", "-w", str(ws))
    _cli("route", MODEL, "1=0.5", "2=0.5", "--reason", "moved", "-w", str(ws))
    assert "healthy" in _cli("doctor", "-w", str(ws))
    assert _pointing_into(ws, away) == []


def test_a_copy_reads_its_own_files_with_the_original_gone(original: Path, tmp_path: Path) -> None:
    copy = tmp_path / "B"
    shutil.copytree(original, copy, symlinks=True)
    shutil.rmtree(original)  # nothing may read A
    assert _pointing_into(copy, original) == []
    _exercise(copy, original)


def test_a_moved_workspace_reads_its_own_files(original: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "B"
    moved.parent.mkdir()
    original.rename(moved)
    _exercise(moved, original)


def test_recorded_paths_are_relative_to_the_workspace(original: Path) -> None:
    uris = _artifact_uris(original)
    assert len(uris) >= 40
    assert not [u for u in uris if Path(u).is_absolute()], uris
    assert f".spindle/artifacts/models/{MODEL}/1" in uris
    assert f".spindle/model_repo/{MODEL}/1" in uris


def test_a_repository_outside_the_workspace_is_recorded_absolute(
    original: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "shared_repo"
    config = original / "spindle.yaml"
    config.write_text(config.read_text() + f"model_repo: {repo}\n")
    ws = str(original)
    _cli("train", MODEL, "--date", "2026-01-02", "--set", "training.epochs=1", "-w", ws)
    _cli("push", MODEL, "--version", "2", "--force", "--reason", "repo", "-w", ws)
    assert f"{repo}/{MODEL}/2" in _artifact_uris(original)
    copy = original.parent / "B"
    shutil.copytree(original, copy, symlinks=True)
    assert f"{repo}/{MODEL}/2" in _uris(_cli("lineage", f"{MODEL}@2", "--json", "-w", str(copy)))


def test_doctor_fix_makes_an_older_stores_absolute_paths_relative(
    original: Path, tmp_path: Path
) -> None:
    # A store written before paths were relative: every path inside A recorded absolute.
    with sqlite3.connect(original / ".spindle" / "metadata.db") as conn:
        conn.execute(
            "UPDATE artifacts SET uri = ? || '/' || uri WHERE uri != '' AND uri NOT LIKE '/%'",
            (str(original),),
        )
    uris = _artifact_uris(original)
    moved = tmp_path / "B"
    original.rename(moved)
    pointing = _pointing_into(moved, original)
    assert len(pointing) == len(uris) >= 40  # the figure: all but the empty ones

    result = runner.invoke(app, ["doctor", "--json", "-w", str(moved)])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)
    assert problems[0]["kind"] == "moved_workspace", problems
    assert f"{len(uris)} recorded artifact paths point into {original}" in problems[0]["message"]
    assert "spindle doctor --fix" in problems[0]["message"]

    fixed = json.loads(_cli("doctor", "--json", "--fix", "-w", str(moved)))
    assert fixed[0]["kind"] == "moved_workspace" and fixed[0]["fixed"], fixed
    assert _pointing_into(moved, original) == []
    assert "healthy" in _cli("doctor", "-w", str(moved))
    _exercise(moved, original)
