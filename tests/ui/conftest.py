"""One demo workspace for every dashboard test, and one real server on loopback serving it.

The workspace is what a user gets from ``spindle demo --days 3``, plus a real failure: the
daily run of a day whose logs never arrived (its ingest fails, recorded with the error).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle

DAYS = 3
FAILED_DAY = "2026-01-05"  # two days after the demo's last: no raw data, and 01-04 is a gap


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ui") / "demo"
    spindle.run_demo(root, DAYS, scale=0.25)
    with spindle.Context.open(root) as ctx:
        report = spindle.run_day(ctx, "search_ranker", FAILED_DAY)
    assert report.error is not None  # the ingest of a day without logs fails, recorded
    return root


@pytest.fixture(scope="session")
def ui_url(demo_workspace: Path) -> Iterator[str]:
    from spindle.serve import ServerThread
    from spindle.ui import create_ui_app

    with ServerThread(create_ui_app(demo_workspace)) as server:
        yield server.url
