"""POST /v1/rank, the example shop's route, on a real server: order, declared retrieval,
routing, fallback down to the declared baseline, validation."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from tests.serve.conftest import KEYWORD_SQL

from spindle.features import OnlineStore, assemble_request_rows
from spindle.serve import ModelRuntime, choose_version, push, set_routing

MODEL = "search_ranker"
CANDIDATES = ["p001", "p002", "p003", "p004", "p005", "p006", "p007", "p008", "p009", "p010"]


def offline_ranking(
    version_path: Path, store_path: Path, user_id: str, query: str, candidates: list[str]
) -> list[tuple[str, float]]:
    """Score the same rows the server scores, with ModelRuntime, outside any server."""
    runtime = ModelRuntime.load(version_path)
    store = OnlineStore(store_path)
    try:
        products = store.rows("product", candidates)
        rows = assemble_request_rows(
            products,
            store.get("user", user_id),
            runtime.user_columns,
            {"query": query},
            runtime.transform.request,
        )
        ids = products.column("product_id").to_pylist()
    finally:
        store.close()
    scores = runtime.score(rows)
    return sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))


def _items(payload: dict[str, object]) -> list[tuple[str, float]]:
    return [(i["product_id"], i["score"]) for i in payload["items"]]  # type: ignore[attr-defined, index]


def test_rank_equals_offline_scoring(make_version, repo: Path, online_store: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    body = {"user_id": "u3", "query": "Merino Wool", "candidates": CANDIDATES, "k": 10}
    response = client.post("/v1/rank", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["model"] == MODEL and payload["version"] == "1"
    assert payload["fallback"] is None
    # the request's fields reach the request features as sent (case included), as in training
    expected = offline_ranking(repo / MODEL / "1", online_store, "u3", "Merino Wool", CANDIDATES)
    assert _items(payload) == expected  # identical scores: no train/serve skew
    assert [s for _, s in expected] == sorted((s for _, s in expected), reverse=True)
    top3 = client.post("/v1/rank", json={**body, "k": 3}).json()
    assert _items(top3) == expected[:3]


def test_unknown_candidates_are_dropped(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    body = {"user_id": "nobody", "query": "red yarn", "candidates": ["p001", "zzz", "p002", "p001"]}
    payload = client.post("/v1/rank", json=body).json()
    assert sorted(i["product_id"] for i in payload["items"]) == ["p001", "p002"]
    empty = client.post("/v1/rank", json={**body, "candidates": ["zzz", "yyy"]})
    assert empty.status_code == 200 and empty.json()["items"] == []


def _declared_retrieval(store_path: Path, query: str, config: dict) -> list[str]:
    """The example's declared retrieval SQL run by hand on the view's online rows."""
    sql = KEYWORD_SQL  # what the declared match answers
    store = OnlineStore(store_path)
    try:
        rows = store.rows("product", [f"p{i:03d}" for i in range(100)])
    finally:
        store.close()
    con = duckdb.connect()
    con.register("candidates", rows)
    return [r[0] for r in con.execute(sql, {"query": query}).fetchall()]


def test_without_candidates_retrieval_supplies_them(
    make_version, repo: Path, online_store: Path, serve, shop_config
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    payload = client.post("/v1/rank", json={"user_id": "u2", "query": "chunky blue", "k": 7}).json()
    retrieved = _declared_retrieval(online_store, "chunky blue", shop_config)
    store = OnlineStore(online_store)
    names = {r["product_id"]: r["name_words"] for r in store.rows("product", retrieved).to_pylist()}
    store.close()
    matching = [p for p in retrieved if {"chunky", "blue"} & set(names[p].split())]
    assert matching and retrieved[: len(matching)] == matching  # word matches come first
    assert len(retrieved) == 40  # the fixture's whole catalogue (the SQL's limit is 50)
    expected = offline_ranking(repo / MODEL / "1", online_store, "u2", "chunky blue", retrieved)
    assert _items(payload) == expected[:7]


def test_traffic_split_honours_weights_and_is_sticky(make_version, repo: Path, serve) -> None:
    """5,000 users over real HTTP: the served shares are within 3 points of the weights, each
    user's version is the one the keyed hash picks, and a user keeps it on every request."""
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    weights = {1: 0.8, 2: 0.2}
    set_routing(repo, MODEL, weights)
    users = [f"user-{i}" for i in range(5000)]
    _, client = serve()
    served: dict[str, str] = {}
    for user in users:
        body = {"user_id": user, "query": "wool", "candidates": CANDIDATES[:2], "k": 2}
        response = client.post("/v1/rank", json=body)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["fallback"] is None, payload
        served[user] = payload["version"]
    share = sum(v == "2" for v in served.values()) / len(users)
    assert abs(share - 0.2) <= 0.03, share
    assert all(served[u] == str(choose_version(u, weights)) for u in users)
    for user in users[:200]:  # the same user always gets the same version, whatever the query
        again = client.post("/v1/rank", json={"user_id": user, "query": "lace"}).json()
        assert again["version"] == served[user]


