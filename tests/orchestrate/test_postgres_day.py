"""A workspace whose metadata store and online store are PostgreSQL (a throwaway server on
loopback): the daily run of two days through the CLI records runs, versions, lineage and
deployments there and materialises the views' latest rows there; ``status``, ``lineage``,
``doctor`` and the dashboard read the records back, and the server answers from its rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.postgres import PostgresServer

import spindle

MODEL = "search_ranker"
DAYS = ("2026-01-03", "2026-01-04")

pytestmark = pytest.mark.e2e


def _spindle(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "spindle"), *args, "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.fixture(scope="module")
def on_postgres(
    ingested_workspace: Path, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """The 4-day workspace's raw logs with fresh PostgreSQL metadata and online stores: days 1-2
    ingested and validated, days 3-4 run by the daily pipeline (infra validation's canary
    reads the online store too), all through the CLI."""
    root = tmp_path_factory.mktemp("pg") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    shutil.rmtree(root / ".spindle")  # tables, artifacts and the SQLite store: start clean
    url = postgres.database("workspace")
    config = yaml.safe_load((root / "spindle.yaml").read_text())
    config["metadata_url"] = url
    config["online_store_url"] = postgres.database("online")
    (root / "spindle.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = _spindle(root, "ingest", "--since", "2026-01-01", "--until", "2026-01-02")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for day in ("2026-01-01", "2026-01-02"):
        done = _spindle(root, "validate", "--date", day)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for day in DAYS:
        done = _spindle(root, "run", MODEL, "--date", day, "--set", "training.epochs=1")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root, url


def test_a_daily_run_records_everything_in_postgresql(on_postgres: tuple[Path, str]) -> None:
    root, url = on_postgres
    assert not (root / ".spindle" / "metadata.db").exists()  # nothing went to SQLite
    with spindle.Context.open_reader(root) as ctx:
        assert ctx.workspace.metadata_url == url
        versions = ctx.store.versions(MODEL)
        production = ctx.store.get_alias(MODEL, "production")
        runs = ctx.store.runs(limit=None)
    assert [v.status for v in versions] == ["ready", "ready"]
    assert production == 2
    steps = {(r.step, r.date, r.status) for r in runs}
    for day in DAYS:
        for step in ("ingest", "validate", "train", "evaluate"):
            assert (step, day, "succeeded") in steps, str(sorted(steps, key=str))
    pushes = [r for r in runs if r.step == "push"]
    assert [r.status for r in pushes] == ["succeeded", "succeeded"]  # one per day, no date
    status = _spindle(root, "status", MODEL, "--json")
    assert status.returncode == 0, status.stderr
    assert '"production"' in status.stdout
    lineage = _spindle(root, "lineage", f"{MODEL}@2", "--json")
    assert lineage.returncode == 0, lineage.stderr
    chain = {link["kind"] for link in json.loads(lineage.stdout)["chain"]}
    assert {"raw_partition", "table_version", "training_set"} <= chain
    doctor = _spindle(root, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def test_a_rerun_of_a_finished_day_is_a_no_op_on_postgresql(on_postgres: tuple[Path, str]) -> None:
    root, _ = on_postgres
    with spindle.Context.open_reader(root) as ctx:
        before = len(ctx.store.versions(MODEL))
    again = _spindle(root, "run", MODEL, "--date", DAYS[-1], "--set", "training.epochs=1")
    assert again.returncode == 0, again.stderr[-2000:]
    with spindle.Context.open_reader(root) as ctx:
        assert len(ctx.store.versions(MODEL)) == before


def test_the_views_rows_are_served_from_the_postgresql_online_store(
    on_postgres: tuple[Path, str],
) -> None:
    from spindle.features import PostgresOnlineStore
    from spindle.orchestrate import serve_and_probe

    root, _ = on_postgres
    assert not (root / ".spindle" / "online.db").exists()  # nothing went to SQLite
    with spindle.Context.open(root) as ctx:
        store = ctx.online_store()
        try:
            assert isinstance(store.backend, PostgresOnlineStore)
            marks = {v: store.backend.watermark(v) for v in ctx.features.feature_views}
        finally:
            store.close()
        served = [v for v, mark in marks.items() if mark is not None]
        assert served and all(marks[v] == DAYS[-1] for v in served), marks
        probe = serve_and_probe(ctx, MODEL, DAYS[-1], 5)
    assert probe["errors"] == 0 and probe["fallbacks"] == 0, probe
    assert str(probe["version"]) == "2", probe


def test_the_dashboard_reads_a_postgresql_store(on_postgres: tuple[Path, str]) -> None:
    import httpx

    from spindle.serve import ServerThread
    from spindle.ui import create_ui_app

    root, _ = on_postgres
    with ServerThread(create_ui_app(root)) as server:
        for path in ("/", f"/models/{MODEL}", f"/models/{MODEL}/2", "/runs", "/data"):
            page = httpx.get(server.url + path, timeout=60)
            assert page.status_code == 200, (path, page.text[:500])
        model = httpx.get(f"{server.url}/models/{MODEL}", timeout=60).text
    assert f'<a class="pill" href="/models/{MODEL}/2">production v2</a>' in model
