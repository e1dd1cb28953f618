"""Shared fixtures: a small synthetic dataset and one uninterrupted reference run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_data import make_dataset
from train_runs import CONFIG, ROWS, Dataset

from spindle.train import TrainResult, train_model


@pytest.fixture(scope="session")
def data() -> Dataset:
    return make_dataset(ROWS, seed=0)


@pytest.fixture(scope="session")
def reference(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One uninterrupted run of CONFIG on ``data``; resumed runs must end bit-identical to it."""
    root = tmp_path_factory.mktemp("reference")
    inputs, labels, spec = data
    return train_model(inputs, labels, spec, CONFIG, root / "v1", checkpoint_dir=root / "ckpt")
