"""The custom family trained by the same recipes as ``tabular_nn``: DDP with spawned ranks and
with torchrun's, bounded staleness, and streaming from Parquet.

torchrun's ranks are fresh processes: the module they build lives in a temporary "workspace"
that only the import root recorded in the job makes importable (not ``PYTHONPATH``, not their
working directory).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from custom_runs import CONFIG, MODULE, ROWS, Data, custom_config, train_custom
from train_data import auc, encoder, make_dataset, write_parquet
from train_runs import Stop, stop_after

from spindle.core import TrainingConfig, TrainingError
from spindle.train import ParquetData, TrainResult, streams, trainer_for
from spindle.train._custom import import_roots

NETS = Path(__file__).parent / "custom_models" / "nets.py"
WORKSPACE_PACKAGE = "rank_models"  # importable only from the temporary workspace


@pytest.fixture(scope="module")
def binary() -> Data:
    return make_dataset(ROWS, seed=0)


@pytest.fixture(scope="module")
def sync(binary: Data, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One process, the sync recipe: what DDP and staleness 0 reproduce."""
    return train_custom(binary, tmp_path_factory.mktemp("sync"))


@pytest.fixture(scope="module")
def spawned(binary: Data, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """Two DDP ranks started with ``spawn`` (they inherit this process's ``sys.path``)."""
    return train_custom(binary, tmp_path_factory.mktemp("spawned"), custom_config(workers=2))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A workspace directory holding ``rank_models/nets.py`` (a copy of the test modules), put
    on this process's import path only, as spindle puts a workspace's directory (and taken
    off again, with the modules imported from it)."""
    root = tmp_path / "workspace"
    (root / WORKSPACE_PACKAGE).mkdir(parents=True)
    (root / WORKSPACE_PACKAGE / "__init__.py").write_text("from .nets import TinyNet\n")
    shutil.copy(NETS, root / WORKSPACE_PACKAGE / "nets.py")
    assert importlib.util.find_spec(WORKSPACE_PACKAGE) is None, "importable without the root"
    # The ranks must not find it any other way than through the job.
    assert str(root) not in os.environ.get("PYTHONPATH", "")
    assert Path.cwd().resolve() != root.resolve()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [n for n in sys.modules if n.split(".")[0] == WORKSPACE_PACKAGE]:
        del sys.modules[name]


def test_two_spawned_ranks_match_one_process(
    binary: Data, sync: TrainResult, spawned: TrainResult
) -> None:
    assert (spawned.workers, spawned.steps) == (2, 48)
    inputs = binary[0]
    np.testing.assert_allclose(
        trainer_for(CONFIG).predict(spawned.out_dir, inputs),
        trainer_for(CONFIG).predict(sync.out_dir, inputs),
        atol=1e-4,
    )


def test_the_import_root_is_the_directory_the_dotted_name_starts_in(workspace: Path) -> None:
    module = custom_config(f"{WORKSPACE_PACKAGE}.nets:TinyNet")
    package = custom_config(f"{WORKSPACE_PACKAGE}:TinyNet")
    assert import_roots(module) == import_roots(package) == (str(workspace),)


def test_torchrun_ranks_import_the_module_from_the_job_and_match_spawned_ranks(
    binary: Data, spawned: TrainResult, workspace: Path, tmp_path: Path
) -> None:
    config = custom_config(f"{WORKSPACE_PACKAGE}.nets:TinyNet", workers=2, launcher="torchrun")
    result = train_custom(binary, tmp_path, config)
    assert (result.workers, result.steps) == (2, 48)
    # The same ranks, the same gloo reductions: the launcher changes nothing.
    assert result.loss_history == spawned.loss_history
    assert result.weights_sha256 == spawned.weights_sha256
    assert not list((tmp_path / "c").glob("job-*")), "the job directory is removed on success"


def test_bounded_staleness_trains_differs_from_sync_and_resumes_bit_identically(
    binary: Data, sync: TrainResult, tmp_path: Path
) -> None:
    stale = custom_config(max_staleness_steps=2)
    first = train_custom(binary, tmp_path / "a", stale)
    assert first.steps == 48 and np.mean(first.loss_history[-8:]) < first.loss_history[0]
    assert any("up to 2 step(s) old" in note for note in first.notes), first.notes
    assert first.loss_history[:1] == sync.loss_history[:1]  # step 0 has nothing stale yet
    assert first.weights_sha256 != sync.weights_sha256

    with pytest.raises(Stop):
        train_custom(binary, tmp_path / "b", stale, progress=stop_after(15))
    assert not (tmp_path / "b" / "v").exists()
    resumed = train_custom(binary, tmp_path / "b", stale)
    assert resumed.resumed_from_step == 10
    assert resumed.weights_sha256 == first.weights_sha256


@pytest.fixture(scope="module")
def parquet(binary: Data, tmp_path_factory: pytest.TempPathFactory) -> ParquetData:
    inputs, labels, spec = binary
    path = write_parquet(inputs, labels, tmp_path_factory.mktemp("pq") / "t.parquet", 500)
    columns = pq.read_schema(path).names
    return ParquetData(path, encoder(spec), "test", columns, buffer_rows=600)


def _stream(
    data: ParquetData, binary: Data, root: Path, config: TrainingConfig = CONFIG
) -> TrainResult:
    trainer = trainer_for(config)
    assert streams(trainer, config)
    return trainer.train_stream(data, binary[2], config, root / "v", checkpoint_dir=root / "c")


def test_streamed_from_parquet_learns_deterministically_in_bounded_memory(
    binary: Data, parquet: ParquetData, tmp_path: Path
) -> None:
    first = _stream(parquet, binary, tmp_path / "a")
    second = _stream(parquet, binary, tmp_path / "b")
    assert first.weights_sha256 == second.weights_sha256
    assert (first.examples, first.steps) == (ROWS, 48)
    assert 0 < first.peak_rows_held < ROWS
    assert first.notes[0].startswith(f"custom module {MODULE}: Adam")
    held_out, truth, _ = make_dataset(2000, seed=1)
    assert auc(trainer_for(CONFIG).predict(first.out_dir, held_out), truth) > 0.75


def test_two_ranks_stream_their_shards_of_the_custom_models_training_set(
    binary: Data, parquet: ParquetData, tmp_path: Path
) -> None:
    result = _stream(parquet, binary, tmp_path, custom_config(workers=2))
    assert (result.workers, result.examples, result.steps) == (2, ROWS, 48)
    assert result.notes[0].startswith(f"custom module {MODULE}: Adam")
    assert sum(shard.rows_trained for shard in result.shards) == 2 * ROWS  # two epochs
    held_out, truth, _ = make_dataset(2000, seed=1)
    assert auc(trainer_for(CONFIG).predict(result.out_dir, held_out), truth) > 0.75


def test_a_bad_output_streamed_is_the_same_one_line_error_as_in_memory(
    binary: Data, parquet: ParquetData, tmp_path: Path
) -> None:
    config = custom_config("custom_models.nets:ColumnNet")
    with pytest.raises(TrainingError) as streamed:
        _stream(parquet, binary, tmp_path / "s", config)
    with pytest.raises(TrainingError) as in_memory:
        train_custom(binary, tmp_path / "m", config)
    assert str(streamed.value) == str(in_memory.value)
    assert str(streamed.value) == (
        "custom module ColumnNet.forward must return float32 [N] for a binary model (here "
        "[8]), it returned torch.float32 [8, 1]"
    )
    assert not (tmp_path / "s").exists()
