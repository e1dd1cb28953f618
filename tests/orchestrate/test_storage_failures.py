"""A full, read-only or immutable disk: one line naming the path and what to do, nothing half-written.

Every test runs the real `spindle` CLI in a subprocess on a real file system: a 40 MB tmpfs
(filled with a file to leave a few MB, or remounted read-only) or the ext4 temp dir with the
state dir made immutable (`chattr +i`) while a run is paused at a kill point. They need root
(mount, chattr) and are skipped with the reason where it is missing.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable
from tests.conftest import START, make_workspace
from tests.orchestrate.test_kill_matrix import ARGS

from spindle import MetadataStore, StorageError
from spindle.orchestrate import Context, doctor, ingest, validate

MODEL = "search_ranker"
DAY = "2026-01-03"
CLI = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
QUICK = ARGS  # the kill matrix's small, quick runs that reach push


def _spindle(
    ws: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args, "-w", str(ws)],
        env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {})),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _root_or_skip(why: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{why} needs root (mount, chattr); run as root or in the CI container")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Days 1-2 ingested and validated; day 3 is the day to run (its first version)."""
    root = make_workspace(tmp_path_factory.mktemp("storage") / "ws", days=4, scale=0.2)
    with Context.open(root) as ctx:
        for i in range(2):
            day = (START + dt.timedelta(days=i)).isoformat()
            ingest(ctx, day)
            validate(ctx, day)
    return root


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB tmpfs mounted for this test, unmounted after it."""
    _root_or_skip("a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _workspace_on(disk: Path, base: Path, min_free_mb: int | None) -> Path:
    ws = disk / "ws"
    shutil.copytree(base, ws, symlinks=True)
    if min_free_mb is not None:
        with open(ws / "spindle.yaml", "a") as handle:
            handle.write(f"min_free_mb: {min_free_mb}\n")
    return ws


def _fill(disk: Path, leave_mb: int) -> Path:
    """Fill ``disk`` with one file so that ``leave_mb`` MB stay free; returns the file."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    size = stats.f_bavail * stats.f_frsize - leave_mb * 2**20
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text[-3000:]
    return [line for line in text.splitlines() if "StorageError" in line or "error:" in line]


def _tree(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(("metadata.db", "active.lock"))
    }


def test_disk_full_mid_run_one_line_nothing_half_written(small_disk: Path, base: Path) -> None:
    ws = _workspace_on(small_disk, base, min_free_mb=0)  # no floor: the disk fills mid-run
    filler = _fill(small_disk, leave_mb=10)
    full = _spindle(ws, "run", MODEL, "--date", DAY, *QUICK)
    assert full.returncode == 1, full.stdout[-2000:] + full.stderr[-2000:]
    lines = _error_lines(full)
    assert len(lines) == 1, lines
    assert f"disk full writing {ws / '.spindle'}" in lines[0], lines
    assert f"MB free on {small_disk}" in lines[0] and "free space there" in lines[0], lines
    with Context.open(ws) as ctx:
        versions = ctx.store.versions(MODEL) if MODEL in ctx.store.models() else []
        assert not [v for v in versions if v.status == "reserved"], versions
        # a full disk may refuse even the record of the failure: the run stays "running"
        # for the doctor to close, as after a kill; nothing else may be wrong
        problems = doctor(ctx, fix=True)
        assert all(p.kind == "stale_run" and p.fixed for p in problems), problems
        assert doctor(ctx) == []
    assert not list(ws.rglob("*.tmp")), list(ws.rglob("*.tmp"))
    for log in (ws / ".spindle" / "tables").rglob("_delta_log"):  # every last commit reads
        DeltaTable(str(log.parent)).to_pyarrow_table()

    filler.unlink()
    again = _spindle(ws, "run", MODEL, "--date", DAY, *QUICK)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    with Context.open(ws) as ctx:
        assert [v.status for v in ctx.store.versions(MODEL) if v.date == DAY][-1] == "ready"


