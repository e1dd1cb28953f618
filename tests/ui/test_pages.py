"""Every page of the dashboard answers from a real demo workspace over real HTTP, shows what the
registry holds, and loads nothing from outside the machine."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import spindle
from spindle.orchestrate import day_verdict
from tests.ui.conftest import CORRUPT_DAY, FAILED_DAY, GAP_DAY


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
    assert f'{GAP_DAY}</a></td><td>ingest</td><td><span class="pill missing">' in page.text


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


def test_the_model_page_lists_its_versions_with_verdicts_metrics_and_deployments(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        shown = spindle.model_report(ctx, "search_ranker")
        deployments = ctx.store.deployments("search_ranker")
    page = get(ui_url, "/models/search_ranker")
    assert page.status_code == 200
    versions = re.findall(r'<td class="version"><a href="/models/search_ranker/(\d+)">', page.text)
    assert sorted(map(int, versions)) == [v["version"] for v in shown["versions"]]
    for v in shown["versions"]:
        assert f"{v['metrics']['ndcg@10']:.4f}" in page.text  # the gated metric of each
    table = page.text[page.text.index('id="deployments"') : page.text.index('id="aliases"')]
    assert table.count("<td>spindle push</td>") == len(deployments)
    assert 'id="metric-chart"' in page.text and 'id="efficiency0"' in page.text


def test_the_metric_over_days_has_a_band_of_each_systems_interval(
    ui_url: str, demo_workspace: Path
) -> None:
    """Candidate, production and the baselines each get their own bootstrap interval around
    their line (in its colour), from the evaluation reports."""
    import json

    from spindle.ui._reading import report_file

    page = get(ui_url, "/models/search_ranker").text
    found = re.search(r'id="metric-chart" data-figure=\'(.*?)\'', page)
    assert found is not None
    traces = json.loads(found.group(1).replace("&#39;", "'"))["data"]
    lines = {t["name"]: t for t in traces if t.get("mode") == "lines+markers"}
    bands = {t["name"].removesuffix(" interval"): t for t in traces if t.get("fill")}
    assert {"candidate", "production"} <= set(bands) and len(bands) > 2  # baselines too
    with spindle.Context.open_reader(demo_workspace) as ctx:
        newest = ctx.store.latest_artifact("evaluation", model="search_ranker")
        assert newest is not None
        report = report_file(newest.uri)
    assert report is not None
    day = newest.properties["holdout_date"]
    for system, band in bands.items():
        line = lines[system]
        assert band["fillcolor"].startswith("rgba(") and line["line"]["color"].startswith("#")
        low = band["y"][band["x"].index(day)]
        assert low == pytest.approx(report["intervals"][system][0])
        value = line["y"][line["x"].index(day)]
        assert report["intervals"][system][0] <= value <= report["intervals"][system][1]


def test_the_version_page_shows_lineage_gate_reasons_slices_config_and_resources(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        version = ctx.store.get_alias("search_ranker", "production")
        lineage = spindle.lineage_report(ctx, "search_ranker", version)
    page = get(ui_url, f"/models/search_ranker/{version}").text
    for column in (
        "raw partitions",
        "tables",
        "training set",
        "run",
        "version",
        "evaluation",
        "deployments",
    ):
        assert f">{column} (" in page, column
    raw = len(lineage["chain"][0]["artifacts"])
    assert f">raw partitions ({raw})<" in page
    assert page.count('<tr><td><span class="pill pass">pass</span></td><td>slice_regression') > 3
    assert 'id="slice-chart"' in page
    assert '"metric": "ndcg@10"' in page  # the effective config
    assert "run wall_s" in page


def test_compare_shows_changed_config_keys_metric_differences_and_feature_pins(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        evaluation = ctx.store.latest_artifact("evaluation", model="search_ranker", version=2)
    assert evaluation is not None
    scores = evaluation.properties["metrics"]
    page = get(ui_url, "/models/search_ranker/compare?a=1&b=2").text
    assert "Config: changed keys" in page
    # v2 was evaluated against v1 in production: both on that holdout, with the interval
    assert "Both scored on one holdout" in page
    diff = page[page.index('id="metric-diff"') : page.index('id="slice-diff"')]
    a, b = scores["production"]["ndcg@10"], scores["candidate"]["ndcg@10"]
    row = f'<td>ndcg@10</td><td class="num">{a:.4f}</td><td class="num">{b:.4f}</td>'
    assert row + f'<td class="num">{b - a:.4f}</td>' in diff
    assert re.search(re.escape(row) + r".*\s*<td class=\"num\">\[", diff)
    assert "query.text@1" in page


@pytest.mark.parametrize(
    "path",
    [
        "/models/no_such_model",
        "/models/search_ranker/999",
        "/models/search_ranker/compare?a=1&b=99",
    ],
)
def test_an_unknown_model_or_version_is_a_404_that_says_what_exists(ui_url: str, path: str) -> None:
    page = get(ui_url, path)
    assert page.status_code == 404
    assert 'id="error"' in page.text and "search_ranker" in page.text


def test_the_data_page_shows_rows_quarantine_verdicts_and_anomalies_per_day(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open_reader(demo_workspace) as ctx:
        ingested = ctx.store.latest_artifact("ingest", date=CORRUPT_DAY)
        verdict = day_verdict(ctx, CORRUPT_DAY)
    assert ingested is not None
    quarantined = ingested.properties["rows_quarantined"]
    assert quarantined > 0
    page = get(ui_url, "/data").text
    days = page[page.index('id="days"') :]
    row = days[days.index(f"<tr><td>{CORRUPT_DAY}</td>") :]
    row = row[: row.index("</tr>")]
    assert f'<a href="/data/quarantine?date={CORRUPT_DAY}">{quarantined}</a>' in row
    for reason, n in ingested.properties["quarantine_reasons"].items():
        assert f"{n}: {reason}" in row.replace("&#39;", "'")
    assert f'<span class="pill {verdict}">' in row
    for chart in ("calendar", "rows-chart", "completeness", "drift"):
        assert f'id="{chart}"' in page, chart


def test_the_quarantined_rows_are_shown_a_page_at_a_time_with_their_reason(
    ui_url: str, demo_workspace: Path
) -> None:
    from spindle.data import quarantined_rows

    every = quarantined_rows(spindle.Workspace.load(demo_workspace).tables_dir, CORRUPT_DAY)
    page = get(ui_url, f"/data/quarantine?date={CORRUPT_DAY}").text
    assert f"<h2>{every.total} row(s)" in page and page.count('<tr class="qrow">') == every.total
    (source, reason), n = next(iter(every.reasons.items()))
    one = get(ui_url, f"/data/quarantine?date={CORRUPT_DAY}&source={source}&reason={reason}")
    assert one.text.count('<tr class="qrow">') == n
    assert get(ui_url, "/data/quarantine?date=2026-01-02").text.count('<tr class="qrow">') == 0


def test_the_features_page_lists_the_catalog_with_owners_tags_and_pins(
    ui_url: str, demo_workspace: Path
) -> None:
    page = get(ui_url, "/features").text
    with spindle.Context.open(demo_workspace) as ctx:
        configs = {m: ctx.workspace.model_config(m)[0] for m in ctx.workspace.model_names()}
        catalog = spindle.feature_catalog(ctx.features, configs, {})
        production = ctx.store.get_alias("search_ranker", "production")
    assert page.count("<tr id=") == len(catalog)
    for record in catalog:
        assert f'<tr id="{record["ref"]}">' in page
    # every pin of the production version is shown on its feature's row
    assert f'href="/models/search_ranker/{production}">search_ranker@{production}</a>' in page


def test_the_dashboards_present_is_the_orchestrators(demo_workspace: Path) -> None:
    from spindle.orchestrate import workspace_now
    from spindle.ui._freshness import workspace_now as read_at_once

    with spindle.Context.open_reader(demo_workspace) as ctx:
        assert read_at_once(ctx) == workspace_now(ctx)


def test_every_slice_is_charted_as_its_share_of_each_days_rows(
    ui_url: str, demo_workspace: Path
) -> None:
    """Validation stores each day's rows by slice; the data page draws every slice of the chosen
    ``source.column`` over the days, not only the ones validation flagged."""
    import json

    page = get(ui_url, "/data").text
    assert 'id="no-slice-flag"' in page  # the demo flags no slice
    choices = re.findall(r'<select name="slices">(.*?)</select>', page, re.S)[0]
    assert "<option selected>impressions.country</option>" in choices
    assert "<option>purchases.partner</option>" in choices
    with spindle.Context.open_reader(demo_workspace) as ctx:
        report = ctx.store.latest_artifact("validation_report", date=CORRUPT_DAY)
    assert report is not None
    counted = report.properties["stats"]["slices"]["purchases"]["partner"]
    page = get(ui_url, "/data?slices=purchases.partner").text
    found = re.search(r'id="slices" data-figure=\'(.*?)\'', page)
    assert found is not None
    figure = json.loads(found.group(1).replace("&#39;", "'"))
    lines = {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"]}
    assert set(lines) == {f"partner={k}" for k in counted}
    # the shares of each day are its counts over the day's rows
    total = sum(counted.values())
    for key, n in counted.items():
        assert lines[f"partner={key}"][CORRUPT_DAY] == pytest.approx(n / total)
    for day in lines[f"partner={next(iter(counted))}"]:
        assert sum(line.get(day, 0.0) for line in lines.values()) == pytest.approx(1.0)


def test_a_day_of_many_slices_is_stored_as_the_largest_and_the_rest() -> None:
    from spindle.data._validate import SLICES_STORED, _top

    counts = {f"s{i:03d}": i + 1 for i in range(SLICES_STORED + 20)}
    stored = _top(counts)
    assert len(stored) == SLICES_STORED + 1 and sum(stored.values()) == sum(counts.values())
    assert stored["(other)"] == sum(range(1, 21)) and "s000" not in stored
    assert _top({"a": 1}) == {"a": 1}


def test_flagged_slices_are_marked_on_their_slice_line() -> None:
    from spindle.ui._data import slice_shares

    reports = {
        (d,): {"stats": {"slices": {"purchases": {"discounted": {"True": t, "False": 80}}}}}
        for d, t in (("2026-01-04", 20), ("2026-01-05", 4))
    }
    flag = {
        "date": "2026-01-05",
        "source": "purchases",
        "slice": "discounted=True",
        "expected": 0.2,
        "observed": 0.05,
        "kind": "slice_shrunk",
        "severity": "fail",
    }
    figure = slice_shares(reports, [flag], "purchases.discounted")
    assert figure is not None
    *lines, marks = figure["data"]
    assert [t["name"] for t in lines] == ["discounted=False", "discounted=True"]
    assert lines[1]["y"] == [pytest.approx(0.2), pytest.approx(4 / 84)]
    assert marks["x"] == ["2026-01-05"] and marks["y"] == [0.05]
    assert slice_shares(reports, [flag], "purchases.partner") is None


def test_flagged_slices_are_charted_as_observed_over_expected_share(ui_url: str) -> None:
    """Reports stored before validation kept every slice's rows: the flagged ones still show."""
    from spindle.ui._data import _slices

    flagged = [
        {
            "date": "2026-01-05",
            "source": "purchases",
            "slice": "discounted=True",
            "expected": 0.2,
            "observed": 0.05,
            "kind": "slice_shrunk",
        },
        {
            "date": "2026-01-04",
            "source": "purchases",
            "slice": "discounted=True",
            "expected": 0.2,
            "observed": 0.1,
            "kind": "slice_shrunk",
        },
        {"date": "2026-01-04", "source": "all", "slice": None, "expected": 2.0, "observed": 0.0},
    ]
    figure = _slices(flagged)
    assert figure is not None
    (trace,) = figure["data"]
    assert trace["name"] == "purchases discounted=True"
    assert trace["x"] == ["2026-01-04", "2026-01-05"]
    assert trace["y"] == [pytest.approx(0.5), pytest.approx(0.25)]


