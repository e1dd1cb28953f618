"""``spindle train`` end to end: a SIGKILLed run resumes when rerun and ends bit-identical."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPINDLE = str(Path(sys.executable).parent / "spindle")
ARGS = [
    "train",
    "search_ranker",
    "--date",
    "2026-01-04",
    "--json",
    "--set",
    "training.checkpoint_every_steps=5",
]


def _spindle(workspace: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SPINDLE, *ARGS],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    payload: dict[str, object] = json.loads(out)
    return payload


@pytest.mark.slow
def test_spindle_train_killed_by_sigkill_resumes_on_rerun_with_the_same_weights(
    ingested_workspace: Path, tmp_path: Path
) -> None:

    uninterrupted_ws, killed_ws = tmp_path / "a", tmp_path / "b"
    shutil.copytree(ingested_workspace, uninterrupted_ws, symlinks=True)
    shutil.copytree(ingested_workspace, killed_ws, symlinks=True)
    uninterrupted = _finish(_spindle(uninterrupted_ws))
    assert uninterrupted["resumed_from_step"] is None

    victim = _spindle(killed_ws)
    checkpoints = killed_ws / ".spindle" / "artifacts" / "checkpoints" / "search_ranker"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("*/ckpt-*.pt.json")):
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL

    rerun = _finish(_spindle(killed_ws))
    assert isinstance(rerun["resumed_from_step"], int) and rerun["resumed_from_step"] >= 5
    assert rerun["weights_sha256"] == uninterrupted["weights_sha256"]
    assert rerun["base_version"] is None and rerun["version"] == uninterrupted["version"]


def test_speed_check_halves_workers_and_updates_in_flight() -> None:
    from spindle.core import TrainingConfig
    from spindle.orchestrate._speed_check import halved

    assert halved(TrainingConfig(workers=4)).workers == 2
    assert halved(TrainingConfig(max_staleness_steps=7)).max_staleness_steps == 3
    assert halved(TrainingConfig(workers=2, max_staleness_steps=1)).model_dump() == (
        TrainingConfig().model_dump()
    )


def test_speed_check_without_parallelism_is_a_clear_error(workspace_copy: Path) -> None:
    from spindle.core import TrainingError
    from spindle.orchestrate import Context, speed_check

    with Context.open(workspace_copy) as ctx, pytest.raises(TrainingError, match="no parallelism"):
        speed_check(ctx, "search_ranker", "2026-01-04")
    one_process = ["training.framework=lightgbm"]
    with (
        Context.open(workspace_copy) as ctx,
        pytest.raises(TrainingError, match="framework lightgbm trains in one process"),
    ):
        speed_check(ctx, "search_ranker", "2026-01-04", overrides=one_process)


@pytest.mark.slow
def test_speed_check_trains_twice_and_gives_a_verdict(workspace_copy: Path) -> None:
    args = ["speed-check", "search_ranker", "--date", "2026-01-04", "--json"]
    args += ["--set", "training.max_staleness_steps=3", "--set", "training.epochs=1"]
    out = subprocess.run(
        [SPINDLE, *args], cwd=workspace_copy, capture_output=True, text=True, check=True
    ).stdout
    check = json.loads(out)
    assert check["verdict"] in {"ok", "training too fast"}
    assert (check["fast"]["parallelism"], check["slow"]["parallelism"]) == (4, 2)
    interval = check["interval"]
    assert interval["lower"] <= interval["estimate"] <= interval["upper"]
    assert check["slow"]["metric_value"] == pytest.approx(interval["value_a"])
    artifacts = workspace_copy / ".spindle" / "artifacts"
    assert not (artifacts / "scratch" / "speed_check" / "search_ranker").exists()
    assert json.loads(
        (artifacts / "speed_checks" / "search_ranker" / "2026-01-04.json").read_text()
    )


def test_a_training_set_above_in_memory_max_rows_is_streamed_from_parquet(
    workspace_copy: Path,
) -> None:
    from spindle.orchestrate import Context, train_version

    overrides = [
        "training.in_memory_max_rows=0",
        "training.stream_buffer_rows=1000",
        "training.epochs=1",
    ]
    with Context.open(workspace_copy) as ctx:
        version, result, skipped = train_version(
            ctx, "search_ranker", "2026-01-04", overrides=overrides
        )
    assert not skipped and result is not None
    manifest = json.loads((Path(version.uri) / "manifest.json").read_text())
    assert manifest["metrics"]["streamed"] is True
    rows = manifest["training_set"]["rows"]
    assert result.examples == rows > 1000
    assert 0 < result.peak_rows_held < rows  # never the whole set in memory
    assert (Path(version.uri) / "model.onnx").is_file()
    assert (Path(version.uri) / "transform.json").is_file()


def _declare_weight(workspace: Path, heavy: str) -> None:
    """purchase_propensity weights each example: ``heavy`` for a buyer, 1 otherwise."""
    path = workspace / "models" / "purchase_propensity.yaml"
    text = path.read_text()
    select = "SELECT ex.*, (lab.user_id IS NOT NULL) AS purchased_today"
    weight = f", CASE WHEN lab.user_id IS NOT NULL THEN {heavy} ELSE 1.0 END AS importance"
    assert select in text and "  label_delay: 0d" in text
    text = text.replace(select, select + weight)
    path.write_text(text.replace("  label_delay: 0d", "  label_delay: 0d\n  weight: importance"))


@pytest.mark.parametrize("streamed", [False, True])
def test_a_declared_weight_trains_the_model_and_the_version_says_so(
    workspace_copy: Path, streamed: bool
) -> None:
    from spindle.orchestrate import Context, train_version

    overrides = ["training.epochs=1"] + (["training.in_memory_max_rows=0"] if streamed else [])
    with Context.open(workspace_copy) as ctx:
        plain, plain_result, _ = train_version(
            ctx, "purchase_propensity", "2026-01-04", overrides=overrides
        )
    _declare_weight(workspace_copy, "4.0")
    with Context.open(workspace_copy) as ctx:
        version, result, skipped = train_version(
            ctx, "purchase_propensity", "2026-01-04", overrides=overrides
        )
    assert not skipped and result is not None and plain_result is not None
    assert version.version == plain.version + 1
    assert result.weights_sha256 != plain_result.weights_sha256  # the weights were applied
    manifest = json.loads((Path(version.uri) / "manifest.json").read_text())
    assert manifest["metrics"]["streamed"] is streamed
    assert manifest["example_weight"] == "importance"
    assert manifest["notes"][0].startswith("examples weighted by column 'importance'")
    before = json.loads((Path(plain.uri) / "manifest.json").read_text())
    assert before["example_weight"] is None and before["notes"][0] == "examples unweighted"


def test_a_negative_weight_is_one_data_error_and_registers_nothing(workspace_copy: Path) -> None:
    from spindle.core import DataError
    from spindle.orchestrate import Context, train_version

    _declare_weight(workspace_copy, "-1.0")
    with Context.open(workspace_copy) as ctx, pytest.raises(DataError) as info:
        train_version(ctx, "purchase_propensity", "2026-01-04")
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("models/purchase_propensity.yaml: key 'examples.weight'")
    assert "column 'importance' must be finite and >= 0" in message and "first: row " in message
    with Context.open(workspace_copy) as ctx:
        assert "purchase_propensity" not in ctx.store.models()
    artifacts = workspace_copy / ".spindle" / "artifacts"
    assert not list((artifacts / "trainsets" / "purchase_propensity").glob("*"))
    assert not (artifacts / "models" / "purchase_propensity").exists()


def test_the_training_set_record_counts_immature_examples(workspace_copy: Path) -> None:
    """label_delay 2d: the window's last two days build no examples, and the record says how
    many were left out."""
    from spindle.orchestrate import Context, build_training_set, load_config

    path = workspace_copy / "models" / "purchase_propensity.yaml"
    path.write_text(path.read_text().replace("label_delay: 0d", "label_delay: 2d"))
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    with Context.open(workspace_copy) as ctx:
        trainset = build_training_set(ctx, load_config(ctx, "purchase_propensity"), days)
        record = ctx.store.get_artifact(trainset.id)
    assert trainset.immature_examples > 0 and trainset.rows > 0
    assert record.properties["immature_examples"] == trainset.immature_examples
