"""``reproduce_version``: a version rebuilt from its record is bit-identical at the same threads
(sync and DDP), a warm-started one names its chain and differs from a from-scratch model, and
another thread count is named as a cause. Real workspace, real training, nothing mocked.

One module-scoped workspace (4 simulated days at scale 0.25): ``search_ranker`` v1 trained for
day 3 from scratch and pushed, v2 for day 4 warm-started from v1 and pushed (production), v3
for day 4 from scratch with two DDP workers (registered, not pushed).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace

from spindle.core import read_package, sha256_file
from spindle.orchestrate import Context, ingest, model_dir, reproduce_version, run_day, validate
from spindle.orchestrate import train_version as train

MODEL = "search_ranker"


def trained_workspace(root: Path) -> Path:
    """Simulate, ingest and train v1 (scratch), v2 (warm from v1, production) and v3 (DDP, 2
    workers) into ``root``."""
    make_workspace(root, days=4, scale=0.25)
    with Context.open(root) as ctx:
        for i in range(4):
            day = (START + dt.timedelta(days=i)).isoformat()
            ingest(ctx, day)
            validate(ctx, day)
        for day in ("2026-01-03", "2026-01-04"):
            report = run_day(ctx, MODEL, day)
            assert report.status == "ok", report.to_dict()
        version, _, _ = train(
            ctx, MODEL, "2026-01-04", from_scratch=True, overrides=["training.workers=2"]
        )
        assert version.version == 3
        assert [v.base_version for v in ctx.store.versions(MODEL)] == [None, 1, None]
        assert ctx.store.get_alias(MODEL, "production") == 2
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The trained workspace, built once for the module (read-only for tests)."""
    yield trained_workspace(tmp_path_factory.mktemp("reproduce") / "yarnit")


