"""The custom family: a user's torch module trained by spindle's sync recipe, exported,
resumed, warm started, and refused with one line when it breaks the contract (DDP, bounded
staleness and streaming: ``test_custom_recipes.py``).

The modules are real files imported by path (``tests/train/custom_models/nets.py``), as a
workspace's ``models_py/*.py`` are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from custom_models.nets import TinyNet
from custom_runs import CONFIG, MODULE, ROWS, Data, custom_config, train_custom
from train_data import make_dataset
from train_runs import kill_then_resume

from spindle.core import ConfigError, SpindleError, TrainingConfig, TrainingError
from spindle.train import InputSpec, TrainResult, load_weights, trainer_for, with_head


def _torch_served(out_dir: Path, inputs: dict[str, np.ndarray], **options: Any) -> np.ndarray:
    """The user's own class loaded with ``weights.pt``, mapped by the head: what ONNX must say."""
    spec = InputSpec.from_dict(json.loads((out_dir / "input_spec.json").read_text()))
    net = TinyNet(spec, **options)
    net.load_state_dict(load_weights(out_dir))  # the user's names, no wrapper prefix
    net.eval()
    with torch.no_grad():
        out = net(
            *(
                torch.from_numpy(inputs[n]) if n in inputs else None
                for n in ("cat", "text", "dense")
            )
        )
    if spec.task == "regression":
        out = out * spec.label_std + spec.label_mean
    return out.numpy()


def _regression(seed: int) -> Data:
    inputs, _, spec = make_dataset(ROWS, ("cat", "dense"), seed=seed)
    x = inputs["dense"][:, 0]
    noise = np.random.default_rng(seed + 100).normal(0, 0.3, len(x))
    labels = (40 + 10 * (3 * x + noise)).astype(np.float32)
    return inputs, labels, spec


def _multiclass(seed: int) -> Data:
    inputs, _, spec = make_dataset(ROWS, ("cat", "dense"), seed=seed)
    return inputs, np.digitize(inputs["dense"][:, 1], [-0.5, 0.5]).astype(np.float32), spec


@pytest.fixture(scope="module")
def binary() -> Data:
    return make_dataset(ROWS, seed=0)


@pytest.fixture(scope="module")
def whole(binary: Data, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One uninterrupted binary run: resumed and DDP runs are compared with it."""
    return train_custom(binary, tmp_path_factory.mktemp("whole"))


def test_binary_learns_and_onnx_answers_what_the_users_class_computes(
    whole: TrainResult,
) -> None:
    test_inputs, test_labels, _ = make_dataset(ROWS, seed=1)
    logits = trainer_for(CONFIG).predict(whole.out_dir, test_inputs)
    assert logits.shape == (ROWS,) and logits.dtype == np.float32
    np.testing.assert_allclose(
        logits, _torch_served(whole.out_dir, test_inputs, hidden=16), atol=1e-5
    )
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    log_loss = -np.mean(test_labels * np.log(p) + (1 - test_labels) * np.log(1 - p))
    prior = test_labels.mean()
    constant = -(prior * np.log(prior) + (1 - prior) * np.log(1 - prior))
    assert log_loss < constant - 0.05, (log_loss, constant)
    assert whole.notes[0].startswith(f"custom module {MODULE}: Adam")
    assert (whole.steps, whole.workers) == (48, 1)


def test_predict_scores_in_torch_not_through_the_exported_graph(
    whole: TrainResult, tmp_path: Path
) -> None:
    """Infra validation compares the trainer's scores with model.onnx's: the trainer's must be
    the module's own (weights.pt in the user's class), or a bad export could never be caught."""
    import shutil

    copy = tmp_path / "version"
    shutil.copytree(whole.out_dir, copy)
    (copy / "model.onnx").unlink()
    test_inputs, _, _ = make_dataset(200, seed=3)
    np.testing.assert_allclose(
        trainer_for(CONFIG).predict(copy, test_inputs),
        trainer_for(CONFIG).predict(whole.out_dir, test_inputs),
        atol=0,
    )


def test_regression_learns_in_label_units(tmp_path: Path) -> None:
    inputs, labels, spec = _regression(0)
    head = with_head(spec, "regression", labels)
    result = train_custom((inputs, labels, head), tmp_path, custom_config(epochs=4))
    test_inputs, test_labels, _ = _regression(1)
    values = trainer_for(CONFIG).predict(result.out_dir, test_inputs)
    rmse = float(np.sqrt(np.mean((values - test_labels) ** 2)))
    assert rmse < 0.3 * float(test_labels.std()), (rmse, test_labels.std())
    np.testing.assert_allclose(
        values, _torch_served(result.out_dir, test_inputs, hidden=16), rtol=1e-5, atol=1e-4
    )


def test_multiclass_learns_with_k_logits(tmp_path: Path) -> None:
    inputs, labels, spec = _multiclass(0)
    head = with_head(spec, "multiclass", labels)
    result = train_custom((inputs, labels, head), tmp_path, custom_config(epochs=4))
    test_inputs, test_labels, _ = _multiclass(1)
    logits = trainer_for(CONFIG).predict(result.out_dir, test_inputs)
    assert logits.shape == (ROWS, 3)
    np.testing.assert_allclose(
        logits, _torch_served(result.out_dir, test_inputs, hidden=16), atol=1e-5
    )
    assert float((logits.argmax(axis=1) == test_labels).mean()) > 0.85


def test_warm_start_copies_the_base_and_notes_what_does_not_fit(
    binary: Data, whole: TrainResult, tmp_path: Path
) -> None:
    same = train_custom(binary, tmp_path / "same", base_dir=whole.out_dir)
    assert same.warm_started and same.epochs == CONFIG.warm_start_epochs
    assert any("every tensor copied" in note for note in same.notes), same.notes

    wider = train_custom(
        binary,
        tmp_path / "wide",
        custom_config("custom_models.nets:WideNet"),
        base_dir=whole.out_dir,
    )
    assert wider.warm_started
    assert any("kept fresh: mlp.0.weight (shape (16, 24) -> (24, 24))" in n for n in wider.notes), (
        wider.notes
    )
    assert any("5 tensor(s) copied whole, 0 in part, 3 not" in n for n in wider.notes)
    assert load_weights(wider.out_dir)["mlp.0.weight"].shape == (24, 24)


def test_example_weights_scale_free_and_zero_weight_rows_count_for_nothing(
    binary: Data, tmp_path: Path
) -> None:
    labels = binary[1]
    config = custom_config(epochs=1)
    weights = np.random.default_rng(0).integers(0, 3, len(labels)).astype(np.float32)
    one = train_custom(binary, tmp_path / "a", config, weights=weights)
    four = train_custom(binary, tmp_path / "b", config, weights=4 * weights)
    assert one.weights_sha256 == four.weights_sha256
    unweighted = train_custom(binary, tmp_path / "c", config)
    assert one.weights_sha256 != unweighted.weights_sha256


_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from train_data import make_dataset
from spindle.core import TrainingConfig
from spindle.train import trainer_for

inputs, labels, spec = make_dataset({rows}, seed=0)
config = TrainingConfig.model_validate_json({config!r})
slow = {slow!r}
result = trainer_for(config).train(
    inputs, labels, spec, config, Path({out!r}), checkpoint_dir=Path({ckpt!r}),
    progress=(lambda done, total: time.sleep(0.05)) if slow else None)
print(json.dumps({{"sha": result.weights_sha256, "resumed": result.resumed_from_step}}))
"""


