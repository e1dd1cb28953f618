"""The example shop's ranker through the generic route: /v1/models/{model}/predict with one
instance per candidate (its entity keys and the request's query) scores what /v1/rank scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spindle.features import FeatureRegistry
from spindle.serve import ServingDeclarations, push

MODEL = "search_ranker"
EXAMPLE_FEATURES = Path(__file__).resolve().parents[2] / "src/spindle/examples/yarnit/features"
CANDIDATES = ["p001", "p007", "p013", "p021", "p033", "missing"]


@pytest.fixture
def declarations() -> ServingDeclarations:
    return ServingDeclarations.of(FeatureRegistry.load(EXAMPLE_FEATURES))


def test_predict_scores_what_rank_scores(
    make_version: Any, repo: Path, serve: Any, declarations: ServingDeclarations
) -> None:
    push(make_version(1), repo)
    _, client = serve(declarations=declarations)
    schema = client.get(f"/v1/models/{MODEL}/schema").json()
    assert schema["keys"] == {"product_id": "string", "user_id": "string"}
    assert schema["request_columns"] == {"query": "string"}
    assert schema["task"] == "unknown"  # the fixture's manifest records no config
    ranked = client.post(
        "/v1/rank", json={"user_id": "u3", "query": "merino wool", "candidates": CANDIDATES}
    ).json()
    by_rank = {i["product_id"]: i["score"] for i in ranked["items"]}
    instances: list[dict[str, Any]] = [
        {"product_id": p, "user_id": "u3", "query": "merino wool"} for p in CANDIDATES
    ]
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    scores = [p["score"] for p in answer.json()["predictions"]]
    assert all(set(p) == {"score"} for p in answer.json()["predictions"])
    assert scores[:-1] == [by_rank[p] for p in CANDIDATES[:-1]]  # identical: same features
    assert "missing" not in by_rank  # /v1/rank drops an unknown candidate; predict scores it
    metrics = client.get("/metrics").text
    assert f'spindle_serve_missing_entities_total{{model="{MODEL}",view="product"}} 1.0' in metrics
