"""No body makes the server answer 5xx (issue 14, item 2): hypothesis generates bodies for
every route, near-valid ones (the model's own fields and ids, a few values gone wrong) and
hostile ones (NaN, 1e400, 2**80, lone surrogates, deep nesting, wrong types, junk bytes,
junk path segments), and sends each to the real server (uvicorn on loopback). Every answer is
below 500, is strict JSON where it says JSON, and is small when it is an error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spindle.serve import push

MODEL = "search_ranker"
IDS = ["u1", "u2", "p001", "p004", "p039", "nope", "", "   ", "merino wool", "needles"]
FIELDS = ["user_id", "query", "product_id", "context", "instance", "x", ""]
TYPES = ["INT64", "FP32", "FP64", "INT32", "UINT8", "BOOL", "FP16", "STRING", "BYTES", "x"]

_text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates included
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.integers(-3, 70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e400, -1e400, 1e39, 3e38, 10**9])
    | _text
    | st.sampled_from(IDS)
)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_text | st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=12,
)
_key = st.sampled_from(FIELDS) | _text
_instance = st.dictionaries(_key, _scalar, max_size=5) | st.fixed_dictionaries(
    {"user_id": _scalar, "query": _scalar, "product_id": _scalar}
)
_k = st.integers(-2, 2000) | _scalar
_candidates = st.lists(st.sampled_from(IDS) | _json, max_size=6) | _json


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


_predict = (
    _optional(instance=_instance, instances=st.lists(_instance, max_size=5) | _json, x=_json)
    | _json
)
_model_rank = (
    _optional(context=_instance | _json, instance=_instance, candidates=_candidates, k=_k, x=_json)
    | _json
)
_rank = st.builds(
    lambda context, extra: {**context, **extra},
    _instance,
    _optional(candidates=_candidates, k=_k, model=st.sampled_from([MODEL, "nope", "../x"]) | _json),
)
_dims = st.lists(st.integers(-2, 4) | st.sampled_from([2**70, 10_001]) | _scalar, max_size=4)
_tensor = _optional(
    name=st.sampled_from(["cat", "text", "dense", "score"]) | _text,
    shape=_dims,
    datatype=st.sampled_from(TYPES) | _json,
    data=st.lists(_scalar, max_size=24) | st.lists(st.integers(-2, 70), max_size=24) | _json,
    parameters=_optional(binary_data_size=_scalar) | _json,
)
_infer = _optional(
    inputs=st.lists(_tensor, max_size=4) | _json,
    outputs=st.lists(_optional(name=_text | st.sampled_from(["score"])), max_size=2) | _json,
    id=_scalar,
    parameters=_json,
)


_CONTEXT = {"user_id": "u1", "query": "merino wool"}
_VALID: dict[str, Any] = {
    "predict": {
        "instances": [{**_CONTEXT, "product_id": "p001"}, {**_CONTEXT, "product_id": "p4"}]
    },
    "model_rank": {"context": _CONTEXT, "candidates": ["p001", "p004", "p007"], "k": 2},
    "rank": {**_CONTEXT, "candidates": ["p001", "p004"], "k": 3},
    "infer": {
        "id": "r1",
        "inputs": [
            {"name": "cat", "shape": [2, 3], "datatype": "INT64", "data": [1, 0, 2, 0, 1, 1]},
            {"name": "text", "shape": [2, 2, 4], "datatype": "INT64", "data": [1] * 16},
            {"name": "dense", "shape": [2, 3], "datatype": "FP32", "data": [0.5] * 6},
        ],
        "outputs": [{"name": "score"}],
    },
}
_VALID["version_infer"] = _VALID["infer"]


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [at] + [p for k, v in value.items() for p in _leaves(v, (*at, k))]
    if isinstance(value, list):
        return [at] + [p for i, v in enumerate(value) for p in _leaves(v, (*at, i))]
    return [at]


def _replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = _replaced(value[at[0]], at[1:], new)
    return copy


@st.composite
def _near_valid(draw: st.DrawFn, valid: Any) -> Any:
    """A valid body with one or two of its values (or objects, or lists) replaced."""
    body = valid
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.sampled_from(_leaves(body)))
        body = _replaced(body, at, draw(_scalar | _json))
    return body


def _encoded(value: Any) -> bytes:
    """JSON as a hostile client writes it: NaN, Infinity, escaped lone surrogates."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


