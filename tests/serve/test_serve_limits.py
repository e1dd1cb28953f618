"""Bounded requests (issue 14, item 1): every body-taking route refuses a body over
``serving.limits.max_body_bytes`` with a 413 before parsing it (by Content-Length, and while a
chunked body streams in), counts and strings over their limits with a 413/422 naming the
limit, and the health check answers while a maximal request is served (uvicorn on loopback)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spindle.core import ServingError
from spindle.serve import ServingLimits, push

MODEL = "search_ranker"
RANK = f"/v1/models/{MODEL}/rank"
PREDICT = f"/v1/models/{MODEL}/predict"
INFER = f"/v2/models/{MODEL}/infer"
CANDIDATES = ["p001", "p004"]
CONTEXT = {"user_id": "u1", "query": "merino wool"}
SMALL = ServingLimits(
    max_body_bytes=4096, max_instances=3, max_candidates=2, max_string_chars=20, max_k=5
)


def _v2_inputs(rows: int) -> list[dict[str, object]]:
    return [
        {"name": "cat", "shape": [rows, 3], "datatype": "INT64", "data": [0] * (rows * 3)},
        {"name": "text", "shape": [rows, 2, 4], "datatype": "INT64", "data": [0] * (rows * 8)},
        {"name": "dense", "shape": [rows, 3], "datatype": "FP32", "data": [0.5] * (rows * 3)},
    ]


def _padded(body: dict[str, object], size: int) -> bytes:
    """``body`` as JSON, padded with spaces to ``size`` bytes (valid JSON of that size)."""
    text = json.dumps(body).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


ROUTES = {
    "/v1/rank": {**CONTEXT, "candidates": CANDIDATES},
    RANK: {"context": CONTEXT, "candidates": CANDIDATES},
    PREDICT: {"instance": {**CONTEXT, "product_id": "p001"}},
    INFER: {"inputs": _v2_inputs(1)},
}


def _error_text(answer: httpx.Response) -> str:
    body = answer.json()
    return str(body["error"] if "error" in body else body["detail"])


@pytest.mark.parametrize("path", list(ROUTES))
def test_a_body_over_the_limit_is_a_413_by_length_and_by_stream(
    path: str, make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve(limits=SMALL)
    at_limit = client.post(path, content=_padded(ROUTES[path], 4096))
    assert at_limit.status_code == 200, at_limit.text
    over = _padded(ROUTES[path], 4097)
    by_length = client.post(path, content=over)
    assert by_length.status_code == 413, by_length.text
    assert "4096 bytes" in _error_text(by_length)
    assert "serving.limits.max_body_bytes" in _error_text(by_length)

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        yield from (over[i : i + 1000] for i in range(0, len(over), 1000))

    streamed = client.post(path, content=chunks())
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413, streamed.text
    assert "serving.limits.max_body_bytes" in _error_text(streamed)
    if path.startswith("/v2/"):  # in V2's format
        assert set(by_length.json()) == {"error"} and set(streamed.json()) == {"error"}


OVER_LIMITS = [
    (PREDICT, {"instances": [{**CONTEXT, "product_id": "p001"}] * 4}, 422, "max_instances"),
    ("/v1/rank", {**CONTEXT, "candidates": ["p001", "p004", "p007"]}, 422, "max_candidates"),
    (RANK, {"context": CONTEXT, "candidates": ["p001", "p004", "p007"]}, 422, "max_candidates"),
    ("/v1/rank", {**CONTEXT, "candidates": ["p001"], "k": 6}, 422, "max_k"),
    (RANK, {"context": CONTEXT, "candidates": ["p001"], "k": 6}, 422, "max_k"),
    ("/v1/rank", {**CONTEXT, "query": "w" * 21, "candidates": ["p001"]}, 422, "max_string_chars"),
    (RANK, {"context": {**CONTEXT, "query": "w" * 21}}, 422, "max_string_chars"),
    (PREDICT, {"instance": {**CONTEXT, "product_id": "p" * 21}}, 422, "max_string_chars"),
    (PREDICT, {"instances": [{**CONTEXT, "p" * 21: 1}]}, 422, "max_string_chars"),
    (RANK, {"context": CONTEXT, "candidates": ["p" * 21]}, 422, "max_string_chars"),
    (INFER, {"inputs": _v2_inputs(4)}, 413, "max_instances"),
]


def test_counts_and_strings_over_their_limits_are_refused_naming_the_limit(
    make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve(limits=SMALL)
    for path, body, status, limit in OVER_LIMITS:
        answer = client.post(path, json=body)
        assert answer.status_code == status, (path, body, answer.text)
        assert f"serving.limits.{limit}" in _error_text(answer), (path, answer.text)
    within = {"context": CONTEXT, "candidates": ["p001", "p004"], "k": 5}
    assert client.post(RANK, json=within).status_code == 200
    predict = client.post(PREDICT, json={"instances": [{**CONTEXT, "product_id": "p001"}] * 3})
    assert predict.status_code == 200
    assert client.post(INFER, json={"inputs": _v2_inputs(3)}).status_code == 200


def test_nan_infinity_and_huge_integers_in_instances_are_422(
    make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    instance = '{"instance": {"user_id": "u1", "query": "wool", "product_id": "p001", "x": %s}}'
    for value in ("NaN", "Infinity", "-1e400", str(2**64)):
        answer = client.post(PREDICT, content=instance % value)
        assert answer.status_code == 422, (value, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", "instance", "x"], answer.text


def test_the_limits_are_in_the_openapi_document(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve(limits=SMALL)
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["PredictRequest"]["properties"]["instances"]["anyOf"][0]["maxItems"] == 3
    rank = schemas["ModelRankRequest"]["properties"]
    assert rank["candidates"]["anyOf"][0]["maxItems"] == 2 and rank["k"]["maximum"] == 5
    assert schemas["RankRequest"]["properties"]["k"]["maximum"] == 5


@pytest.mark.parametrize(
    "change", [{"max_body_bytes": 0}, {"max_k": -1}, {"max_instances": True}, {"max_k": 1.5}]
)
def test_a_limit_must_be_a_positive_integer(change: dict[str, object]) -> None:
    name = next(iter(change))
    with pytest.raises(ServingError, match=f"serving.limits.{name} must be a positive integer"):
        ServingLimits(**change)  # type: ignore[arg-type]


def _maximal_predict_body(limits: ServingLimits) -> bytes:
    """A predict body at the limits: ``max_instances`` instances, each padded with a string
    field of ``max_string_chars`` (passed to the request features as it is) up to nearly
    ``max_body_bytes``."""
    pad = min(limits.max_string_chars, limits.max_body_bytes // limits.max_instances - 120)
    instance = {**CONTEXT, "product_id": "p001", "note": "n" * pad}
    body = json.dumps({"instances": [instance] * limits.max_instances}).encode()
    assert len(body) <= limits.max_body_bytes
    return body


def test_health_answers_while_a_maximal_request_is_served(make_version, repo: Path, serve) -> None:
    """The liveness check is answered while a request at the limits (10,000 instances, a body
    of nearly 16 MiB) is parsed and scored: its answer comes before the large one's."""
    push(make_version(1), repo)
    limits = ServingLimits(max_string_chars=2048)
    server, client = serve(limits=limits)
    body = _maximal_predict_body(limits)
    assert len(body) > 15 * 1024 * 1024
    sent, answered = threading.Event(), threading.Event()
    status: list[bytes] = []

    def send_large() -> None:
        with socket.create_connection((server.host, server.port)) as sock:
            head = (
                f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            sock.sendall(head + body)
            sent.set()  # every byte handed to the kernel: the server is reading or parsing it
            status.append(sock.recv(64))
            answered.set()

    large = threading.Thread(target=send_large)
    large.start()
    try:
        assert sent.wait(timeout=120)
        live = client.get("/v2/health/live")
        answered_first = not answered.is_set()
    finally:
        large.join(timeout=300)
    assert live.status_code == 200 and live.json() == {"live": True}
    assert answered_first, "the health check waited for the large request"
    assert status and status[0].startswith(b"HTTP/1.1 200"), status
