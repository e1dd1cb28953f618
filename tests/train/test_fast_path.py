"""The training fast path equals the plain model: planned lookups, the fused backward, oneDNN
products and RowAdam give the plain forward's logits and gradients and SparseAdam's updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spindle.core import TrainingConfig
from spindle.train import InputSpec, Ranker, RowAdam
from spindle.train._lean_adam import LeanAdam

ROWS = 96


def _inputs(spec: InputSpec, rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    if spec.cat_cardinalities:
        inputs["cat"] = np.stack([rng.integers(0, c, rows) for c in spec.cat_cardinalities], 1)
    if spec.n_text:
        text = rng.integers(0, spec.text_vocab_size, (rows, spec.n_text, spec.text_len))
        text[:5] = 0  # rows with no words at all
        text[5:20, :, 2:] = 0  # short texts
        inputs["text"] = text
    if spec.n_dense:
        inputs["dense"] = rng.standard_normal((rows, spec.n_dense)).astype(np.float32)
    return inputs


def _logits_and_grads(
    model: Ranker, inputs: dict[str, np.ndarray], mode: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``mode``: "eval" (the plain layers, as exported), "train" (training-mode products),
    "planned" (what the recipes run: a plan and the fused backward)."""
    model.zero_grad(set_to_none=True)
    model.train(mode != "eval")
    tensors = {name: torch.from_numpy(array) for name, array in inputs.items()}
    plan = model.plan(inputs.get("cat"), inputs.get("text")) if mode == "planned" else None
    logits = model(**tensors, plan=plan)
    (logits * torch.linspace(-1, 2, len(logits))).sum().backward()  # type: ignore[no-untyped-call]
    grads = {}
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        grads[name] = param.grad.to_dense() if param.grad.is_sparse else param.grad
    return logits.detach(), grads


SHAPES = [  # (categorical cardinalities, text columns, dense columns): every kind of model
    (cats, n_text, n_dense)
    for cats in [(), (50, 7, 3)]
    for n_text in [0, 1, 2]
    for n_dense in [0, 4]
    if cats or n_text  # a model without tables plans nothing
]


@pytest.mark.parametrize(("cats", "n_text", "n_dense"), SHAPES)
@pytest.mark.parametrize("hidden", [[], [64, 8]])
def test_planned_forward_and_backward_equal_the_plain_model(
    cats: tuple[int, ...], n_text: int, n_dense: int, hidden: list[int]
) -> None:
    spec = InputSpec(cats, 40 if n_text else 0, n_text, 6 if n_text else 0, n_dense)
    torch.manual_seed(0)
    model = Ranker(spec, TrainingConfig(embedding_dim=8, hidden_units=hidden))
    inputs = _inputs(spec, ROWS, seed=1)
    plain, plain_grads = _logits_and_grads(model, inputs, "eval")
    fast, fast_grads = _logits_and_grads(model, inputs, "planned")
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    table_grad = model.tables.weight.grad  # type: ignore[union-attr]
    assert table_grad is not None and table_grad.is_sparse
    rows = table_grad._indices()[0]
    assert bool((rows[1:] > rows[:-1]).all()), "the planned gradient must come coalesced"


