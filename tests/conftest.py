"""Shared fixtures: small simulated YarnIt workspaces, built once per session."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, bin_dir

# Set before torch is imported by any test module (see Makefile and spindle.cli).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

START = dt.date(2026, 1, 1)


def make_workspace(root: Path, days: int, scale: float = 0.3, faults: tuple[str, ...] = ()) -> Path:
    """Init a YarnIt workspace in ``root`` and simulate ``days`` days into it."""
    from spindle.orchestrate import init_workspace
    from spindle.sim import Fault, simulate

    init_workspace(root, "yarnit")
    simulate(
        root / "raw",
        start=START,
        days=days,
        seed=7,
        scale=scale,
        faults=[Fault.parse(f, START) for f in faults],
    )
    return root


CORRUPT_DAY = "2026-01-04"


def demo_with_corrupt_day(root: Path) -> Path:
    """What ``spindle demo --days 3`` leaves (scale 0.25), then its world one day further with
    corrupt rows (quarantined with their reasons), that day run through the loop."""
    import spindle

    spindle.run_demo(root, 3, scale=0.25)
    day = dt.date.fromisoformat(CORRUPT_DAY)
    # the demo's world (seed 7, first day 2026-01-01) one day further, with corrupt rows
    spindle.simulate(
        spindle.Workspace.load(root).raw_dir,
        start=day,
        days=1,
        seed=7,
        scale=0.25,
        faults=[spindle.Fault.parse(f"corrupt_rows@{CORRUPT_DAY}", day)],
        epoch=dt.date(2026, 1, 1),
    )
    with spindle.Context.open(root) as ctx:
        assert spindle.run_day(ctx, "search_ranker", CORRUPT_DAY).error is None
    return root


@pytest.fixture(scope="session")
def ingested_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 4-day workspace with every day ingested and validated (read-only for tests)."""
    from spindle.orchestrate import Context, ingest, validate

    root = make_workspace(tmp_path_factory.mktemp("ws") / "yarnit", days=4)
    with Context.open(root) as ctx:
        for i in range(4):
            day = (START + dt.timedelta(days=i)).isoformat()
            ingest(ctx, day)
            validate(ctx, day)
    yield root


@pytest.fixture
def workspace_copy(ingested_workspace: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the ingested workspace."""
    target = tmp_path / "yarnit"
    shutil.copytree(ingested_workspace, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on loopback for the session (the Makefile installs
    Debian's ``postgresql``; a machine without it fails these tests rather than skip them)."""
    bindir = bin_dir()
    if bindir is None:
        pytest.fail("no PostgreSQL: `make install` installs Debian's postgresql (pg_ctl)")
    server = PostgresServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()
