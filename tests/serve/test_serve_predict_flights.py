"""The flights example served by /v1/models/{model}/predict: a version trained by the CLI, pushed
to a repository, served over loopback HTTP, answers as the same model does offline.

Offline, each instance's online rows are joined with Arrow (left outer joins over every stored
row of each view, keyed as the workspace declares) and scored by the version's ONNX model.
"""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.flights_helpers import cli, online_rows

from spindle.features import FeatureRegistry, apply_request_features
from spindle.serve import ModelRuntime, ServerThread, ServingDeclarations, create_app, push

pytestmark = pytest.mark.e2e

MODEL = "delay"
KEYS = ["carrier", "origin", "dest", "tailnum"]
REQUEST = ["sched_dep_time", "sched_dep_date"]  # request-time columns the caller sends


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flights")
    cli(root, "init", "flights", "--example", "flights")
    workspace = root / "flights"
    cli(workspace, "ingest", "--since", "2013-01-01", "--until", "2013-01-12")
    cli(workspace, "train", MODEL, "--date", "2013-01-12")
    return workspace


def _offline(version: Path, store_path: Path, instances: pa.Table, views: dict) -> np.ndarray:
    rows = online_rows(store_path, instances, views)
    runtime = ModelRuntime.load(version)
    return runtime.score(apply_request_features(rows, runtime.transform.request))


def test_flights_predictions_equal_the_offline_scores_over_http(
    flights: Path, tmp_path: Path
) -> None:
    version = flights / ".spindle" / "artifacts" / "models" / MODEL / "1"
    repo, store = tmp_path / "repo", flights / ".spindle" / "online.db"
    push(version, repo)
    registry = FeatureRegistry.load(flights / "features")
    declarations = ServingDeclarations.of(registry)
    trainset = next((flights / ".spindle" / "artifacts" / "trainsets" / MODEL).glob("*.parquet"))
    instances = pq.read_table(trainset, columns=KEYS + REQUEST).slice(0, 300)
    instances = instances.filter(pa.compute.is_valid(instances["tailnum"]))
    unknown = pa.table(
        {
            **{k: ["ZZ" if k != "tailnum" else "N0NE"] for k in KEYS},
            **instances.select(REQUEST).slice(0, 1).to_pydict(),
        }
    )
    instances = pa.concat_tables([instances.cast(unknown.schema), unknown])
    app = create_app(repo, store, declarations=declarations, latency_budget_ms=10_000)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        schema = client.get(f"/v1/models/{MODEL}/schema").json()
        assert set(schema["keys"]) == set(KEYS) and schema["task"] == "binary"
        answer = client.post(
            f"/v1/models/{MODEL}/predict", json={"instances": instances.to_pylist()}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == "1" and body["fallback"] is None
    served = [p["probability"] for p in body["predictions"]]
    assert len(set(served)) > 10  # the instances' own features, not one default row
    views = {lu["view"]: lu["keys"] for lu in schema["entities"]}
    offline = [1 / (1 + math.exp(-s)) for s in _offline(version, store, instances, views)]
    np.testing.assert_allclose(served, offline, atol=1e-6)
