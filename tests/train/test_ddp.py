"""Data-parallel training: N local workers with the same global batch follow one worker's run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_runs import CONFIG, Dataset

from spindle.core import KILL_ENV, KILL_ONCE_ENV, TrainingError
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
    with pytest.raises(TrainingError, match=r"a DDP worker of 2 died \(.*SIGKILL.*after 1 restart"):
        train_model(
            inputs, labels, spec, TWO_WORKERS, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
        )
    assert not (tmp_path / "v1").exists()


@pytest.mark.slow  # two DDP launches (~15 s each on an idle machine)
def test_a_worker_that_dies_once_is_restarted_from_the_checkpoint(
    data: Dataset, two_workers: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank SIGKILLed mid-run (step 25; checkpoints every 10) costs one restart of every rank
    from step 20: the run ends with the weights of an unbroken run, and its notes say so."""
    inputs, labels, spec = data
    monkeypatch.setenv(KILL_ENV, "ddp:rank0:step25")
    monkeypatch.setenv(KILL_ONCE_ENV, str(tmp_path / "killed-once"))
    result = train_model(
        inputs, labels, spec, TWO_WORKERS, tmp_path / "v1", checkpoint_dir=tmp_path / "c"
    )
    assert (tmp_path / "killed-once").exists()
    assert result.resumed_from_step == 20
    assert result.weights_sha256 == two_workers.weights_sha256
    restarted = [n for n in result.notes if n.startswith("restarted the workers")]
    assert len(restarted) == 1 and "SIGKILL" in restarted[0], result.notes


def test_a_segfaulting_rank_is_named_with_its_python_frame(tmp_path: Path) -> None:
    """What a rank's faulthandler wrote when it really segfaulted becomes one line of the
    error: the signal and the top frame of the crashing thread."""
    import subprocess
    import sys

    from spindle.train._ddp import _crash_file, _crash_report

    crash = _crash_file(tmp_path, "ab" * 32, 0)
    code = (
        "import faulthandler\n"
        f"out = open({str(crash)!r}, 'w')\n"
        "faulthandler.enable(file=out, all_threads=True)\n"
        "def step():\n"
        "    faulthandler._sigsegv()\n"
        "step()\n"
    )
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert died.returncode == -11
    report = _crash_report(tmp_path, "ab" * 32)
    assert report.startswith("; rank 0: Segmentation fault in File"), report
    assert "line 5 in step" in report
    assert not crash.exists() and crash.with_suffix(".seen").exists()
    assert _crash_report(tmp_path, "ab" * 32) == ""  # read once


def test_a_segfault_in_another_thread_names_that_thread_not_a_waiting_one(
    tmp_path: Path,
) -> None:
    """faulthandler lists every thread; the report names the one that took the signal, even
    when a waiting thread is listed before it."""
    import subprocess
    import sys

    from spindle.train._ddp import _crash_file, _crash_report, _crashing_frame

    crash = _crash_file(tmp_path, "cd" * 32, 1)
    code = (
        "import faulthandler, threading, time\n"
        f"out = open({str(crash)!r}, 'w')\n"
        "faulthandler.enable(file=out, all_threads=True)\n"
        "waiting = threading.Thread(target=threading.Event().wait, daemon=True)\n"
        "waiting.start()\n"
        "def prefetch():\n"
        "    faulthandler._sigsegv()\n"
        "threading.Thread(target=prefetch).start()\n"
        "time.sleep(30)\n"
    )
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert died.returncode == -11
    report = _crash_report(tmp_path, "cd" * 32)
    assert report.startswith("; rank 1: Segmentation fault in File"), report
    assert "in prefetch" in report and "in wait" not in report
    # a native thread's crash: no thread is marked current, and none is blamed
    native = ["Fatal Python error: Segmentation fault", "", "Thread 0x1 (most recent call first):"]
    native += ['  File "threading.py", line 331 in wait', '  File "run.py", line 9 in <module>']
    assert _crashing_frame(native) == (
        'in a thread of native code (no Python frame); the main thread was at File "run.py", '
        "line 9 in <module>"
    )
