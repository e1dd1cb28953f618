"""DDP ranks started by torchrun: on one machine, and as two "machines" meeting at a rendezvous.

Real ``torch.distributed.run`` subprocesses with gloo on loopback; the second machine is a
second torchrun started from the command spindle writes for it, as an operator would.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from train_runs import CONFIG, Dataset

from spindle.core import TrainingConfig, TrainingError
from spindle.train import TrainResult, train_model
from spindle.train._torchrun import DDPJob, read_job, write_job

TORCHRUN = CONFIG.model_copy(update={"workers": 2, "launcher": "torchrun"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _same_curve(result: TrainResult, reference: TrainResult) -> None:
    one, two = np.array(reference.loss_history), np.array(result.loss_history)
    assert len(one) == len(two) == reference.steps == result.steps == 48
    assert float(np.abs(one - two).max()) < 1e-5
    assert result.workers == 2 and result.examples == reference.examples


def test_torchrun_on_one_machine_follows_one_workers_curve(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    result = train_model(
        inputs, labels, spec, TORCHRUN, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
    )
    _same_curve(result, reference)
    assert result.onnx_path.exists()
    assert not list((tmp_path / "c").glob("job-*")), "the job directory is removed on success"


def test_two_machines_meet_at_the_rendezvous(
    data: Dataset, reference: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    config = TORCHRUN.model_copy(update={"nnodes": 2, "rdzv_endpoint": f"127.0.0.1:{_free_port()}"})
    outcome: dict[str, object] = {}

    def first_machine() -> None:
        try:
            outcome["result"] = train_model(
                inputs, labels, spec, config, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
            )
        except Exception as error:  # reported below
            outcome["error"] = error

    thread = threading.Thread(target=first_machine)
    thread.start()
    deadline = time.monotonic() + 120
    commands: list[Path] = []
    while not commands and time.monotonic() < deadline:
        commands = list((tmp_path / "c").glob("job-*/command.txt"))
        time.sleep(0.1)
    assert commands, "spindle did not write the command for the other machines"
    second = subprocess.run(
        shlex.split(commands[0].read_text()), capture_output=True, text=True, timeout=300
    )
    thread.join(timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert isinstance(result, TrainResult)
    _same_curve(result, reference)


def test_several_machines_need_torchrun_and_a_rendezvous() -> None:
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        TrainingConfig(workers=2, nnodes=2, launcher="torchrun")
    with pytest.raises(ValueError, match="launcher: torchrun"):
        TrainingConfig(workers=2, nnodes=2, rdzv_endpoint="h:1")
    with pytest.raises(ValueError, match="multiple of nnodes"):
        TrainingConfig(workers=3, nnodes=2, launcher="torchrun", rdzv_endpoint="h:1")


@pytest.mark.slow  # one more torchrun launch
def test_a_failing_rank_is_reported_with_its_message(data: Dataset, tmp_path: Path) -> None:
    inputs, labels, spec = data
    dense = inputs["dense"].copy()
    dense[:, 1] = np.nan
    with pytest.raises(TrainingError, match=r"DDP worker.*non-finite value.*epoch 0, step 0"):
        train_model(
            {**inputs, "dense": dense},
            labels,
            spec,
            TORCHRUN,
            tmp_path / "v1",
            checkpoint_dir=tmp_path / "c",
        )
    assert not (tmp_path / "v1").exists()
    assert list((tmp_path / "c").glob("job-*/error-rank*.txt"))


def test_a_job_carries_its_import_paths_and_an_older_job_reads_with_none(
    data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    job = DDPJob(
        inputs=inputs,
        labels=labels,
        spec=spec,
        config=TORCHRUN,
        epochs=1,
        checkpoint_dir=str(tmp_path / "c"),
        fingerprint="f" * 64,
        base_file=None,
        result_file=str(tmp_path / "c" / "result.pt"),
        import_paths=(str(tmp_path / "workspace"),),
    )
    job_dir = write_job(job)
    assert read_job(job_dir).import_paths == (str(tmp_path / "workspace"),)
    described = json.loads((job_dir / "job.json").read_text())
    del described["import_paths"]  # as written before jobs recorded them
    (job_dir / "job.json").write_text(json.dumps(described))
    older = read_job(job_dir)
    assert older.import_paths == () and older.epochs == 1
