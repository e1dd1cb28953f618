"""Data-parallel training: N local workers with the same global batch follow one worker's run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_runs import CONFIG, Dataset

from spindle.core import KILL_ENV, TrainingError
from spindle.train import TrainResult, train_model

TWO_WORKERS = CONFIG.model_copy(update={"workers": 2})


@pytest.fixture(scope="module")
def two_workers(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    root = tmp_path_factory.mktemp("ddp")
    inputs, labels, spec = data
    return train_model(inputs, labels, spec, TWO_WORKERS, root / "v1", checkpoint_dir=root / "ckpt")


def test_two_workers_follow_the_loss_curve_of_one(
    two_workers: TrainResult, reference: TrainResult
) -> None:
    one, two = np.array(reference.loss_history), np.array(two_workers.loss_history)
    assert len(one) == len(two) == reference.steps == two_workers.steps == 48
    # Same rows per global step, gradients averaged by DDP: only summation order differs.
    assert float(np.abs(one - two).max()) < 1e-5
    assert two_workers.final_loss == pytest.approx(reference.final_loss, abs=1e-5)
    assert two_workers.workers == 2 and two_workers.examples == reference.examples
    assert two_workers.onnx_path.exists() and two_workers.cpu_s > 0


@pytest.mark.slow  # two more DDP launches (~15 s each on an idle machine)
def test_a_rerun_resumes_from_rank_zeros_checkpoint(
    data: Dataset, two_workers: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    ckpt = two_workers.out_dir.parent / "ckpt"  # the finished run left its final checkpoint
    again = train_model(inputs, labels, spec, TWO_WORKERS, tmp_path / "v2", checkpoint_dir=ckpt)
    assert again.resumed_from_step == 48 and again.loss_history == ()
    assert again.weights_sha256 == two_workers.weights_sha256


@pytest.mark.slow  # two more DDP launches (~15 s each on an idle machine)
def test_a_non_finite_input_stops_every_worker_with_a_clear_error(
    data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    dense = inputs["dense"].copy()
    dense[:, 1] = np.inf
    with pytest.raises(TrainingError, match=r"DDP worker.*non-finite value.*epoch 0, step 0"):
        train_model(
            {**inputs, "dense": dense},
            labels,
            spec,
            TWO_WORKERS,
            tmp_path / "v1",
            checkpoint_dir=tmp_path / "c",
        )
    assert not (tmp_path / "v1").exists()


def test_a_worker_killed_by_a_signal_is_a_clear_error(
    data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank that dies of a signal (a segfault, the OOM killer) raises no Python error: the
    parent says which worker died, instead of torch's ProcessExitedException traceback."""
    inputs, labels, spec = data
    monkeypatch.setenv(KILL_ENV, "ddp:rank1")  # the spawned ranks inherit it
    with pytest.raises(TrainingError, match=r"a DDP worker of 2 died \(.*SIGKILL"):
        train_model(
            inputs, labels, spec, TWO_WORKERS, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
        )
    assert not (tmp_path / "v1").exists()
