"""Aliases: production, previous and candidate, with an audited history of every move."""

from __future__ import annotations

import pytest

from spindle.core import ModelVersion, NotFound, RegistryError
from spindle.registry import MetadataStore


@pytest.fixture
def three_versions(store: MetadataStore) -> MetadataStore:
    for version in (1, 2, 3):
        store.reserve_version("m")
        artifact = ModelVersion("m", version, f"file:///m/{version}", f"h{version}", "2026-01-07")
        store.complete_version("m", version, artifact)
    return store


def test_promoting_production_moves_previous(three_versions: MetadataStore) -> None:
    store = three_versions
    first = store.set_alias("m", "production", 1, actor="ci", reason="first model")
    assert (first.version, first.previous_version, first.actor) == (1, None, "ci")
    assert store.get_alias("m", "previous") is None

    event = store.set_alias("m", "production", 2, actor="ana", reason="gate passed")

    assert (event.alias, event.version, event.previous_version) == ("production", 2, 1)
    assert store.aliases("m") == {"previous": 1, "production": 2}
    moved = store.alias_history("m", "previous")
    assert [(e.version, e.actor) for e in moved] == [(1, "ana")]
    assert "replaced by version 2: gate passed" in moved[0].reason
    assert event.at.tzinfo is not None


def test_rollback_swaps_production_and_previous(three_versions: MetadataStore) -> None:
    store = three_versions
    store.set_alias("m", "production", 1, actor="ci", reason="first")
    store.set_alias("m", "production", 2, actor="ci", reason="better")

    store.set_alias("m", "production", 1, actor="oncall", reason="rollback: v2 errors")

    assert store.aliases("m") == {"previous": 2, "production": 1}
    history = store.alias_history("m")
    assert [(e.alias, e.version, e.previous_version) for e in history] == [
        ("production", 1, None),
        ("production", 2, 1),
        ("previous", 1, None),
        ("production", 1, 2),
        ("previous", 2, 1),
    ]


def test_setting_the_current_version_records_nothing(three_versions: MetadataStore) -> None:
    store = three_versions
    first = store.set_alias("m", "candidate", 3, actor="ci", reason="trained")

    again = store.set_alias("m", "candidate", 3, actor="ci", reason="retry of the same step")

    assert again == first
    assert len(store.alias_history("m")) == 1


def test_clearing_an_alias(three_versions: MetadataStore) -> None:
    store = three_versions
    store.set_alias("m", "candidate", 3, actor="ci", reason="trained")

    store.set_alias("m", "candidate", None, actor="ana", reason="rejected")

    assert store.get_alias("m", "candidate") is None
    assert store.aliases("m") == {}
    assert [e.version for e in store.alias_history("m", "candidate")] == [3, None]


def test_only_ready_versions_of_known_models(three_versions: MetadataStore) -> None:
    store = three_versions
    store.reserve_version("m")
    with pytest.raises(RegistryError, match=r"m@4 is reserved, not ready"):
        store.set_alias("m", "production", 4, actor="ci", reason="x")
    with pytest.raises(NotFound, match="model m has versions 1-4; no version 9"):
        store.set_alias("m", "production", 9, actor="ci", reason="x")
    with pytest.raises(NotFound, match="no model 'n'; models: m"):
        store.get_alias("n", "production")
    with pytest.raises(RegistryError, match="non-empty reason"):
        store.set_alias("m", "production", 1, actor="ci", reason=" ")
    with pytest.raises(RegistryError, match="non-empty actor"):
        store.set_alias("m", "production", 1, actor="", reason="x")
    assert store.alias_history("m") == []
    assert store.get_alias("m", "production") is None
