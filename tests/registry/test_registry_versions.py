"""Model versions: numbering per model, immutability, failure, and concurrent reservation."""

from __future__ import annotations

import importlib
import multiprocessing
from pathlib import Path

import pytest

from spindle.core import ModelVersion, NotFound, RegistryError
from spindle.registry import MetadataStore


def _model(version: int, content_hash: str = "h", model: str = "m") -> ModelVersion:
    return ModelVersion(
        model, version, f"file:///models/{model}/{version}", content_hash, "2026-01-07"
    )


def test_versions_are_numbered_per_model_from_one(store: MetadataStore) -> None:
    assert [store.reserve_version("m") for _ in range(3)] == [1, 2, 3]
    assert store.reserve_version("n", date="2026-01-07") == 1
    assert store.models() == ["m", "n"]

    first = store.get_version("n", 1)
    assert (first.status, first.date, first.artifact_id) == ("reserved", "2026-01-07", None)
    assert [v.version for v in store.versions("m")] == [1, 2, 3]


def test_complete_version_records_the_artifact_once(store: MetadataStore) -> None:
    store.reserve_version("m")

    done = store.complete_version("m", 1, _model(1))

    assert (done.status, done.artifact_id, done.date) == ("ready", "model:m@1", "2026-01-07")
    assert store.get_artifact("model:m@1").content_hash == "h"
    assert store.complete_version("m", 1, _model(1)) == done  # idempotent
    with pytest.raises(RegistryError, match="model:m@1 is already recorded with content hash h"):
        store.complete_version("m", 1, _model(1, content_hash="other"))
    assert store.get_version("m", 1) == done


def test_a_ready_version_cannot_take_another_artifact(store: MetadataStore) -> None:
    store.reserve_version("m")
    store.complete_version("m", 1, _model(1))
    other = ModelVersion("m", 1, "file:///elsewhere", "h2", "2026-01-07")

    with pytest.raises(RegistryError, match="artifact for m@2 cannot complete m@1"):
        store.complete_version("m", 1, _model(2))
    with pytest.raises(RegistryError, match="already recorded"):
        store.complete_version("m", 1, other)


def test_failed_versions_keep_their_number(store: MetadataStore) -> None:
    store.reserve_version("m")
    store.fail_version("m", 1, "diverged: loss is NaN")
    store.fail_version("m", 1, "again")  # no-op

    failed = store.get_version("m", 1)
    assert (failed.status, failed.error) == ("failed", "diverged: loss is NaN")
    assert store.reserve_version("m") == 2
    with pytest.raises(RegistryError, match=r"m@1 failed \(diverged: loss is NaN\).*reserve a new"):
        store.complete_version("m", 1, _model(1))
    store.complete_version("m", 2, _model(2))
    with pytest.raises(RegistryError, match="m@2 is ready and immutable"):
        store.fail_version("m", 2, "too late")


def test_base_version_must_be_ready(store: MetadataStore) -> None:
    store.reserve_version("m")
    with pytest.raises(RegistryError, match="base version m@1 is reserved, not ready"):
        store.reserve_version("m", base_version=1)
    store.complete_version("m", 1, _model(1))

    assert store.reserve_version("m", base_version=1) == 2
    assert store.get_version("m", 2).base_version == 1
    with pytest.raises(NotFound, match="model m has versions 1-2; no version 7"):
        store.reserve_version("m", base_version=7)


def test_not_found_says_what_exists(store: MetadataStore) -> None:
    with pytest.raises(NotFound, match="the registry has no models yet"):
        store.get_version("search_ranker", 1)
    for _ in range(4):
        store.reserve_version("search_ranker")
    store.reserve_version("other")

    with pytest.raises(NotFound, match=r"^model search_ranker has versions 1-4; no version 9$"):
        store.get_version("search_ranker", 9)
    with pytest.raises(NotFound, match="model other has version 1; no version 2"):
        store.complete_version("other", 2, _model(2, model="other"))
    with pytest.raises(NotFound, match=r"no model 'search_rankr' \(did you mean 'search_ranker'"):
        store.versions("search_rankr")
    with pytest.raises(NotFound, match="models: other, search_ranker"):
        store.fail_version("zzz", 1, "x")


def test_bad_model_name(store: MetadataStore) -> None:
    with pytest.raises(RegistryError, match="1 to 128 characters"):
        store.reserve_version("")


def test_processes_reserving_at_once_get_distinct_gap_free_numbers(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh database: the processes also race to create the tables (and switch on WAL)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    workers = importlib.import_module("_registry_workers")
    context = multiprocessing.get_context("spawn")
    processes, per_process = 3, 8
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=workers.reserve_versions, args=(url, "m", per_process, barrier, results)
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    errors = [detail for status, detail in outcomes if status != "ok"]
    assert errors == []
    numbers = [n for _, got in outcomes for n in got]
    assert sorted(numbers) == list(range(1, processes * per_process + 1))
    with MetadataStore(url) as store:
        versions = store.versions("m")
    assert [v.version for v in versions] == list(range(1, processes * per_process + 1))
    assert {v.status for v in versions} == {"reserved"}