@pytest.fixture
def ws(trained: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the trained workspace."""
    target = tmp_path / "yarnit"
    shutil.copytree(trained, target, symlinks=True)
    return target


def _snapshot(root: Path) -> dict[str, str]:
    models = root / ".spindle" / "artifacts" / "models" / MODEL
    return {str(p.relative_to(models)): sha256_file(p) for p in models.rglob("*") if p.is_file()}


def test_a_sync_version_rebuilds_bit_identical_and_registers_nothing(trained: Path) -> None:
    before = _snapshot(trained)
    with Context.open(trained) as ctx:
        versions = len(ctx.store.versions(MODEL))
        report = reproduce_version(ctx, MODEL, 1)
        assert len(ctx.store.versions(MODEL)) == versions  # nothing registered
    assert _snapshot(trained) == before  # the version's own directory is untouched
    assert report["weights_identical"] is True
    assert report["content_hash"]["same"] and all(f["same"] for f in report["files"].values())
    assert report["chain"] == [f"{MODEL}@1"]
    assert report["training_set"]["rebuilt"] == report["training_set"]["recorded"]
    diff = report["prediction_diff"]
    assert diff["max_abs"] == 0.0 and diff["mean_abs"] == 0.0 and diff["spearman"] == 1.0
    assert diff["top_k_overlap"] == 1.0 and diff["rows"] > 0
    gated = report["metric_diff"]["gated"]
    assert report["metric_diff"]["metric"] == "ndcg@10"
    assert gated["diff"] == 0.0 and gated["original"] == gated["rebuilt"]
    assert report["holdout"]["evaluation"] is not None  # the version's own holdout
    assert "/reproduce/" in report["rebuilt_dir"]
    assert not any(c.startswith("threads") for c in report["causes"])


def test_a_ddp_version_rebuilds_bit_identical(trained: Path) -> None:
    with Context.open(trained) as ctx:
        report = reproduce_version(ctx, MODEL, 3)
    assert report["workers"] == {"recorded": 2, "used": 2}
    assert report["weights_identical"] is True, report["files"]
    assert report["content_hash"]["same"]
    assert report["prediction_diff"]["max_abs"] == 0.0


def test_a_warm_started_version_names_its_chain_and_differs_from_scratch(trained: Path) -> None:
    with Context.open(trained) as ctx:
        report = reproduce_version(ctx, MODEL, 2, from_scratch=True)
    assert report["chain"] == [f"{MODEL}@1", f"{MODEL}@2"]
    assert report["weights_identical"] is True and report["content_hash"]["same"]
    scratch = report["from_scratch"]
    assert scratch["days"] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert scratch["weights_identical"] is False
    assert scratch["prediction_diff"]["max_abs"] > 0
    assert scratch["prediction_diff"]["spearman"] < 1.0
    gated = scratch["metric_diff"]["gated"]
    assert gated["diff"] != 0.0 and gated["lower"] <= gated["diff"] <= gated["upper"]


def test_another_thread_count_is_named_as_a_cause(trained: Path) -> None:
    with Context.open(trained) as ctx:
        recorded = read_package(model_dir(ctx, MODEL, 1)).get("threads")
        report = reproduce_version(ctx, MODEL, 1, threads=recorded + 1)
    assert report["threads"] == {"recorded": recorded, "used": recorded + 1}
    assert (
        f"threads: rebuilt with {recorded + 1}, the version was trained with {recorded}"
        in (report["causes"])
    )


def test_a_version_whose_files_are_gone_is_rebuilt_from_the_registry(ws: Path) -> None:
    with Context.open(ws) as ctx:
        shutil.rmtree(model_dir(ctx, MODEL, 1))
        report = reproduce_version(ctx, MODEL, 1)
        assert not model_dir(ctx, MODEL, 1).exists()  # no --restore: nothing put back
    assert report["record"] == "registry" and report["original_files"] == "missing or damaged"
    assert report["content_hash"]["same"] and report["weights_identical"]
    assert report["prediction_diff"] is None  # nothing to score the original with


def test_register_alone_registers_a_new_version(ws: Path) -> None:
    with Context.open(ws) as ctx:
        report = reproduce_version(ctx, MODEL, 1, register=True)
        new = report["registered_version"]
        assert new == 4 and ctx.store.get_version(MODEL, 4).status == "ready"
        assert (
            read_package(model_dir(ctx, MODEL, 4)).content_hash
            == (report["content_hash"]["rebuilt"])
        )
        assert ctx.store.get_alias(MODEL, "production") == 2  # nothing else moved


def test_restore_refuses_a_rebuild_that_is_not_bit_identical(ws: Path) -> None:
    """A rebuild whose files hash to anything but the registry's record never takes V's place
    (here: version 1's files lost, offered a rebuild hashed as another content)."""
    from spindle.orchestrate._reproduce_facts import recorded_version
    from spindle.orchestrate._reproduce_place import restore_rebuild

    with Context.open(ws) as ctx:
        rebuilt = reproduce_version(ctx, MODEL, 1)
        shutil.rmtree(model_dir(ctx, MODEL, 1))
        recorded = recorded_version(ctx, MODEL, 1)
        outcome = restore_rebuild(ctx, recorded, Path(rebuilt["rebuilt_dir"]), "0" * 64)
        assert outcome["done"] is False and "not bit-identical" in outcome["why"]
        assert "--register alone" in outcome["why"]
        assert not model_dir(ctx, MODEL, 1).exists()  # nothing put in place


def test_a_retraction_recorded_since_is_named_as_a_cause(ws: Path) -> None:
    import pyarrow.parquet as pq

    from spindle.orchestrate import record_retraction

    with Context.open(ws) as ctx:
        day = ws / "raw" / "purchases" / "date=2026-01-01"
        raw = sorted(p for p in day.rglob("*.parquet"))
        ids = pq.read_table(raw[0], columns=["transaction_id"]).column(0).to_pylist()[:3]
        fraud = ws / "fraud.txt"
        fraud.write_text("\n".join(ids) + "\n")
        outcome = record_retraction(ctx, fraud, "fraud", "purchases")
        report = reproduce_version(ctx, MODEL, 1)
    named = [c for c in report["causes"] if c.startswith("data changed since")]
    assert len(named) == 1, report["causes"]
    assert named[0].startswith(f"data changed since: {outcome.retraction.id} (fraud) recorded")


def test_a_lightgbm_binary_version_never_evaluated_rebuilds_bit_identical(ws: Path) -> None:
    with Context.open(ws) as ctx:
        version, _, _ = train(
            ctx,
            "purchase_propensity",
            "2026-01-04",
            from_scratch=True,
            overrides=["training.framework=lightgbm"],
        )
        report = reproduce_version(ctx, "purchase_propensity", version.version)
    assert report["weights_identical"] and report["content_hash"]["same"]
    assert report["holdout"]["evaluation"] is None  # scored on its day's holdout, built now
    assert "never evaluated" in report["holdout"]["note"]
    diff = report["prediction_diff"]
    assert diff["max_abs"] == 0.0 and diff["lists"] is None and diff["top_k_overlap"] == 1.0
    assert report["metric_diff"]["metric"] == "auc"
    assert report["metric_diff"]["gated"]["diff"] == 0.0
