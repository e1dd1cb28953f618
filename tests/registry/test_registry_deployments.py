"""Deployments: pending until routing is written, then done with the production move in the same
transaction; abandoned and refused ones are kept, and nothing routes a version that is not ready."""

from __future__ import annotations

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
