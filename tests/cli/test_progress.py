"""Long work shows progress: off a terminal, training prints plain lines with steps, epoch and
examples/s (in one process and with DDP workers); the hooks never report more than asked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from spindle.cli._output import Reporter, err_console
from spindle.core import ProgressEvent, step_progress

LINE = re.compile(
    r"^train search_ranker for 2026-01-04: steps (\d+)/(\d+) \(epoch (\d+)/(\d+)\)"
    r"(?:, ([\d,]+) ex/s)?",
    re.MULTILINE,
)


def _spindle(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "spindle"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, check=False, timeout=600
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_train_prints_progress_lines_off_a_terminal(workspace_copy: Path, workers: int) -> None:
    proc = _spindle(
        "train", "search_ranker", "--date", "2026-01-04", "--workers", str(workers),
        "-w", str(workspace_copy),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = LINE.findall(proc.stderr)
    assert lines, proc.stderr
    done, total, epoch, epochs, _ = lines[-1]
    assert done == total and epoch == epochs  # the last step is always reported
    assert any(rate for *_, rate in lines), f"no examples/s in {proc.stderr}"
    assert "search_ranker@1 (trained" in proc.stdout
    assert "\x1b[" not in proc.stderr  # plain lines, no bar
    # the seconds before the first step are not blank: each preparation phase is said, in order
    phases = re.findall(
        r"^prepare search_ranker for 2026-01-04: phases (\d)/3 \((.+)\)$", proc.stderr, re.M
    )
    assert [d for d, _ in phases] == ["0", "1", "2", "3"], proc.stderr
    starting = "starting 2 workers" if workers == 2 else "starting"
    assert phases[2][1] == starting and phases[3][1] == "trained"


def test_run_reports_training_and_infra_validation(workspace_copy: Path) -> None:
    # The gate must pass for infra validation to run; on this 4-day tiny workspace the slice
    # disparity of a healthy model sits near the default 0.15 limit (0.154 seen), which is not
    # what this test is about.
    proc = _spindle(
        "run", "search_ranker", "--date", "2026-01-04",
        "--set", "evaluation.max_slice_gap=0.5", "-w", str(workspace_copy),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert LINE.findall(proc.stderr), proc.stderr
    assert "infra validation search_ranker@1: phases 0/2 (canary serving" in proc.stderr
    assert "infra validation search_ranker@1: phases 2/2 (passed)" in proc.stderr


def test_catch_up_and_run_all_report_each_task_and_model(workspace_copy: Path) -> None:
    proc = _spindle(
        "catch-up", "--since", "2026-01-04", "--until", "2026-01-04", "-w", str(workspace_copy)
    )
    assert proc.returncode == 0, proc.stderr
    tasks = re.findall(r"^catch-up: tasks (\d+)/(\d+)", proc.stderr, re.M)
    assert tasks and tasks[0][0] == "0" and tasks[-1][0] == tasks[-1][1], proc.stderr
    proc = _spindle("run-all", "--date", "2026-01-04", "-w", str(workspace_copy))
    assert proc.returncode == 0, proc.stderr
    assert "run-all 2026-01-04: models 0/2" in proc.stderr
    finished = re.findall(r"^run-all 2026-01-04: models (\d)/2 \((\w+): ", proc.stderr, re.M)
    assert finished[-1][0] == "2", proc.stderr
    assert {m for _, m in finished} <= {"search_ranker", "purchase_propensity"}


# slow (make test-all): three trainings for progress lines; train's progress lines are
# checked in every CI run above
@pytest.mark.slow
def test_evaluate_replicas_and_speed_check_report_their_trainings(workspace_copy: Path) -> None:
    ws, one_epoch = str(workspace_copy), ["--set", "training.epochs=1"]
    trained = _spindle("train", "search_ranker", "--date", "2026-01-04", *one_epoch, "-w", ws)
    assert trained.returncode == 0, trained.stderr
    proc = _spindle(
        "evaluate", "search_ranker", "--version", "1", "--date", "2026-01-04",
        "--replicas", "2", "-w", ws,
    )  # fmt: skip
    assert proc.returncode in (0, 2), proc.stderr  # 2: the gate blocked, still evaluated
    replica = re.findall(r"^replica 1/1 of search_ranker@1: steps (\d+)/(\d+)", proc.stderr, re.M)
    assert replica and replica[-1][0] == replica[-1][1], proc.stderr
    proc = _spindle(
        "speed-check", "search_ranker", "--date", "2026-01-04",
        "--set", "training.workers=2", *one_epoch, "-w", ws,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for run in ("configured", "half"):
        lines = re.findall(
            rf"^speed-check search_ranker \({run}\): steps (\d+)/(\d+)", proc.stderr, re.M
        )
        assert lines and lines[-1][0] == lines[-1][1], proc.stderr


def test_json_output_has_no_progress(workspace_copy: Path) -> None:
    proc = _spindle(
        "train", "search_ranker", "--date", "2026-01-03", "--json", "-w", str(workspace_copy)
    )
    assert proc.returncode == 0, proc.stderr
    assert "steps" not in proc.stderr and "ex/s" not in proc.stderr, proc.stderr


def test_step_progress_reports_the_first_and_last_step_within_the_interval() -> None:
    events: list[ProgressEvent] = []
    hook = step_progress(events.append, "train m", epochs=2, batch_size=100, min_interval_s=3600)
    for done in range(1, 11):
        hook(done, 10)
    assert [(e.done, e.detail) for e in events] == [(1, "epoch 1/2"), (10, "epoch 2/2")]
    assert events[0].examples_per_s is None and events[1].examples_per_s is not None


def test_step_progress_with_no_interval_reports_every_step() -> None:
    events: list[ProgressEvent] = []
    hook = step_progress(events.append, "train m", epochs=3, batch_size=8, min_interval_s=0)
    for done in range(5, 10):  # a resumed run starts mid-way
        hook(done, 9)
    assert [e.done for e in events] == [5, 6, 7, 8, 9]
    assert [e.detail for e in events] == ["epoch 2/3"] * 2 + ["epoch 3/3"] * 3


def test_plain_reporter_prints_at_most_one_line_per_interval_and_the_last() -> None:
    report = Reporter(None, plain_interval_s=3600)
    with err_console.capture() as captured:
        for done in (1, 2, 3, 4):
            report.event(ProgressEvent("train m", done, 4, "steps", 1000.0, "epoch 1/1"))
        report("simulate", 1, 2)
    lines = captured.get().splitlines()
    assert lines == [
        "train m: steps 1/4 (epoch 1/1), 1,000 ex/s",
        "train m: steps 4/4 (epoch 1/1), 1,000 ex/s",
        "simulate: 1/2",
    ]
