"""Regression and multiclass models through the whole loop on the flights example's data.

A workspace declares two more models beside ``delay``, on the same features: the
arrival delay in minutes (``task: regression``) and a 3-class delay bucket (``task:
multiclass``). ``spindle train``, ``spindle evaluate`` and ``spindle push`` run by the CLI; the
pushed versions are served over loopback HTTP and must answer values / class probabilities
equal to the versions' offline scores (``ModelRuntime``) within 1e-5. The regression model
trains streamed (``in_memory_max_rows: 0``), the multiclass one in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.flights_helpers import cli, online_rows

from spindle.features import FeatureRegistry, apply_request_features
from spindle.orchestrate import Context
from spindle.serve import ModelRuntime, ServerThread, ServingDeclarations, create_app

pytestmark = pytest.mark.e2e

KEYS = ["carrier", "origin", "dest", "tailnum"]
REQUEST = ["sched_dep_time", "sched_dep_date"]  # request-time columns the caller sends
TRAIN_DATE, HOLDOUT_DATE = "2013-01-06", "2013-01-06"
LABELS = {
    "arrival_minutes": (
        "regression",
        "arr_delay AS arrival_minutes",
        "WHERE arr_delay IS NOT NULL",
        "rmse",
    ),
    "delay_bucket": (
        "multiclass",
        "CASE WHEN arr_delay IS NULL OR arr_delay > 15 THEN 2 WHEN arr_delay > 0 THEN 1 "
        "ELSE 0 END AS delay_bucket",
        "",
        "accuracy",
    ),
}


def _declare(workspace: Path, name: str) -> None:
    """A model on delay's features whose label is ``name`` (see ``LABELS``)."""
    task, label_sql, where, metric = LABELS[name]
    base = yaml.safe_load((workspace / "models" / "delay.yaml").read_text())
    base["examples"]["sql"] = (
        "SELECT carrier, flight, origin, dest, tailnum, time_hour,\n"
        "       sched_dep_time::BIGINT AS sched_dep_time,\n"
        "       strftime(make_date(year, month, day), '%Y-%m-%d') AS sched_dep_date,\n"
        f"       {label_sql}\n"
        f"FROM flights {where}\n"
    )
    base["examples"]["label"] = name
    base |= {"name": name, "task": task, "baselines": []}
    # the tasks through tabular_nn (delay itself is lightgbm): its heads, losses, streaming
    base["training"] = {
        "framework": "tabular_nn",
        "window_days": 4,
        "epochs": 4,
        "learning_rate": 0.01,
        "hidden_units": [32],
        "embedding_dim": 4,
    }
    if task == "regression":  # streamed from Parquet: the head's label scale read from the file
        base["training"]["in_memory_max_rows"] = 0
    base["evaluation"] = {"metric": metric, "replicas": 1}
    (workspace / "models" / f"{name}.yaml").write_text(yaml.safe_dump(base, sort_keys=False))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    cli(root, "init", "flights", "--example", "flights")
    workspace = root / "flights"
    for name in LABELS:
        _declare(workspace, name)
    cli(workspace, "ingest", "--since", "2013-01-01", "--until", "2013-01-07")
    for name in LABELS:
        cli(workspace, "train", name, "--date", TRAIN_DATE)
        cli(workspace, "evaluate", name, "--version", "1", "--date", HOLDOUT_DATE)
        cli(workspace, "push", name, "--version", "1")
    return workspace


def _offline(version: Path, store_path: Path, instances: pa.Table, views: dict) -> np.ndarray:
    """The version's scores of the instances joined with every stored row of each view."""
    rows = online_rows(store_path, instances, views)
    runtime = ModelRuntime.load(version)
    return runtime.score(apply_request_features(rows, runtime.transform.request))


def _served(workspace: Path, name: str) -> tuple[dict, np.ndarray, dict]:
    """The schema, the offline scores and the app's answer for 200 training instances."""
    with Context.open(workspace) as ctx:
        repo, store = ctx.workspace.model_repo, ctx.workspace.online_store_path
        version = ctx.workspace.artifacts_dir / "models" / name / "1"
    trainset = next((version.parents[2] / "trainsets" / name).glob("*.parquet"))
    instances = pq.read_table(trainset, columns=KEYS + REQUEST).slice(0, 200)
    instances = instances.filter(pa.compute.is_valid(instances["tailnum"]))
    declarations = ServingDeclarations.of(FeatureRegistry.load(workspace / "features"))
    app = create_app(repo, store, declarations=declarations, latency_budget_ms=10_000)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        schema = client.get(f"/v1/models/{name}/schema").json()
        answer = client.post(
            f"/v1/models/{name}/predict", json={"instances": instances.to_pylist()}
        )
    assert answer.status_code == 200, answer.text
    views = {lookup["view"]: lookup["keys"] for lookup in schema["entities"]}
    return schema, _offline(version, store, instances, views), answer.json()


def test_a_regression_model_answers_values_equal_to_offline_scoring(workspace: Path) -> None:
    version = workspace / ".spindle/artifacts/models/arrival_minutes/1"
    spec = json.loads((version / "input_spec.json").read_text())
    assert spec["task"] == "regression" and spec["label_std"] > 10  # minutes, standardised
    assert json.loads((version / "manifest.json").read_text())["metrics"]["streamed"] is True
    schema, offline, body = _served(workspace, "arrival_minutes")
    assert schema["task"] == "regression" and offline.ndim == 1
    values = [p["value"] for p in body["predictions"]]
    assert len(set(values)) > 10
    np.testing.assert_allclose(values, offline, rtol=1e-5, atol=1e-5)


def test_a_multiclass_model_answers_class_probabilities_equal_to_offline(workspace: Path) -> None:
    schema, offline, body = _served(workspace, "delay_bucket")
    assert schema["task"] == "multiclass" and offline.shape[1] == 3
    probabilities = np.array([p["probabilities"] for p in body["predictions"]])
    expected = np.exp(offline - offline.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert [p["class"] for p in body["predictions"]] == expected.argmax(axis=1).tolist()
