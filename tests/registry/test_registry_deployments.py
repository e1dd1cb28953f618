"""Deployments: pending until routing is written, then done with the production move in the same
transaction; abandoned and refused ones are kept, and nothing routes a version that is not ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from spindle.core import ModelVersion, NotFound, RegistryError
from spindle.registry import MetadataStore


@pytest.fixture
def versions(store: MetadataStore) -> MetadataStore:
    for version in (1, 2):
        store.reserve_version("m")
        artifact = ModelVersion("m", version, f"file:///m/{version}", f"h{version}", "2026-01-07")
        store.complete_version("m", version, artifact)
    store.reserve_version("m")  # version 3 stays reserved (training under way)
    return store


def test_finish_moves_production_to_the_main_version_atomically(versions: MetadataStore) -> None:
    store = versions
    first = store.begin_deployment("m", {1: 1.0}, None, actor="ci", reason="first")
    assert first.status == "pending" and store.get_alias("m", "production") is None
    done = store.finish_deployment(first.seq)
    assert done.status == "done" and done.finished_at is not None
    assert store.get_alias("m", "production") == 1

    canary = store.begin_deployment("m", {1: 0.3, 2: 0.7}, 1, actor="ana", reason="ramp")
    assert canary.main == 2 and canary.weights == {1: 0.3, 2: 0.7}
    store.finish_deployment(canary.seq)
    assert store.aliases("m") == {"previous": 1, "production": 2}
    event = store.alias_history("m", "production")[-1]
    assert (event.actor, event.reason) == ("ana", "ramp")
    assert store.finish_deployment(canary.seq).status == "done"  # finishing again: no-op
    assert [d.seq for d in store.deployments("m", status="done")] == [first.seq, canary.seq]


def test_abandoned_and_refused_deployments_move_nothing(versions: MetadataStore) -> None:
    store = versions
    pending = store.begin_deployment("m", {2: 1.0}, None, actor="ci", reason="push")
    assert store.deployments(status="pending") == [pending]
    gone = store.abandon_deployment(pending.seq, "routing.json was never written")
    assert gone.status == "abandoned" and gone.detail == "routing.json was never written"
    with pytest.raises(RegistryError, match="abandoned; cannot finish"):
        store.finish_deployment(pending.seq)
    refused = store.refuse_deployment(
        "m", {1: 1.0}, actor="spindle push", reason="gate passed", detail="older than production"
    )
    assert refused.status == "refused" and refused.detail == "older than production"
    assert store.get_alias("m", "production") is None
    assert store.deployments(status="pending") == []


def test_only_ready_versions_of_known_models_can_be_deployed(versions: MetadataStore) -> None:
    store = versions
    with pytest.raises(RegistryError, match="m@3 is reserved, not ready"):
        store.begin_deployment("m", {3: 1.0}, None, actor="ci", reason="too early")
    with pytest.raises(NotFound, match="no version 9"):
        store.begin_deployment("m", {9: 1.0}, None, actor="ci", reason="typo")
    with pytest.raises(NotFound, match="no model 'x'"):
        store.begin_deployment("x", {1: 1.0}, None, actor="ci", reason="typo")
    with pytest.raises(RegistryError, match="non-empty reason"):
        store.begin_deployment("m", {1: 1.0}, None, actor="ci", reason=" ")
    with pytest.raises(RegistryError, match="must be >= 0"):
        store.begin_deployment("m", {1: float("nan")}, None, actor="ci", reason="bad")
    assert store.deployments("m") == []


def test_an_intent_is_recorded_with_its_pending_deployment_and_found_by_its_key(
    versions: MetadataStore,
) -> None:
    store = versions
    intent = store.begin_intent(
        "route",
        "m",
        {"weights": {2: 0.7, 1: 0.3}},
        base=({1: 1.0}, None),
        target=({1: 0.3, 2: 0.7}, 1),
        actor="spindle route",
        reason="ramp",
    )
    assert (intent.op, intent.model, intent.status) == ("route", "m", "pending")
    assert intent.args == {"weights": {"2": 0.7, "1": 0.3}}  # as JSON stores it
    assert (intent.base_weights, intent.base_previous) == ({1: 1.0}, None)
    assert intent.deployment.weights == {1: 0.3, 2: 0.7} and intent.deployment.previous == 1
    # the same command, however its arguments are typed or ordered, has the same key
    assert intent.key == store.intent_key("route", "m", {"weights": {"1": 0.3, "2": 0.7}})
    assert intent.key != store.intent_key("route", "m", {"weights": {"1": 0.7, "2": 0.3}})
    assert intent.key != store.intent_key("push", "m", {"weights": {"1": 0.3, "2": 0.7}})
    assert store.deployments("m", status="pending") == [intent.deployment]
    assert store.intents("m", status="pending") == [intent]
    store.finish_deployment(intent.deployment.seq)
    assert store.intents("m", status="pending") == []
    (done,) = store.intents("m")
    assert done.status == "done" and store.get_alias("m", "production") == 2


def test_an_intent_is_refused_whole_when_its_deployment_is(versions: MetadataStore) -> None:
    store = versions
    with pytest.raises(RegistryError, match="unknown intent op 'retrain'"):
        store.begin_intent(
            "retrain", "m", {}, base=({}, None), target=({1: 1.0}, None), actor="a", reason="r"
        )
    with pytest.raises(RegistryError, match="m@3 is reserved, not ready"):
        store.begin_intent(
            "rollback", "m", {}, base=({}, None), target=({3: 1.0}, None), actor="a", reason="r"
        )
    with pytest.raises(RegistryError, match="arguments are not JSON"):
        store.begin_intent(
            "push",
            "m",
            {"x": object()},
            base=({}, None),
            target=({1: 1.0}, None),
            actor="a",
            reason="r",
        )
    assert store.deployments("m") == [] and store.intents() == []


def test_a_store_made_before_intents_gains_their_table(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with MetadataStore(url) as store:
        store.reserve_version("m")
        store.complete_version("m", 1, ModelVersion("m", 1, "file:///m/1", "h1", "2026-01-07"))
        store.begin_deployment("m", {1: 1.0}, None, actor="ci", reason="before intents")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("DROP TABLE deployment_intents")
    with MetadataStore(url) as store:  # opened by a newer spindle
        (old,) = store.deployments("m", status="pending")
        assert store.intents("m") == []
        store.begin_intent(
            "rollback", "m", {}, base=({}, None), target=({1: 1.0}, None), actor="a", reason="r"
        )
        assert [i.deployment.seq for i in store.intents("m")] == [old.seq + 1]
