"""The speed check's training: one window at two parallelisms, scored on one holdout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_runs import Stop, stop_after
from train_tables import DEFINITIONS, MODEL, QUICK, rows

from spindle.core import FeatureError, TrainingSet
from spindle.train import train_at_two_parallelisms, train_files_at_two_parallelisms

# bounded staleness (one process) against its half, synchronous: no worker processes
FAST = QUICK.model_copy(update={"max_staleness_steps": 1})
SLOW = FAST.model_copy(update={"max_staleness_steps": 0})
# a bound below the 400 training rows, and a shuffle buffer smaller than them
STREAMED = {"in_memory_max_rows": 100, "stream_buffer_rows": 64}


def _train(scratch: Path, progress_for: Any) -> Any:
    """Both runs on 400 training rows and a 120-row holdout, in ``scratch``."""
    return train_at_two_parallelisms(
        rows(400, 0),
        rows(120, 1),
        DEFINITIONS,
        MODEL,
        FAST,
        SLOW,
        scratch,
        progress_for=progress_for,
    )


def test_trains_both_runs_scores_the_holdout_and_removes_its_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    heard: list[str] = []

    def progress_for(name: str, training: object) -> None:
        heard.append(name)

    runs = _train(scratch, progress_for)
    assert heard == ["fast", "slow"]
    for scores in (runs.fast_scores, runs.slow_scores):
        assert scores.dtype == np.float64 and scores.shape == (120,)
        assert np.isfinite(scores).all()
    assert runs.labels.shape == (120,) and runs.groups is None
    assert runs.fast.examples == runs.slow.examples == 400
    assert not scratch.exists()


def test_a_run_that_fails_midway_still_removes_the_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    seen: list[str] = []

    def progress_for(name: str, training: object) -> Callable[[int, int], None] | None:
        if name == "fast":
            return None
        crash = stop_after(3)

        def on_step(done: int, total: int) -> None:
            seen.extend(sorted(p.name for p in scratch.iterdir()))
            crash(done, total)

        return on_step

    with pytest.raises(Stop):  # the slow run dies at its third step, as a crash would
        _train(scratch, progress_for)
    assert "fast" in seen  # the first run's model was there when the second failed
    assert not scratch.exists()


def test_a_holdout_without_a_feature_is_refused_and_leaves_no_scratch(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "fast-ckpt").mkdir(parents=True)  # a killed check's leftovers
    holdout = rows(120, 1).drop_columns([DEFINITIONS[1].column])
    with pytest.raises(FeatureError, match=DEFINITIONS[1].column):
        train_at_two_parallelisms(rows(400, 0), holdout, DEFINITIONS, MODEL, FAST, SLOW, scratch)
    assert not scratch.exists()


def _files(tmp_path: Path, holdout: pa.Table | None = None) -> tuple[TrainingSet, Path]:
    """The 400 training rows (row groups of 50) and the 120-row holdout as Parquet files."""
    train, held = tmp_path / "train.parquet", tmp_path / "holdout.parquet"
    pq.write_table(rows(400, 0), train, row_group_size=50)
    pq.write_table(rows(120, 1) if holdout is None else holdout, held)
    return TrainingSet("m", ("2026-01-01",), str(train), "c0ffee", 400), held


def test_a_set_above_in_memory_max_rows_is_streamed_and_its_holdout_scored_in_batches(
    tmp_path: Path,
) -> None:
    trainset, holdout = _files(tmp_path)
    fast, slow = FAST.model_copy(update=STREAMED), SLOW.model_copy(update=STREAMED)
    scratch = tmp_path / "scratch"
    heard: list[str] = []

    def progress_for(name: str, training: object) -> None:
        heard.append(name)

    runs = train_files_at_two_parallelisms(
        trainset, holdout, DEFINITIONS, MODEL, fast, slow, scratch, progress_for=progress_for
    )
    assert runs.streamed and runs.notes == () and heard == ["fast", "slow"]
    for result in (runs.fast, runs.slow):
        # every row trained on, never all of them held: the buffer and one row group at most
        assert result.examples == 400 and 0 < result.peak_rows_held <= 64 + 50
    for scores in (runs.fast_scores, runs.slow_scores):
        assert scores.dtype == np.float64 and scores.shape == (120,)
        assert np.isfinite(scores).all()
    assert not np.array_equal(runs.fast_scores, runs.slow_scores)  # two trainings, not one
    labels = rows(120, 1).column("y").to_numpy().astype(np.float32)
    assert np.array_equal(runs.labels, labels) and runs.groups is None
    assert not scratch.exists()


def test_a_set_within_in_memory_max_rows_trains_in_memory_as_from_tables(tmp_path: Path) -> None:
    trainset, holdout = _files(tmp_path)
    from_files = train_files_at_two_parallelisms(
        trainset, holdout, DEFINITIONS, MODEL, FAST, SLOW, tmp_path / "a"
    )
    from_tables = train_at_two_parallelisms(
        rows(400, 0), rows(120, 1), DEFINITIONS, MODEL, FAST, SLOW, tmp_path / "b"
    )
    assert not from_files.streamed and from_files.notes == ()
    assert from_files.fast.peak_rows_held == 400  # every row held: the in-memory path
    assert np.array_equal(from_files.fast_scores, from_tables.fast_scores)
    assert np.array_equal(from_files.slow_scores, from_tables.slow_scores)
    assert from_files.fast.weights_sha256 == from_tables.fast.weights_sha256


def test_a_streamed_holdout_without_a_feature_is_refused_before_training(tmp_path: Path) -> None:
    trainset, holdout = _files(tmp_path, rows(120, 1).drop_columns([DEFINITIONS[1].column]))
    scratch = tmp_path / "scratch"
    (scratch / "fast-ckpt").mkdir(parents=True)  # a killed check's leftovers
    heard: list[str] = []

    def progress_for(name: str, training: object) -> None:
        heard.append(name)

    fast, slow = FAST.model_copy(update=STREAMED), SLOW.model_copy(update=STREAMED)
    with pytest.raises(FeatureError, match=f"holdout lacks columns .*{DEFINITIONS[1].column}"):
        train_files_at_two_parallelisms(
            trainset, holdout, DEFINITIONS, MODEL, fast, slow, scratch, progress_for=progress_for
        )
    assert heard == [] and not scratch.exists()
