"""ModelRuntime: verification against the manifest, and scoring raw rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

from spindle.core import ServingError, sha256_file
from spindle.features import OnlineStore, Transform, assemble_request_rows
from spindle.serve import ChecksumMismatch, ModelRuntime


def _rows(store_path: Path, runtime: ModelRuntime) -> pa.Table:
    store = OnlineStore(store_path)
    try:
        products = store.rows("product", ["p001", "p002", "p003", "p010"])
        return assemble_request_rows(
            products,
            store.get("user", "u1"),
            runtime.user_columns,
            {"query": "merino wool"},
            runtime.transform.request,
        )
    finally:
        store.close()


def test_load_exposes_the_version(make_version, transform: Transform) -> None:
    path = make_version(3)
    runtime = ModelRuntime.load(path)
    assert runtime.model == "search_ranker"
    assert runtime.version == 3
    assert runtime.path == path
    assert runtime.sha256 == sha256_file(path / "model.onnx")
    assert runtime.manifest["config_hash"] == "c0ffee"
    assert runtime.user_columns == ["user__country__v1"]
    assert [s.name for s in runtime.inputs] == ["cat", "text", "dense"]
    assert runtime.outputs[0].name == "score" and runtime.outputs[0].datatype == "FP32"


def test_score_matches_onnxruntime_on_the_transformed_rows(
    make_version, online_store: Path, transform: Transform
) -> None:
    path = make_version(1)
    runtime = ModelRuntime.load(path)
    rows = _rows(online_store, runtime)
    scores = runtime.score(rows)
    assert scores.dtype == np.float64 and scores.shape == (4,)
    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, transform.transform(rows))[0]
    np.testing.assert_allclose(scores, expected.astype(np.float64), rtol=0, atol=0)
    assert len(set(scores.tolist())) > 1  # a real model: rows get different scores
    assert runtime.score(rows.slice(0, 0)).shape == (0,)


def test_a_file_is_scored_a_batch_at_a_time_as_it_is_whole(
    make_version, online_store: Path, tmp_path: Path
) -> None:
    """``score_file`` (the evaluation's way through a day's holdout) reads a Parquet file a
    batch of rows at a time and returns what ``score`` returns for the whole table, bit for
    bit; an empty file scores to no rows."""
    import pyarrow.parquet as pq

    runtime = ModelRuntime.load(make_version(1))
    rows = _rows(online_store, runtime)
    rows = pa.concat_tables([rows] * 25)  # 100 rows
    path = tmp_path / "holdout.parquet"
    pq.write_table(rows, path, row_group_size=30)
    whole = runtime.score(rows)
    assert np.array_equal(runtime.score_file(path, batch_rows=7), whole)
    assert np.array_equal(runtime.score_file(path), whole)
    empty = tmp_path / "empty.parquet"
    pq.write_table(rows.slice(0, 0), empty)
    assert runtime.score_file(empty).shape == (0,)


def test_a_changed_byte_is_refused_naming_file_and_hashes(make_version) -> None:
    path = make_version(1)
    expected = sha256_file(path / "model.onnx")
    data = bytearray((path / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as info:
        ModelRuntime.load(path)
    message = str(info.value)
    assert "model.onnx" in message and expected in message
    assert sha256_file(path / "model.onnx") in message
    assert isinstance(info.value, ServingError)


@pytest.mark.parametrize("name", ["transform.json", "weights.pt"])
def test_a_missing_or_changed_listed_file_is_refused(make_version, name: str) -> None:
    path = make_version(1)
    (path / name).write_bytes((path / name).read_bytes() + b" ")
    with pytest.raises(ChecksumMismatch, match=name):
        ModelRuntime.load(path)
    (path / name).unlink()
    if name == "transform.json":
        with pytest.raises(ChecksumMismatch, match="missing"):
            ModelRuntime.load(path)
    else:  # training-only files are not part of a serving copy
        assert ModelRuntime.load(path).version == 1


def test_invalid_manifest_is_a_clear_error(make_version) -> None:
    path = make_version(1)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = "one"
    del manifest["files"]["transform.json"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ServingError, match=r"version.*positive integer.*lacks transform\.json"):
        ModelRuntime.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ServingError, match="manifest"):
        ModelRuntime.load(path)


def test_missing_feature_column_raises_feature_error(make_version, online_store: Path) -> None:
    runtime = ModelRuntime.load(make_version(1))
    rows = _rows(online_store, runtime).drop_columns(["product__price_usd__v1"])
    with pytest.raises(Exception, match="product__price_usd__v1"):
        runtime.score(rows)
