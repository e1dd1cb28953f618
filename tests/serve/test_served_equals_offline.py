"""Served == offline: a flights version served over real HTTP (uvicorn on 127.0.0.1) scores each
instance as the training-set path does.

Offline, the instances' features come from the training-set path itself
(``spindle.features.build_rows``: the model's examples SQL, its pinned views ASOF-joined with
their TTLs, its request features), as of the end of the day the online store holds; the
version's ``model.onnx`` scores them (``ModelRuntime.score``, what evaluation scores). Online,
the server looks the same entities up in the online store. Any skew between the two feature
paths (a stale or wrong row, a key matched differently, a TTL applied on one side only, a
request feature computed differently) shows as a score difference above 1e-6.
``benchmarks/serve_predict.py`` makes the same check under load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.flights_helpers import cli

from spindle.core import Workspace, load_sources
from spindle.features import FeatureRegistry, OnlineStore, build_rows
from spindle.serve import ModelRuntime, ServerThread, ServingDeclarations, create_app, push

pytestmark = pytest.mark.e2e

MODEL = "delay"
LAST_DAY = "2013-01-06"


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served-offline")
    cli(root, "init", "flights", "--example", "flights")
    workspace = root / "flights"
    cli(workspace, "ingest", "--since", "2013-01-01", "--until", LAST_DAY)
    cli(workspace, "train", MODEL, "--date", LAST_DAY)
    return workspace


def _offline_rows(ws: Workspace, day: str) -> pa.Table:
    """The model's examples of ``day`` with the features the training-set path computes for
    them as of the end of that day (each example's event time moved to 23:59:59, labels taken
    as mature): the values the online store must hold for the same entities."""
    config, _ = ws.model_config(MODEL)
    definitions = FeatureRegistry.load(ws.features_dir).resolve(config)
    event_time = '"' + config.examples.event_time + '"'
    sql = (
        f"SELECT * REPLACE (TIMESTAMP '{day} 23:59:59' AS {event_time}) "
        f"FROM ({config.examples.sql})"
    )
    examples = config.examples.model_copy(update={"sql": sql, "label_delay": "0d"})
    as_of = config.model_copy(update={"examples": examples})
    rows = build_rows(ws.tables_dir, as_of, definitions, (day,), sources=load_sources(ws.root))
    return rows.table


def _instance(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    values = {f: row[f] for f in fields}
    parsed: dict[str, Any] = json.loads(json.dumps(values, default=str))
    return parsed


def test_served_scores_equal_the_training_set_paths_scores(flights: Path, tmp_path: Path) -> None:
    ws = Workspace.load(flights)
    version = ws.artifacts_dir / "models" / MODEL / "1"
    repo = tmp_path / "repo"
    push(version, repo)
    store = OnlineStore(ws.online_store_url)
    try:
        day = store.watermark("carrier")
    finally:
        store.close()
    assert day == LAST_DAY
    rows = _offline_rows(ws, day)
    assert rows.num_rows > 100
    runtime = ModelRuntime.load(version)
    stored = sorted(runtime.stored_columns)
    # the views knew these entities: a comparison of null rows would prove little
    known = 1 - sum(rows[c].null_count for c in stored) / (rows.num_rows * len(stored))
    assert known > 0.7, {c: rows[c].null_count / rows.num_rows for c in stored}
    sample = rows.slice(0, 150)
    offline = runtime.score(sample)

    registry = FeatureRegistry.load(ws.features_dir)
    models = {MODEL: ws.model_config(MODEL)[0]}
    declarations = ServingDeclarations.of(registry, models=models)
    app = create_app(repo, ws.online_store_path, declarations=declarations)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert server.url.startswith("http://127.0.0.1:")
        schema = client.get(f"/v1/models/{MODEL}/schema").json()
        fields = [*schema["keys"], *schema["request_columns"]]
        instances = [_instance(r, fields) for r in sample.select(fields).to_pylist()]
        one_by_one = []
        for instance in instances:
            answer = client.post(f"/v1/models/{MODEL}/predict", json={"instance": instance})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["version"] == "1" and body["fallback"] is None, body
            one_by_one.append(body["predictions"][0]["score"])
        batch = client.post(f"/v1/models/{MODEL}/predict", json={"instances": instances})
    assert batch.status_code == 200, batch.text
    assert len(set(np.round(offline, 9))) > 20  # the entities' own features, not one default
    np.testing.assert_allclose(one_by_one, offline, rtol=0, atol=1e-6)
    batched = [p["score"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(batched, offline, rtol=0, atol=1e-6)
    probabilities = [p["probability"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-offline)), rtol=0, atol=1e-6)
    assert pc.all(pc.is_finite(pa.array(offline))).as_py()
