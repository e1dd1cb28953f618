"""``spindle doctor`` checks files against the registry, survives a corrupt routing.json, and the
leftovers of crashed processes; a failed train releases the version number it reserved.

Everything is real: a SQLite registry, versions trained by the train step, the CLI through
Typer's runner, and a second process that holds the workspace open.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.core import TrainingError, sha256_file
from spindle.orchestrate import Context, find_leftovers

MODEL = "search_ranker"
runner = CliRunner()


@pytest.fixture(scope="module")
def pushed(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Versions 1 (for 01-03) and 2 (for 01-04) trained and pushed: 2 serves, 1 is previous."""
    root = tmp_path_factory.mktemp("doctor") / "ws"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        for day in ("2026-01-03", "2026-01-04"):
            version, _, _ = spindle.train_version(ctx, MODEL, day, from_scratch=True)
            spindle.push(ctx, MODEL, version.version, infra=False, force=True, reason="test")
    yield root


@pytest.fixture
def ws(pushed: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(pushed, target, symlinks=True)
    return target


def _doctor(ws: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
    result = runner.invoke(app, ["doctor", "--json", *args, "-w", str(ws)])
    assert "Traceback" not in result.output, result.output
    problems = json.loads(result.stdout) if result.stdout.strip() else []
    return result.exit_code, problems, result.stderr


def _swap_in(directory: Path, donor: Path) -> None:
    """Copy ``donor``'s serving files into ``directory``, rewriting its manifest to match."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for name in ("model.onnx", "transform.json"):
        shutil.copyfile(donor / name, directory / name)
        manifest["files"][name] = sha256_file(directory / name)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_doctor_finds_the_previous_version_copied_over_the_served_one(ws: Path) -> None:
    repo = ws / ".spindle" / "model_repo" / MODEL
    _swap_in(repo / "2", donor=repo / "1")
    code, problems, _ = _doctor(ws)
    assert code == 1
    (problem,) = problems
    assert (problem["kind"], problem["subject"], problem["fixed"]) == (
        "repository_checksum",
        f"{MODEL}@2",
        False,
    )
    assert "not the version the registry recorded" in str(problem["message"])
    code, problems, _ = _doctor(ws, "--fix")
    assert code == 0 and [p["fixed"] for p in problems] == [True]
    artifact = ws / ".spindle" / "artifacts" / "models" / MODEL / "2"
    assert sha256_file(repo / "2" / "model.onnx") == sha256_file(artifact / "model.onnx")
    assert _doctor(ws) == (0, [], "")


def test_doctor_compares_a_version_artifact_with_the_registry(ws: Path, tmp_path: Path) -> None:
    with Context.open(ws) as ctx:  # the artifact the registry names (the fixture's: restored)
        uris = [Path(ctx.store.get_artifact(f"model:{MODEL}@{v}").uri) for v in (1, 2)]
    backup = tmp_path / "backup"
    shutil.copytree(uris[1], backup)
    try:
        _swap_in(uris[1], donor=uris[0])
        code, problems, _ = _doctor(ws, "--fix")
    finally:
        shutil.rmtree(uris[1])
        shutil.copytree(backup, uris[1])
    assert code == 1  # nothing to restore it from: retrain
    (problem,) = [p for p in problems if p["kind"] == "checksum"]
    assert problem["subject"] == f"{MODEL}@2" and not problem["fixed"]
    assert "the registry recorded" in str(problem["message"])
    assert "retrain it as a new version" in str(problem["message"])


@pytest.mark.parametrize("content", ["{not json", "", "[]", '{"weights": {"2": "x"}}', "\x00\xff"])
def test_doctor_reports_a_corrupt_routing_file_in_one_line(ws: Path, content: str) -> None:
    routing = ws / ".spindle" / "model_repo" / MODEL / "routing.json"
    routing.write_text(content, "utf-8", errors="surrogateescape")
    result = runner.invoke(app, ["doctor", "-w", str(ws)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    code, problems, _ = _doctor(ws)
    (problem,) = problems
    assert (
        code == 1
        and problem["kind"] == "corrupt_routing"
        and "routing.json" in str(problem["message"])
    )
    assert _doctor(ws, "--fix")[0] == 0
    assert json.loads(routing.read_text())["weights"] == {"2": 1.0}


def _leave_crash_leftovers(ws: Path) -> list[Path]:
    """What a process killed mid-write leaves: a version half-copied into the repository, a
    training set half-written, an export's temp dir, a DuckDB spill directory."""
    state = ws / ".spindle"
    made = [
        state / "model_repo" / MODEL / ".3.k2j4.tmp",
        state / "artifacts" / "trainsets" / MODEL / "0123456789abcdef.tmp",
        state / "artifacts" / "scratch" / MODEL / "abc" / ".model.onnx.x1y2.tmp",
        state / "tmp" / "duckdb" / "trainset-q8w7",
    ]
    for path in made:
        if path.suffix == ".tmp" and path.name.startswith(".3."):
            path.mkdir(parents=True)
            (path / "model.onnx").write_bytes(b"half")
        elif path.name.startswith("trainset-"):
            path.mkdir(parents=True)
            (path / "spill.duckdb").write_bytes(b"\0" * 1024)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"partial")
    return sorted(made)


_HOLD = """
import sys, time
from spindle.orchestrate import Context
with Context.open(sys.argv[1]):
    print("open", flush=True)
    sys.stdin.read()
"""


def test_leftovers_are_reported_and_cleaned_when_no_process_is_at_work(ws: Path) -> None:
    made = _leave_crash_leftovers(ws)
    code, problems, _ = _doctor(ws)
    assert code == 1
    assert sorted(Path(str(p["subject"])) for p in problems) == made
    assert {p["kind"] for p in problems} == {"leftover"}
    # a live process holds the workspace: what looks left over may be its work in progress
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(ws)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        code, problems, _ = _doctor(ws, "--fix")
        assert code == 1 and all(not p["fixed"] for p in problems)
        assert all("another spindle process is at work" in str(p["message"]) for p in problems)
        assert all(path.exists() for path in made)
    finally:
        holder.communicate("", timeout=60)
    # the next run removes them before it starts
    with Context.open(ws) as ctx:
        report = spindle.run_day(ctx, MODEL, "2026-01-04", train_model=False)
        assert report.error is None, report
        assert find_leftovers(ctx.workspace) == []
    assert not any(path.exists() for path in made)
    assert _doctor(ws) == (0, [], "")


def test_object_copies_unused_for_days_are_removed_and_a_used_one_is_kept(ws: Path) -> None:
    """Local copies of objects on a store (a training set read by the fit) are a cache: the
    doctor reports those unused for OBJECT_COPY_DAYS days, and --fix removes only those; a copy
    read again is touched, so it is kept."""
    from spindle.orchestrate._leftovers import OBJECT_COPY_DAYS

    cache = ws / ".spindle" / "tmp" / "objects"
    old, used = cache / "aaaa" / "t.parquet", cache / "bbbb" / "u.parquet"
    for copy in (old, used):
        copy.parent.mkdir(parents=True)
        copy.write_bytes(b"x" * 1000)
        stale = time.time() - (OBJECT_COPY_DAYS + 1) * 86400
        os.utime(copy, (stale, stale))
        os.utime(copy.parent, (stale, stale))
    os.utime(used)  # read again today: Location.local_copy touches a copy it hands out
    _, problems, _ = _doctor(ws)
    found = [p for p in problems if p["kind"] == "leftover"]
    assert [Path(str(p["subject"])) for p in found] == [old.parent], problems
    assert "unused for" in str(found[0]["message"]) and "1,000 bytes" in str(found[0]["message"])
    _, problems, _ = _doctor(ws, "--fix")
    fixed = [p for p in problems if p["kind"] == "leftover"]
    assert [p["fixed"] for p in fixed] == [True] and "removed" in str(fixed[0]["message"])
    assert not old.parent.exists() and used.exists()


def test_a_failed_train_releases_the_version_it_reserved(ws: Path) -> None:
    # the next version's directory cannot be made: a file stands where its parent should be
    versions = ws / ".spindle" / "artifacts" / "models"
    shutil.move(versions / MODEL, ws / "moved")
    (versions / MODEL).write_text("not a directory")
    with Context.open(ws) as ctx:
        with pytest.raises((OSError, TrainingError)):
            spindle.train_version(ctx, MODEL, "2026-01-02", from_scratch=True)
        failed = ctx.store.get_version(MODEL, 3)
        assert failed.status == "failed"
        assert "released by the failed train step" in (failed.error or "")
        (versions / MODEL).unlink()
        shutil.move(ws / "moved", versions / MODEL)
        assert [p.to_dict() for p in spindle.doctor(ctx) if p.kind != "stale_run"] == []
