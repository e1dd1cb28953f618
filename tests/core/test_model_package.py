"""The model-version package: write, read, verify; the JSON is the one earlier versions hold."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from spindle.core import (
    MANIFEST_FILE,
    MODEL_FILE,
    TRANSFORM_FILE,
    ModelPackage,
    ServingError,
    model_file,
    read_package,
    read_transform_text,
    transform_file,
    verify_package,
    write_package,
)


def _version(tmp_path: Path) -> Path:
    root = tmp_path / "search_ranker" / "3"
    root.mkdir(parents=True)
    model_file(root).write_bytes(b"onnx bytes")
    transform_file(root).write_text('{"format": 1}')
    (root / "weights.pt").write_bytes(b"weights")
    return root


FIELDS = {
    "model": "search_ranker",
    "version": 3,
    "base_version": 2,
    "config_hash": "c0ffee",
    "features": ["user__country@2"],
    "training_set": {"id": "ts-1", "dates": ["2026-01-01"], "rows": 10},
    "metrics": {"final_loss": 0.5},
}


def test_round_trip(tmp_path: Path) -> None:
    root = _version(tmp_path)
    written = write_package(root, FIELDS, ["weights.pt"])
    read = read_package(root)
    assert read == written
    assert (read.model, read.version, read.base_version) == ("search_ranker", 3, 2)
    assert sorted(read.files) == [MODEL_FILE, TRANSFORM_FILE, "weights.pt"]
    assert read.files[MODEL_FILE] == hashlib.sha256(b"onnx bytes").hexdigest()
    assert (read.training_set_id, read.config_hash) == ("ts-1", "c0ffee")
    assert read.features == ["user__country@2"]
    assert read.metrics == {"final_loss": 0.5}
    assert read_transform_text(root) == '{"format": 1}'
    assert verify_package(root, read) == []


def test_the_json_is_what_earlier_versions_hold(tmp_path: Path) -> None:
    """Indented, key-sorted JSON with ``files`` beside the fields: as written before this module
    (a version directory of an older workspace reads, and a rewrite gives the same bytes)."""
    root = tmp_path / "m" / "1"
    root.mkdir(parents=True)
    model_file(root).write_bytes(b"m")
    transform_file(root).write_text("t")
    write_package(root, {"version": 1, "model": "m", "why": "new"}, [])
    m, t = (hashlib.sha256(x).hexdigest() for x in (b"m", b"t"))
    assert (root / MANIFEST_FILE).read_text() == (
        "{\n"
        '  "files": {\n'
        f'    "model.onnx": "{m}",\n'
        f'    "transform.json": "{t}"\n'
        "  },\n"
        '  "model": "m",\n'
        '  "version": 1,\n'
        '  "why": "new"\n'
        "}\n"
    )


def test_a_replica_manifest_reads(tmp_path: Path) -> None:
    """Replicas record the training set's id as a string, not a dict."""
    root = _version(tmp_path)
    fields = {"model": "m", "version": 1, "replica": 1, "training_set": "ts-9"}
    write_package(root, fields, [])
    assert read_package(root).training_set_id == "ts-9"


def test_a_tampered_or_missing_file_is_found(tmp_path: Path) -> None:
    root = _version(tmp_path)
    package = write_package(root, FIELDS, ["weights.pt"])
    model_file(root).write_bytes(b"onnx bytez")
    (root / "weights.pt").unlink()
    problems = verify_package(root, package)
    assert len(problems) == 2
    assert problems[0].startswith(f"{model_file(root)}: sha256 mismatch")
    assert problems[1].startswith(f"{root / 'weights.pt'}: missing")
    # a serving copy holds no training-only files: only the tampered model is a problem then
    assert len(verify_package(root, package, only_present=True)) == 1


def test_a_name_leaving_the_directory_is_a_problem(tmp_path: Path) -> None:
    root = _version(tmp_path)
    files = {MODEL_FILE: "0" * 64, TRANSFORM_FILE: "0" * 64, "../x": "0" * 64}
    problems = verify_package(root, ModelPackage(root, {"files": files}), only_present=True)
    assert any("leaves the version dir" in p for p in problems)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.pop("model"), "`model`"),
        (lambda m: m.pop("version"), "`version`"),
        (lambda m: m["files"].pop(TRANSFORM_FILE), TRANSFORM_FILE),
        (lambda m: m.pop("files"), "`files`"),
    ],
)
def test_a_manifest_missing_a_key_is_a_one_line_error_naming_file_and_key(
    tmp_path: Path, edit: object, named: str
) -> None:
    root = _version(tmp_path)
    write_package(root, FIELDS, [])
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    edit(manifest)  # type: ignore[operator]
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ServingError) as caught:
        read_package(root)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{root / MANIFEST_FILE}: invalid manifest")
    assert named in message


def test_a_missing_or_broken_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    root = _version(tmp_path)
    with pytest.raises(ServingError, match="missing; a model version directory needs"):
        read_package(root)
    (root / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ServingError, match="unreadable manifest"):
        read_package(root)


def test_a_rewritten_manifest_is_read_again(tmp_path: Path) -> None:
    """Reads are cached per manifest file, and a changed file is not served from the cache."""
    root = _version(tmp_path)
    write_package(root, FIELDS, [])
    assert read_package(root) is read_package(root)  # parsed once
    read_package(root).to_json()["metrics"]["final_loss"] = 9.0  # a copy: the cache is intact
    assert read_package(root).metrics == {"final_loss": 0.5}
    path = root / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {"final_loss": 0.25, "seconds": 1.0}
    path.write_text(json.dumps(manifest))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert read_package(root).metrics == {"final_loss": 0.25, "seconds": 1.0}
