"""Infra validation when production and the candidate pin different versions of a feature."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import yaml
from tests.conftest import START

import spindle
from spindle.evaluate import MAX_ABS_DIFF
from spindle.orchestrate import Context, backfill

MODEL = "search_ranker"
EPOCHS = ["training.epochs=1"]


def _day(i: int) -> str:
    return (START + dt.timedelta(days=i - 1)).isoformat()


def _pin_price_v2(root: Path) -> None:
    """Define product.price_usd@2 (version 1's computation) and pin it in the model."""
    features = root / "features" / "product.yaml"
    doc = yaml.safe_load(features.read_text())
    v1 = next(f for f in doc["features"] if f["name"] == "price_usd")
    doc["features"].append(v1 | {"version": 2, "description": "Price, version 2."})
    features.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = root / "models" / f"{MODEL}.yaml"
    config.write_text(config.read_text().replace("product.price_usd@1", "product.price_usd@2"))


def _holdout_builds(ctx: Context) -> int:
    return sum(
        r.status == "succeeded"
        for r in ctx.store.runs(model=MODEL, step="training_set:holdout", limit=None)
    )


def test_infra_validation_reuses_the_evaluations_holdout_and_serves_production_as_trained(
    ingested_workspace: Path, tmp_path: Path
) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    root = tmp_path / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        spindle.train_version(ctx, MODEL, _day(3), overrides=EPOCHS)
        spindle.evaluate_version(ctx, MODEL, 1, _day(3))
        spindle.push(ctx, MODEL, 1)  # production pins product.price_usd@1
    _pin_price_v2(root)
    with Context.open(root) as ctx:
        # the backfill step (`spindle features backfill`) also restates the online store's day
        backfill(ctx, "product.price_usd@2", _day(1), _day(4))
        version, _, _ = spindle.train_version(
            ctx, MODEL, _day(4), from_scratch=True, overrides=EPOCHS
        )
        _, details = spindle.evaluate_version(ctx, MODEL, version.version, _day(4))
        assert "product.price_usd@1" in details["features"]["baseline"]
        assert "product.price_usd@2" in details["features"]["candidate"]
        built = _holdout_builds(ctx)
        # the candidate's requests come from the evaluation's holdout (both pins' columns):
        # it is reused, not built again; @2 is served since the backfill restated the store
        candidate = spindle.infra_validate(ctx, MODEL, version.version, n_requests=20)
        assert _holdout_builds(ctx) == built
        assert candidate.passed, candidate.failures
        # production, pinning @1 while the config now pins @2, still serves as it was trained
        production = spindle.infra_validate(ctx, MODEL, 1, n_requests=20)
    assert production.passed, production.failures
    assert production.rows > 0 and production.max_abs_diff is not None
    assert production.max_abs_diff <= MAX_ABS_DIFF
