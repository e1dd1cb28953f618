"""Every page of the dashboard answers from a real demo workspace over real HTTP, shows what the
registry holds, and loads nothing from outside the machine."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

import spindle
from tests.ui.conftest import FAILED_DAY


def get(url: str, path: str) -> httpx.Response:
    return httpx.get(url + path, timeout=60)


def test_overview_shows_every_model_with_its_serving_version_and_freshness(
    ui_url: str, demo_workspace: Path
) -> None:
    page = get(ui_url, "/")
    assert page.status_code == 200
    with spindle.Context.open_reader(demo_workspace) as ctx:
        production = ctx.store.get_alias("search_ranker", "production")
        states = {f["model"]: f["state"] for f in spindle.freshness_report(ctx)}
    for model in spindle.Workspace.load(demo_workspace).model_names():
        assert f'data-model="{model}"' in page.text
    assert f'href="/models/search_ranker/{production}">production v{production}' in page.text
    assert f'<span class="pill {states["search_ranker"]}">' in page.text
    # the newest validated day and its verdict
    assert 'id="day-verdict"' in page.text


def test_runs_lists_every_run_and_the_failure_with_its_error(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        runs = ctx.store.runs(limit=None)
        failed = ctx.store.runs(status="failed", limit=None)
    page = get(ui_url, "/runs")
    assert page.status_code == 200
    assert f"<h2>{len(runs)} run(s)</h2>" in page.text
    assert len(failed) == 1 and failed[0].error
    only = get(ui_url, "/runs?status=failed").text
    assert "<h2>1 run(s)</h2>" in only
    assert failed[0].error[:60] in only.replace("&#39;", "'")
    # the gap before the failed day and the failed day are listed as problems
    assert f'{FAILED_DAY}</a></td><td>ingest</td><td><span class="pill failed">' in page.text
    assert '2026-01-04</a></td><td>ingest</td><td><span class="pill missing">' in page.text


def test_runs_are_paged_and_filtered_in_the_server(ui_url: str, demo_workspace: Path) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        trains = ctx.store.runs(step="train", limit=None)
    page = get(ui_url, "/runs?step=train&since=2026-01-01&until=2026-01-31").text
    assert f"<h2>{len(trains)} run(s)</h2>" in page
    assert page.count('<tr class="run"') == len(trains)
    assert "page 1 of 1" in page


def test_pages_load_scripts_and_styles_only_from_the_server_itself(ui_url: str) -> None:
    for path in ("/", "/runs"):
        html = get(ui_url, path).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith(("/", "data:", "#")) for s in sources), sources
    js = get(ui_url, "/plotly.min.js")
    assert js.status_code == 200 and "plotly" in js.text[:2000].lower()
    assert len(js.content) > 1_000_000  # the whole bundle, served from the installed package