def test_retractions_list_each_with_the_versions_its_rows_reached(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open(demo_workspace) as ctx:
        (info,) = spindle.retractions(ctx)
        impact = spindle.retraction_impact(ctx, info.id)
    page = get(ui_url, "/retractions")
    assert page.status_code == 200
    row = page.text[page.text.index('<tr class="retraction">') :].split("</tr>")[0]
    assert f'href="/retractions/{info.id}">{info.id}</a>' in row and ">fraud<" in row
    own = sorted(f"{v.model}@{v.version}" for v in impact.versions if v.rows)
    assert own and re.findall(r'class="pill" href="/models/[^"]+">([^<]+)</a>', row) == own


def test_a_retractions_page_names_every_exposed_version_and_deployment(
    ui_url: str, demo_workspace: Path
) -> None:
    with spindle.Context.open(demo_workspace) as ctx:
        impact = spindle.retraction_impact(ctx, "retraction-1")
    page = get(ui_url, "/retractions/retraction-1")
    assert page.status_code == 200
    assert page.text.count('<tr class="exposed">') == len(impact.versions) > 0
    for v in impact.versions:
        assert f'href="/models/{v.model}/{v.version}">{v.model}@{v.version}</a>' in page.text
    served = page.text[page.text.index('id="served"') :].split("</table>")[0]
    assert served.count("<tr>") - 1 == len(impact.deployments) > 0
    assert get(ui_url, "/retractions/retraction-9").status_code == 404
    own = next(v for v in impact.versions if v.rows)
    version = get(ui_url, f"/models/{own.model}/{own.version}").text
    assert f'<a href="/retractions/retraction-1">retraction-1</a> ({own.rows} rows)' in version
