"""The train stage builds a model version from a training set, knowing no workspace or runner."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from train_data import make_dataset
from train_runs import CONFIG

from spindle.core import TrainingConfig, TrainingError, read_package
from spindle.train import (
    TorchTrainer,
    VersionPlan,
    fit_version,
    predict,
    streams,
    trainer_for,
    write_version,
)

KINDS = ("cat", "dense")


def _plan(workspace: Path, overrides: list[str]) -> VersionPlan:
    """The inputs the train step resolves: config, definitions, a real training set."""
    from spindle.orchestrate import Context
    from spindle.orchestrate._model_common import build_training_set, load_config

    with Context.open(workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity", overrides)
        trainset = build_training_set(ctx, loaded, ["2026-01-02", "2026-01-03"])
    return VersionPlan(
        loaded.config,
        loaded.config_hash,
        loaded.effective,
        loaded.definitions,
        trainset,
        "2026-01-04",
        why="from scratch (asked)",
        left_out=("2026-01-01 (not ingested/validated)",),
    )


def test_fit_then_write_a_version_from_resolved_inputs(
    workspace_copy: Path, tmp_path: Path
) -> None:
    # sklearn cannot stream: a set above in_memory_max_rows is given to it in memory
    plan = _plan(workspace_copy, ["training.framework=sklearn", "training.in_memory_max_rows=0"])
    fitted = fit_version(plan, tmp_path / "scratch", tmp_path / "ckpt")
    assert not fitted.streamed and fitted.framework == "sklearn"
    assert fitted.result.examples == plan.trainset.rows > 0
    files = write_version(plan, fitted, 7, tmp_path / "v7")
    manifest = read_package(tmp_path / "v7")
    assert manifest.files == files and set(files) >= {"model.onnx", "transform.json"}
    assert (manifest.get("version"), manifest.config_hash) == (7, plan.config_hash)
    assert manifest.get("framework") == "sklearn" and manifest.get("why") == plan.why
    assert manifest.get("left_out_days") == list(plan.left_out)
    assert manifest.get("notes")[0] == "examples unweighted"
    assert manifest.metrics["streamed"] is False
    assert manifest.training_set_id == plan.trainset.id
    # a second version reusing the first's transform (a warm start's) keeps it byte for byte
    warm = replace(plan, base_version=7, base_dir=tmp_path / "v7")
    again = fit_version(warm, tmp_path / "scratch2", tmp_path / "ckpt2")
    assert again.transform_json == fitted.transform_json


def test_streams_only_where_the_trainer_can() -> None:
    torch_config = TrainingConfig()
    assert streams(trainer_for(torch_config), torch_config)
    ddp = torch_config.model_copy(update={"workers": 2})
    assert streams(trainer_for(ddp), ddp)  # DDP ranks each stream their shard
    sklearn = TrainingConfig(framework="sklearn")
    assert not streams(trainer_for(sklearn), sklearn)


def test_torch_predict_is_the_trained_weights_not_the_exported_graph(tmp_path: Path) -> None:
    config = CONFIG.model_copy(update={"epochs": 1})
    trainer = trainer_for(config)
    inputs, labels, spec = make_dataset(800, KINDS, seed=0)
    run = trainer.train(inputs, labels, spec, config, tmp_path / "v", checkpoint_dir=tmp_path / "c")
    held_out, _, _ = make_dataset(300, KINDS, seed=3)
    served = predict(run.out_dir, held_out)
    shutil.copytree(run.out_dir, tmp_path / "no-onnx")
    (tmp_path / "no-onnx" / "model.onnx").unlink()
    native = trainer.predict(tmp_path / "no-onnx", held_out)  # needs no model.onnx
    assert native.dtype == np.float32 and native.shape == (300,)
    np.testing.assert_allclose(native, served, rtol=1e-5, atol=1e-5)
    with pytest.raises(TrainingError, match="trainer_for"):
        TorchTrainer().predict(run.out_dir, held_out)  # no config given, no manifest to read


def test_ddp_ranks_stream_their_shards_of_the_training_set_when_its_row_groups_allow(
    workspace_copy: Path, tmp_path: Path
) -> None:
    """Above in_memory_max_rows with two workers, each rank streams its shard of the file,
    encoding with the one transform fitted here (``TransformEncoder``, pickled to spawned
    ranks, JSON in torchrun's job). A file of one row group cannot be shared: every rank then
    holds the set in memory, and the version's notes say why."""
    overrides = ["training.in_memory_max_rows=0", "training.workers=2", "training.epochs=1"]
    plan = _plan(workspace_copy, [*overrides, "training.stream_buffer_rows=200"])
    whole = fit_version(plan, tmp_path / "s0", tmp_path / "c0")
    assert not whole.streamed and "ranks" not in whole.metrics()
    assert any(n.startswith("held in memory by every rank: ") for n in whole.result.notes)
    small = tmp_path / "small-groups.parquet"
    pq.write_table(pq.read_table(plan.trainset.uri), small, row_group_size=50)
    plan = replace(plan, trainset=replace(plan.trainset, uri=str(small)))
    groups = pq.ParquetFile(small).metadata.num_row_groups
    for launcher in ("spawn", "torchrun"):
        training = plan.config.training.model_copy(update={"launcher": launcher})
        config = plan.config.model_copy(update={"training": training})
        fitted = fit_version(replace(plan, config=config), tmp_path / launcher, tmp_path / "c")
        metrics = fitted.metrics()
        assert fitted.streamed and metrics["streamed"] is True and metrics["workers"] == 2
        ranks = metrics["ranks"]
        read = [set(rank["groups"][0][1]) for rank in ranks]
        assert not read[0] & read[1] and len(read[0] | read[1]) == groups
        assert sum(rank["rows_read"] for rank in ranks) == plan.trainset.rows
        assert metrics["peak_rows_held"] == max(rank["peak_rows_held"] for rank in ranks)
        assert metrics["peak_rows_held"] <= 200 + 32_768
        assert fitted.transform_json == whole.transform_json  # the same fitted transform
