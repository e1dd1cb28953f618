"""POST /v1/models/{model}/predict on a tiny workspace declared here (no example's names).

The workspace has two views (``station`` keyed by ``station_id``, ``link`` keyed by
``src, dst``) and a request group (``call``, column ``hour``) whose feature reads a view's
feature. A real transform is fitted on rows, a real ONNX model scores them, versions are
pushed to a real repository and served by the real app over loopback HTTP (uvicorn).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import TensorProto, helper, numpy_helper

from spindle.core import write_package
from spindle.features import (
    FeatureRegistry,
    OnlineStore,
    RequestFeature,
    Transform,
    apply_request_features,
)
from spindle.serve import (
    ModelRuntime,
    ServerThread,
    ServingDeclarations,
    choose_version,
    create_app,
    push,
)

MODEL = "overload"
DAY = "2026-01-10"
STATIONS = [f"s{i}" for i in range(12)]
KINDS = ["pump", "valve", "tank"]
LINKS = [(f"s{i}", f"s{(i + 1) % 12}") for i in range(12)]
FEATURES = [
    "station.kind@1",
    "station.load_mean@1",
    "link.latency@1",
    "call.hour_load@1",
]

SOURCE = """\
name: readings
location: raw/readings/{date}.parquet
format: parquet
kind: events
event_time: {column: ts, timezone: UTC}
primary_key: [reading_id]
columns: {reading_id: string, station_id: string, kind: string, src: string, dst: string,
          load: float64, latency: float64, ts: timestamp}
provenance: {origin: "a test", licence: internal, retention_days: 30}
"""
STATION = """\
group: station
owner: test@example
entity: {name: station, keys: [station_id]}
sources: [readings]
view:
  sql: SELECT station_id, any_value(kind) AS kind, avg(load) AS load_mean FROM readings GROUP BY 1
features:
  - {name: kind, version: 1, dtype: string, sql: kind, encoding: {kind: categorical}}
  - {name: load_mean, version: 1, dtype: float64, sql: load_mean, encoding: {kind: numeric}}
"""
LINK = """\
group: link
owner: test@example
entity: {name: link, keys: [src, dst]}
sources: [readings]
view:
  sql: SELECT src, dst, avg(latency) AS latency FROM readings GROUP BY 1, 2
features:
  - {name: latency, version: 1, dtype: float64, sql: latency, encoding: {kind: numeric, log: true}}
"""
CALL = """\
group: call
owner: test@example
request:
  columns: {hour: int64}
features:
  - {name: hour_load, version: 1, dtype: float64, python: call_features.py:hour_load,
     encoding: {kind: numeric}}
"""
CALL_PY = '''\
"""Request features of the test workspace."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def hour_load(rows: pa.Table) -> pa.Array:
    """The hour of the call times the station's mean load."""
    product = pc.multiply(pc.cast(rows["hour"], pa.float64()), rows["station__load_mean__v1"])
    return product.combine_chunks() if isinstance(product, pa.ChunkedArray) else product
