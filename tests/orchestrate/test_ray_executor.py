"""The Ray executor runs a day end to end as Ray tasks, with the same records and idempotence."""

from __future__ import annotations

from pathlib import Path

import pytest

from spindle.orchestrate import Context, RayExecutor, run_all, run_day

pytest.importorskip("ray")


def test_ray_runs_a_day_with_the_same_records(workspace_copy: Path, local_ray: None) -> None:
    date = "2026-01-04"
    with Context.open(workspace_copy) as ctx:
        reports = run_all(ctx, date, executor=RayExecutor(), max_parallel=2)
        by_model = {r.model: r for r in reports}
        assert set(by_model) == {"search_ranker", "purchase_propensity"}
        for report in reports:
            assert report.error is None, report.error
            assert report.version is not None
        trains = [r for r in ctx.store.runs(step="train", status="succeeded") if r.date == date]
        assert len(trains) == 2 and all(r.pid is not None for r in trains)
        # the same day again, in-process: every step is recognised as done
        again = run_day(ctx, "search_ranker", date)
        assert {"ingest", "train"} <= set(again.skipped_steps)
        assert again.version == by_model["search_ranker"].version
