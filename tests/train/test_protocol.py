"""The trainer contract, checked on every implementation (torch, scikit-learn, LightGBM, a custom
torch module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_data import auc, make_dataset
from train_runs import CONFIG

from spindle.core import CustomModelConfig, TrainingConfig, TrainingError
from spindle.train import Trainer, predict, trainer_for

FRAMEWORKS = ["torch", "sklearn", "lightgbm", "custom"]
KINDS = ("cat", "dense")  # what every framework takes (a binary model on user features)


def _trainer(framework: str) -> tuple[Trainer, TrainingConfig]:
    config = CONFIG.model_copy(update={"framework": framework, "epochs": 1})
    # fewer, smaller trees than the defaults: the contract, not the model, is under test
    trees = config.lightgbm.model_copy(update={"num_boost_round": 60, "warm_start_rounds": 10})
    config = config.model_copy(update={"lightgbm": trees})
    if framework == "custom":  # a user's module imported by path (tests/train/custom_models)
        module = CustomModelConfig(module="custom_models.nets:TinyNet")
        config = config.model_copy(update={"custom": module})
    return trainer_for(config), config


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_trains_a_servable_deterministic_model_that_learns(framework: str, tmp_path: Path) -> None:
    trainer, config = _trainer(framework)
    assert trainer.framework == framework
    inputs, labels, spec = make_dataset(3000, KINDS, seed=0)
    runs = [
        trainer.train(
            inputs, labels, spec, config, tmp_path / f"v{i}", checkpoint_dir=tmp_path / f"c{i}"
        )
        for i in (1, 2)
    ]
    assert runs[0].weights_sha256 == runs[1].weights_sha256  # bit-identical weights
    assert runs[0].examples == 3000 and runs[0].cpu_s > 0 and runs[0].examples_per_s > 0
    held_out, truth, _ = make_dataset(2000, KINDS, seed=9)
    served = predict(runs[0].out_dir, held_out)  # the ONNX graph, as the server runs it
    native = trainer.predict(runs[0].out_dir, held_out)
    assert served.dtype == np.float32 and served.shape == (2000,)
    np.testing.assert_allclose(served, native, rtol=1e-4, atol=1e-4)
    assert auc(served, truth) > 0.7
    assert {p.name for p in runs[0].out_dir.iterdir()} >= {"model.onnx", "input_spec.json"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_warm_start_from_its_own_version(framework: str, tmp_path: Path) -> None:
    trainer, config = _trainer(framework)
    inputs, labels, spec = make_dataset(2000, KINDS, seed=0)
    base = trainer.train(
        inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c1"
    )
    again = trainer.train(
        inputs,
        labels,
        spec,
        config,
        tmp_path / "v2",
        checkpoint_dir=tmp_path / "c2",
        base_dir=base.out_dir,
    )
    assert again.warm_started


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_empty_and_non_finite_inputs_are_clear_errors(framework: str, tmp_path: Path) -> None:
    trainer, config = _trainer(framework)
    inputs, labels, spec = make_dataset(0, KINDS)
    with pytest.raises(TrainingError, match="empty"):
        trainer.train(inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c")
    inputs, labels, spec = make_dataset(600, KINDS)
    inputs["dense"][5, 1] = np.nan
    with pytest.raises(TrainingError, match="non-finite"):
        trainer.train(inputs, labels, spec, config, tmp_path / "v2", checkpoint_dir=tmp_path / "c2")
    assert not (tmp_path / "v1").exists() and not (tmp_path / "v2").exists()


def test_sklearn_refuses_text_inputs(tmp_path: Path) -> None:
    trainer, config = _trainer("sklearn")
    inputs, labels, spec = make_dataset(100)
    with pytest.raises(TrainingError, match="framework=torch"):
        trainer.train(inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c")