def test_growing_a_canary_keeps_its_users() -> None:
    users = [f"user-{i}" for i in range(2000)]
    before = {u for u in users if choose_version(u, {1: 0.9, 2: 0.1}) == 2}
    after = {u for u in users if choose_version(u, {1: 0.5, 2: 0.5}) == 2}
    assert before <= after


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _wait_for(client, body: dict[str, object], predicate, timeout_s: float = 10.0) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        response = client.post("/v1/rank", json=body)
        assert response.status_code == 200, response.text
        if predicate(response.json()) or time.monotonic() > deadline:
            return response.json()
        time.sleep(0.05)


def test_corrupted_model_falls_back_to_previous_then_popularity(
    make_version, repo: Path, online_store: Path, serve
) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    _, client = serve(poll_interval_s=0.05)
    body = {"user_id": "u1", "query": "red yarn", "candidates": CANDIDATES, "k": 5}
    assert client.post("/v1/rank", json=body).json()["version"] == "2"
    _flip_last_byte(repo / MODEL / "2" / "model.onnx")
    payload = _wait_for(client, body, lambda p: p["version"] != "2")
    assert payload["version"] == "1"
    assert payload["fallback"] == "version 2 failed checksum; served by previous version 1"
    expected = offline_ranking(repo / MODEL / "1", online_store, "u1", "red yarn", CANDIDATES)
    assert _items(payload) == expected[:5]
    _flip_last_byte(repo / MODEL / "1" / "transform.json")
    payload = _wait_for(client, body, lambda p: p["version"] is None)
    assert payload["version"] is None
    assert payload["fallback"] == (
        "version 2 failed checksum; version 1 failed checksum: baseline popularity"
    )
    store = OnlineStore(online_store)
    popularity = dict(
        zip(
            *store.rows("product", CANDIDATES)
            .select(["product_id", "popularity"])
            .to_pydict()
            .values(),
            strict=True,
        )
    )
    store.close()
    assert [i["product_id"] for i in payload["items"]] == sorted(
        popularity, key=lambda p: (-popularity[p], p)
    )[:5]
    rows = client.get("/v1/versions").json()["versions"]
    versions = {(r["version"], r["status"]) for r in rows}
    assert versions == {("1", "failed checksum"), ("2", "failed checksum")}


