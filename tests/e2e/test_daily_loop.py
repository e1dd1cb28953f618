"""The whole loop on a tiny simulated workspace: demo, lineage, idempotent rerun, no train/serve skew."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import spindle
from spindle.orchestrate import Context, build_training_set, load_config, model_dir
from spindle.serve import ModelRuntime, ServerThread, create_app

pytestmark = pytest.mark.e2e
DAYS = 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("demo") / "ws"
    report = spindle.run_demo(root, DAYS, scale=0.25)
    yield root, report


def test_demo_report(demo: tuple[Path, dict[str, Any]]) -> None:
    _, report = demo
    days = report["days"]
    assert len(days) == DAYS
    assert all(d["rows_ingested"] > 0 and d["validation"] in ("pass", "warn") for d in days)
    trained = days[1:]
    assert all(d["error"] is None for d in trained), [d["error"] for d in trained]
    assert all(d["gate"] in ("pass", "block") for d in trained)
    assert report["model"] == "search_ranker" and report["metric"] == "ndcg@10"
    last = trained[-1]["score"]
    assert last == {s: m["ndcg@10"] for s, m in trained[-1]["metrics"].items()}
    assert (
        last["oracle"] is not None
        and last["candidate"] is not None
        and last["popularity"] is not None
    )
    assert last["candidate"] > last["popularity"]  # the model beats the heuristic
    serving = report["serving"]
    assert serving["requests"] > 0 and serving["errors"] == 0
    assert serving["version"] == str(trained[-1]["serving_version"])


def test_lineage_chain(demo: tuple[Path, dict[str, Any]]) -> None:
    root, report = demo
    version = report["days"][-1]["serving_version"]
    with Context.open(root) as ctx:
        chain = {
            link["kind"]: link["artifacts"]
            for link in spindle.lineage_report(ctx, "search_ranker", version)["chain"]
        }
    for kind in (
        "raw_partition",
        "table_version",
        "training_set",
        "model_version",
        "evaluation",
        "deployment",
    ):
        assert chain[kind], f"lineage lacks {kind}"


def test_rerun_is_a_no_op(demo: tuple[Path, dict[str, Any]]) -> None:
    root, report = demo
    date = report["days"][-1]["date"]
    with Context.open(root) as ctx:
        before = len(ctx.store.versions("search_ranker"))
        again = spindle.run_day(ctx, "search_ranker", date)
        assert again.error is None
        assert {"ingest", "train"} <= set(again.skipped_steps)
        assert len(ctx.store.versions("search_ranker")) == before


def test_served_scores_equal_training_path_scores(demo: tuple[Path, dict[str, Any]]) -> None:
    """Rows built by the training-set builder and rows assembled by the server score the same."""
    root, report = demo
    date = report["days"][-1]["date"]
    version = report["days"][-1]["serving_version"]
    with Context.open(root) as ctx:
        loaded = load_config(ctx, "search_ranker")
        holdout = pq.read_table(build_training_set(ctx, loaded, [date], purpose="holdout").uri)
        runtime = ModelRuntime.load(model_dir(ctx, "search_ranker", version))
        repo, online = ctx.workspace.model_repo, ctx.workspace.online_store_path
    search_ids = holdout.column("search_id").unique().to_pylist()[:5]
    with (
        ServerThread(create_app(repo, online, default_model="search_ranker")) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for search_id in search_ids:
            rows = holdout.filter(pc.equal(holdout["search_id"], search_id))
            offline = dict(
                zip(
                    rows.column("product_id").to_pylist(), runtime.score(rows).tolist(), strict=True
                )
            )
            body = {
                "user_id": rows["user_id"][0].as_py(),
                "query": rows["query"][0].as_py(),
                "candidates": list(offline),
                "k": len(offline),
            }
            answer = client.post("/v1/rank", json=body).json()
            assert answer["fallback"] is None and answer["version"] == str(version)
            served = {item["product_id"]: item["score"] for item in answer["items"]}
            assert served.keys() == offline.keys()
            np.testing.assert_allclose(
                [served[p] for p in offline], list(offline.values()), rtol=1e-6, atol=1e-6
            )


def test_status_flags_a_registry_serving_mismatch(demo: tuple[Path, dict[str, Any]]) -> None:
    root, _ = demo
    with Context.open(root) as ctx:
        repo, online = ctx.workspace.model_repo, ctx.workspace.online_store_path
        with ServerThread(create_app(repo, online, default_model="search_ranker")) as server:
            check = spindle.serving_check(ctx, server.url)
            assert check["reachable"] and check["models"]["search_ranker"]["match"]
            production = ctx.store.get_alias("search_ranker", "production")
            other = next(
                v.version for v in ctx.store.versions("search_ranker") if v.version != production
            )
            ctx.store.set_alias(
                "search_ranker", "production", other, actor="test", reason="simulate drift"
            )
            try:
                drifted = spindle.serving_check(ctx, server.url)["models"]["search_ranker"]
                assert not drifted["match"] and f"production is {other}" in drifted["message"]
            finally:
                ctx.store.set_alias(
                    "search_ranker", "production", production, actor="test", reason="restore"
                )
        assert not spindle.serving_check(ctx, "http://127.0.0.1:9")["reachable"]
