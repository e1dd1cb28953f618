"""Bad input is a 4xx, never a 5xx (issue 14, item 2): each body here gave a 500, a reset
connection or a silent fallback before, on the real server (uvicorn on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spindle.serve import push

MODEL = "search_ranker"
RANK = f"/v1/models/{MODEL}/rank"
PREDICT = f"/v1/models/{MODEL}/predict"
INFER = f"/v2/models/{MODEL}/infer"
CANDIDATES = ["p001", "p004", "p007"]
CONTEXT = '"user_id": "u1", "query": "merino wool"'


def _no_input_echoed(answer: object) -> None:
    import httpx

    assert isinstance(answer, httpx.Response)
    assert len(answer.content) < 4096, answer.content[:300]
    detail = answer.json().get("detail")
    for error in detail if isinstance(detail, list) else []:
        assert "input" not in error and "ctx" not in error, error


@pytest.mark.parametrize("k", ["NaN", "Infinity", "-Infinity", "1e400", "true", "2.5", '"3"'])
def test_a_k_that_is_not_a_whole_number_is_a_422(k: str, make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    candidates = json.dumps(CANDIDATES)
    bodies = {
        "/v1/rank": f'{{{CONTEXT}, "candidates": {candidates}, "k": {k}}}',
        RANK: f'{{"context": {{{CONTEXT}}}, "candidates": {candidates}, "k": {k}}}',
    }
    for path, body in bodies.items():
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, (path, k, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", "k"], answer.text
        _no_input_echoed(answer)


@pytest.mark.parametrize("field", ["query", "user_id"])
def test_a_lone_surrogate_is_a_422_not_a_reset_connection(
    field: str, make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    context = {"user_id": "u1", "query": "merino wool"}
    # json.dumps writes a lone surrogate as the escape \ud800, which is not UTF-16 text
    bad = {**context, field: "wool \ud800"}
    bodies = {
        "/v1/rank": {**bad, "candidates": CANDIDATES},
        RANK: {"context": bad, "candidates": CANDIDATES},
        PREDICT: {"instance": {**bad, "product_id": "p001"}},
    }
    for path, body in bodies.items():
        answer = client.post(
            path, content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"][0]["type"] == "json_invalid"
        _no_input_echoed(answer)


def _v2_inputs(rows: int = 2) -> list[dict[str, object]]:
    """Inputs of the fixture's ranker: cat [N, 3], text [N, 2, 4] (indices), dense [N, 3]."""
    return [
        {"name": "cat", "shape": [rows, 3], "datatype": "INT64", "data": [0] * (rows * 3)},
        {"name": "text", "shape": [rows, 2, 4], "datatype": "INT64", "data": [0] * (rows * 8)},
        {"name": "dense", "shape": [rows, 3], "datatype": "FP32", "data": [0.5] * (rows * 3)},
    ]


def _with(index: int, change: dict[str, object], first: str | None = None) -> str:
    """The V2 body with input ``index`` changed; ``first`` replaces its first data value (raw
    JSON text, so that NaN and 1e400 reach the server as written)."""
    inputs = _v2_inputs()
    inputs[index] = {**inputs[index], **change}
    text = json.dumps({"inputs": inputs})
    if first is None:
        return text
    name = inputs[index]["name"]
    head, _, tail = text.partition(f'"name": "{name}"')
    data_at = tail.index('"data": [') + len('"data": [')
    value_end = data_at + tail[data_at:].index(",")
    return head + f'"name": "{name}"' + tail[:data_at] + first + tail[value_end:]


V2_HOSTILE = {
    "FP32 NaN": _with(2, {}, "NaN"),
    "FP32 Infinity": _with(2, {}, "Infinity"),
    "FP32 -Infinity": _with(2, {}, "-Infinity"),
    "FP32 1e39 (beyond float32)": _with(2, {}, "1e39"),
    "INT64 2**70": _with(0, {}, str(2**70)),
    "a categorical index of 10**9": _with(0, {}, str(10**9)),
    "a negative categorical index": _with(0, {}, "-5"),
    "a text index of 10**9": _with(1, {}, str(10**9)),
    "binary_data_size 'abc'": _with(0, {"data": None, "parameters": {"binary_data_size": "abc"}}),
    "binary_data_size -1": _with(0, {"data": None, "parameters": {"binary_data_size": -1}}),
    "a shape of 3 x 2**70": _with(0, {"shape": [3, 2**70]}),
    "a shape of 1.5": _with(0, {"shape": [1.5, 3]}),
    "INT64 data as text": _with(0, {"data": ["a"] * 6}),
    "INT64 data as 1.5": _with(0, {"data": [1.5] * 6}),
    "nested 10,000 deep": _with(0, {}, "[" * 10_000 + "]" * 10_000),
}


