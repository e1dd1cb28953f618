"""The small config the tests share, and ways to interrupt and run the recipe directly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from spindle.core import TrainingConfig
from spindle.train import CheckpointStore, InputSpec, SyncRecipe

ROWS = 3000
# 24 steps per epoch, 48 in all; checkpoints at steps 10, 20, 30, 40 and 48.
CONFIG = TrainingConfig(
    epochs=2,
    batch_size=128,
    learning_rate=0.01,
    embedding_dim=8,
    hidden_units=[16, 8],
    checkpoint_every_steps=10,
    threads=1,
    seed=3,
)

Dataset = tuple[dict[str, np.ndarray], np.ndarray, InputSpec]


class Stop(Exception):
    """Raised from a progress callback to interrupt a run, as a crash would."""


def stop_after(step: int) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if done >= step:
            raise Stop(done)

    return progress


def run_recipe(
    data: Dataset,
    checkpoint_dir: Path,
    config: TrainingConfig = CONFIG,
    *,
    fingerprint: str = "f" * 64,
    stop_at: int | None = None,
) -> SyncRecipe:
    """Run the recipe directly (no export): the cheap way to test resume mechanics."""
    inputs, labels, spec = data
    recipe = SyncRecipe(
        spec,
        config,
        config.epochs,
        CheckpointStore(checkpoint_dir, fingerprint),
        stop_after(stop_at) if stop_at is not None else None,
    )
    try:
        recipe.setup(inputs, labels, None)
        recipe.train()
    finally:
        recipe.cleanup()
    return recipe
