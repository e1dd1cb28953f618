"""A ``framework: lightgbm`` model through the whole loop on the flights example's data.

The flights example's binary ``delay`` model is declared with ``training.framework: lightgbm``.
``spindle train`` runs for one day (from scratch), the version is evaluated and pushed, then
the next day trains again, warm starting from it (boosting continues), and is evaluated and
pushed. The pushed version is served over loopback HTTP by uvicorn: its scores must equal
``LightGBMTrainer().predict`` of the version on the same inputs within 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.flights_helpers import cli, online_rows

from spindle.features import FeatureRegistry, apply_request_features
from spindle.orchestrate import Context
from spindle.serve import ModelRuntime, ServerThread, ServingDeclarations, create_app
from spindle.train._lightgbm import BOOSTER_FILE, LightGBMTrainer

pytestmark = pytest.mark.e2e

MODEL = "delay"
KEYS = ["carrier", "origin", "dest", "tailnum"]
DAYS = ("2013-01-06", "2013-01-07")
ROUNDS, WARM_ROUNDS = 60, 15


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lightgbm")
    cli(root, "init", "flights", "--example", "flights")
    workspace = root / "flights"
    path = workspace / "models" / f"{MODEL}.yaml"
    config = yaml.safe_load(path.read_text())
    config["training"] |= {
        "framework": "lightgbm",
        "window_days": 4,
        "warm_start": True,  # the example retrains nightly; this test is about warm start
        "warm_start_window_days": 2,
        "lightgbm": {"num_boost_round": ROUNDS, "warm_start_rounds": WARM_ROUNDS},
    }
    config["evaluation"] = {"metric": "auc", "replicas": 1}
    # no gusts were recorded on these days: push would (rightly) refuse an all-null feature
    config["features"] = [f for f in config["features"] if not f.startswith("weather.wind_gust")]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    cli(workspace, "ingest", "--since", "2013-01-01", "--until", "2013-01-08")
    for version, day in enumerate(DAYS, start=1):
        cli(workspace, "train", MODEL, "--date", day)
        cli(workspace, "evaluate", MODEL, "--version", str(version), "--date", day)
        cli(workspace, "push", MODEL, "--version", str(version))
    return workspace


def _version(workspace: Path, number: int) -> Path:
    return workspace / ".spindle" / "artifacts" / "models" / MODEL / str(number)


def test_the_second_day_continues_boosting_the_first_days_trees(workspace: Path) -> None:
    first = lgb.Booster(model_file=str(_version(workspace, 1) / BOOSTER_FILE))
    second = lgb.Booster(model_file=str(_version(workspace, 2) / BOOSTER_FILE))
    assert first.current_iteration() == ROUNDS
    assert second.current_iteration() == ROUNDS + WARM_ROUNDS
    assert second.dump_model()["tree_info"][:ROUNDS] == first.dump_model()["tree_info"]
    evaluations = workspace / ".spindle" / "artifacts" / "evaluations" / MODEL
    report = json.loads(next(evaluations.glob(f"2-{DAYS[1]}-*.json")).read_text())
    assert report["decision"] == "pass" and report["metrics"]["candidate"]["auc"] > 0.6, report
    infra = json.loads((evaluations / "2-infra.json").read_text())  # ONNX served == trainer's
    assert infra["passed"] and infra["max_abs_diff"] < 1e-5, infra


def test_served_scores_equal_the_trainers_own_predictions(workspace: Path) -> None:
    with Context.open(workspace) as ctx:
        repo, store_path = ctx.workspace.model_repo, ctx.workspace.online_store_path
    version = _version(workspace, 2)
    trainset = next((version.parents[2] / "trainsets" / MODEL).glob("*.parquet"))
    declarations = ServingDeclarations.of(FeatureRegistry.load(workspace / "features"))
    app = create_app(repo, store_path, declarations=declarations, latency_budget_ms=10_000)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        schema = client.get(f"/v1/models/{MODEL}/schema").json()
        columns = [*KEYS, *(c for c in schema["request_columns"] if c not in KEYS)]
        instances = pq.read_table(trainset, columns=columns).slice(0, 200)
        instances = instances.filter(pa.compute.is_valid(instances["tailnum"]))
        answer = client.post(
            f"/v1/models/{MODEL}/predict", json={"instances": instances.to_pylist()}
        )
    assert answer.status_code == 200, answer.text
    served = np.array([p["score"] for p in answer.json()["predictions"]])
    views = {lookup["view"]: lookup["keys"] for lookup in schema["entities"]}
    inputs = _inputs(version, store_path, instances, views)
    expected = LightGBMTrainer().predict(version, inputs)
    assert expected.shape == (instances.num_rows,) and len(set(expected.tolist())) > 5
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def _inputs(
    version: Path, store_path: Path, instances: pa.Table, views: dict[str, list[str]]
) -> dict[str, np.ndarray]:
    """The model inputs of the instances joined with every stored row of each view."""
    rows = online_rows(store_path, instances, views)
    runtime = ModelRuntime.load(version)
    inputs: dict[str, np.ndarray] = runtime.transform.transform(
        apply_request_features(rows, runtime.transform.request)
    )
    return inputs
