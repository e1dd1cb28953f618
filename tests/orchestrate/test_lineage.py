"""``spindle lineage MODEL@V``: the training window's raw partitions and table versions, the
training set, the base version, the holdout it was evaluated on, and its deployments."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import spindle
from spindle.orchestrate import Context, model_dir
from spindle.registry import SQLiteReader

MODEL = "search_ranker"
SOURCES = {"fraud_flags", "fx_rates", "impressions", "products", "purchases", "searches", "users"}


@pytest.fixture(scope="module")
def trained(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Days 1-4 ingested; version 1 trained for day 3, evaluated on it and pushed; version 2
    trained for day 4, warm-started from version 1."""
    root = tmp_path_factory.mktemp("lineage") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        spindle.train_version(ctx, MODEL, "2026-01-03", overrides=["training.epochs=1"])
        spindle.evaluate_version(ctx, MODEL, 1, "2026-01-03")
        spindle.push(ctx, MODEL, 1, infra=False, force=True, reason="lineage test")
        spindle.train_version(ctx, MODEL, "2026-01-04", overrides=["training.epochs=1"])
    yield root


def _window(report: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    return {link["kind"]: link["artifacts"] for link in report["chain"]}  # type: ignore[attr-defined]


def _days_and_sources(partitions: list[dict[str, object]]) -> set[tuple[object, object]]:
    return {(p["properties"]["source"], p["properties"]["date"]) for p in partitions}  # type: ignore[index]


def test_lineage_lists_the_training_window_not_a_later_day(trained: Path) -> None:
    with Context.open(trained) as ctx:
        report = spindle.lineage_report(ctx, MODEL, 1)
    manifest = json.loads(
        (trained / ".spindle/artifacts/models" / MODEL / "1/manifest.json").read_text()
    )
    window_days = ["2026-01-01", "2026-01-02"]  # the days before 2026-01-03 (history starts 01-01)
    assert manifest["training_set"]["dates"] == window_days
    chain = _window(report)
    # every raw source of every window day, and nothing of day 3 or the later day 4
    assert _days_and_sources(chain["raw_partition"]) == {
        (s, d) for s in SOURCES for d in window_days
    }
    assert report["training_window"]["dates"] == window_days
    # the Delta table versions the training set pinned (written by day 4's ingest: time travel)
    pinned = manifest["training_set"]["table_versions"]
    assert report["training_window"]["table_versions"] == pinned
    assert {a["id"] for a in chain["table_version"]} == {
        f"table:{t}@{v}" for t, v in pinned.items()
    }
    assert [a["id"] for a in chain["training_set"]] == [manifest["training_set"]["id"]]
    assert report["base_version"] is None and chain["base_version"] == []
    # the holdout is the evaluation day itself, with its own pinned tables
    (holdout,) = report["holdouts"]
    assert holdout["date"] == "2026-01-03" and holdout["dates"] == ["2026-01-03"]
    assert chain["holdout"][0]["properties"]["dates"] == ["2026-01-03"]
    assert {p.split("/")[1].split(":")[0] for p in holdout["raw_partitions"]} == {"2026-01-03"}
    (deployment,) = report["deployments"]
    assert deployment["status"] == "done" and deployment["weights"] == {"1": 1.0}
    assert deployment["production"] == 1 and chain["deployment"]


def test_lineage_of_a_warm_started_version_names_its_base_and_window(trained: Path) -> None:
    with Context.open(trained) as ctx:
        report = spindle.lineage_report(ctx, MODEL, 2)
        manifest = json.loads((model_dir(ctx, MODEL, 2) / "manifest.json").read_text())
        # a raw partition's downstream lineage names the versions trained on it, and only those
        first_day = _window(spindle.lineage_report(ctx, MODEL, 1))["raw_partition"][0]["id"]
        downstream = ctx.store.lineage(first_day, direction="downstream").downstream
    assert report["base_version"] == 1
    assert [a["id"] for a in _window(report)["base_version"]] == [f"model:{MODEL}@1"]
    days = manifest["training_set"]["dates"]
    assert days == ["2026-01-01", "2026-01-02", "2026-01-03"]  # warm-start window: 3 days
    assert _days_and_sources(_window(report)["raw_partition"]) == {
        (s, d) for s in SOURCES for d in days
    }
    assert report["holdouts"] == [] and report["deployments"] == []
    assert f"model:{MODEL}@1" in {n.id for n in downstream}


def test_the_light_reader_reports_what_the_store_reports(trained: Path) -> None:
    # `spindle lineage`, `models list|show` and `status` read through Context.open_reader
    # (stdlib sqlite3, no SQLAlchemy): on a trained, evaluated and pushed workspace they must
    # say exactly what the full store says
    with Context.open_reader(trained) as light, Context.open(trained) as full:
        assert isinstance(light.store, SQLiteReader)
        for version in (1, 2):
            report = spindle.lineage_report(light, MODEL, version)
            assert report == spindle.lineage_report(full, MODEL, version)
        assert spindle.model_report(light, MODEL) == spindle.model_report(full, MODEL)
        assert spindle.models_report(light) == spindle.models_report(full)
        assert spindle.status_report(light) == spindle.status_report(full)
        assert spindle.model_report(light, MODEL)["aliases"]["production"] == 1
