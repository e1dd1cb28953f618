"""The lightgbm family: every task served with raw scores, weights, warm start, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from train_data import auc, make_dataset
from train_runs import CONFIG, Dataset, Stop, kill_then_resume, stop_after

from spindle.core import TrainingConfig, TrainingError
from spindle.train import InputSpec, predict, trainer_for
from spindle.train._lightgbm import BOOSTER_FILE, LightGBMTrainer
from spindle.train._lightgbm_onnx import feature_matrix, feature_names

ROUNDS = 40


def _config(**tree: object) -> TrainingConfig:
    trees = CONFIG.lightgbm.model_copy(
        update={"num_boost_round": ROUNDS, "warm_start_rounds": 10, **tree}
    )
    config: TrainingConfig = CONFIG.model_copy(update={"framework": "lightgbm", "lightgbm": trees})
    return config


def _labels(task: str, data: Dataset) -> tuple[np.ndarray, int]:
    """Labels of ``task`` with signal in every input kind (and the class count)."""
    inputs, labels, _ = data
    if task == "regression":
        value = 3.0 * labels + inputs["dense"][:, 0] + 0.1 * inputs["cat"][:, 1]
        return value.astype(np.float32), 0
    if task == "multiclass":
        return (labels + (inputs["dense"][:, 1] > 0)).astype(np.float32), 3
    return labels, 0


@pytest.mark.parametrize("task", ["binary", "ranking", "regression", "multiclass"])
def test_every_task_serves_the_boosters_raw_scores(
    task: str, data: Dataset, tmp_path: Path
) -> None:
    inputs, _, spec = data
    labels, classes = _labels(task, data)
    spec = replace(spec, task=task, classes=classes)
    trainer = LightGBMTrainer()
    result = trainer.train(
        inputs, labels, spec, _config(), tmp_path / "v1", checkpoint_dir=tmp_path
    )
    assert result.steps == ROUNDS and result.weights_path.name == BOOSTER_FILE
    assert (task == "ranking") == any("pointwise" in note for note in result.notes)
    held_out, truth, _ = make_dataset(1500, seed=9)
    booster = lgb.Booster(model_file=str(result.weights_path))
    raw = np.asarray(booster.predict(feature_matrix(held_out, spec), raw_score=True))  # no sigmoid
    served = predict(result.out_dir, held_out)
    shape = (1500, 3) if task == "multiclass" else (1500,)
    assert served.dtype == np.float32 and served.shape == shape
    np.testing.assert_allclose(served, raw.reshape(shape), rtol=1e-5, atol=1e-4)
    native = trainer.predict(result.out_dir, held_out)
    np.testing.assert_array_equal(native, raw.reshape(shape).astype(np.float32))
    if task in ("binary", "ranking"):
        assert auc(served, truth) > 0.75


@pytest.mark.parametrize("kinds", [("cat",), ("dense",), ("text",), ("one_text", "dense")])
def test_every_input_layout_exports(kinds: tuple[str, ...], tmp_path: Path) -> None:
    """Any mix of inputs (one text column: word counts, no overlap) serves the raw scores."""
    one_text = "one_text" in kinds
    inputs, labels, spec = make_dataset(1500, ("text", *kinds) if one_text else kinds, seed=0)
    if one_text:
        inputs["text"] = np.ascontiguousarray(inputs["text"][:, :1])
        spec = replace(spec, n_text=1)
        assert feature_names(spec)[-5:] == ["text_words_0", *(f"dense_{d}" for d in range(4))]
    result = LightGBMTrainer().train(
        inputs, labels, spec, _config(), tmp_path / "v1", checkpoint_dir=tmp_path
    )
    booster = lgb.Booster(model_file=str(result.weights_path))
    raw = np.asarray(booster.predict(feature_matrix(inputs, spec), raw_score=True))
    np.testing.assert_allclose(predict(result.out_dir, inputs), raw, rtol=1e-5, atol=1e-4)


def test_the_trees_see_word_counts_and_the_overlap_of_the_first_two_text_columns() -> None:
    inputs, _, spec = make_dataset(3, seed=0)
    inputs["text"][0] = [[5, 6, 6, 0, 0, 0], [6, 7, 5, 0, 0, 0]]
    inputs["text"][1] = [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    inputs["text"][2] = [[1, 2, 3, 0, 0, 0], [4, 0, 0, 0, 0, 9]]
    names = feature_names(spec)
    assert names == ["cat_0", "cat_1", "cat_2", "text_words_0", "text_words_1", "text_overlap"] + [
        f"dense_{d}" for d in range(4)
    ]
    matrix = feature_matrix(inputs, spec)
    column = {name: matrix[:, i].tolist() for i, name in enumerate(names)}
    assert column["text_words_0"] == [3, 0, 3] and column["text_words_1"] == [3, 0, 2]
    assert column["text_overlap"] == [3, 0, 0]  # padding never matches padding
    assert column["cat_1"] == inputs["cat"][:, 1].tolist()


def test_weights_change_the_model(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    trainer, config = LightGBMTrainer(), _config()
    plain = trainer.train(
        inputs, labels, spec, config, tmp_path / "a", checkpoint_dir=tmp_path / "c"
    )
    weights = np.where(labels == 1, 4.0, 1.0).astype(np.float32)
    weighted = trainer.train(
        inputs, labels, spec, config, tmp_path / "b", checkpoint_dir=tmp_path / "d", weights=weights
    )
    assert weighted.weights_sha256 != plain.weights_sha256
    # positives weigh 4x: the weighted model scores higher on average
    assert predict(weighted.out_dir, inputs).mean() > predict(plain.out_dir, inputs).mean() + 0.5


def test_warm_start_adds_rounds_and_keeps_the_base_trees(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    trainer, config = LightGBMTrainer(), _config()
    base = trainer.train(
        inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c1"
    )
    seen: list[tuple[int, int]] = []
    warm = trainer.train(
        inputs,
        labels,
        spec,
        config,
        tmp_path / "v2",
        checkpoint_dir=tmp_path / "c2",
        base_dir=base.out_dir,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert warm.warm_started and warm.steps == ROUNDS + 10
    assert seen == [(k, 10) for k in range(1, 11)]
    old = lgb.Booster(model_file=str(base.weights_path)).dump_model()["tree_info"]
    new = lgb.Booster(model_file=str(warm.weights_path)).dump_model()["tree_info"]
    assert new[:ROUNDS] == old
    assert warm.final_loss < base.final_loss


def test_a_base_of_another_family_is_refused_in_one_line(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    config = _config().model_copy(update={"framework": "sklearn"})
    linear = trainer_for(config).train(
        {"cat": inputs["cat"], "dense": inputs["dense"]},
        labels,
        replace(spec, n_text=0, text_len=0, text_vocab_size=0),
        config,
        tmp_path / "v1",
        checkpoint_dir=tmp_path / "c1",
    )
    with pytest.raises(TrainingError) as caught:
        LightGBMTrainer().train(
            inputs,
            labels,
            spec,
            _config(),
            tmp_path / "v2",
            checkpoint_dir=tmp_path / "c2",
            base_dir=linear.out_dir,
        )
    message = str(caught.value)
    assert "\n" not in message and "sklearn" in message and "lightgbm" in message
    assert "train from scratch" in message and not (tmp_path / "v2").exists()
    with pytest.raises(TrainingError, match="not a lightgbm model version"):
        LightGBMTrainer().predict(linear.out_dir, inputs)


def test_a_base_with_other_inputs_is_refused(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    trainer = LightGBMTrainer()
    base = trainer.train(inputs, labels, spec, _config(), tmp_path / "v1", checkpoint_dir=tmp_path)
    fewer = {"cat": inputs["cat"], "dense": inputs["dense"]}
    smaller = replace(spec, n_text=0, text_len=0, text_vocab_size=0)
    with pytest.raises(TrainingError, match=r"its inputs differ \(n_text 2 -> 0\)"):
        trainer.train(
            fewer, labels, smaller, _config(), tmp_path / "v2", checkpoint_dir=tmp_path / "c2",
            base_dir=base.out_dir,
        )  # fmt: skip
    assert not (tmp_path / "v2").exists()


def test_an_option_the_converter_ignores_fails_the_export_check(
    data: Dataset, tmp_path: Path
) -> None:
    """``linear_tree`` fits a linear model per leaf, which onnxmltools drops: the check after
    export catches the difference, and no version is written."""
    inputs, labels, spec = data
    config = _config(params={"linear_tree": True})
    with pytest.raises(TrainingError, match=r"v1/model.onnx: the exported trees .* linear_tree"):
        LightGBMTrainer().train(
            inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path
        )
    assert not (tmp_path / "v1").exists()


def test_a_split_between_two_neighbouring_float32_values_is_served_as_lightgbm_splits(
    tmp_path: Path,
) -> None:
    """LightGBM splits a dense column holding two float32 values one step apart at their
    midpoint, a double; rounded to the nearest float32 that threshold became the upper value,
    so its rows went left in ONNX and right in LightGBM (the flights data, 2013-01-12). The
    exported thresholds are rounded down: the served scores equal the booster's."""
    rng = np.random.default_rng(0)
    low = np.float32(-1.0866615)
    high = np.nextafter(low, np.float32(np.inf))
    upper = rng.random(400) < 0.5
    dense = rng.normal(size=(400, 2)).astype(np.float32)
    dense[:, 0] = np.where(upper, high, low)
    spec = InputSpec(n_dense=2, task="binary")
    result = LightGBMTrainer().train(
        {"dense": dense}, upper.astype(np.float32), spec, _config(num_boost_round=5),
        tmp_path / "v1", checkpoint_dir=tmp_path,
    )  # fmt: skip
    booster = lgb.Booster(model_file=str(result.weights_path))
    first = float(booster.dump_model()["tree_info"][0]["tree_structure"]["threshold"])
    assert float(low) < first < float(high)  # a double between the two values
    assert np.float32(first) == high  # which the nearest float32 was
    raw = booster.predict(feature_matrix({"dense": dense}, spec), raw_score=True)
    assert np.ptp(raw) > 0.5  # the split separates the rows
    np.testing.assert_allclose(predict(result.out_dir, {"dense": dense}), raw, atol=1e-5)


