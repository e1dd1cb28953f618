"""Checkpoints: resume after a stop or a SIGKILL ends bit-identical; damage falls back a step."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_runs import (
    CONFIG,
    Dataset,
    Stop,
    kill_then_resume,
    run_recipe,
    stop_after,
    train_child,
)

from spindle.core import TrainingError
from spindle.train import CheckpointStore, TrainResult, state_dict_sha256, train_model


def test_resume_after_a_stop_equals_an_uninterrupted_run(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    args = (inputs, labels, spec, CONFIG, tmp_path / "v1")
    with pytest.raises(Stop):
        train_model(*args, checkpoint_dir=tmp_path / "c", progress=stop_after(27))
    assert not (tmp_path / "v1").exists()

    resumed = train_model(*args, checkpoint_dir=tmp_path / "c")
    assert resumed.resumed_from_step == 20
    assert resumed.steps == reference.steps == 48
    assert resumed.weights_sha256 == reference.weights_sha256
    assert resumed.final_loss == reference.final_loss
    assert any("resumed from the checkpoint of step 20" in note for note in resumed.notes)


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    with pytest.raises(Stop):
        run_recipe(data, tmp_path, stop_at=35)
    store = CheckpointStore(tmp_path, "f" * 64)
    assert store.steps() == [20, 30]  # only the last two are kept
    store.close()
    latest = next(tmp_path.glob("ckpt-*0000000030.pt"))
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated

    resumed = run_recipe(data, tmp_path)
    assert resumed.resumed_from_step == 20
    assert any("skipped checkpoint" in n and "0000000030" in n for n in resumed.notes)
    assert state_dict_sha256(resumed.model.state_dict()) == reference.weights_sha256


def test_checkpoints_of_another_run_are_ignored(data: Dataset, tmp_path: Path) -> None:
    with pytest.raises(Stop):
        run_recipe(data, tmp_path, fingerprint="a" * 64, stop_at=12)
    other = run_recipe(data, tmp_path, fingerprint="b" * 64)
    assert other.resumed_from_step is None
    assert any("ignored 1 checkpoint(s) of another run" in note for note in other.notes)
    assert list(tmp_path.glob("ckpt-aaaa*-0000000010.pt"))  # never deleted


def test_two_processes_cannot_share_a_checkpoint_dir(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "f" * 64)
    try:
        with pytest.raises(TrainingError, match="another process"):
            CheckpointStore(tmp_path, "f" * 64)
    finally:
        store.close()


def test_resume_after_sigkill_in_a_new_process_equals_an_uninterrupted_run(
    reference: TrainResult, tmp_path: Path
) -> None:
    result = kill_then_resume(
        lambda slow: train_child(tmp_path / "ckpt", tmp_path / "v1", slow),
        tmp_path / "ckpt",
        tmp_path / "v1",
    )
    assert result["resumed"] is not None and result["resumed"] >= 10
    assert result["sha"] == reference.weights_sha256


def test_a_finished_run_resumes_from_its_final_checkpoint_without_training(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    run_recipe(data, tmp_path)
    again = run_recipe(data, tmp_path)
    assert (again.resumed_from_step, again.steps_run) == (48, 0)
    assert state_dict_sha256(again.model.state_dict()) == reference.weights_sha256


def test_resume_is_bit_identical_with_two_threads(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    half = ({name: array[:1500] for name, array in inputs.items()}, labels[:1500], spec)
    config = CONFIG.model_copy(update={"threads": 2, "epochs": 1})  # 12 steps
    uninterrupted = run_recipe(half, tmp_path / "a", config)
    with pytest.raises(Stop):
        run_recipe(half, tmp_path / "b", config, stop_at=11)
    resumed = run_recipe(half, tmp_path / "b", config)
    assert resumed.resumed_from_step == 10
    assert state_dict_sha256(resumed.model.state_dict()) == state_dict_sha256(
        uninterrupted.model.state_dict()
    )


def test_checkpoints_are_also_written_every_s_seconds(data: Dataset, tmp_path: Path) -> None:
    config = CONFIG.model_copy(
        update={"checkpoint_every_steps": 10**6, "checkpoint_every_s": 1e-9, "epochs": 1}
    )
    run_recipe(data, tmp_path, config)  # every step is due by time: the last two are kept
    store = CheckpointStore(tmp_path, "f" * 64)
    assert store.steps() == [23, 24]
    store.close()
