"""Regression and multiclass heads: they learn, export equal to torch, resume and warm start."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_data import make_dataset
from train_runs import Stop, stop_after

from spindle.core import EvaluationConfig, TrainingConfig, TrainingError
from spindle.evaluate import SystemScores, evaluate_scores
from spindle.train import InputSpec, Ranker, load_weights, predict, train_model, with_head

CONFIG = TrainingConfig(
    epochs=4,
    batch_size=128,
    learning_rate=0.01,
    embedding_dim=8,
    hidden_units=[32, 16],
    checkpoint_every_steps=10,
    threads=1,
    seed=5,
)
ROWS = 4000


def _regression(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, InputSpec]:
    """y = 3 x + noise, in minutes-scale units (offset 40, spread ~30): the head standardises."""
    inputs, _, spec = make_dataset(ROWS, ("cat", "dense"), seed=seed)
    rng = np.random.default_rng(seed + 100)
    x = inputs["dense"][:, 0]
    labels = (40 + 10 * (3 * x + rng.normal(0, 0.3, len(x)))).astype(np.float32)
    return inputs, labels, spec


def _multiclass(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, InputSpec]:
    """Three classes separated by thresholds of one dense column."""
    inputs, _, spec = make_dataset(ROWS, ("cat", "dense"), seed=seed)
    x = inputs["dense"][:, 1]
    labels = np.digitize(x, [-0.5, 0.5]).astype(np.float32)
    return inputs, labels, spec


def _torch_scores(out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The served output of the saved weights, computed by torch (not onnxruntime)."""
    spec = InputSpec.from_dict(json.loads((out_dir / "input_spec.json").read_text()))
    model = Ranker(spec, CONFIG)
    model.load_state_dict(load_weights(out_dir))
    model.eval()
    with torch.no_grad():
        out = model.served(**{n: torch.from_numpy(a) for n, a in inputs.items()})
    return out.numpy()


def test_regression_learns_the_value_and_onnx_answers_it(tmp_path: Path) -> None:
    inputs, labels, spec = _regression(0)
    head = with_head(spec, "regression", labels)
    assert head.outputs == 1 and abs(head.label_mean - labels.mean()) < 1e-3
    result = train_model(
        inputs, labels, head, CONFIG, tmp_path / "v", checkpoint_dir=tmp_path / "c"
    )
    test_inputs, test_labels, _ = _regression(1)
    values = predict(result.out_dir, test_inputs)
    assert values.shape == (ROWS,)
    rmse = float(np.sqrt(np.mean((values - test_labels) ** 2)))
    assert rmse < 0.25 * float(test_labels.std()), (rmse, test_labels.std())
    np.testing.assert_allclose(
        values, _torch_scores(result.out_dir, test_inputs), rtol=1e-5, atol=1e-5
    )
    report = evaluate_scores(
        "regression",
        test_labels,
        None,
        [SystemScores("candidate", values.astype(np.float64))],
        EvaluationConfig(metric="rmse"),
        baseline=None,
        reference=None,
    )
    assert report.metrics["candidate"]["rmse"] == pytest.approx(rmse, rel=1e-4)


def test_multiclass_learns_separable_classes_with_k_logits(tmp_path: Path) -> None:
    inputs, labels, spec = _multiclass(0)
    head = with_head(spec, "multiclass", labels)
    assert head.classes == 3 and head.to_dict()["classes"] == 3
    result = train_model(
        inputs, labels, head, CONFIG, tmp_path / "v", checkpoint_dir=tmp_path / "c"
    )
    test_inputs, test_labels, _ = _multiclass(1)
    logits = predict(result.out_dir, test_inputs)
    assert logits.shape == (ROWS, 3)
    np.testing.assert_allclose(logits, _torch_scores(result.out_dir, test_inputs), atol=1e-5)
    probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    accuracy = float((logits.argmax(axis=1) == test_labels).mean())
    assert accuracy > 0.9, accuracy
    report = evaluate_scores(
        "multiclass",
        test_labels,
        None,
        [SystemScores("candidate", logits.astype(np.float64))],
        EvaluationConfig(metric="accuracy"),
        baseline=None,
        reference=None,
    )
    assert report.metrics["candidate"]["accuracy"] == pytest.approx(accuracy, abs=1e-9)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_a_resumed_run_ends_bit_identical(task: str, tmp_path: Path) -> None:
    inputs, labels, spec = _regression(0) if task == "regression" else _multiclass(0)
    head = with_head(spec, task, labels)
    config = CONFIG.model_copy(update={"epochs": 2})
    whole = train_model(
        inputs, labels, head, config, tmp_path / "a", checkpoint_dir=tmp_path / "ca"
    )
    with pytest.raises(Stop):
        train_model(
            inputs,
            labels,
            head,
            config,
            tmp_path / "b",
            checkpoint_dir=tmp_path / "cb",
            progress=stop_after(25),
        )
    resumed = train_model(
        inputs, labels, head, config, tmp_path / "b", checkpoint_dir=tmp_path / "cb"
    )
    assert resumed.resumed_from_step is not None
    assert resumed.weights_sha256 == whole.weights_sha256


def test_a_head_of_another_width_is_not_warm_started(tmp_path: Path) -> None:
    inputs, labels, spec = _multiclass(0)
    config = CONFIG.model_copy(update={"epochs": 1, "warm_start_epochs": 1})
    base = train_model(
        inputs,
        labels,
        with_head(spec, "multiclass", labels),
        config,
        tmp_path / "base",
        checkpoint_dir=tmp_path / "c0",
    )
    wider = with_head(spec, "multiclass", labels, classes=4)
    result = train_model(
        inputs,
        labels,
        wider,
        config,
        tmp_path / "v",
        checkpoint_dir=tmp_path / "c1",
        base_weights=base.out_dir,
    )
    assert result.warm_started
    kept = [n for n in result.notes if n.startswith("warm start kept fresh")]
    assert any("mlp.4.weight" in n and "(3, 16) -> (4, 16)" in n for n in kept), result.notes
    assert any("classes 3 -> 4" in n for n in result.notes), result.notes
    assert predict(result.out_dir, inputs).shape == (ROWS, 4)