def _child(tmp_path: Path, slow: bool) -> subprocess.Popen[str]:
    code = _CHILD.format(
        tests=str(Path(__file__).parent),
        rows=ROWS,
        config=CONFIG.model_dump_json(),
        slow=slow,
        out=str(tmp_path / "v1"),
        ckpt=str(tmp_path / "ckpt"),
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigkill_mid_run_then_resume_ends_bit_identical(whole: TrainResult, tmp_path: Path) -> None:
    result = kill_then_resume(
        lambda slow: _child(tmp_path, slow=slow), tmp_path / "ckpt", tmp_path / "v1"
    )
    assert result["resumed"] is not None and result["resumed"] >= 10
    assert result["sha"] == whole.weights_sha256


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            custom_config("custom_models.nope:Net"),
            ConfigError,
            r"^training\.custom\.module 'custom_models\.nope:Net': cannot import "
            r"'custom_models\.nope' \(ModuleNotFoundError: .*\); the workspace directory is on "
            r"the import path",
        ),
        (
            custom_config("custom_models.nets:Missing"),
            ConfigError,
            r"custom_models\.nets has no 'Missing' \(file .*nets\.py\); name a class it defines",
        ),
        (
            custom_config("custom_models.nets:NotAModule"),
            ConfigError,
            r"NotAModule is not a torch\.nn\.Module",
        ),
        (
            custom_config("custom_models.nets:NeedsOption"),
            ConfigError,
            r"NeedsOption\(spec, \*\*\{\}\) failed: TypeError: .*depth.*training\.custom\.options",
        ),
        (
            custom_config("custom_models.nets:SparseNet"),
            ConfigError,
            r"sparse-gradient embeddings \(cats\.0",
        ),
        (
            custom_config("custom_models.nets:ColumnNet"),
            TrainingError,
            r"ColumnNet\.forward must return float32 \[N\] for a binary model \(here \[8\]\), it "
            r"returned torch\.float32 \[8, 1\]",
        ),
        (
            custom_config("custom_models.nets:DoubleNet"),
            TrainingError,
            r"returned torch\.float64 \[8\]",
        ),
        (
            custom_config("custom_models.nets:BesselNet", epochs=1),
            TrainingError,
            r"ONNX export to .* failed: torch has no ONNX translation for operator "
            r"prims\.bessel_j0\.default",
        ),
    ],
    ids=[
        "not-importable",
        "no-such-class",
        "not-a-module",
        "constructor-fails",
        "sparse-embeddings",
        "wrong-shape",
        "wrong-dtype",
        "onnx-export",
    ],
)
def test_a_broken_module_or_config_is_one_line_and_writes_nothing(
    config: TrainingConfig, error: type[SpindleError], message: str, tmp_path: Path
) -> None:
    data = make_dataset(300, seed=0)
    with pytest.raises(error, match=message) as caught:
        train_custom(data, tmp_path, config)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "v").exists()


def test_multiclass_output_width_is_checked(tmp_path: Path) -> None:
    inputs, labels, spec = _multiclass(0)
    head = with_head(spec, "multiclass", labels)
    with pytest.raises(TrainingError, match=r"must return float32 \[N, 3\] for a multiclass model"):
        train_custom(
            (inputs, labels, head), tmp_path, custom_config("custom_models.nets:ColumnNet")
        )