def test_free_space_floor_refuses_before_writing(small_disk: Path, base: Path) -> None:
    ws = _workspace_on(small_disk, base, min_free_mb=None)  # the default floor, 256 MB
    before = _tree(ws)
    refused = _spindle(ws, "run", MODEL, "--date", DAY, *QUICK)
    assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr[-2000:]
    lines = _error_lines(refused)
    assert len(lines) == 1, lines
    assert (
        f"MB free on {small_disk} ({ws / '.spindle'}); spindle needs at least 256 MB" in (lines[0])
    ), lines
    assert "spindle.yaml min_free_mb" in lines[0] and "move state_dir" in lines[0], lines
    assert _tree(ws) == before  # not a byte of the day was written


def test_read_only_state_dir_one_line(small_disk: Path, base: Path) -> None:
    ws = _workspace_on(small_disk, base, min_free_mb=0)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = _spindle(ws, "run", MODEL, "--date", DAY, *QUICK)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not SIGBUS
    lines = _error_lines(result)
    assert len(lines) == 1, lines
    assert (
        f"cannot write {ws / '.spindle'}: the file system mounted at {small_disk} is " in (lines[0])
    ), lines
    assert "remount it read-write or move state_dir" in lines[0], lines
    status = _spindle(ws, "status")  # reading still works
    assert status.returncode == 0, status.stderr[-2000:]


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_state_dir_made_immutable_mid_run_no_sigbus(tmp_path: Path, base: Path) -> None:
    """SQLite maps its WAL index (-shm); writing it once the file is immutable is SIGBUS."""
    _root_or_skip("chattr +i")
    ws = tmp_path / "ws"
    shutil.copytree(base, ws, symlinks=True)
    state = ws / ".spindle"
    probe = subprocess.run(["chattr", "+i", str(state)], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {probe.stderr.decode().strip()}")
    subprocess.run(["chattr", "-i", str(state)], check=True)
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", SPINDLE_PAUSE_AT="after:validate")
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", MODEL, "--date", DAY, *QUICK, "-w", str(ws)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _stopped(process.pid):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never reached after:validate"
            time.sleep(0.2)
        os.sync()  # the WAL index's pages written back: the next write to them faults
        subprocess.run(["chattr", "-R", "+i", str(state)], check=True)
        os.kill(process.pid, signal.SIGCONT)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        subprocess.run(["chattr", "-R", "-i", str(state)], check=True)
    assert process.returncode == 1, (process.returncode, stderr[-3000:])  # not -7 (SIGBUS)
    result = subprocess.CompletedProcess(process.args, 1, stdout, stderr)
    lines = _error_lines(result)
    assert len(lines) == 1, lines
    assert f"cannot write {state}: " in lines[0] and "`chattr -i`" in lines[0], lines


def test_full_sqlite_store_names_the_file_not_a_server(small_disk: Path) -> None:
    database = small_disk / "metadata.db"
    with MetadataStore(f"sqlite:///{database}") as store:
        store.start_run("ingest", "k0")
        _fill(small_disk, leave_mb=0)
        with pytest.raises(StorageError) as raised:
            for i in range(1, 200):
                store.start_run("ingest", f"k{i}", params={"pad": "x" * 8000})
    message = str(raised.value)
    assert message.startswith(f"disk full writing {database} (database or disk is full): ")
    assert f"MB free on {small_disk}" in message and "server" not in message


def test_unwritable_state_dir_for_this_user_one_line(base: Path) -> None:
    """EACCES: root ignores modes, so the CLI runs as nobody on root's workspace."""
    _root_or_skip("running as nobody")
    top = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own temp dirs are 0700
    try:
        ws = top / "ws"
        shutil.copytree(base, ws, symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
        result = subprocess.run(
            [
                *AS_NOBODY,
                sys.executable,
                "-c",
                CLI,
                "run",
                MODEL,
                "--date",
                DAY,
                *QUICK,
                "-w",
                str(ws),
            ],
            env=dict(os.environ, HOME=str(top), OMP_WAIT_POLICY="PASSIVE"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(top)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = _error_lines(result)
    assert len(lines) == 1, lines
    assert f"cannot write {ws / '.spindle'}: Permission denied" in lines[0], lines
    assert "make it writable by this user" in lines[0], lines
