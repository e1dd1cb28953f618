"""The custom family's small config and how its tests train it (``tests/train/test_custom*.py``).

The module is a real file imported by path (``tests/train/custom_models/nets.py``), as a
workspace's ``models_py/*.py`` are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spindle.core import TrainingConfig
from spindle.train import InputSpec, TrainResult, trainer_for

ROWS = 3000
MODULE = "custom_models.nets:TinyNet"
# 24 steps per epoch, 48 in all; checkpoints every 10 steps.
CONFIG = TrainingConfig(
    framework="custom",
    custom={"module": MODULE, "options": {"hidden": 16}},
    epochs=2,
    batch_size=128,
    learning_rate=0.02,
    checkpoint_every_steps=10,
    threads=1,
    seed=3,
)

Data = tuple[dict[str, np.ndarray], np.ndarray, InputSpec]


def custom_config(module: str = MODULE, **update: Any) -> TrainingConfig:
    """``CONFIG`` with another module (TinyNet's get ``hidden: 16``) and other fields."""
    custom = {"module": module, "options": {"hidden": 16} if "TinyNet" in module else {}}
    return CONFIG.model_copy(update={"custom": CONFIG.custom.model_copy(update=custom), **update})  # type: ignore[union-attr]


def train_custom(
    data: Data, root: Path, config: TrainingConfig = CONFIG, **kwargs: Any
) -> TrainResult:
    """Train ``data`` in memory into ``root / "v"`` (checkpoints in ``root / "c"``)."""
    inputs, labels, spec = data
    return trainer_for(config).train(
        inputs, labels, spec, config, root / "v", checkpoint_dir=root / "c", **kwargs
    )
