"""POST /v1/models/{model}/rank on a real server: candidates scored as predict scores them,
declared retrieval, the declared baseline when no version can answer, and client errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from tests.serve.conftest import KEYWORD_SQL

from spindle.features import OnlineStore
from spindle.serve import push

MODEL = "search_ranker"
RANK = f"/v1/models/{MODEL}/rank"
CANDIDATES = ["p001", "p007", "p013", "p021", "p033", "p002", "p005"]


def _ids(payload: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in payload["items"]]


def _popularity(store_path: Path) -> dict[str, int]:
    store = OnlineStore(store_path)
    try:
        rows = store.rows("product", [f"p{i:03d}" for i in range(40)]).to_pylist()
    finally:
        store.close()
    return {r["product_id"]: r["popularity"] for r in rows}


def test_rank_orders_what_predict_scores(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    context = {"user_id": "u3", "query": "merino wool"}
    body = {"context": context, "candidates": [*CANDIDATES, "missing", "p001"], "k": 5}
    answer = client.post(RANK, json=body)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["model"] == MODEL and payload["version"] == "1"
    assert payload["fallback"] is None
    instances = [{**context, "product_id": p} for p in CANDIDATES]
    predicted = client.post(f"/v1/models/{MODEL}/predict", json={"instances": instances}).json()
    scores = {p: s["score"] for p, s in zip(CANDIDATES, predicted["predictions"], strict=True)}
    expected = sorted(scores, key=lambda p: (-scores[p], p))[:5]
    assert _ids(payload) == expected  # an unknown candidate is dropped, a repeated one once
    assert [i["score"] for i in payload["items"]] == [scores[p] for p in expected]
    assert all(set(i) == {"product_id", "score"} for i in payload["items"])
    same = client.post(RANK, json={"instance": context, "candidates": CANDIDATES, "k": 5}).json()
    assert same["items"] == payload["items"]  # `instance` is `context` by another name
    shop = client.post("/v1/rank", json={**context, "candidates": CANDIDATES, "k": 5}).json()
    assert shop == payload  # the example's route is the same ranking


def test_declared_retrieval_supplies_the_candidates(
    make_version, repo: Path, online_store: Path, serve, shop_config
) -> None:
    push(make_version(1), repo)
    _, client = serve()
    sql = KEYWORD_SQL  # what the declared match answers
    store = OnlineStore(online_store)
    rows = store.rows("product", [f"p{i:03d}" for i in range(40)])
    con = duckdb.connect()
    con.register("candidates", rows)
    retrieved = [r[0] for r in con.execute(sql, {"query": "red silk"}).fetchall()]
    context = {"user_id": "u1", "query": "red silk"}
    ranked = client.post(RANK, json={"context": context, "k": 1000}).json()
    assert sorted(_ids(ranked)) == sorted(retrieved)
    given = client.post(RANK, json={"context": context, "candidates": retrieved, "k": 1000})
    assert given.json()["items"] == ranked["items"]
    # the store changes: the next request retrieves from the new rows
    store.materialize("product", rows.slice(0, 3), "2026-01-11")
    store.close()
    fewer = client.post(RANK, json={"context": context, "k": 1000}).json()
    assert sorted(_ids(fewer)) == ["p000", "p001", "p002"]


def test_the_declared_baseline_answers_when_the_only_version_is_broken(
    make_version, repo: Path, online_store: Path, serve, transform
) -> None:
    broken = transform.to_json().replace("product__price_usd__v1", "product__price_eur__v1")
    push(make_version(1, transform_json=broken), repo)
    _, client = serve()
    context = {"user_id": "u2", "query": "wool"}
    payload = client.post(RANK, json={"context": context, "candidates": CANDIDATES}).json()
    assert payload["version"] is None
    assert payload["fallback"].startswith("version 1 raised FeatureError")
    assert payload["fallback"].endswith(": baseline popularity")
    popularity = _popularity(online_store)
    assert _ids(payload) == sorted(CANDIDATES, key=lambda p: (-popularity[p], p))
    assert [i["score"] for i in payload["items"]] == sorted(
        (float(popularity[p]) for p in CANDIDATES), reverse=True
    )
    instances = [{**context, "product_id": p} for p in ["p001", "missing"]]
    predicted = client.post(f"/v1/models/{MODEL}/predict", json={"instances": instances}).json()
    assert predicted["version"] is None and predicted["fallback"] == payload["fallback"]
    # coalesce(popularity, 0): an unknown product scores 0
    assert predicted["predictions"] == [{"score": float(popularity["p001"])}, {"score": 0.0}]
    metrics = client.get("/metrics").text
    assert 'version="baseline:popularity"' in metrics


def test_no_baseline_and_no_version_is_a_503(make_version, repo: Path, serve, transform) -> None:
    broken = transform.to_json().replace("product__price_usd__v1", "product__price_eur__v1")
    push(make_version(1, transform_json=broken, config={"serving": {}}), repo)
    _, client = serve()
    body = {"context": {"user_id": "u2", "query": "wool"}, "candidates": CANDIDATES}
    answer = client.post(RANK, json=body)
    assert answer.status_code == 503
    assert "declares no baseline to fall back to" in answer.json()["detail"]


def test_client_errors_are_422_naming_the_field(
    make_version, repo: Path, serve, shop_config
) -> None:
    push(make_version(1), repo)
    undeclared = copy.deepcopy(shop_config)
    del undeclared["serving"]["candidates"]
    push(make_version(1, model="plain_ranker", config=undeclared), repo)
    _, client = serve()
    context = {"user_id": "u1", "query": "wool"}
    cases: list[tuple[str, object, str]] = [
        (RANK, {"context": context, "candidates": [7]}, "candidates[0]"),
        (RANK, {"context": context, "candidates": [{"sku": "p001"}]}, "candidates[0]"),
        (RANK, {"context": {"user_id": "u1"}}, "context.query"),
        (RANK, {"context": {"query": "wool"}, "candidates": ["p001"]}, "user_id"),
        (RANK, {"context": context, "instance": context}, "either"),
        (RANK, {"context": context, "k": 0}, "k"),
        (RANK, {"context": context, "candidate": ["p001"]}, "candidate"),
        ("/v1/models/plain_ranker/rank", {"context": context}, "serving.candidates"),
    ]
    for path, body, named in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert named in answer.text, (body, answer.text)
    plain = client.post(
        "/v1/models/plain_ranker/rank", json={"context": context, "candidates": ["p001"]}
    )
    assert plain.status_code == 200 and _ids(plain.json()) == ["p001"]
    unknown = client.post("/v1/models/nope/rank", json={"context": context})
    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["detail"]


def test_a_retrieval_that_does_not_run_is_a_503(
    make_version, repo: Path, serve, shop_config
) -> None:
    bad = copy.deepcopy(shop_config)
    bad["serving"]["candidates"] = {
        "view": "product",
        "sql": "SELECT product_id FROM candidates WHERE nope = $query",
    }
    push(make_version(1, config=bad), repo)
    _, client = serve()
    answer = client.post(RANK, json={"context": {"user_id": "u1", "query": "wool"}})
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert "search_ranker: serving.candidates.sql does not run" in detail and "nope" in detail
    assert "\n" not in detail


def test_retrieval_of_a_view_with_a_composite_key(online_store: Path) -> None:
    """A view keyed by two columns: each retrieved candidate is a tuple of both keys, and a
    retrieval sees the store's rows as of its latest write."""
    from spindle.serve import Retrieval, Retriever

    store = OnlineStore(online_store)
    pairs = pa.table({"shop": ["a", "a", "b"], "sku": [1, 2, 1], "weight": [0.5, 0.9, 0.1]})
    store.materialize("stock", pairs, "2026-01-10", keys=["shop", "sku"])
    retriever = Retriever(store)
    declared = Retrieval(
        "stock", "SELECT sku, shop FROM candidates WHERE weight >= $w ORDER BY weight DESC"
    )
    assert retriever.retrieve("m", declared, ("shop", "sku"), {"w": 0.2}) == [("a", 2), ("a", 1)]
    store.materialize("stock", pairs.slice(2), "2026-01-11", keys=["shop", "sku"])
    assert retriever.retrieve("m", declared, ("shop", "sku"), {"w": 0.0}) == [("b", 1)]
    store.close()


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT product_id FROM candidates; COPY candidates TO '{out}'", "2 statements"),
        ("SELECT * FROM '/etc/passwd'", "/etc/passwd"),
    ],
)
def test_a_recorded_retrieval_reaches_no_file(
    online_store: Path, tmp_path: Path, sql: str, found: str
) -> None:
    """A version's recorded retrieval SQL (never validated by today's config: it comes from
    the version's manifest) is refused before it runs, and the snapshot it would run on has
    no file access either."""
    from spindle.serve import Retrieval, Retriever
    from spindle.serve._retrieval import RetrievalError

    out = tmp_path / "stolen.csv"
    store = OnlineStore(online_store)
    store.materialize("stock", pa.table({"sku": [1, 2], "weight": [0.5, 0.9]}), "2026-01-10")
    retriever = Retriever(store)
    with pytest.raises(RetrievalError) as info:
        retriever.retrieve("m", Retrieval("stock", sql.format(out=out)), ("sku",), {})
    assert found in str(info.value) and "serving.candidates.sql" in str(info.value)
    with pytest.raises(duckdb.Error):  # the snapshot itself is locked
        retriever.snapshot("stock").execute(f"COPY candidates TO '{out}'")
    assert not out.exists()
    store.close()