def test_resume_after_a_stop_equals_an_unbroken_run(data: Dataset, tmp_path: Path) -> None:
    """Without row or feature sampling, continuing from the checkpoint of round 20 grows the
    very trees of an unbroken run (with bagging or feature_fraction < 1 it does not: the
    sampler's random state starts again at the resumed round)."""
    inputs, labels, spec = data
    trainer, config = LightGBMTrainer(), _config()
    unbroken = trainer.train(
        inputs, labels, spec, config, tmp_path / "a", checkpoint_dir=tmp_path / "c"
    )
    with pytest.raises(Stop):
        trainer.train(
            inputs, labels, spec, config, tmp_path / "b", checkpoint_dir=tmp_path / "d",
            progress=stop_after(25),
        )  # fmt: skip
    assert not (tmp_path / "b").exists()
    resumed = trainer.train(
        inputs, labels, spec, config, tmp_path / "b", checkpoint_dir=tmp_path / "d"
    )
    assert resumed.resumed_from_step == 20 and resumed.steps == ROUNDS
    assert resumed.weights_sha256 == unbroken.weights_sha256  # the same trees, bit for bit
    held_out, _, _ = make_dataset(1000, seed=9)
    np.testing.assert_allclose(
        trainer.predict(resumed.out_dir, held_out), trainer.predict(unbroken.out_dir, held_out),
        rtol=0, atol=1e-6,
    )  # fmt: skip
    again = trainer.train(
        inputs, labels, spec, config, tmp_path / "e", checkpoint_dir=tmp_path / "d"
    )
    assert again.resumed_from_step == ROUNDS  # the final checkpoint: nothing left to boost
    assert again.weights_sha256 == unbroken.weights_sha256


