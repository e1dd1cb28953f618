"""The model repository: atomic, idempotent, immutable pushes; routing; rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spindle.core import ServingError, sha256_file
from spindle.serve import (
    ModelRuntime,
    _repository,
    list_versions,
    push,
    read_routing,
    rollback,
    set_routing,
    version_dir,
)

MODEL = "search_ranker"


def _leftovers(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / MODEL).iterdir() if p.name.endswith(".tmp"))


def test_push_copies_serving_files_only_and_routes_all_traffic(make_version, repo: Path) -> None:
    result = push(make_version(1), repo)
    target = repo / MODEL / "1"
    assert result.created and result.path == target and result.version == 1
    assert sorted(p.name for p in target.iterdir()) == [
        "config.pbtxt",
        "manifest.json",
        "model.onnx",
        "transform.json",
    ]
    assert result.sha256 == sha256_file(target / "model.onnx")
    assert ModelRuntime.load(target).version == 1  # the copy verifies against its manifest
    config = (target / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config
    for name in ("cat", "text", "dense", "score"):
        assert f'name: "{name}"' in config
    assert "TYPE_INT64" in config and "TYPE_FP32" in config
    routing = json.loads((repo / MODEL / "routing.json").read_text())
    assert routing["weights"] == {"1": 1.0} and routing["previous"] is None
    assert routing["model"] == MODEL and routing["updated_at"]


def test_push_again_is_a_noop_and_changed_files_are_refused(make_version, repo: Path) -> None:
    source = make_version(1)
    push(source, repo)
    before = (repo / MODEL / "routing.json").read_text()
    again = push(source, repo)
    assert not again.created
    assert (repo / MODEL / "routing.json").read_text() == before  # not even rewritten
    other = make_version(1, factor=2.0)  # same version number, different model bytes
    with pytest.raises(ServingError, match=r"immutable") as info:
        push(other, repo)
    assert "model.onnx" in str(info.value)
    assert sha256_file(repo / MODEL / "1" / "model.onnx") == sha256_file(source / "model.onnx")


def test_a_failed_copy_leaves_nothing_behind(
    make_version, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_copy(src: Path, dst: Path) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        shutil.copyfile(src, dst)

    monkeypatch.setattr(_repository.shutil, "copyfile", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        push(make_version(1), repo)
    assert not (repo / MODEL / "1").exists()
    assert _leftovers(repo) == []
    assert not (repo / MODEL / "routing.json").exists()
    monkeypatch.undo()
    assert push(make_version(1), repo).created  # a retry works


def test_a_corrupt_source_is_refused_before_copying(make_version, repo: Path) -> None:
    source = make_version(1)
    (source / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ServingError, match="sha256"):
        push(source, repo)
    assert not (repo / MODEL / "1").exists()


def test_canary_weight_then_promotion_and_rollback(make_version, repo: Path) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    routing = read_routing(repo, MODEL)
    assert routing.weights == {2: 1.0} and routing.previous == 1
    canary = push(make_version(3, factor=-1.0), repo, weight=0.2)
    assert canary.routing.weights == pytest.approx({2: 0.8, 3: 0.2})
    assert canary.routing.previous == 2
    promoted = push(make_version(3, factor=-1.0), repo)  # same files, full weight
    assert not promoted.created
    assert promoted.routing.weights == {3: 1.0} and promoted.routing.previous == 2
    assert rollback(repo, MODEL) == 2
    after = read_routing(repo, MODEL)
    assert after.weights == {2: 1.0} and after.previous == 1
    assert rollback(repo, MODEL) == 1
    assert read_routing(repo, MODEL).previous is None
    with pytest.raises(ServingError, match="nothing to roll back"):
        rollback(repo, MODEL)
    assert list_versions(repo, MODEL) == [1, 2, 3]


def test_first_push_with_a_weight_takes_all_traffic(make_version, repo: Path) -> None:
    result = push(make_version(1), repo, weight=0.3)
    assert result.routing.weights == {1: 1.0}
    with pytest.raises(ServingError, match="weight"):
        push(make_version(2), repo, weight=1.5)


def test_rollback_refuses_a_damaged_target(make_version, repo: Path) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    (repo / MODEL / "1" / "transform.json").write_text("{}")
    with pytest.raises(ServingError, match=r"transform\.json"):
        rollback(repo, MODEL)
    assert read_routing(repo, MODEL).weights == {2: 1.0}


def test_set_routing_validates_weights_and_versions(make_version, repo: Path) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    routing = set_routing(repo, MODEL, {1: 0.8, 2: 0.2})
    assert routing.weights == {1: 0.8, 2: 0.2} and routing.previous == 2
    assert read_routing(repo, MODEL).weights == {1: 0.8, 2: 0.2}
    with pytest.raises(ServingError, match="sum to 1"):
        set_routing(repo, MODEL, {1: 0.5, 2: 0.4})
    with pytest.raises(ServingError, match=r"versions \[7\] are not in the repository"):
        set_routing(repo, MODEL, {1: 0.5, 7: 0.5})
    with pytest.raises(ServingError, match=">= 0"):
        set_routing(repo, MODEL, {1: 1.5, 2: -0.5})
    with pytest.raises(ServingError, match="positive integer"):
        set_routing(repo, MODEL, {0: 1.0})
    assert read_routing(repo, MODEL).weights == {1: 0.8, 2: 0.2}  # unchanged by the failures


@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "Search", "", "x" * 65, "/abs", "1abc"])
def test_path_traversal_names_are_rejected(repo: Path, name: str) -> None:
    with pytest.raises(ServingError, match="invalid model name"):
        read_routing(repo, name)
    with pytest.raises(ServingError, match="invalid model name"):
        version_dir(repo, name, 1)
    with pytest.raises(ServingError):
        set_routing(repo, name, {1: 1.0})
    assert not repo.exists()


@pytest.mark.parametrize("version", [0, -1, "../1", "1/..", True, 1.5])
def test_bad_versions_are_rejected(repo: Path, version: object) -> None:
    with pytest.raises(ServingError, match="invalid model version"):
        version_dir(repo, MODEL, version)  # type: ignore[arg-type]


def test_a_manifest_naming_a_traversal_model_is_refused(make_version, repo: Path) -> None:
    source = make_version(1)
    manifest = json.loads((source / "manifest.json").read_text())
    manifest["model"] = "../../etc"
    (source / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ServingError, match="invalid model name"):
        push(source, repo)
    assert not repo.exists()