_segment = st.sampled_from([MODEL, "1", "2", "0", "-1", "x" * 300, "%FF", "..", "Bad.Name"]) | (
    st.text(max_size=10).map(lambda s: quote(s, safe=""))
)
_POSTS = {
    "predict": ("/v1/models/{m}/predict", _predict),
    "model_rank": ("/v1/models/{m}/rank", _model_rank),
    "rank": ("/v1/rank", _rank),
    "infer": ("/v2/models/{m}/infer", _infer),
    "version_infer": ("/v2/models/{m}/versions/{v}/infer", _infer),
}
_GETS = [
    "/v1/models/{m}/schema",
    "/v2/models/{m}",
    "/v2/models/{m}/ready",
    "/v2/models/{m}/versions/{v}",
    "/v2/models/{m}/versions/{v}/ready",
    "/v2/{m}",
    "/v1/{m}",
    "/v1/versions",
    "/v2/health/{m}",
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    """One request: method, path, body and headers."""
    model, version = draw(_segment), draw(_segment)
    if draw(st.integers(0, 9)) == 0:  # a GET of a route, its path segments junk
        path = draw(st.sampled_from(_GETS)).format(m=model, v=version)
        return "GET", path, b"", {}
    name = draw(st.sampled_from(sorted(_POSTS)))
    template, bodies = _POSTS[name]
    known = draw(st.booleans())  # mostly the served model, so the body is what is judged
    path = template.format(m=MODEL if known else model, v="1" if known else version)
    body = _encoded(draw(bodies | _near_valid(_VALID[name])))
    headers = {"content-type": draw(st.sampled_from(["application/json", "text/plain"]))}
    mangle = draw(st.integers(0, 9))
    if mangle == 0:
        body = body[: draw(st.integers(0, len(body)))]  # cut short
    elif mangle == 1:
        body = draw(st.binary(max_size=64))  # not JSON at all
    elif mangle == 2:
        body = b"[" * 5000 + b"]" * 5000  # nested past the parser's limit
    if name.endswith("infer") and draw(st.integers(0, 3)) == 0:  # the binary extension
        headers["inference-header-content-length"] = draw(
            st.sampled_from([str(len(body)), "0", "-1", "abc", "99999999", str(len(body) // 2)])
        )
        body += draw(st.binary(max_size=64))
    return "POST", path, body, headers


def _check(client: httpx.Client, request: tuple[str, str, bytes, dict[str, str]]) -> None:
    method, path, body, headers = request
    answer = client.request(method, path, content=body or None, headers=headers)
    assert answer.status_code < 500, (method, path, body[:300], answer.text[:500])
    size = len(answer.content)
    if answer.status_code >= 400:
        assert size <= 4096, (path, answer.status_code, answer.content[:300])
    else:
        assert size <= 65536, (path, answer.status_code, answer.content[:300])
    if answer.headers.get("content-type", "").startswith("application/json"):

        def refuse(constant: str) -> None:
            raise AssertionError(f"{path} answered {constant}, which JSON has not")

        json.loads(answer.content, parse_constant=refuse)


def _hostile(client: httpx.Client, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests())
    def check(request: tuple[str, str, bytes, dict[str, str]]) -> None:
        _check(client, request)

    check()


def test_no_generated_request_gets_a_5xx(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    _hostile(client, examples=1000)


@pytest.mark.slow
def test_no_generated_request_gets_a_5xx_long(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo, weight=0.5)
    _, client = serve()
    _hostile(client, examples=10_000)