_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from train_data import make_dataset
from spindle.core import TrainingConfig
from spindle.train._lightgbm import LightGBMTrainer

inputs, labels, spec = make_dataset(3000, seed=0)
config = TrainingConfig.model_validate_json({config!r})
slow = {slow!r}
result = LightGBMTrainer().train(
    inputs, labels, spec, config, Path({out!r}), checkpoint_dir=Path({ckpt!r}),
    progress=(lambda done, total: time.sleep(0.03)) if slow else None)
print(json.dumps({{"resumed": result.resumed_from_step, "steps": result.steps,
                  "sha": result.weights_sha256}}))
"""


def test_resume_after_sigkill_predicts_as_an_unbroken_run(tmp_path: Path) -> None:
    config = _config(num_boost_round=60)

    def start(slow: bool) -> subprocess.Popen[str]:
        code = _CHILD.format(
            tests=str(Path(__file__).parent),
            config=config.model_dump_json(),
            slow=slow,
            out=str(tmp_path / "v1"),
            ckpt=str(tmp_path / "ckpt"),
        )
        return subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    result = kill_then_resume(start, tmp_path / "ckpt", tmp_path / "v1")
    assert result["resumed"] is not None and result["resumed"] >= 10, result
    assert result["steps"] == 60
    inputs, labels, spec = make_dataset(3000, seed=0)
    trainer = LightGBMTrainer()
    unbroken = trainer.train(
        inputs, labels, spec, config, tmp_path / "v2", checkpoint_dir=tmp_path / "c"
    )
    held_out, _, _ = make_dataset(1000, seed=9)
    assert result["sha"] == unbroken.weights_sha256  # continuation grows the same trees
    resumed_scores = trainer.predict(tmp_path / "v1", held_out)
    np.testing.assert_allclose(
        resumed_scores, trainer.predict(unbroken.out_dir, held_out), rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(predict(tmp_path / "v1", held_out), resumed_scores, atol=1e-4)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("nan_label", "labels must be 0 or 1"),
        ("nan_regression_label", "regression labels must be finite"),
        ("class_out_of_range", r"class indices \[0, 3\)"),
        ("inf_dense", "non-finite value in inputs\\['dense'\\] row 7"),
        ("int32_cat", "dtype int32"),
        ("negative_weight", "weight"),
        ("reserved_param", "training.lightgbm.params sets objective"),
        ("huge_cardinality", "hash that feature into fewer buckets"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    change: str, match: str, data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    inputs, labels = dict(inputs), labels.copy()
    config, weights = _config(), None
    if change == "nan_label":
        labels[3] = np.nan
    elif change == "nan_regression_label":
        spec, labels[3] = replace(spec, task="regression"), np.nan
    elif change == "class_out_of_range":
        spec, labels[3] = replace(spec, task="multiclass", classes=3), 3
    elif change == "inf_dense":
        inputs["dense"] = inputs["dense"].copy()
        inputs["dense"][7, 2] = np.inf
    elif change == "int32_cat":
        inputs["cat"] = inputs["cat"].astype(np.int32)
    elif change == "negative_weight":
        weights = np.ones(len(labels), np.float32)
        weights[4] = -1
    elif change == "huge_cardinality":
        spec = replace(spec, cat_cardinalities=(2**24 + 1, *spec.cat_cardinalities[1:]))
    else:
        config = _config(params={"objective": "huber"})
    with pytest.raises(TrainingError, match=match) as caught:
        LightGBMTrainer().train(
            inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c",
            weights=weights,
        )  # fmt: skip
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "v1").exists()


def test_training_is_deterministic_with_several_threads(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    config = _config().model_copy(update={"threads": 4})
    runs = [
        LightGBMTrainer().train(
            inputs, labels, spec, config, tmp_path / f"v{i}", checkpoint_dir=tmp_path / f"c{i}"
        )
        for i in (1, 2)
    ]
    assert runs[0].weights_sha256 == runs[1].weights_sha256
    stored = json.loads((runs[0].out_dir / "input_spec.json").read_text())
    assert stored == spec.to_dict()
