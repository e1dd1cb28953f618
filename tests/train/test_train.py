"""train_model: learns, is deterministic, exports a matching ONNX model, refuses bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from train_data import auc, make_dataset
from train_runs import CONFIG, ROWS, Dataset, run_recipe

from spindle.core import TrainingError
from spindle.train import (
    InputSpec,
    Ranker,
    TrainResult,
    load_weights,
    predict,
    state_dict_sha256,
    train_model,
)


@pytest.mark.parametrize(
    ("kinds", "min_auc"),
    [(("dense",), 0.7), (("cat", "dense"), 0.8), (("cat", "text", "dense"), 0.8)],
)
def test_learns_the_signal_and_exports_a_matching_model(
    tmp_path: Path, kinds: tuple[str, ...], min_auc: float
) -> None:
    inputs, labels, spec = make_dataset(6000, kinds, seed=0)
    config = CONFIG.model_copy(update={"epochs": 3})
    result = train_model(
        inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "ckpt"
    )

    assert sorted(p.name for p in result.out_dir.iterdir()) == [
        "input_spec.json",
        "model.onnx",
        "weights.pt",
    ]
    assert InputSpec.from_dict(json.loads((result.out_dir / "input_spec.json").read_text())) == spec
    assert (result.examples, result.epochs, result.steps) == (6000, 3, 3 * 47)
    assert result.examples_per_s > 0 and result.cpu_s > 0 and result.peak_rss_mb > 0
    assert result.utilisation > 0 and np.isfinite(result.final_loss)
    assert result.resumed_from_step is None and not result.warm_started

    graph = onnx.load(str(result.onnx_path)).graph
    assert [i.name for i in graph.input] == list(kinds)
    assert [o.name for o in graph.output] == ["score"]

    held_out, held_labels, _ = make_dataset(4000, kinds, seed=1)
    scores = predict(result.out_dir, held_out)
    assert scores.dtype == np.float32 and scores.shape == (4000,)
    assert auc(scores, held_labels) > min_auc

    model = Ranker(spec, config)
    model.load_state_dict(load_weights(result.out_dir))
    assert state_dict_sha256(model.state_dict()) == result.weights_sha256
    model.eval()
    for rows in (1, 4000):
        batch = {name: array[:rows] for name, array in held_out.items()}
        with torch.no_grad():
            expected = model(**{n: torch.from_numpy(a) for n, a in batch.items()}).numpy()
        np.testing.assert_allclose(predict(result.out_dir, batch), expected, rtol=1e-5, atol=1e-5)


def test_two_runs_give_bit_identical_weights(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    again = train_model(
        inputs, labels, spec, CONFIG, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
    )
    assert again.weights_sha256 == reference.weights_sha256
    assert again.final_loss == reference.final_loss
    other_seed = run_recipe(data, tmp_path / "c2", CONFIG.model_copy(update={"seed": 4}))
    assert state_dict_sha256(other_seed.model.state_dict()) != reference.weights_sha256


def test_empty_training_set_is_refused(tmp_path: Path) -> None:
    inputs, labels, spec = make_dataset(0)
    with pytest.raises(TrainingError, match="empty"):
        train_model(inputs, labels, spec, CONFIG, tmp_path / "v1", checkpoint_dir=tmp_path / "c")
    assert not (tmp_path / "v1").exists()


def test_nan_input_names_epoch_step_and_batch_and_keeps_the_last_checkpoint(
    data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    # Put the NaN in the row that epoch 0 feeds at step 15: checkpoint 10 exists by then.
    first_permutation = np.random.default_rng(CONFIG.seed).permutation(ROWS)
    bad_row = int(first_permutation[15 * CONFIG.batch_size + 3])
    dense = inputs["dense"].copy()
    dense[bad_row, 2] = np.nan
    with pytest.raises(TrainingError) as error:
        train_model(
            {**inputs, "dense": dense},
            labels,
            spec,
            CONFIG,
            tmp_path / "v1",
            checkpoint_dir=tmp_path / "c",
        )
    message = str(error.value)
    assert "epoch 0, step 15" in message and "batch rows" in message
    assert f"row {bad_row} is" in message
    assert not (tmp_path / "v1").exists()
    assert any(p.name.endswith("0000000010.pt") for p in (tmp_path / "c").iterdir())


def test_non_finite_loss_is_a_training_error(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    dense = inputs["dense"].copy()
    dense[:, 0] = 3e38  # finite inputs whose logits overflow
    with pytest.raises(TrainingError, match=r"loss became (nan|inf).*epoch 0, step 0"):
        train_model(
            {**inputs, "dense": dense},
            labels,
            spec,
            CONFIG,
            tmp_path / "v1",
            checkpoint_dir=tmp_path / "c",
        )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.full(ROWS, 2.0, np.float32), "0 or 1"),
        (np.zeros(ROWS, np.float64), "float32"),
        (np.zeros(ROWS - 1, np.float32), "one per input row"),
    ],
)
def test_bad_labels_are_refused(
    data: Dataset, tmp_path: Path, labels: np.ndarray, message: str
) -> None:
    inputs, _, spec = data
    with pytest.raises(TrainingError, match=message):
        train_model(inputs, labels, spec, CONFIG, tmp_path / "v1", checkpoint_dir=tmp_path / "c")


def test_existing_out_dir_is_never_overwritten(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    (tmp_path / "v1").mkdir()
    with pytest.raises(TrainingError, match="immutable"):
        train_model(inputs, labels, spec, CONFIG, tmp_path / "v1", checkpoint_dir=tmp_path / "c")
