"""A seed replica of a version: its rows trained again with another seed, into its directory.

(Named apart from tests/orchestrate/test_replicas.py, which runs them on a workspace.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_runs import Stop, stop_after
from train_tables import DEFINITIONS, MODEL, QUICK, rows

from spindle.features import Transform
from spindle.train import ReplicaPlan, train_replica

# the version replicated: trained with QUICK (seed 3), its transform fitted on other rows
VERSION = {
    "version": 4,
    "config_hash": "c" * 64,
    "training_set": {"id": "trainset-1"},
    "base_version": None,
}
PLAN = ReplicaPlan(
    MODEL.model_copy(update={"training": QUICK}),
    VERSION,
    Transform.fit(rows(400, 9), DEFINITIONS).to_json(),
)


def _train(tmp_path: Path, name: str, seed: int, **kwargs: Any) -> Path:
    dest = tmp_path / "replicas" / name
    train_replica(
        PLAN,
        rows(400, 0),
        1,
        seed,
        dest,
        scratch=tmp_path / "scratch" / name,
        checkpoints=tmp_path / "checkpoints" / name,
        **kwargs,
    )
    return dest


def _manifest(dest: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((dest / "manifest.json").read_text())
    return manifest


def test_a_replica_is_the_version_retrained_with_its_seed_and_packaged(tmp_path: Path) -> None:
    dest = _train(tmp_path, "a", 11)
    manifest = _manifest(dest)
    assert {k: manifest[k] for k in ("model", "version", "replica", "seed", "base_version")} == {
        "model": "m",
        "version": 4,
        "replica": 1,
        "seed": 11,
        "base_version": None,
    }
    assert manifest["config_hash"] == "c" * 64 and manifest["training_set"] == "trainset-1"
    assert manifest["final_loss"] > 0 and manifest["seconds"] > 0
    assert {"model.onnx", "transform.json", "input_spec.json"} <= set(manifest["files"])
    assert (dest / "transform.json").read_text() == PLAN.transform_json  # reused, not refitted
    assert not (tmp_path / "scratch" / "a").exists()
    assert not (tmp_path / "checkpoints" / "a").exists()

    # the seed is the replica's: the same seed gives the same model, another seed another
    same, other = _train(tmp_path, "b", 11), _train(tmp_path, "c", 12)
    assert _manifest(same)["files"] == manifest["files"]
    assert _manifest(other)["files"]["model.onnx"] != manifest["files"]["model.onnx"]


def test_a_replica_killed_midway_keeps_its_checkpoints_not_its_scratch(tmp_path: Path) -> None:
    with pytest.raises(Stop):  # dies at step 11 of 13, after the checkpoint at step 10
        _train(tmp_path, "a", 11, progress=stop_after(11))
    assert not (tmp_path / "replicas" / "a").exists()
    assert not (tmp_path / "scratch" / "a").exists()
    assert any((tmp_path / "checkpoints" / "a").iterdir())

    # the rerun resumes and ends where an uninterrupted replica does
    resumed = _train(tmp_path, "a", 11)
    assert _manifest(resumed)["files"] == _manifest(_train(tmp_path, "b", 11))["files"]
    assert not (tmp_path / "checkpoints" / "a").exists()
