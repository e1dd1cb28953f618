"""Gate, infra validation, forced push audit, routing and the model view on a real workspace."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.core import GateBlocked, ServingError
from spindle.orchestrate import Context, model_dir

MODEL = "search_ranker"
DAY_1, DAY_2 = "2026-01-03", "2026-01-04"


@pytest.fixture(scope="module")
def trained(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two trained versions (for days 3 and 4), version 1 evaluated (its gate passes) and pushed."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    root = tmp_path_factory.mktemp("gate") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        spindle.train_version(ctx, MODEL, DAY_1, overrides=["training.epochs=1"])
        spindle.train_version(ctx, MODEL, DAY_2, overrides=["training.epochs=1"])
        evaluation, _ = spindle.evaluate_version(ctx, MODEL, 1, DAY_1)
        assert evaluation.decision == "pass", evaluation.reasons
        spindle.push(ctx, MODEL, 1)
    yield root


def test_push_ran_infra_validation_and_kept_its_report(trained: Path) -> None:
    path = trained / ".spindle" / "artifacts" / "evaluations" / MODEL / "1-infra.json"
    report = json.loads(path.read_text())
    assert report["passed"], report["failures"]
    assert report["max_abs_diff"] <= 1e-5
    assert report["requests"] > 0 and report["rows"] >= report["requests"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]
    assert 0 < report["cpu_p50_ms"] <= report["cpu_p99_ms"]
    assert report["peak_rss_mb"] > 0
    assert (trained / ".spindle" / "model_repo" / MODEL / "1" / "config.pbtxt").is_file()


def test_infra_validation_fails_on_budgets_and_on_a_tampered_model(
    trained: Path, tmp_path: Path
) -> None:
    with Context.open(trained) as ctx:
        tight = spindle.infra_validate(
            ctx,
            MODEL,
            1,
            n_requests=5,
            overrides=["serving.max_rss_mb=1", "serving.latency_budget_ms=0.001"],
        )
    assert not tight.passed
    assert any("peak RSS" in f and "max_rss_mb 1" in f for f in tight.failures)
    assert any("p99 latency" in f for f in tight.failures)
    assert tight.max_abs_diff is not None and tight.max_abs_diff <= 1e-5  # scores still agree

    copy = tmp_path / "ws"
    shutil.copytree(trained, copy, symlinks=True)
    with Context.open(copy) as ctx:
        onnx = model_dir(ctx, MODEL, 2) / "model.onnx"
        onnx.write_bytes(onnx.read_bytes()[:-8] + b"tampered")
        broken = spindle.infra_validate(ctx, MODEL, 2, n_requests=3)
        assert not broken.passed
        assert "canary process could not serve" in broken.failures[0]
        assert "sha256" in broken.failures[0] or "checksum" in broken.failures[0].lower()
        with pytest.raises(GateBlocked, match="never evaluated"):
            spindle.push(ctx, MODEL, 2)


def test_blocked_version_needs_force_and_reason_which_are_audited(
    trained: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(trained, copy, symlinks=True)
    with Context.open(copy) as ctx:
        evaluation, details = spindle.evaluate_version(
            ctx, MODEL, 2, DAY_2, overrides=["evaluation.min_metric=0.99"]
        )
        assert evaluation.decision == "block"
        floor = [r for r in details["reasons"] if r["check"] == "min_metric"]
        assert floor[0]["level"] == "fail" and floor[0]["threshold"] == 0.99
        assert {"metric", "slice", "candidate", "baseline", "interval", "threshold"} <= set(
            floor[0]
        )
        with pytest.raises(GateBlocked, match="fails the required"):
            spindle.push(ctx, MODEL, 2)
        with pytest.raises(GateBlocked, match="--reason"):
            spindle.push(ctx, MODEL, 2, force=True)
        deployment = spindle.push(
            ctx, MODEL, 2, force=True, reason="hotfix approved by search-team"
        )
        assert deployment.forced_reason == "hotfix approved by search-team"
        view = spindle.model_report(ctx, MODEL)
    versions = {v["version"]: v for v in view["versions"]}
    assert versions[2]["verdict"] == "block"
    assert versions[2]["forced_reason"] == "hotfix approved by search-team"
    assert "production" in versions[2]["aliases"] and "previous" in versions[1]["aliases"]
    forced = [e for e in view["alias_history"] if e["alias"] == "production" and e["version"] == 2]
    assert forced[0]["actor"] == "spindle push --force"
    assert "hotfix approved" in forced[0]["reason"]


def test_models_show_lists_versions_oldest_first(trained: Path) -> None:
    with Context.open(trained) as ctx:
        view = spindle.model_report(ctx, MODEL)
        listing = spindle.models_report(ctx)
    assert [v["version"] for v in view["versions"]] == [1, 2]
    first = view["versions"][0]
    assert {
        "version",
        "date",
        "created_at",
        "aliases",
        "base_version",
        "metrics",
        "verdict",
    } <= set(first)
    assert first["date"] == DAY_1 and first["verdict"] == "pass"
    assert first["metrics"]["ndcg@10"] > 0
    assert "candidate" in first["aliases"] and "production" in first["aliases"]
    assert view["routing"] == {"1": 1.0}
    assert json.loads(json.dumps(view)) == view
    (entry,) = [m for m in listing if m["model"] == MODEL]
    assert entry["latest"] == 2 and entry["aliases"]["production"] == 1


def test_route_sets_weights_exactly_and_moves_production(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(trained, copy, symlinks=True)
    with Context.open(copy) as ctx:
        spindle.push(ctx, MODEL, 2, force=True, reason="canary", weight=0.1)
        result = spindle.route(
            ctx, MODEL, spindle.parse_weights(["1=0.25", "2=0.75"]), reason="ramp"
        )
        assert result["weights"] == {"1": 0.25, "2": 0.75}
        assert ctx.store.get_alias(MODEL, "production") == 2
        with pytest.raises(ServingError, match="sum to 1"):
            spindle.route(ctx, MODEL, {1: 0.5, 2: 0.6})
        with pytest.raises(ServingError, match="VERSION=WEIGHT"):
            spindle.parse_weights(["2:1"])
        with pytest.raises(ServingError, match="not in the repository"):
            spindle.route(ctx, MODEL, {7: 1.0})


def test_push_judges_infra_with_the_runs_overrides(trained: Path, tmp_path: Path) -> None:
    """A run's --set overrides reach push's infra validation (its serving budgets), with a
    report of their own: the passing report of the plain config is not reused for them."""
    copy = tmp_path / "ws"
    shutil.copytree(trained, copy, symlinks=True)
    tight = ["serving.max_rss_mb=1"]
    with Context.open(copy) as ctx:
        evaluation, _ = spindle.evaluate_version(ctx, MODEL, 2, DAY_2)
        assert evaluation.decision == "pass", evaluation.reasons
        with pytest.raises(GateBlocked, match=r"failed infra validation.*max_rss_mb 1"):
            spindle.push(ctx, MODEL, 2, overrides=tight)
        spindle.push(ctx, MODEL, 2)  # the plain budgets pass
    reports = sorted(
        p.name for p in (copy / ".spindle/artifacts/evaluations" / MODEL).glob("2-infra*")
    )
    assert len(reports) == 2 and "2-infra.json" in reports
