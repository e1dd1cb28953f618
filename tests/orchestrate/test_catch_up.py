"""A 3-day outage with two models of different priorities: the plan, its execution, freshness alerts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from tests.conftest import make_workspace

from spindle.orchestrate import (
    Context,
    catch_up,
    freshness_report,
    init_workspace,
    plan_catch_up,
    run_day,
)


def _quick_models(root: Path) -> None:
    for path in (root / "models").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        config["training"] |= {"epochs": 1, "window_days": 2, "warm_start_epochs": 1}
        # one quick epoch on tiny data: keep the gate from blocking for calibration or noise
        config.setdefault("evaluation", {}).update(
            max_regression=1.0, max_calibration_error=None, max_score_psi=None
        )
        path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Days 1-2 processed, then the scheduler was down for days 3, 4 and 5."""
    root = make_workspace(tmp_path_factory.mktemp("outage") / "ws", days=5, scale=0.2)
    _quick_models(root)
    with Context.open(root) as ctx:
        run_day(ctx, "search_ranker", "2026-01-01", train_model=False)
        for model in ("search_ranker", "purchase_propensity"):
            assert run_day(ctx, model, "2026-01-02").error is None
    return root


def test_plan_orders_by_priority_within_capacity(outage: Path) -> None:
    with Context.open(outage) as ctx:
        full = plan_catch_up(ctx, "2026-01-03")
        kinds = [(t.kind, t.date, t.model) for t in full.tasks]
        assert kinds == [
            ("ingest", "2026-01-03", None),
            ("ingest", "2026-01-04", None),
            ("ingest", "2026-01-05", None),
            ("run", "2026-01-05", "search_ranker"),
            ("run", "2026-01-05", "purchase_propensity"),
        ]
        assert all(t.within_capacity for t in full.tasks)
        # a capacity that fits the ingests and one model: the important one goes first, the other waits
        budget_s = full.tasks[3].cumulative_s + 0.5 * full.tasks[4].estimated_s
        tight = plan_catch_up(ctx, "2026-01-03", capacity_hours=budget_s / 3600)
        assert [t.within_capacity for t in tight.tasks] == [True, True, True, True, False]
        fresh = {f["model"]: f for f in tight.freshness}
        assert (
            fresh["search_ranker"]["fresh_after_plan"]
            and not fresh["purchase_propensity"]["fresh_after_plan"]
        )
        assert (
            ctx.store.latest_artifact("validation_report", date="2026-01-03") is None
        )  # planning changed nothing


def test_catch_up_makes_models_fresh_and_freshness_alerts_early(outage: Path) -> None:
    with Context.open(outage) as ctx:
        outcomes = catch_up(ctx, plan_catch_up(ctx, "2026-01-03"))
        assert [o["status"] for o in outcomes] == ["done"] * 5, outcomes
        assert plan_catch_up(ctx, "2026-01-03").tasks == []  # nothing left

        def state(now: str) -> str:
            rows = {r["model"]: r for r in freshness_report(ctx, dt.datetime.fromisoformat(now))}
            return str(rows["search_ranker"]["state"])

        # serving data until 01-05 00:00; tolerance 72 h; detecting a failure takes up to 24 h
        assert state("2026-01-06T00:00") == "ok"
        assert (
            state("2026-01-07T00:00") == "critical"
        )  # age 48 h: the alert fires before the SLO breaks
        assert state("2026-01-08T00:00") == "violated"


def test_catch_up_finds_the_days_of_a_dump_through_its_declaration(tmp_path: Path) -> None:
    """No daily partitions in a flights workspace: the last raw day is the dump's last event
    day (UTC), and every day up to it with data is a day to ingest."""
    root = init_workspace(tmp_path / "flights", "flights")
    with Context.open(root) as ctx:
        plan = plan_catch_up(ctx, "2013-12-30")
    assert plan.until == "2014-01-01"  # 31 December's evening departures, in UTC
    ingest = [t.date for t in plan.tasks if t.kind == "ingest"]
    assert ingest == ["2013-12-30", "2013-12-31", "2014-01-01"]
    assert sorted(t.model for t in plan.tasks if t.kind == "run") == ["delay", "delay_minutes"]
