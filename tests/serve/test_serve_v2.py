"""KServe V2 / Open Inference Protocol endpoints on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spindle.features import OnlineStore, assemble_request_rows
from spindle.serve import ModelRuntime, ServerThread, create_app, push

MODEL = "search_ranker"


def _tensors(store_path: Path, runtime: ModelRuntime) -> dict[str, np.ndarray]:
    store = OnlineStore(store_path)
    try:
        products = store.rows("product", ["p001", "p004", "p007"])
        rows = assemble_request_rows(
            products,
            store.get("user", "u2"),
            runtime.user_columns,
            {"query": "lace yarn"},
            runtime.transform.request,
        )
    finally:
        store.close()
    return runtime.transform.transform(rows)


def _v2_inputs(arrays: dict[str, np.ndarray]) -> list[dict[str, object]]:
    types = {"int64": "INT64", "float32": "FP32"}
    return [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": types[str(array.dtype)],
            "data": array.reshape(-1).tolist(),
        }
        for name, array in arrays.items()
    ]


def test_health(serve, tmp_path: Path, repo: Path) -> None:
    _, client = serve()
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "spindle"
    with ServerThread(create_app(repo, tmp_path / "empty.db")) as server:
        import httpx

        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/v2/health/live").status_code == 200


def test_model_and_version_metadata(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    _, client = serve()
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert meta["name"] == MODEL and meta["platform"] == "onnxruntime_onnx"
    assert meta["versions"] == ["1", "2"]
    inputs = {i["name"]: i for i in meta["inputs"]}
    assert set(inputs) == {"cat", "text", "dense"}
    assert inputs["cat"]["datatype"] == "INT64" and inputs["cat"]["shape"] == [-1, 3]
    assert inputs["text"]["shape"] == [-1, 2, 4]
    assert inputs["dense"]["datatype"] == "FP32" and inputs["dense"]["shape"] == [-1, 3]
    assert meta["outputs"] == [{"name": "score", "datatype": "FP32", "shape": [-1]}]
    version = client.get(f"/v2/models/{MODEL}/versions/1").json()
    assert version["versions"] == ["1"]
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    assert client.get(f"/v2/models/{MODEL}/versions/2/ready").status_code == 200


def test_infer_round_trip_json_without_json_content_type(
    make_version, repo: Path, online_store: Path, serve
) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo, weight=0.5)
    _, client = serve()
    runtime = ModelRuntime.load(repo / MODEL / "1")
    arrays = _tensors(online_store, runtime)
    body = json.dumps({"id": "req-1", "inputs": _v2_inputs(arrays)}).encode()
    response = client.post(
        f"/v2/models/{MODEL}/versions/1/infer",
        content=body,
        headers={"content-type": "application/octet-stream"},  # as tritonclient sends it
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model_name"] == MODEL and payload["model_version"] == "1"
    assert payload["id"] == "req-1"
    (output,) = payload["outputs"]
    assert output["name"] == "score" and output["datatype"] == "FP32" and output["shape"] == [3]
    expected = runtime.infer(arrays)["score"]
    np.testing.assert_array_equal(np.array(output["data"], np.float32), expected)
    # no version: the main routed version answers (the newest on a tie)
    default = client.post(f"/v2/models/{MODEL}/infer", content=body).json()
    assert default["model_version"] == "2"


def test_infer_binary_tensor_extension(make_version, repo: Path, online_store: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    runtime = ModelRuntime.load(repo / MODEL / "1")
    arrays = _tensors(online_store, runtime)
    inputs = []
    blobs = b""
    for item, array in zip(_v2_inputs(arrays), arrays.values(), strict=True):
        raw = np.ascontiguousarray(array).tobytes()
        inputs.append({**item, "data": None, "parameters": {"binary_data_size": len(raw)}})
        blobs += raw
    header = json.dumps({"inputs": inputs, "outputs": [{"name": "score"}]}).encode()
    response = client.post(
        f"/v2/models/{MODEL}/infer",
        content=header + blobs,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    scores = np.array(response.json()["outputs"][0]["data"], np.float32)
    np.testing.assert_array_equal(scores, runtime.infer(arrays)["score"])


BAD_BODIES = [
    (lambda b: {**b, "inputs": b["inputs"][:2]}, "missing: ['dense']"),
    (
        lambda b: {"inputs": [{**b["inputs"][0], "datatype": "FP32"}, *b["inputs"][1:]]},
        "datatype FP32, expected INT64",
    ),
    (
        lambda b: {"inputs": [{**b["inputs"][0], "shape": [9, 9]}, *b["inputs"][1:]]},
        "needs 81 values",
    ),
    (
        lambda b: {"inputs": [{**b["inputs"][0], "datatype": "STRING"}, *b["inputs"][1:]]},
        "unsupported datatype",
    ),
    (
        lambda b: {"inputs": [*b["inputs"], {**b["inputs"][0], "name": "extra"}]},
        "unknown: ['extra']",
    ),
    (lambda b: {**b, "outputs": [{"name": "nope"}]}, "unknown outputs"),
    (lambda b: {"inputs": "no"}, "invalid V2 inference request"),
]


def test_infer_errors_are_400_with_a_message(
    make_version, repo: Path, online_store: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    arrays = _tensors(online_store, ModelRuntime.load(repo / MODEL / "1"))
    for change, message in BAD_BODIES:
        response = client.post(
            f"/v2/models/{MODEL}/infer", json=change({"inputs": _v2_inputs(arrays)})
        )
        assert response.status_code == 400, message
        assert message in response.json()["error"]
    one_row = {**_v2_inputs(arrays)[0], "shape": [1, 3], "data": [1, 2, 3]}
    mixed_batch = client.post(
        f"/v2/models/{MODEL}/infer", json={"inputs": [one_row, *_v2_inputs(arrays)[1:]]}
    )
    assert mixed_batch.status_code == 400
    assert "dimension 'batch' is 3 but 1" in mixed_batch.json()["error"]
    bad_shape = [
        {**_v2_inputs(arrays)[0], "shape": [1, 9], "data": list(range(9))},
        *_v2_inputs(arrays)[1:],
    ]
    response = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": bad_shape})
    assert response.status_code == 400 and "expected [-1, 3]" in response.json()["error"]


def test_unknown_invalid_and_broken_models(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    (repo / MODEL / "2" / "model.onnx").write_bytes(b"broken")
    _, client = serve()
    assert client.get("/v2/models/other").status_code == 404
    assert client.get("/v2/models/Bad.Name").status_code == 400
    assert client.get(f"/v2/models/{MODEL}/versions/7").status_code == 404
    assert client.get(f"/v2/models/{MODEL}/versions/x").status_code == 400
    broken = client.post(f"/v2/models/{MODEL}/versions/2/infer", json={"inputs": []})
    assert broken.status_code == 503 and "failed checksum" in broken.json()["error"]
    assert client.post(f"/v2/models/{MODEL}/infer", content=b"{oops").status_code == 400
    meta = client.get(f"/v2/models/{MODEL}").json()  # falls back to the loaded version
    assert meta["versions"] == ["1"]


def test_tritonclient_calls_infer(make_version, repo: Path, online_store: Path, serve) -> None:
    """A real V2 client from PyPI (tritonclient[http]) talks to the server, JSON and binary."""
    httpclient = pytest.importorskip("tritonclient.http")
    push(make_version(1), repo)
    server, _ = serve()
    runtime = ModelRuntime.load(repo / MODEL / "1")
    arrays = _tensors(online_store, runtime)
    expected = runtime.infer(arrays)["score"]
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.get_model_metadata(MODEL)["name"] == MODEL
        for binary in (False, True):
            inputs = []
            for name, array in arrays.items():
                tensor = httpclient.InferInput(name, list(array.shape), _TRITON_TYPES[array.dtype])
                tensor.set_data_from_numpy(array, binary_data=binary)
                inputs.append(tensor)
            outputs = [httpclient.InferRequestedOutput("score", binary_data=binary)]
            result = client.infer(MODEL, inputs, model_version="1", outputs=outputs)
            np.testing.assert_array_equal(result.as_numpy("score"), expected)
    finally:
        client.close()


_TRITON_TYPES = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32"}
