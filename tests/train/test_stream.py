"""Streaming from Parquet: every row once per epoch, bounded memory, deterministic, resumable.

The streamed order (row groups permuted, rows shuffled within a buffer) is not the in-memory
path's (one permutation of all rows), so the two paths train different, equally valid models;
each is deterministic and resumes bit-identically.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_data import auc, encoder, make_dataset, write_parquet
from train_runs import CONFIG, ROWS, Dataset, Stop, kill_then_resume, stop_after

from spindle.core import TrainingError
from spindle.train import ParquetBatches, TrainResult, predict, train_from_parquet

BUFFER_ROWS, CHUNK_ROWS, GROUP_ROWS = 600, 200, 500


@pytest.fixture(scope="module")
def parquet(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs, labels, _ = data
    return write_parquet(inputs, labels, tmp_path_factory.mktemp("pq") / "t.parquet", GROUP_ROWS)


def _train(data: Dataset, parquet: Path, root: Path, **kwargs: object) -> TrainResult:
    spec = data[2]
    return train_from_parquet(
        parquet,
        encoder(spec),
        spec,
        CONFIG,
        root / "v1",
        checkpoint_dir=root / "ckpt",
        data_id="test",
        buffer_rows=BUFFER_ROWS,
        chunk_rows=CHUNK_ROWS,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def streamed(data: Dataset, parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One uninterrupted streamed run; resumed runs must end bit-identical to it."""
    return _train(data, parquet, tmp_path_factory.mktemp("streamed"))


def test_every_row_once_per_epoch_in_a_seeded_order_and_replay_from_a_step(
    data: Dataset, parquet: Path
) -> None:
    source = ParquetBatches(
        parquet, encoder(data[2]), seed=3, buffer_rows=BUFFER_ROWS, chunk_rows=CHUNK_ROWS
    )
    epochs = [[b.rows for b in source.batches(e, 0, 128)] for e in (0, 1)]
    for batches in epochs:
        assert len(batches) == 24 and all(len(b) == 128 for b in batches[:-1])
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(ROWS))
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))
    again = [b.rows for b in source.batches(0, 0, 128)]
    assert all(np.array_equal(a, b) for a, b in zip(again, epochs[0], strict=True))
    tail = [b.rows for b in source.batches(0, 17, 128)]
    assert all(np.array_equal(a, b) for a, b in zip(tail, epochs[0][17:], strict=True))
    # Inputs and labels travel with their rows.
    inputs, labels, _ = data
    first = next(source.batches(0, 0, 128))
    assert np.array_equal(first.inputs["cat"].numpy(), inputs["cat"][first.rows])
    assert np.array_equal(first.labels.numpy(), labels[first.rows])


def test_streamed_training_holds_a_bounded_number_of_rows_and_learns(
    streamed: TrainResult,
) -> None:
    assert (streamed.examples, streamed.steps) == (ROWS, 48)
    assert 0 < streamed.peak_rows_held <= BUFFER_ROWS + CHUNK_ROWS < ROWS
    held_out, held_labels, _ = make_dataset(2000, seed=1)
    assert auc(predict(streamed.out_dir, held_out), held_labels) > 0.75


def test_two_streamed_runs_are_bit_identical(
    data: Dataset, parquet: Path, streamed: TrainResult, tmp_path: Path
) -> None:
    assert _train(data, parquet, tmp_path).weights_sha256 == streamed.weights_sha256


def test_a_stopped_streamed_run_resumes_bit_identically(
    data: Dataset, parquet: Path, streamed: TrainResult, tmp_path: Path
) -> None:
    with pytest.raises(Stop):
        _train(data, parquet, tmp_path, progress=stop_after(33))
    resumed = _train(data, parquet, tmp_path)
    assert resumed.resumed_from_step == 30
    assert resumed.weights_sha256 == streamed.weights_sha256


def test_bad_rows_in_the_stream_are_refused_naming_the_problem(
    data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, _ = data
    cat = inputs["cat"].copy()
    cat[2500, 1] = 99  # outside its cardinality of 20
    path = write_parquet({**inputs, "cat": cat}, labels, tmp_path / "bad.parquet", GROUP_ROWS)
    with pytest.raises(TrainingError, match=r"inputs\['cat'\] column 1 has ids outside"):
        _train(data, path, tmp_path)
    assert not (tmp_path / "v1").exists()


_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from train_data import encoder, make_dataset
from spindle.core import TrainingConfig
from spindle.train import train_from_parquet

spec = make_dataset(10, seed=0)[2]
config = TrainingConfig.model_validate_json({config!r})
result = train_from_parquet(
    Path({parquet!r}), encoder(spec), spec, config, Path({out!r}),
    checkpoint_dir=Path({ckpt!r}), data_id="test", buffer_rows={buffer}, chunk_rows={chunk},
    progress=(lambda done, total: time.sleep(0.05)) if {slow!r} else None,
)
print(json.dumps({{"sha": result.weights_sha256, "resumed": result.resumed_from_step}}))
"""


def _child(parquet: Path, tmp_path: Path, slow: bool) -> subprocess.Popen[str]:
    code = _CHILD.format(
        tests=str(Path(__file__).parent),
        config=CONFIG.model_dump_json(),
        parquet=str(parquet),
        out=str(tmp_path / "v1"),
        ckpt=str(tmp_path / "ckpt"),
        buffer=BUFFER_ROWS,
        chunk=CHUNK_ROWS,
        slow=slow,
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_streamed_run_killed_by_sigkill_resumes_bit_identically(
    parquet: Path, streamed: TrainResult, tmp_path: Path
) -> None:
    result = kill_then_resume(
        lambda slow: _child(parquet, tmp_path, slow=slow), tmp_path / "ckpt", tmp_path / "v1"
    )
    assert result["resumed"] is not None and result["resumed"] >= 10
    assert result["sha"] == streamed.weights_sha256
