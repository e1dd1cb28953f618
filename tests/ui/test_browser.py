"""The dashboard in headless Chromium: every page renders from the demo workspace, its charts
are drawn with data, its links lead to pages that answer, nothing is logged to the console,
nothing is fetched from outside the machine, and all of it works with no network at all."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.browsing import browse

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]

# every page, and the charts each must draw
PAGES: dict[str, list[str]] = {
    "/": [],
    "/runs": ["run-grid", "timeline"],
    "/models/search_ranker": ["metric-chart", "efficiency0", "efficiency1"],
    "/models/search_ranker/2": ["slice-chart"],
    "/models/search_ranker/compare?a=1&b=2": [],
    "/data": ["calendar", "rows-chart", "completeness", "slices", "drift"],
    "/data/quarantine?date=2026-01-04": [],
    "/features": [],
    "/retractions": [],
    "/retractions/retraction-1": [],
}


@pytest.fixture(scope="module")
def seen(ui_url: str) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in browse(ui_url, list(PAGES))}


@pytest.mark.parametrize("path", list(PAGES))
def test_the_page_renders_with_its_charts_drawn_and_no_console_error(
    seen: dict[str, dict[str, Any]], path: str
) -> None:
    report = seen[path]
    assert report["status"] == 200
    assert report["errors"] == []
    charts = {c["id"]: c for c in report["charts"]}
    assert sorted(charts) == sorted(PAGES[path])
    for chart in charts.values():
        assert chart["drawn"] and chart["traces"] > 0 and chart["points"] > 0, chart


def test_no_request_leaves_the_machine(seen: dict[str, dict[str, Any]]) -> None:
    assert all(r["outside"] == [] for r in seen.values())


def test_every_link_on_every_page_answers(seen: dict[str, dict[str, Any]], ui_url: str) -> None:
    links = {link for r in seen.values() for link in r["links"]}
    inside = sorted(link for link in links if link.startswith("/"))
    assert len(inside) >= 5
    assert [link for link in links if not link.startswith("/")] == []  # no link leaves
    broken = [
        (link, code)
        for link in inside
        if (code := httpx.get(ui_url + link, timeout=60).status_code) != 200
    ]
    assert broken == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_the_pages_work_with_the_network_cut_off(demo_workspace: Path) -> None:
    # a new network namespace: no interface but loopback; server and browser run inside it
    command = [sys.executable, "-m", "tests.ui.browsing", "--loopback-up", str(demo_workspace)]
    proc = subprocess.run(
        ["unshare", "--net", *command, *PAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads(proc.stdout.strip().splitlines()[-1])
    for report in reports:
        assert report["status"] == 200 and report["errors"] == [] and report["outside"] == []
        assert all(c["drawn"] and c["points"] > 0 for c in report["charts"]), report["path"]
