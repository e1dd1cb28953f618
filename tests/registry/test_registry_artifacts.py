"""Artifacts: record, get, idempotence, immutability, search and clear NotFound messages."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from spindle.core import Evaluation, NotFound, RegistryError, TableVersion
from spindle.registry import ArtifactRecord, MetadataStore


def test_record_and_get_round_trip(store: MetadataStore) -> None:
    table = TableVersion(table="raw/searches", version=3, uri="file:///t", content_hash="abc")

    recorded = store.record_artifact(table)
    fetched = store.get_artifact("table:raw/searches@3")

    assert fetched == recorded
    assert fetched.kind == "table_version"
    assert fetched.uri == "file:///t"
    assert fetched.content_hash == "abc"
    assert fetched.properties == {"table": "raw/searches", "version": 3}
    assert fetched.run_id is None
    assert fetched.created_at.tzinfo is UTC


def test_recording_twice_is_idempotent(store: MetadataStore, make: Any) -> None:
    first = store.record_artifact(make("a:1"))
    second = store.record_artifact(make("a:1"))
    again = store.record_artifact(first)  # a record read back can be recorded again

    assert first == second == again
    assert len(store.find_artifacts("thing")) == 1


def test_same_id_with_another_hash_is_refused(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("a:1", content_hash="h1"))

    with pytest.raises(RegistryError, match=r"a:1 is already recorded with content hash h1.*h2"):
        store.record_artifact(make("a:1", content_hash="h2"))
    assert store.get_artifact("a:1").content_hash == "h1"


def test_not_found_names_similar_ids(store: MetadataStore, make: Any) -> None:
    for version in (1, 2):
        store.record_artifact(make(f"model:search_ranker@{version}", kind="model_version"))

    with pytest.raises(NotFound, match=r"no artifact 'model:search_ranker@9'") as info:
        store.get_artifact("model:search_ranker@9")
    assert "model:search_ranker@2, model:search_ranker@1" in str(info.value)

    with pytest.raises(NotFound, match=r"starting with 'model:': model:search_ranker@2"):
        store.get_artifact("model:other@1")
    with pytest.raises(NotFound, match=r"no similar id; recorded kinds: model_version"):
        store.get_artifact("eval:x@1")


def test_find_artifacts_filters_by_kind_and_exact_property_values(
    store: MetadataStore, make: Any
) -> None:
    store.record_artifact(make("e:1", kind="evaluation", model="m", version=1, passed=True))
    store.record_artifact(make("e:2", kind="evaluation", model="m", version=2, passed=False))
    store.record_artifact(make("e:3", kind="evaluation", model="other", version=1, passed=True))
    store.record_artifact(make("x:1", kind="other", model="m", version="1"))

    def ids(records: list[ArtifactRecord]) -> list[str]:
        return [r.id for r in records]

    assert ids(store.find_artifacts("evaluation")) == ["e:1", "e:2", "e:3"]
    assert ids(store.find_artifacts("evaluation", model="m")) == ["e:1", "e:2"]
    assert ids(store.find_artifacts("evaluation", model="m", version=2)) == ["e:2"]
    assert ids(store.find_artifacts(passed=True)) == ["e:1", "e:3"]
    assert ids(store.find_artifacts(version=1)) == ["e:1", "e:3"]  # not the string "1"
    assert ids(store.find_artifacts(version="1")) == ["x:1"]
    assert ids(store.find_artifacts(model="nobody")) == []


def test_latest_artifact(store: MetadataStore, make: Any) -> None:
    assert store.latest_artifact("deployment", model="m") is None
    for version in (1, 2, 3):
        store.record_artifact(make(f"deploy:m@{version}", kind="deployment", model="m"))
    store.record_artifact(make("deploy:n@1", kind="deployment", model="n"))

    latest = store.latest_artifact("deployment", model="m")

    assert latest is not None
    assert latest.id == "deploy:m@3"


def test_core_artifacts_and_non_json_values_are_stored_as_json(store: MetadataStore) -> None:
    evaluation = Evaluation(
        model="m",
        version=1,
        holdout_date="2026-01-08",
        uri="file:///e",
        content_hash="e1",
        decision="pass",
        metrics={"overall": {"ndcg@10": 0.5, "log_loss": float("nan")}},
        reasons=("better than production",),
    )

    stored = store.record_artifact(evaluation)

    assert stored.id == "eval:m@1:2026-01-08:e1"
    assert stored.properties["metrics"]["overall"] == {"ndcg@10": 0.5, "log_loss": "nan"}
    assert stored.properties["reasons"] == ["better than production"]
    assert store.find_artifacts("evaluation", decision="pass") == [stored]


def test_recording_a_non_artifact_is_a_clear_error(store: MetadataStore) -> None:
    with pytest.raises(RegistryError, match="dict is not an artifact"):
        store.record_artifact({"id": "x"})


def test_record_with_unknown_run_is_not_found(store: MetadataStore, make: Any) -> None:
    with pytest.raises(NotFound, match="no run 'nope': no runs are recorded yet"):
        store.record_artifact(make("a:1"), run_id="nope")
