"""Bounded staleness: k = 0 is the sync recipe; k > 0 differs, is repeatable and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_runs import CONFIG, Dataset, Stop, stop_after

from spindle.core import TrainingConfig
from spindle.train import AsyncRecipe, CheckpointStore, TrainResult, state_dict_sha256

ONE_EPOCH = CONFIG.model_copy(update={"epochs": 1})


def _run(
    data: Dataset, directory: Path, config: TrainingConfig, stop_at: int | None = None
) -> AsyncRecipe:
    inputs, labels, spec = data
    recipe = AsyncRecipe(
        spec,
        config,
        config.epochs,
        CheckpointStore(directory, "a" * 64),
        stop_after(stop_at) if stop_at is not None else None,
    )
    try:
        recipe.setup(inputs, labels, None)
        recipe.train()
    finally:
        recipe.cleanup()
    return recipe


def test_staleness_zero_is_bit_identical_to_the_sync_recipe(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    recipe = _run(data, tmp_path, CONFIG.model_copy(update={"max_staleness_steps": 0}))
    assert state_dict_sha256(recipe.model.state_dict()) == reference.weights_sha256
    assert tuple(recipe.loss_history) == reference.loss_history


def test_stale_gradients_change_the_run_repeatably_and_resume_exactly(
    data: Dataset, tmp_path: Path
) -> None:
    stale = ONE_EPOCH.model_copy(update={"max_staleness_steps": 3})
    sync = _run(data, tmp_path / "sync", ONE_EPOCH)
    first = _run(data, tmp_path / "a", stale)
    second = _run(data, tmp_path / "b", stale)
    sha = state_dict_sha256(first.model.state_dict())
    assert sha == state_dict_sha256(second.model.state_dict())
    assert sha != state_dict_sha256(sync.model.state_dict())
    assert first.loss_history[:1] == sync.loss_history[:1]  # step 0 has nothing stale yet

    with pytest.raises(Stop):
        _run(data, tmp_path / "c", stale, stop_at=15)
    resumed = _run(data, tmp_path / "c", stale)
    assert resumed.resumed_from_step == 10
    assert state_dict_sha256(resumed.model.state_dict()) == sha