def test_plan_groups_every_occurrence_under_its_row() -> None:
    spec = InputSpec((30, 4), 25, 2, 5, 0)
    model = Ranker(spec, TrainingConfig(embedding_dim=4, hidden_units=[]))
    inputs = _inputs(spec, 200, seed=2)
    plan = model.plan(inputs["cat"], inputs["text"])
    assert plan is not None and plan.cat_ids is not None and plan.text_ids is not None
    assert plan.text_offsets is not None and plan.text_weights is not None
    words = inputs["text"].reshape(-1, 5)
    # Occurrences: the categorical ids, then every word that is not padding, bag by bag.
    cat_ids, text_ids = plan.cat_ids.numpy().ravel(), plan.text_ids.numpy()
    word_offset = model.padding_row
    np.testing.assert_array_equal(text_ids, words[words != 0] + word_offset)
    counts = (words != 0).sum(axis=1)
    np.testing.assert_array_equal(plan.text_offsets.numpy(), np.cumsum(counts) - counts)
    occurrence_rows = np.concatenate([cat_ids, text_ids])
    touched = plan.touched.numpy()
    np.testing.assert_array_equal(touched, np.unique(occurrence_rows))
    assert len(plan.bags) == len(occurrence_rows)
    # Every occurrence sits in its row's group, exactly once, with its bag and weight.
    bag_of = np.concatenate(
        [np.arange(cat_ids.size), cat_ids.size + np.repeat(np.arange(len(words)), counts)]
    )
    weight_of = np.concatenate(
        [np.ones(cat_ids.size), np.repeat(1 / np.maximum(counts, 1), counts)]
    )
    bounds = np.append(plan.starts.numpy(), len(plan.bags))
    expected = sorted(zip(occurrence_rows, bag_of, weight_of, strict=True))
    got = [
        (row, bag, weight)
        for i, row in enumerate(touched)
        for bag, weight in zip(
            plan.bags.numpy()[bounds[i] : bounds[i + 1]],
            plan.bag_weights.numpy()[bounds[i] : bounds[i + 1]],
            strict=True,
        )
    ]
    assert [(r, b) for r, b, _ in sorted(got)] == [(r, b) for r, b, _ in expected]
    np.testing.assert_allclose([w for *_, w in sorted(got)], [w for *_, w in expected], rtol=1e-6)
    again = model.plan(inputs["cat"], inputs["text"])
    assert again is not None and torch.equal(again.bags, plan.bags)


@pytest.mark.parametrize("coalesced", [False, True])
def test_row_adam_makes_sparse_adams_updates(coalesced: bool) -> None:
    rng = torch.Generator().manual_seed(0)
    start = torch.randn(40, 6, generator=rng)
    ours = torch.nn.Parameter(start.clone())
    theirs = torch.nn.Parameter(start.clone())
    # eps tiny: SparseAdam adds it before the bias correction, Adam (and RowAdam) after.
    row_adam = RowAdam([ours], lr=0.05, eps=1e-12)
    sparse_adam = torch.optim.SparseAdam([theirs], lr=0.05, eps=1e-12)
    for _ in range(6):
        ids = torch.randint(0, 40, (30,), generator=rng)  # duplicates included
        values = torch.randn(30, 6, generator=rng)
        grad = torch.sparse_coo_tensor(ids.unsqueeze(0), values, (40, 6), check_invariants=True)
        ours.grad = grad.coalesce() if coalesced else grad
        theirs.grad = grad.coalesce()
        row_adam.step()
        sparse_adam.step()
        torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours.detach(), start)


def test_training_mode_products_equal_the_exported_layers() -> None:
    """Big enough for oneDNN's kernels (over 2M multiply-adds per product) where present."""
    spec = InputSpec((100,), 0, 0, 0, 8)
    torch.manual_seed(0)
    model = Ranker(spec, TrainingConfig(embedding_dim=16, hidden_units=[128, 32]))
    inputs = _inputs(spec, 2048, seed=3)
    plain, plain_grads = _logits_and_grads(model, inputs, "eval")
    for mode in ("train", "planned"):
        fast, fast_grads = _logits_and_grads(model, inputs, mode)
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
        for name, grad in plain_grads.items():
            torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


def test_lean_adam_is_torchs_fused_adam_bit_for_bit() -> None:
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(7, 3), torch.nn.Linear(7, 3)
    theirs.load_state_dict(ours.state_dict())
    lean = LeanAdam(ours.parameters(), lr=0.03, weight_decay=0.01)
    fused = torch.optim.Adam(theirs.parameters(), lr=0.03, weight_decay=0.01, fused=True)
    for step in range(5):
        x = torch.randn(16, 7)
        for model, opt in ((ours, lean), (theirs, fused)):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()  # type: ignore[no-untyped-call]
            opt.step()
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(a, b), f"step {step}"
    # The same state_dict: a checkpoint of either loads into the other and continues alike.
    again = LeanAdam(theirs.parameters(), lr=0.03, weight_decay=0.01)
    again.load_state_dict(fused.state_dict())
    assert again.state_dict()["state"][0]["step"] == lean.state_dict()["state"][0]["step"]
