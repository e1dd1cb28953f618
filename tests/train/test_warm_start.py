"""Warm start: from a base with the same InputSpec, and from one whose spec has since grown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from train_data import make_dataset
from train_runs import CONFIG, Dataset

from spindle.train import Ranker, TrainResult, load_weights, train_model, warm_start


def test_warm_start_with_the_same_spec_copies_every_tensor(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    result = train_model(
        inputs,
        labels,
        spec,
        CONFIG,
        tmp_path / "v2",
        checkpoint_dir=tmp_path / "c",
        base_weights=reference.out_dir,
    )
    assert result.warm_started
    assert result.epochs == CONFIG.warm_start_epochs == 1
    assert result.steps == 24
    assert any("every tensor copied" in note for note in result.notes)
    assert result.weights_sha256 != reference.weights_sha256


def test_warm_start_with_a_grown_spec_copies_matching_tensors_and_rows(
    reference: TrainResult, tmp_path: Path
) -> None:
    base = load_weights(reference.weights_path)
    grown_inputs, grown_labels, grown_spec = make_dataset(1000, vocab=1500, seed=5)

    model = Ranker(grown_spec, CONFIG)
    copied, notes = warm_start(model, reference.weights_path)
    assert copied
    state = model.state_dict()
    assert torch.equal(state["word_embedding.weight"][:1000], base["word_embedding.weight"])
    assert not torch.equal(state["word_embedding.weight"][1000:1010], torch.zeros(10, 8))
    for name, tensor in base.items():
        if name != "word_embedding.weight":
            assert torch.equal(state[name], tensor), name
    assert any("word_embedding.weight (1000 of 1500 rows)" in note for note in notes)
    assert any("text_vocab_size 1000 -> 1500" in note for note in notes)

    result = train_model(
        grown_inputs,
        grown_labels,
        grown_spec,
        CONFIG,
        tmp_path / "v2",
        checkpoint_dir=tmp_path / "c",
        base_weights=reference.weights_path,
    )
    assert result.warm_started and result.epochs == 1
    assert any("different InputSpec" in note for note in result.notes)


def test_warm_start_skips_tensors_whose_shape_changed(
    reference: TrainResult, tmp_path: Path
) -> None:
    _, _, spec = make_dataset(10)
    wider = replace(spec, n_dense=spec.n_dense + 1)  # the first MLP layer changes shape
    model = Ranker(wider, CONFIG)
    copied, notes = warm_start(model, reference.weights_path)
    assert copied
    assert any("kept fresh: mlp.0.weight" in note for note in notes)


def test_weights_keep_the_per_table_names_so_older_versions_load(
    reference: TrainResult,
) -> None:
    # Earlier versions had one nn.Embedding per table; the stacked table saves and loads
    # under the same names, so their weights.pt files load and warm start unchanged.
    state = load_weights(reference.weights_path)
    tables = {name: tensor.shape for name, tensor in state.items() if "embedding" in name}
    assert tables == {
        "cat_embeddings.0.weight": (50, 8),
        "cat_embeddings.1.weight": (20, 8),
        "cat_embeddings.2.weight": (5, 8),
        "word_embedding.weight": (1000, 8),
    }
    _, _, spec = make_dataset(10)
    model = Ranker(spec, CONFIG)
    state["cat_embeddings.1.weight"][3] = torch.arange(8.0)
    model.load_state_dict(state)
    assert model.tables is not None
    assert torch.equal(model.tables.weight[50 + 3], torch.arange(8.0))
    assert torch.equal(model.state_dict()["cat_embeddings.1.weight"][3], torch.arange(8.0))