def test_corrupt_at_startup_is_never_loaded(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    (repo / MODEL / "2" / "model.onnx").write_bytes(b"garbage")
    _, client = serve()
    payload = client.post("/v1/rank", json={"user_id": "u1", "query": "yarn"}).json()
    assert payload["version"] == "1" and "version 2 failed checksum" in payload["fallback"]


def test_no_model_serves_the_declared_baseline(
    online_store: Path, serve, shop_declarations
) -> None:
    declarations = shop_declarations
    _, client = serve(declarations=declarations)
    payload = client.post("/v1/rank", json={"user_id": "u1", "query": "yarn", "k": 3}).json()
    assert payload["version"] is None
    assert payload["fallback"] == "no version routed: baseline popularity"
    store = OnlineStore(online_store)
    popularity = {
        r["product_id"]: r["popularity"] for r in store.rows("product", CANDIDATES).to_pylist()
    }
    store.close()
    ranked = client.post("/v1/rank", json={"user_id": "u1", "candidates": CANDIDATES}).json()
    assert [i["product_id"] for i in ranked["items"]] == sorted(
        popularity, key=lambda p: (-popularity[p], p)
    )
    assert [i["score"] for i in ranked["items"]] == sorted(popularity.values(), reverse=True)


def test_no_model_and_no_declarations_is_a_503(serve) -> None:
    _, client = serve()
    answer = client.post("/v1/rank", json={"user_id": "u1", "query": "yarn"})
    assert answer.status_code == 503
    assert "no version" in answer.json()["detail"]


def test_a_slow_model_exceeds_the_budget(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, slow=True), repo)
    _, client = serve(latency_budget_ms=20)
    payload = client.post("/v1/rank", json={"user_id": "u1", "query": "yarn"}).json()
    assert payload["version"] == "1"
    assert payload["fallback"] == (
        "version 2 exceeded the latency budget of 20 ms; served by previous version 1"
    )


def test_a_model_that_raises_falls_back(make_version, repo: Path, transform, serve) -> None:
    push(make_version(1), repo)
    renamed = transform.to_json().replace("product__price_usd__v1", "product__price_eur__v1")
    push(make_version(2, transform_json=renamed), repo)
    _, client = serve()
    payload = client.post("/v1/rank", json={"user_id": "u1", "query": "yarn"}).json()
    assert payload["version"] == "1"
    assert payload["fallback"].startswith("version 2 raised FeatureError")
    assert "product__price_eur__v1" in payload["fallback"]
    assert payload["fallback"].endswith("served by previous version 1")


MALFORMED: list[object] = [
    {"query": "yarn"},  # the model needs user_id
    {"user_id": "u1"},  # retrieval reads $query
    {"user_id": "u1", "query": "yarn", "k": 0},
    {"user_id": "u1", "query": "yarn", "k": 1001},
    {"user_id": "u1", "query": "yarn", "candidates": "p001"},
    {"user_id": "u1", "query": "yarn", "candidates": [1, 2]},  # product_id is a string
    {"user_id": 7, "query": "yarn"},
    {"user_id": "u1", "query": "yarn", "model": "../../etc"},
    ["not", "an", "object"],
]


def test_malformed_requests_are_4xx_with_a_message(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    for body in MALFORMED:
        response = client.post("/v1/rank", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"], body
    response = client.post(
        "/v1/rank", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_token_protects_everything_but_health(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve(token="s3cret")
    body = {"user_id": "u1", "query": "yarn"}
    assert client.post("/v1/rank", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/rank", json=body, headers=wrong).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/rank", json=body, headers=auth).status_code == 200
    assert client.get("/v1/versions").status_code == 401
    assert client.get("/metrics", headers=auth).status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/search_ranker").status_code == 401


def test_versions_lists_what_is_loaded(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    result = push(make_version(2, factor=2.0), repo, weight=0.25)
    _, client = serve()
    rows = client.get("/v1/versions").json()["versions"]
    assert [(r["model"], r["version"], r["weight"], r["status"]) for r in rows] == [
        (MODEL, "1", 0.75, "loaded"),
        (MODEL, "2", 0.25, "loaded"),
    ]
    assert rows[1]["sha256"] == result.sha256
    assert rows[1]["path"] == f"{MODEL}/2"  # within the repository, no filesystem path
    json.dumps(rows)


def test_without_a_default_model_the_example_route_asks_for_one(
    make_version, repo: Path, serve
) -> None:
    push(make_version(1), repo)
    _, client = serve(default_model=None)
    body = {"user_id": "u3", "query": "wool", "candidates": CANDIDATES}
    response = client.post("/v1/rank", json=body)
    assert response.status_code == 422
    assert "no default model" in response.json()["detail"]
    named = client.post("/v1/rank", json={**body, "model": MODEL})
    assert named.status_code == 200 and named.json()["model"] == MODEL
