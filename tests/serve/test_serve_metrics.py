"""/metrics: Prometheus exposition from the app's own registry."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from spindle.serve import push

MODEL = "search_ranker"


def test_metrics_parse_and_count(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo)
    (repo / MODEL / "2" / "model.onnx").write_bytes(b"broken")
    _, client = serve()
    for i in range(3):
        assert (
            client.post("/v1/rank", json={"user_id": f"u{i}", "query": "wool"}).status_code == 200
        )
    assert client.post("/v1/rank", json={"query": "no user"}).status_code == 422
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = {
        (s.labels["endpoint"], s.labels["model"], s.labels["version"]): s.value
        for s in families["spindle_serve_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("rank", MODEL, "1")] == 3
    fallbacks = {
        s.labels["reason"]: s.value
        for s in families["spindle_serve_fallbacks"].samples
        if s.name.endswith("_total")
    }
    assert fallbacks == {"checksum": 3}
    errors = [s for s in families["spindle_serve_errors"].samples if s.name.endswith("_total")]
    assert [(s.labels["endpoint"], s.labels["code"], s.value) for s in errors] == [
        ("/v1/rank", "422", 1.0)
    ]
    latency = families["spindle_serve_request_latency_seconds"]
    counts = [
        s
        for s in latency.samples
        if s.name.endswith("_count") and s.labels["endpoint"] == "/v1/rank"
    ]
    assert counts and counts[0].value == 4
    ages = {
        s.labels["version"]: s.value for s in families["spindle_serve_model_age_seconds"].samples
    }
    assert set(ages) == {"1"} and 0 <= ages["1"] < 3600
    loaded = {
        (s.labels["version"], s.labels["status"]): s.value
        for s in families["spindle_serve_version_loaded"].samples
    }
    assert loaded == {("1", "loaded"): 1.0, ("2", "failed checksum"): 0.0}


def test_each_app_has_its_own_registry(serve) -> None:
    _, first = serve()
    _, second = serve()
    first.post("/v1/rank", json={"user_id": "a", "query": "wool"})
    text = second.get("/metrics").text
    assert 'spindle_serve_requests_total{endpoint="rank"' not in text