@pytest.mark.parametrize("case", list(V2_HOSTILE))
def test_v2_infer_of_bad_tensors_is_a_400_in_v2_format(
    case: str, make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    answer = client.post(INFER, content=V2_HOSTILE[case])
    assert answer.status_code == 400, (case, answer.text)
    error = answer.json()["error"]
    assert isinstance(error, str) and len(error) < 1000, error
    assert "input" in error or "invalid V2 inference request" in error, error
    good = client.post(INFER, json={"inputs": _v2_inputs()})
    assert good.status_code == 200, good.text  # and the server still answers


def test_the_message_names_the_input_and_the_range(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    categorical = client.post(INFER, content=V2_HOSTILE["a categorical index of 10**9"]).json()
    assert "input cat" in categorical["error"] and "1000000000" in categorical["error"]
    assert "[0, " in categorical["error"]  # the valid range of that column
    nan = client.post(INFER, content=V2_HOSTILE["FP32 NaN"]).json()
    assert "input dense" in nan["error"] and "finite" in nan["error"]


def test_a_whitespace_only_query_is_scored_not_a_fallback(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    for query in ("   ", "\t\n"):
        body = {"user_id": "u1", "query": query, "candidates": CANDIDATES}
        answer = client.post("/v1/rank", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["fallback"] is None and answer.json()["version"] == "1"
        predicted = client.post(
            PREDICT, json={"instance": {"user_id": "u1", "query": query, "product_id": "p001"}}
        ).json()
        assert predicted["fallback"] is None and predicted["version"] == "1"


def test_v2_errors_are_in_v2_format_on_every_v2_path(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    unknown = client.get("/v2/no/such/route")
    assert unknown.status_code == 404 and isinstance(unknown.json()["error"], str)
    wrong_method = client.post("/v2/health/live")
    assert wrong_method.status_code == 405 and isinstance(wrong_method.json()["error"], str)
    assert client.get(f"/v2/models/{MODEL}/infer").json()["error"]  # GET on a POST route
    assert "detail" in client.get("/v1/no/such/route").json()  # v1 keeps FastAPI's shape
    _, guarded = serve(token="s3cret")
    refused = guarded.post(INFER, json={"inputs": _v2_inputs()})
    assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    assert refused.headers["www-authenticate"] == "Bearer"


def test_a_large_invalid_body_is_not_echoed(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    big = "x" * 1_000_000
    bodies = {
        "/v1/rank": {"user_id": "u1", "query": "wool", "k": big},
        RANK: {"context": {"user_id": "u1"}, "k": big},
        PREDICT: {"instances": big},
    }
    for path, body in bodies.items():
        answer = client.post(path, json=body)
        assert answer.status_code == 422, (path, answer.text[:300])
        _no_input_echoed(answer)
    infer = client.post(INFER, json={"inputs": big})
    assert infer.status_code == 400 and len(infer.content) < 4096, infer.content[:300]


def test_versions_exposes_no_filesystem_path(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    (repo / MODEL / "2" / "model.onnx").write_bytes(b"garbage")  # its detail names the file
    _, client = serve()
    answer = client.get("/v1/versions")
    rows = answer.json()["versions"]
    assert [r["path"] for r in rows] == [f"{MODEL}/1", f"{MODEL}/2"]  # within the repository
    assert rows[1]["status"] == "failed checksum" and rows[1]["detail"]
    assert str(repo.resolve()) not in answer.text and str(repo) not in answer.text
    assert str(Path.home()) not in answer.text and "/tmp" not in answer.text


@pytest.mark.parametrize("declared", [False, True])
@pytest.mark.parametrize("query", ["false", "7", "[]", '{"a": 1}'])
def test_a_retrieval_parameter_of_the_wrong_type_is_a_422_not_a_503(
    query: str, declared: bool, make_version, repo: Path, serve, shop_declarations
) -> None:
    push(make_version(1), repo)
    _, client = serve(declarations=shop_declarations if declared else None)
    bodies = {
        "/v1/rank": f'{{"user_id": "u1", "query": {query}}}',
        RANK: f'{{"context": {{"user_id": "u1", "query": {query}}}}}',
    }
    for path, body in bodies.items():  # no candidates: the declared retrieval reads $query
        answer = client.post(path, content=body)
        assert answer.status_code == 422, (path, answer.text)
        detail = answer.json()["detail"]
        # declared, the request column's type is known; else the SQL runs with it null
        named = "context.query: expected string" if declared else "context.query ("
        assert detail.startswith(named), detail
    assert client.post(RANK, json={"context": {"user_id": "u1", "query": "wool"}}).is_success


MIXED = [
    (PREDICT, {"instances": [{"query": "wool"}, {"query": -2.5e16}]}, "instances.1.query"),
    (PREDICT, {"instances": [{"x": True}, {"x": 1}]}, "instances.1.x"),
    (PREDICT, {"instances": [{"x": [1]}, {"x": ["a"]}]}, "instances.x"),
    (PREDICT, {"instances": [{"x": 2**62}, {"x": 1.5}]}, "instances.x"),
    (PREDICT, {"instance": {"x": [1, "a"]}}, "instance.x"),
    (RANK, {"context": {"x": [{"a": 1}, {"a": "b"}]}, "candidates": ["p001"]}, "context.x"),
    ("/v1/rank", {"x": [1, "a"], "candidates": ["p001"]}, "x"),
]


@pytest.mark.parametrize(("path", "body", "at"), MIXED)
def test_a_field_of_two_types_is_a_422_not_a_500(
    path: str, body: dict[str, object], at: str, make_version, repo: Path, serve
) -> None:
    """Its column of the rows scored cannot be built: the version failed and the declared
    baseline, building the same rows, raised (a 500)."""
    push(make_version(1), repo)
    _, client = serve()
    context = {"user_id": "u1", "query": "wool", "product_id": "p001"}
    if path == PREDICT and "instances" in body:
        body = {"instances": [{**context, **i} for i in body["instances"]]}  # type: ignore[attr-defined]
    elif path == PREDICT:
        body = {"instance": {**context, **body["instance"]}}  # type: ignore[dict-item]
    answer = client.post(path, json=body)
    assert answer.status_code == 422, (body, answer.text)
    error = answer.json()["detail"][0]
    assert ".".join(str(p) for p in error["loc"][1:]) == at, error
    assert error["type"] == "type_mismatch"