def test_labels_that_do_not_fit_the_head_are_refused(tmp_path: Path) -> None:
    inputs, labels, spec = _regression(0)
    bad = labels.copy()
    bad[7] = np.nan
    head = with_head(spec, "regression", labels)
    with pytest.raises(TrainingError, match=r"regression labels must be finite.*row 7"):
        train_model(inputs, bad, head, CONFIG, tmp_path / "v", checkpoint_dir=tmp_path / "c")
    classes = np.zeros(ROWS, np.float32)
    classes[3] = 1.5
    with pytest.raises(TrainingError, match=r"class indices.*row 3 = 1\.5"):
        with_head(spec, "multiclass", classes)
    with pytest.raises(TrainingError, match=r"class indices \[0, 2\).*row 0 = 2"):
        train_model(
            inputs,
            np.full(ROWS, 2, np.float32),
            with_head(spec, "multiclass", classes[:1] * 0 + 1),
            CONFIG,
            tmp_path / "w",
            checkpoint_dir=tmp_path / "c2",
        )
    assert not (tmp_path / "v").exists() and not (tmp_path / "w").exists()


def test_binary_and_ranking_specs_are_unchanged() -> None:
    _, labels, spec = make_dataset(100, ("dense",))
    assert with_head(spec, "binary", labels) is spec
    assert with_head(spec, "ranking", labels) is spec
    assert spec.to_dict() == InputSpec.from_dict(spec.to_dict()).to_dict()
    assert set(spec.to_dict()) == {
        "cat_cardinalities",
        "text_vocab_size",
        "n_text",
        "text_len",
        "n_dense",
    }


def test_the_planned_path_equals_the_plain_model_for_a_k_wide_head() -> None:
    spec = InputSpec((30, 4), 25, 2, 5, 3, task="multiclass", classes=3)
    torch.manual_seed(0)
    model = Ranker(spec, TrainingConfig(embedding_dim=8, hidden_units=[16]))
    rng = np.random.default_rng(2)
    arrays = {
        "cat": np.stack([rng.integers(0, c, 64) for c in spec.cat_cardinalities], 1),
        "text": rng.integers(0, 25, (64, 2, 5)),
        "dense": rng.standard_normal((64, 3)).astype(np.float32),
    }
    tensors = {n: torch.from_numpy(a) for n, a in arrays.items()}
    results = []
    for planned in (False, True):
        model.zero_grad(set_to_none=True)
        model.train(planned)
        plan = model.plan(arrays["cat"], arrays["text"]) if planned else None
        logits = model(**tensors, plan=plan)
        labels = torch.from_numpy((arrays["dense"][:, 0] > 0).astype(np.float32) * 2)
        torch.nn.functional.cross_entropy(logits, labels.long()).backward()  # type: ignore[no-untyped-call]
        grads = {
            n: p.grad.to_dense() if p.grad.is_sparse else p.grad
            for n, p in model.named_parameters()
            if p.grad is not None
        }
        results.append((logits.detach(), grads))
    (plain, plain_grads), (fast, fast_grads) = results
    assert fast.shape == (64, 3)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    assert set(fast_grads) == set(plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.slow  # two DDP launches (~15 s each on an idle machine)
@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_two_workers_follow_one_worker_for_the_new_heads(task: str, tmp_path: Path) -> None:
    inputs, labels, spec = _regression(0) if task == "regression" else _multiclass(0)
    head = with_head(spec, task, labels)
    weights = np.linspace(0.0, 2.0, ROWS).astype(np.float32)  # weighted: the other loss path
    config = CONFIG.model_copy(update={"epochs": 1})
    runs = [
        train_model(
            inputs,
            labels,
            head,
            config.model_copy(update={"workers": workers}),
            tmp_path / f"v{workers}",
            checkpoint_dir=tmp_path / f"c{workers}",
            weights=weights if task == "multiclass" else None,
        )
        for workers in (1, 2)
    ]
    one, two = runs
    assert two.workers == 2 and len(one.loss_history) == len(two.loss_history) == 32
    np.testing.assert_allclose(two.loss_history, one.loss_history, rtol=0, atol=1e-5)
    assert predict(two.out_dir, inputs).shape == ((ROWS,) if task == "regression" else (ROWS, 3))


def test_group_ids_are_the_rank_of_each_key_among_the_sorted_keys() -> None:
    """Groups found in Arrow are what ``np.unique(..., return_inverse=True)`` gives, for text
    keys (non-ASCII and empty ones too), integer keys and several chunks."""
    import random
    from types import SimpleNamespace
    from typing import Any

    import numpy as np
    import pyarrow as pa

    from spindle.train import labels_and_groups

    rng = random.Random(5)
    # what labels_and_groups reads of a model config
    config: Any = SimpleNamespace(name="m", task="ranking", label="y", group_key="g")
    for keys in (
        [rng.choice(["b", "a", "é", "ab", "Z", ""]) for _ in range(2000)],
        [rng.randint(-5, 50) for _ in range(2000)],
    ):
        column = pa.chunked_array([pa.array(keys[:700]), pa.array(keys[700:])])
        table = pa.table({"g": column, "y": pa.array([1.0] * len(keys))})
        _, groups = labels_and_groups(table, config)
        _, expected = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        assert groups is not None and np.array_equal(groups, expected)
