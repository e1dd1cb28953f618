"""A user's own torch module as a workspace's model, through the whole loop by the CLI.

The flights workspace's ``delay`` model declares ``framework: custom`` with its module in the
workspace (``models_py/delay_net.py``, imported as ``models_py.delay_net``). ``spindle train``
runs twice (the second warm starts from the first, pushed, version), ``spindle evaluate`` and
``spindle push`` gate and ship each, and the pushed version is served over loopback HTTP: its
``/v1/models/delay/predict`` answers must equal the custom trainer's own scores of the same
rows within 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.flights_helpers import cli

from spindle.core import TrainingConfig
from spindle.features import FeatureRegistry, OnlineStore, apply_request_features
from spindle.orchestrate import Context
from spindle.serve import ModelRuntime, ServerThread, ServingDeclarations, create_app
from spindle.train import trainer_for

pytestmark = pytest.mark.e2e

DAYS = ("2013-01-05", "2013-01-06")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "your-model.md"


def _documented_module() -> str:
    """The complete example of docs/your-model.md's custom-module contract, as written there:
    the test runs the module the docs show, so the two cannot drift apart."""
    text = DOCS.read_text()
    section = text[text.index("#### A complete example") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


MODULE = _documented_module()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("custom")
    cli(root, "init", "flights", "--example", "flights")
    workspace = root / "flights"
    (workspace / "models_py").mkdir()
    (workspace / "models_py" / "__init__.py").write_text("")
    (workspace / "models_py" / "delay_net.py").write_text(MODULE)
    config = yaml.safe_load((workspace / "models" / "delay.yaml").read_text())
    config["baselines"] = []
    config["training"] |= {
        "framework": "custom",
        "custom": {"module": "models_py.delay_net:DelayNet", "options": {"hidden": 16}},
        "window_days": 4,
        "epochs": 3,
        "warm_start": True,  # the example's lightgbm retrains nightly; this one warm starts
        "warm_start_epochs": 1,
        "warm_start_window_days": 2,
    }
    config["evaluation"] = {"metric": "auc", "max_regression": 1.0, "replicas": 1}
    (workspace / "models" / "delay.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cli(workspace, "ingest", "--since", "2013-01-01", "--until", "2013-01-07")
    for version, day in enumerate(DAYS, start=1):
        cli(workspace, "train", "delay", "--date", day)
        cli(workspace, "evaluate", "delay", "--version", str(version), "--date", day)
        cli(workspace, "push", "delay", "--version", str(version))
    return workspace


def test_the_versions_are_custom_and_the_second_warm_starts(workspace: Path) -> None:
    models = workspace / ".spindle/artifacts/models/delay"
    first = json.loads((models / "1" / "manifest.json").read_text())
    second = json.loads((models / "2" / "manifest.json").read_text())
    assert first["framework"] == second["framework"] == "custom"
    custom = second["config"]["training"]["custom"]
    assert custom["module"] == "models_py.delay_net:DelayNet"
    assert (first["base_version"], second["base_version"]) == (None, 1)
    notes = " | ".join(second["notes"])
    assert "custom module models_py.delay_net:DelayNet" in notes
    assert "every tensor copied" in notes, notes


def test_the_served_scores_equal_the_custom_trainers_own(workspace: Path) -> None:
    with Context.open(workspace) as ctx:
        repo, store_path = ctx.workspace.model_repo, ctx.workspace.online_store_path
        version = ctx.workspace.artifacts_dir / "models" / "delay" / "2"
    trainset = sorted((version.parents[2] / "trainsets" / "delay").glob("*.parquet"))[-1]
    declarations = ServingDeclarations.of(FeatureRegistry.load(workspace / "features"))
    app = create_app(repo, store_path, declarations=declarations, latency_budget_ms=10_000)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        schema = client.get("/v1/models/delay/schema").json()
        fields = [*schema["keys"], *schema["request_columns"]]  # what an instance carries
        instances = pq.read_table(trainset, columns=fields).slice(0, 200)
        instances = instances.filter(pa.compute.is_valid(instances["tailnum"]))
        answer = client.post("/v1/models/delay/predict", json={"instances": instances.to_pylist()})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {p.get("version") for p in body["predictions"]} <= {2, "2", None}

    # The same rows, joined offline with every stored feature row, scored by CustomTrainer.
    store = OnlineStore(store_path)
    try:
        rows = instances.append_column("i", pa.array(range(instances.num_rows)))
        for lookup in schema["entities"]:
            held = store.backend.read(lookup["view"])
            assert held is not None
            drop = [c for c in held.column_names if c in ("__spindle_key", "feature_ts")]
            rows = rows.join(held.drop_columns(drop), list(lookup["keys"]), join_type="left outer")
        rows = rows.sort_by("i")
    finally:
        store.close()
    runtime = ModelRuntime.load(version)
    inputs = runtime.transform.transform(apply_request_features(rows, runtime.transform.request))
    config = TrainingConfig(framework="custom", custom={"module": "models_py.delay_net:DelayNet"})
    trainer = trainer_for(config)
    assert trainer.framework == "custom"
    logits = trainer.predict(version, inputs).astype(np.float64)
    served = np.array([p["score"] for p in body["predictions"]], dtype=np.float64)
    assert len(served) == len(logits) > 50 and len(set(served.tolist())) > 10
    np.testing.assert_allclose(served, logits, rtol=1e-5, atol=1e-5)
    probabilities = [p["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)), atol=1e-6)


def test_a_module_that_does_not_import_is_one_line_from_the_cli(workspace: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    args = ["--date", "2013-01-07", "--set", "training.custom.module=models_py.nope:Net"]
    done = subprocess.run(
        ["spindle", "train", "delay", *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "training.custom.module 'models_py.nope:Net': cannot import 'models_py.nope'" in (
        done.stderr + done.stdout
    ), done.stderr[-2000:]
    assert not (workspace / ".spindle/artifacts/models/delay/3").exists()