'''


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    (root / "sources").mkdir()
    (root / "features").mkdir()
    (root / "sources" / "readings.yaml").write_text(SOURCE)
    (root / "features" / "station.yaml").write_text(STATION)
    (root / "features" / "link.yaml").write_text(LINK)
    (root / "features" / "call.yaml").write_text(CALL)
    (root / "features" / "call_features.py").write_text(CALL_PY)
    return root


@pytest.fixture(scope="module")
def registry(workspace: Path) -> FeatureRegistry:
    return FeatureRegistry.load(workspace / "features")


def _station_rows() -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table(
        {
            "station_id": STATIONS,
            "station__kind__v1": [KINDS[i % 3] for i in range(len(STATIONS))],
            "station__load_mean__v1": rng.uniform(0, 50, len(STATIONS)).round(3),
        }
    )


def _link_rows() -> pa.Table:
    rng = np.random.default_rng(2)
    return pa.table(
        {
            "src": [s for s, _ in LINKS],
            "dst": [d for _, d in LINKS],
            "link__latency__v1": rng.uniform(1, 300, len(LINKS)).round(2),
        }
    )


@pytest.fixture(scope="module")
def transform(registry: FeatureRegistry) -> Transform:
    stations, links = _station_rows(), _link_rows()
    rows = pa.table(
        {
            "station__kind__v1": stations["station__kind__v1"],
            "station__load_mean__v1": stations["station__load_mean__v1"],
            "link__latency__v1": links["link__latency__v1"],
            "hour": pa.array(range(len(STATIONS)), pa.int64()),
        }
    )
    definitions = [registry.get(ref) for ref in FEATURES]
    request = [RequestFeature.of(d) for d in definitions if d.computation == "request"]
    fitted = Transform.fit(apply_request_features(rows, request), definitions)
    return Transform.from_json(fitted.to_json())  # as a model version ships it


@pytest.fixture
def online_store(tmp_path: Path) -> Path:
    path = tmp_path / "online.db"
    store = OnlineStore(path)
    store.materialize("station", _station_rows(), DAY, keys=["station_id"])
    store.materialize("link", _link_rows(), DAY, keys=["src", "dst"])
    store.close()
    return path


def _onnx(transform: Transform, bias: float) -> bytes:
    """A linear logit: per-category weights plus weighted dense inputs plus ``bias``."""
    spec = transform.input_spec()
    n_cat, n_dense = len(spec["cat_cardinalities"]), spec["n_dense"]
    rng = np.random.default_rng(3)
    table = rng.normal(0, 0.5, (max(spec["cat_cardinalities"]), 1)).astype(np.float32)
    weights = rng.normal(0, 0.5, (n_dense, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["cat_table", "cat"], ["cat_w"]),  # [N, n_cat, 1]
        helper.make_node("ReduceSum", ["cat_w", "axes12"], ["cat_logit"], keepdims=0),
        helper.make_node("MatMul", ["dense", "dense_w"], ["dense_out"]),  # [N, 1]
        helper.make_node("ReduceSum", ["dense_out", "axes1"], ["dense_logit"], keepdims=0),
        helper.make_node("Add", ["cat_logit", "dense_logit"], ["sum"]),
        helper.make_node("Add", ["sum", "bias"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [
            helper.make_tensor_value_info("cat", TensorProto.INT64, ["N", n_cat]),
            helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["N", n_dense]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        [
            numpy_helper.from_array(table, "cat_table"),
            numpy_helper.from_array(weights, "dense_w"),
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
            numpy_helper.from_array(np.array([1], np.int64), "axes1"),
            numpy_helper.from_array(np.array(bias, np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


MakeVersion = Callable[..., Path]


@pytest.fixture
def make_version(tmp_path: Path, transform: Transform) -> MakeVersion:
    """A model version directory as training writes it; ``bias`` makes another model."""

    def make(version: int, bias: float = 0.0, config: dict[str, Any] | None = None) -> Path:
        root = tmp_path / "artifacts" / MODEL / f"{version}-{bias}"
        root.mkdir(parents=True)
        (root / "model.onnx").write_bytes(_onnx(transform, bias))
        (root / "transform.json").write_text(transform.to_json())
        fields = {
            "model": MODEL,
            "version": version,
            "features": FEATURES,
            "config": config or {"name": MODEL, "task": "binary", "features": FEATURES},
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        write_package(root, fields, [])
        return root

    return make


Serve = Callable[..., httpx.Client]


@pytest.fixture
def serve(tmp_path: Path, online_store: Path, registry: FeatureRegistry) -> Iterator[Serve]:
    with ExitStack() as stack:

        def start(declared: bool = True, **kwargs: Any) -> httpx.Client:
            declarations = ServingDeclarations.of(registry) if declared else None
            kwargs.setdefault("latency_budget_ms", 5000.0)
            app = create_app(tmp_path / "repo", online_store, declarations=declarations, **kwargs)
            server = stack.enter_context(ServerThread(app))
            return stack.enter_context(httpx.Client(base_url=server.url, timeout=30))

        yield start


def _instances() -> list[dict[str, Any]]:
    known = [
        {"station_id": s, "src": a, "dst": b, "hour": h}
        for h, (s, (a, b)) in enumerate(zip(STATIONS, LINKS, strict=True))
    ]
    unknown = [
        {"station_id": "nowhere", "src": "s0", "dst": "s1", "hour": 3},  # station unknown
        {"station_id": "s4", "src": "s9", "dst": "s2", "hour": 7},  # link unknown
        {"station_id": None, "src": "s5", "dst": None, "hour": 9},  # null keys: unknown
    ]
    return known + unknown


def _offline_probabilities(version_dir: Path, online_store: Path) -> list[float]:
    """The same instances scored offline: the views joined with Arrow (left outer joins over
    every stored row), the request features applied, the version's ONNX model run."""
    store = OnlineStore(online_store)
    try:
        stations, links = store.rows("station", STATIONS), store.backend.read("link")
    finally:
        store.close()
    assert links is not None
    links = links.drop_columns(["__spindle_key"])
    rows = pa.Table.from_pylist(_instances())
    rows = rows.append_column("i", pa.array(range(rows.num_rows)))
    rows = rows.join(stations, "station_id", join_type="left outer")
    rows = rows.join(links, ["src", "dst"], join_type="left outer").sort_by("i")
    runtime = ModelRuntime.load(version_dir)
    scores = runtime.score(apply_request_features(rows, runtime.transform.request))
    return [1 / (1 + math.exp(-s)) for s in scores.tolist()]


def test_served_probabilities_equal_offline_scores(
    serve: Serve, make_version: MakeVersion, online_store: Path, tmp_path: Path
) -> None:
    version = make_version(1)
    push(version, tmp_path / "repo")
    client = serve()
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": _instances()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == MODEL and body["version"] == "1" and body["fallback"] is None
    served = [p["probability"] for p in body["predictions"]]
    assert len({round(p, 6) for p in served}) > 12  # every instance's own features
    np.testing.assert_allclose(served, _offline_probabilities(version, online_store), atol=1e-6)
    # the unknown entities got the training defaults, not an error, and are counted
    metrics = client.get("/metrics").text
    assert f'spindle_serve_missing_entities_total{{model="{MODEL}",view="station"}} 2.0' in metrics
    assert f'spindle_serve_missing_entities_total{{model="{MODEL}",view="link"}} 2.0' in metrics
    for i in (3, 14):  # alone, as in a batch (14: every key of a view null)
        one = client.post(f"/v1/models/{MODEL}/predict", json={"instance": _instances()[i]})
        assert one.json()["predictions"] == [body["predictions"][i]]


def test_a_view_materialised_after_start_is_read_when_it_arrives(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    store_path = tmp_path / "online.db"
    store_path.unlink()
    store = OnlineStore(store_path)
    store.materialize("station", _station_rows(), DAY, keys=["station_id"])
    version = make_version(1)
    push(version, tmp_path / "repo")
    client = serve()
    before = client.post(f"/v1/models/{MODEL}/predict", json={"instances": _instances()})
    assert before.status_code == 200, before.text
    # a feature comes from its view, even one the store does not hold: never from the caller
    forged = [{**i, "link__latency__v1": 1e6} for i in _instances()]
    again = client.post(f"/v1/models/{MODEL}/predict", json={"instances": forged})
    assert again.json()["predictions"] == before.json()["predictions"]
    store.materialize("link", _link_rows(), DAY, keys=["src", "dst"])
    store.close()
    after = client.post(f"/v1/models/{MODEL}/predict", json={"instances": _instances()}).json()
    served = [p["probability"] for p in after["predictions"]]
    np.testing.assert_allclose(served, _offline_probabilities(version, store_path), atol=1e-6)
    assert served != [p["probability"] for p in before.json()["predictions"]]


def test_schema_route_and_openapi_name_the_keys_and_request_columns(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1), tmp_path / "repo")
    client = serve()
    schema = client.get(f"/v1/models/{MODEL}/schema").json()
    assert schema["keys"] == {"station_id": "string", "src": "string", "dst": "string"}
    assert schema["request_columns"] == {"hour": "integer"}
    assert schema["entities"] == [
        {"view": "station", "keys": ["station_id"]},
        {"view": "link", "keys": ["src", "dst"]},
    ]
    assert schema["routing_key"] == "station_id" and schema["task"] == "binary"
    spec = client.get("/openapi.json").json()
    assert "/v1/models/{model}/predict" in spec["paths"]
    assert f"/v1/models/{MODEL}/predict" in spec["paths"]
    instance = spec["components"]["schemas"][f"{MODEL}_instance"]
    assert instance["required"] == ["dst", "hour", "src", "station_id"]
    assert instance["properties"]["hour"] == {"type": "integer"}
    body = spec["paths"][f"/v1/models/{MODEL}/predict"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    request = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert request["properties"]["instances"]["items"] == {
        "$ref": f"#/components/schemas/{MODEL}_instance"
    }
    assert f"{MODEL}_instance" in client.get("/docs").text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"station_id": 5}, "instances[1].station_id", "expected string, found integer"),
        ({"hour": "seven"}, "instances[1].hour", "expected integer, found string"),
        ({"hour": True}, "instances[1].hour", "expected integer, found boolean"),
        ({"dst": ...}, "instances[1].dst", "missing"),
        ({"hour": ...}, "instances[1].hour", "missing"),
    ],
)
def test_a_bad_instance_is_a_422_naming_the_field_and_the_model(
    serve: Serve,
    make_version: MakeVersion,
    tmp_path: Path,
    change: dict[str, Any],
    field: str,
    words: str,
) -> None:
    push(make_version(1), tmp_path / "repo")
    client = serve()
    bad = {**_instances()[1], **change}
    bad = {k: v for k, v in bad.items() if v is not ...}
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": [_instances()[0], bad]})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail.startswith(field) and words in detail and MODEL in detail
    assert "\n" not in detail


def test_unknown_model_is_404_and_a_body_without_instances_is_422(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1), tmp_path / "repo")
    client = serve()
    answer = client.post("/v1/models/nothing/predict", json={"instance": _instances()[0]})
    assert answer.status_code == 404 and MODEL in answer.json()["detail"]
    assert client.get("/v1/models/nothing/schema").status_code == 404
    assert client.post(f"/v1/models/{MODEL}/predict", json={}).status_code == 422
    both = {"instance": _instances()[0], "instances": _instances()}
    assert client.post(f"/v1/models/{MODEL}/predict", json=both).status_code == 422


def test_a_failing_version_falls_back_to_previous_with_the_reason(
    serve: Serve, make_version: MakeVersion, online_store: Path, tmp_path: Path
) -> None:
    good = make_version(1)
    push(good, tmp_path / "repo")
    push(make_version(2, bias=float("nan")), tmp_path / "repo")  # scores NaN: a scoring failure
    client = serve()
    body = client.post(f"/v1/models/{MODEL}/predict", json={"instances": _instances()}).json()
    assert body["version"] == "1"
    assert "version 2" in body["fallback"] and "non-finite" in body["fallback"]
    assert body["fallback"].endswith("served by previous version 1")
    served = [p["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(served, _offline_probabilities(good, online_store), atol=1e-6)
    metrics = client.get("/metrics").text
    assert f'spindle_serve_fallbacks_total{{model="{MODEL}",reason="error"}} 1.0' in metrics


def test_scorings_run_one_at_a_time_and_a_stuck_one_does_not_hold_its_fallback(
    make_version: MakeVersion, online_store: Path, tmp_path: Path, registry: FeatureRegistry
) -> None:
    """Concurrent requests on the loop score one at a time (threads at once only take the GIL
    from each other); a scoring abandoned at the budget stops counting, so the previous version
    answers every request while the stuck ones still hold their threads."""
    push(make_version(1), tmp_path / "repo")
    push(make_version(2, bias=0.5), tmp_path / "repo")
    app = create_app(
        tmp_path / "repo",
        online_store,
        declarations=ServingDeclarations.of(registry),
        latency_budget_ms=1000.0,  # 50x a warm scoring here: a busy CI machine stays inside it
    )
    ctx = app.state.spindle
    state = ctx.reloader.state.models[MODEL]
    predictor, original = ctx.predictor, ctx.predictor.rows
    # a first scoring opens the store and the session (once, well past 20 ms on a busy CI
    # run, where it fell back in 1 of 1,444 tests): warm them before the timed requests
    assert predictor.predict(state, _instances()).version == 2
    lock, stuck, counts = threading.Lock(), threading.Event(), {"now": 0, "peak": 0}

    def rows(runtime: Any, schema: Any, instances: Any) -> Any:
        with lock:
            counts["now"] += 1
            counts["peak"] = max(counts["peak"], counts["now"])
        try:
            if runtime.version == 2 and stuck.is_set():
                time.sleep(8.0)  # far past the 1 s budget
            else:
                time.sleep(0.02)
            return original(runtime, schema, instances)
        finally:
            with lock:
                counts["now"] -= 1

    predictor.rows = rows  # instrumented: the real lookups and scoring run inside

    async def requests(n: int) -> list[Any]:
        calls = [predictor.predict_async(state, _instances()) for _ in range(n)]
        return await asyncio.wait_for(asyncio.gather(*calls), 20)

    try:
        answered = asyncio.run(requests(8))
        assert {a.version for a in answered} == {2}, [a.fallback for a in answered]
        assert counts["peak"] == 1
        stuck.set()
        started = time.monotonic()
        answered = asyncio.run(requests(3))
        assert [a.version for a in answered] == [1, 1, 1]
        assert all(
            "version 2 exceeded the latency budget of 1000 ms" in a.fallback for a in answered
        )
        # each waits out its budget at most (3 x 1 s), never a stuck scoring (3 x 8 s)
        assert time.monotonic() - started < 6.0
    finally:
        ctx.executor.shutdown(wait=False, cancel_futures=True)
        ctx.store.close()


def test_no_version_that_can_answer_is_a_503_with_the_reasons(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1, bias=float("nan")), tmp_path / "repo")
    client = serve()
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instance": _instances()[0]})
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith(f"model {MODEL}: version 1 raised") and "non-finite" in detail
    assert "\n" not in detail


def test_a_version_that_does_not_load_is_a_503_naming_it(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1), tmp_path / "repo")
    (tmp_path / "repo" / MODEL / "1" / "model.onnx").write_bytes(b"damaged")
    client = serve()
    answer = client.post(f"/v1/models/{MODEL}/predict", json={"instance": _instances()[0]})
    assert answer.status_code == 503
    assert "version 1 failed checksum" in answer.json()["detail"]


def test_traffic_split_is_sticky_by_the_first_entity_key(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1), tmp_path / "repo")
    push(make_version(2, bias=1.0), tmp_path / "repo", weight=0.5)
    client = serve()
    weights = {1: 0.5, 2: 0.5}
    seen = set()
    for instance in _instances()[:12]:
        for _ in range(2):
            body = client.post(f"/v1/models/{MODEL}/predict", json={"instance": instance}).json()
            expected = choose_version(instance["station_id"], weights)
            assert body["version"] == str(expected) and body["fallback"] is None
            seen.add(body["version"])
    assert seen == {"1", "2"}


def test_a_declared_routing_key_routes_the_traffic(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    config = {"task": "binary", "serving": {"routing_key": "src"}}
    push(make_version(1, config=config), tmp_path / "repo")
    push(make_version(2, bias=1.0, config=config), tmp_path / "repo", weight=0.5)
    client = serve()
    assert client.get(f"/v1/models/{MODEL}/schema").json()["routing_key"] == "src"
    for instance in _instances()[:12]:
        body = client.post(f"/v1/models/{MODEL}/predict", json={"instance": instance}).json()
        assert body["version"] == str(choose_version(instance["src"], {1: 0.5, 2: 0.5}))


def test_undeclared_views_take_their_keys_from_the_online_store(
    serve: Serve, make_version: MakeVersion, online_store: Path, tmp_path: Path
) -> None:
    version = make_version(1)
    push(version, tmp_path / "repo")
    client = serve(declared=False)
    schema = client.get(f"/v1/models/{MODEL}/schema").json()
    assert schema["keys"] == {"station_id": "string", "src": "string", "dst": "string"}
    assert schema["request_columns"] == {}  # not declared: passed through to the features
    body = client.post(f"/v1/models/{MODEL}/predict", json={"instances": _instances()}).json()
    served = [p["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(served, _offline_probabilities(version, online_store), atol=1e-6)


def test_a_body_that_is_not_json_is_a_422_that_does_not_echo_it(
    serve: Serve, make_version: MakeVersion, tmp_path: Path
) -> None:
    push(make_version(1), tmp_path / "repo")
    client = serve()
    junk = b'{"instances": [' + b"x" * 100_000
    answer = client.post(
        f"/v1/models/{MODEL}/predict", content=junk, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "json_invalid"
    assert len(answer.content) < 1000  # the 100 kB body is not sent back
    extra = client.post(f"/v1/models/{MODEL}/predict", json={"instance": {}, "other": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "other"]
