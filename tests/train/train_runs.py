"""The small config the tests share, and ways to interrupt and run the recipe directly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def kill_then_resume(
    start: Callable[[bool], subprocess.Popen[str]], checkpoint_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """SIGKILL a slow training child between two checkpoints, run it again to the end, and
    return the JSON line the survivor printed last.

    ``start(slow)`` launches the child; the killed one must have left no ``out_dir``.
    """
    victim = start(True)
    deadline = time.monotonic() + 120
    while not list(checkpoint_dir.glob("ckpt-*.pt.json")):
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    time.sleep(0.12)  # somewhere between two checkpoints
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not out_dir.exists()

    survivor = start(False)
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


_TRAIN_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from train_data import make_dataset
from spindle.core import TrainingConfig
from spindle.train import train_model

inputs, labels, spec = make_dataset({rows}, seed=0)
config = TrainingConfig.model_validate_json({config!r})
slow = {slow!r}
result = train_model(inputs, labels, spec, config, Path({out!r}), checkpoint_dir=Path({ckpt!r}),
                     progress=(lambda done, total: time.sleep(0.05)) if slow else None)
print(json.dumps({{"sha": result.weights_sha256, "resumed": result.resumed_from_step,
                  "notes": list(result.notes)}}))
"""


def train_child(checkpoint_dir: Path, out_dir: Path, slow: bool) -> subprocess.Popen[str]:
    """A process training CONFIG on the tests' dataset into ``out_dir`` (slowed between steps
    when ``slow``, to be killed); it prints ``{"sha", "resumed", "notes"}`` as its last line."""
    code = _TRAIN_CHILD.format(
        tests=str(Path(__file__).parent),
        rows=ROWS,
        config=CONFIG.model_dump_json(),
        slow=slow,
        out=str(out_dir),
        ckpt=str(checkpoint_dir),
    )
    command = [sys.executable, "-c", code]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
