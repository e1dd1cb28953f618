"""Runner retries, cron, the scheduler's catch-up of missed slots, freshness SLOs, exports, metrics."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spindle.core import ConfigError, DataError, TransientError
from spindle.monitor import PipelineCollector, alert_rules
from spindle.orchestrate import (
    Context,
    Cron,
    Runner,
    export_airflow,
    freshness_report,
    read_heartbeat,
    tick,
)
from spindle.registry import MetadataStore


def test_runner_retries_transient_errors_only(tmp_path: Path) -> None:
    store = MetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    runner = Runner(store, backoff_s=0.01)
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("database is locked")

    assert runner.run("flaky", flaky, identity={}).skipped is False
    statuses = sorted(r.status for r in store.runs(step="flaky"))
    assert statuses == ["failed", "failed", "succeeded"]

    def broken() -> None:
        raise DataError("bad partition")

    with pytest.raises(DataError):
        runner.run("broken", broken, identity={})
    assert [r.status for r in store.runs(step="broken")] == ["failed"]  # permanent: no retry
    store.close()


def test_cron() -> None:
    nightly = Cron("0 2 * * *")
    assert nightly.times_on(dt.date(2026, 1, 5)) == [dt.datetime(2026, 1, 5, 2, 0)]
    assert nightly.interval_h(dt.date(2026, 1, 5)) == 24.0
    weekly = Cron("30 4 * * 1")  # Mondays
    assert weekly.due_on(dt.date(2026, 1, 5)) and not weekly.due_on(dt.date(2026, 1, 6))
    assert Cron("*/15 * * * *").interval_h(dt.date(2026, 1, 5)) == 0.25
    with pytest.raises(ConfigError, match="hour"):
        Cron("0 25 * * *")
    with pytest.raises(ConfigError, match="5 fields"):
        Cron("0 2 * *")


def test_scheduler_catches_up_missed_slots_in_priority_order(workspace_copy: Path) -> None:
    with Context.open(workspace_copy) as ctx:
        first = tick(
            ctx, dt.datetime(2026, 1, 10, 1, 0), first_start=dt.datetime(2026, 1, 10, 0, 0)
        )
        assert first == [] and read_heartbeat(ctx) is not None
        # the scheduler was down for three days: every missed slot runs, most important first each day
        actions = tick(ctx, dt.datetime(2026, 1, 13, 5, 0))
    assert [(a["date"], a["model"]) for a in actions] == [
        (d, m)
        for d in ("2026-01-09", "2026-01-10", "2026-01-11", "2026-01-12")
        for m in ("search_ranker", "purchase_propensity")
    ]
    assert all(a["status"] == "no data yet" for a in actions)  # those days were never simulated


def test_airflow_export_structure(workspace_copy: Path, tmp_path: Path) -> None:
    with Context.open(workspace_copy) as ctx:
        path = export_airflow(ctx, tmp_path / "dags")
    tree = ast.parse(path.read_text())
    dag_ids = [
        kw.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "dag_id" and isinstance(kw.value, ast.Constant)
    ]
    assert dag_ids == ["spindle_purchase_propensity", "spindle_search_ranker"]
    text = path.read_text()
    assert "ingest_search_ranker >> validate_search_ranker >> run_search_ranker" in text
    assert "run search_ranker --date {DATA_DAY}" in text


def test_metrics_and_rules(workspace_copy: Path) -> None:
    with Context.open(workspace_copy) as ctx:
        registry = CollectorRegistry()
        registry.register(PipelineCollector(ctx.store, lambda: freshness_report(ctx)))
        families = {
            f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
        }
    assert {
        "spindle_step_duration_seconds",
        "spindle_step_last_success_timestamp_seconds",
        "spindle_ingested_rows",
        "spindle_model_recovery_hours",
        "spindle_model_freshness_tolerance_hours",
    } <= set(families)
    steps = {s.labels["step"] for s in families["spindle_step_duration_seconds"].samples}
    assert {"ingest", "features", "validate"} <= steps
    rules = yaml.safe_load(alert_rules(["search_ranker"]))
    alerts = [r["alert"] for r in rules["groups"][0]["rules"]]
    assert alerts == [
        "SpindleFreshnessAtRisk",
        "SpindleFreshnessCritical",
        "SpindleFreshnessViolated",
        "SpindleStepFailing",
    ]
