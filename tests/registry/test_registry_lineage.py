"""Lineage over a whole loop: raw -> table -> training set -> train run -> model -> deployment."""

from __future__ import annotations

from typing import Any

import pytest

from spindle.core import (
    Deployment,
    Evaluation,
    ModelVersion,
    NotFound,
    RawPartition,
    RegistryError,
    TableVersion,
    TrainingSet,
)
from spindle.registry import LineageEdge, MetadataStore

RAW = RawPartition("searches", "2026-01-01", "file:///raw", "r" * 64, rows=10)
TABLE = TableVersion("raw/searches", 1, "file:///tables/raw/searches", "t" * 64)
TRAINSET = TrainingSet("m", ("2026-01-01",), "file:///ts", "s" * 64, rows=10)
MODEL = ModelVersion("m", 1, "file:///models/m/1", "m" * 64, date="2026-01-01")
EVAL = Evaluation("m", 1, "2026-01-02", "file:///eval", "e" * 64, decision="pass")
DEPLOY = Deployment("m", 1, "file:///repo/m/1", "d" * 64, weight=1.0)


def _run(store: MetadataStore, step: str, inputs: list[Any], outputs: list[Any]) -> str:
    run = store.start_run(step, f"{step}:key", model="m", inputs=[a.id for a in inputs])
    store.finish_run(run.id, "succeeded", outputs=outputs)
    return run.id


@pytest.fixture
def loop(store: MetadataStore) -> dict[str, str]:
    store.record_artifact(RAW)
    runs = {"ingest": _run(store, "ingest", [RAW], [TABLE])}
    runs["build"] = _run(store, "build_training_set", [TABLE], [TRAINSET])
    assert store.reserve_version("m") == 1
    runs["train"] = _run(store, "train", [TRAINSET], [MODEL])
    store.complete_version("m", 1, MODEL)
    runs["evaluate"] = _run(store, "evaluate", [MODEL], [EVAL])
    runs["push"] = _run(store, "push", [MODEL, EVAL], [DEPLOY])
    return runs


def test_upstream_of_a_deployment_reaches_the_raw_logs(
    store: MetadataStore, loop: dict[str, str]
) -> None:
    graph = store.lineage(DEPLOY.id, direction="upstream")

    assert graph.root.id == DEPLOY.id and graph.root.depth == 0
    assert graph.downstream == []
    assert [(n.id, n.depth) for n in graph.upstream] == [
        (EVAL.id, 1),
        (MODEL.id, 1),
        (TRAINSET.id, 2),
        (TABLE.id, 3),
        (RAW.id, 4),
    ]
    model = graph.node(MODEL.id)
    assert model is not None
    assert model.kind == "model_version"
    assert model.relation == "produced_by:push"
    assert model.run_id == loop["train"]
    assert model.properties["version"] == 1
    trainset = graph.node(TRAINSET.id)
    assert trainset is not None and trainset.relation == "produced_by:train"
    assert LineageEdge(MODEL.id, EVAL.id, "produced_by:evaluate") in graph.edges


def test_downstream_of_raw_logs_names_every_model_and_deployment(
    store: MetadataStore, loop: dict[str, str]
) -> None:
    graph = store.lineage(RAW.id, direction="downstream")

    assert graph.upstream == []
    assert [(n.id, n.depth) for n in graph.downstream] == [
        (TABLE.id, 1),
        (TRAINSET.id, 2),
        (MODEL.id, 3),
        (DEPLOY.id, 4),
        (EVAL.id, 4),
    ]
    assert [n.id for n in graph.downstream if n.kind == "model_version"] == [MODEL.id]


def test_both_directions_and_max_depth(store: MetadataStore, loop: dict[str, str]) -> None:
    graph = store.lineage(MODEL.id, max_depth=1)

    assert [n.id for n in graph.upstream] == [TRAINSET.id]
    assert [n.id for n in graph.downstream] == [DEPLOY.id, EVAL.id]
    assert set(graph.edges) == {
        LineageEdge(TRAINSET.id, MODEL.id, "produced_by:train"),
        LineageEdge(MODEL.id, DEPLOY.id, "produced_by:push"),
        LineageEdge(MODEL.id, EVAL.id, "produced_by:evaluate"),
    }  # eval -> deploy lies beyond depth 1
    assert store.lineage(MODEL.id, max_depth=0).upstream == []


def test_add_edge_is_idempotent_and_checks_both_ends(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("a"))
    store.record_artifact(make("b"))

    store.add_edge("a", "b", "retracted_from")
    store.add_edge("a", "b", "retracted_from")

    assert store.lineage("a").edges == [LineageEdge("a", "b", "retracted_from")]
    with pytest.raises(NotFound, match="no artifact 'c'"):
        store.add_edge("a", "c", "x")
    with pytest.raises(RegistryError, match="its own parent"):
        store.add_edge("a", "a", "x")
    with pytest.raises(RegistryError, match="needs a relation"):
        store.add_edge("a", "b", "")


def test_cycles_do_not_loop(store: MetadataStore, make: Any) -> None:
    for name in "abc":
        store.record_artifact(make(name))
    store.add_edge("a", "b", "r")
    store.add_edge("b", "c", "r")
    store.add_edge("c", "a", "r")

    graph = store.lineage("a", direction="downstream")

    assert [(n.id, n.depth) for n in graph.downstream] == [("b", 1), ("c", 2)]


def test_bad_walk_arguments(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("a"))
    with pytest.raises(RegistryError, match="upstream, downstream, both; got 'up'"):
        store.lineage("a", direction="up")
    with pytest.raises(NotFound, match="no artifact 'zzz'"):
        store.lineage("zzz")
