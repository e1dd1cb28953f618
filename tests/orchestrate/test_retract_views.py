"""A retraction reaches models through feature views too: a view computed from the retracted
source (a user's purchases in 28 days) counted the rows, so a version whose own training days
never held them still trained on values computed over them, until a backfill since the
retraction recomputes the view's features; the retraining plan runs those backfills first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.core import open_dataset
from spindle.orchestrate import Context

RANKER = "search_ranker"
ONE_EPOCH = ["training.epochs=1", "training.warm_start_epochs=1"]


@pytest.fixture(scope="module")
def retracted(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """v1 for day 3 (trained on days 1-2), pushed; v2 for day 4 from scratch on day 3 only;
    then three purchases of day 1 retracted as fraud."""
    root = tmp_path_factory.mktemp("retract-views") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    purchases = open_dataset(root / ".spindle/tables/raw/purchases").to_table(
        columns=["transaction_id", "date"]
    )
    ids = sorted(
        t for t, d in zip(*purchases.to_pydict().values(), strict=True) if str(d) == "2026-01-01"
    )[:3]
    listed = root.parent / "fraud.txt"
    listed.write_text("\n".join(ids) + "\n")
    with Context.open(root) as ctx:
        spindle.train_version(ctx, RANKER, "2026-01-03", overrides=ONE_EPOCH)
        spindle.push(ctx, RANKER, 1, infra=False, force=True, reason="views test")
        spindle.train_version(
            ctx,
            RANKER,
            "2026-01-04",
            from_scratch=True,
            overrides=[*ONE_EPOCH, "training.window_days=1"],
        )
        outcome = spindle.record_retraction(ctx, listed, "fraud", "purchases")
        assert outcome.retraction.days == ("2026-01-01",)
    yield root


def _views_reading_purchases(root: Path) -> set[str]:
    with Context.open(root) as ctx:
        return {v.name for v in ctx.features.feature_views.values() if "purchases" in v.sources}


def test_a_version_is_named_through_the_views_computed_over_the_rows(retracted: Path) -> None:
    with Context.open(retracted) as ctx:
        impact = spindle.retraction_impact(ctx, "retraction-1")
        pinned = ctx.store.versions(RANKER)
    named = {v.version: v for v in impact.versions if v.model == RANKER}
    assert {v.version for v in pinned} == {1, 2}
    # v2 trained on day 3 only: none of day 1's purchases among its rows, but its user and
    # product features (purchases over past days) were computed over them
    assert named[2].rows == 0 and named[2].through is None
    assert set(named[2].views) == _views_reading_purchases(retracted) and named[2].views
    assert named[1].rows > 0


def test_the_retraining_backfills_those_views_first_then_nothing_is_exposed(
    retracted: Path,
) -> None:
    with Context.open(retracted) as ctx:
        (task,) = spindle.retrain_plan(ctx, "retraction-1")
        config = spindle.load_config(ctx, RANKER).config
        views = _views_reading_purchases(retracted)
        expected = sorted(r for r in config.features if ctx.features.definitions[r].group in views)
        assert list(task.backfill) == expected and task.since == "2026-01-01"
        (report,) = spindle.run_retrain(ctx, [task])
        assert report.error is None or report.status == "refused", report.error
        backfills = {r.params["ref"] for r in ctx.store.runs(step="backfill", limit=None)}
        assert set(expected) <= backfills
        # a version trained now reads recomputed values: not named
        fresh, _, _ = spindle.train_version(
            ctx,
            RANKER,
            "2026-01-04",
            from_scratch=True,
            overrides=[*ONE_EPOCH, "training.window_days=1", "training.seed=11"],
        )
        named = {
            (v.model, v.version) for v in spindle.retraction_impact(ctx, "retraction-1").versions
        }
    assert (RANKER, fresh.version) not in named
    assert (RANKER, 2) in named  # what it trained on does not change
