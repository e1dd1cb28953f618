"""DDP ranks that stream only their shard of a Parquet training set (issue 17).

Two spawned ranks on a file of 12 row groups (3000 rows, 250 a group): per epoch every group
is read by exactly one rank, the ranks' rows add up to the file, each holds at most its buffer
plus one chunk, two runs are bit-identical, a rank SIGKILLed mid-epoch is restarted from the
checkpoint and ends bit-identical, and the model is as good as one worker's streamed model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_data import auc, encoder, make_dataset, write_parquet
from train_runs import CONFIG, ROWS, Dataset

from spindle.core import KILL_ENV, KILL_ONCE_ENV, TrainingError
from spindle.train import TrainResult, predict, train_from_parquet
from spindle.train._shard import ShardBatches, local_sizes, split_groups

BUFFER_ROWS, CHUNK_ROWS, GROUP_ROWS = 600, 200, 250
GROUPS = ROWS // GROUP_ROWS
TWO = CONFIG.model_copy(update={"workers": 2})


@pytest.fixture(scope="module")
def parquet(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs, labels, _ = data
    return write_parquet(inputs, labels, tmp_path_factory.mktemp("pq") / "t.parquet", GROUP_ROWS)


def _train(
    data: Dataset, parquet: Path, root: Path, config: object = TWO, **kwargs: object
) -> TrainResult:
    spec = data[2]
    return train_from_parquet(
        parquet,
        kwargs.pop("encode", encoder(spec)),  # type: ignore[arg-type]
        spec,
        config,  # type: ignore[arg-type]
        root / "v1",
        checkpoint_dir=root / "ckpt",
        data_id="test",
        buffer_rows=BUFFER_ROWS,
        chunk_rows=CHUNK_ROWS,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def two_ranks(
    data: Dataset, parquet: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    """One uninterrupted streamed run of two ranks; the others must end bit-identical to it."""
    return _train(data, parquet, tmp_path_factory.mktemp("ddp-stream"))


def test_the_split_is_balanced_by_rows_and_every_step_has_rows_on_every_rank() -> None:
    sizes = [250] * 11 + [40]  # a short last group, as a writer's last batch leaves
    order = np.random.default_rng(0).permutation(12)
    shards = split_groups(sizes, order, 3)
    assert np.array_equal(np.concatenate(shards), order)  # contiguous runs, every group once
    rows = [sum(sizes[g] for g in shard) for shard in shards]
    assert sum(rows) == sum(sizes) and max(rows) - min(rows) <= 250
    steps = local_sizes(1003, 24)
    assert steps.sum() == 1003 and len(steps) == 24 and set(steps) <= {41, 42}


def test_each_rank_reads_only_its_row_groups_and_together_every_row_once(
    two_ranks: TrainResult,
) -> None:
    assert (two_ranks.examples, two_ranks.steps, two_ranks.workers) == (ROWS, 48, 2)
    first, second = two_ranks.shards
    assert (first.rank, second.rank) == (0, 1)
    for epoch in (0, 1):
        mine, theirs = dict(first.groups)[epoch], dict(second.groups)[epoch]
        assert not set(mine) & set(theirs), "no rank opens another rank's row groups"
        assert sorted(mine + theirs) == list(range(GROUPS))
        assert len(mine) == len(theirs) == GROUPS // 2  # equal groups: equal shares
    # Two epochs: every row read and trained on twice over the ranks, none dropped.
    assert first.rows_read + second.rows_read == 2 * ROWS
    assert first.rows_trained + second.rows_trained == 2 * ROWS
    for shard in two_ranks.shards:
        assert 0 < shard.peak_rows_held <= BUFFER_ROWS + CHUNK_ROWS < ROWS
        assert shard.peak_rss_mb > 0
    assert two_ranks.peak_rows_held == max(s.peak_rows_held for s in two_ranks.shards)


@pytest.mark.slow  # one more DDP launch; the SIGKILL test's run also ends bit-identical
def test_two_streamed_ddp_runs_are_bit_identical(
    data: Dataset, parquet: Path, two_ranks: TrainResult, tmp_path: Path
) -> None:
    again = _train(data, parquet, tmp_path)
    assert again.weights_sha256 == two_ranks.weights_sha256
    assert again.loss_history == two_ranks.loss_history


def test_a_rank_sigkilled_mid_epoch_restarts_from_the_checkpoint_bit_identically(
    data: Dataset,
    parquet: Path,
    two_ranks: TrainResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 1 dies of SIGKILL at global step 35 (epoch 1, step 11; checkpoints every 10):
    every rank restarts from step 30, re-reads its shard of epoch 1 up to step 6 without
    training on it, and the run ends with the uninterrupted run's weights."""
    monkeypatch.setenv(KILL_ENV, "ddp:rank1:step35")
    monkeypatch.setenv(KILL_ONCE_ENV, str(tmp_path / "killed-once"))
    result = _train(data, parquet, tmp_path)
    assert (tmp_path / "killed-once").exists()
    assert result.resumed_from_step == 30
    assert result.weights_sha256 == two_ranks.weights_sha256
    restarted = [n for n in result.notes if n.startswith("restarted the workers")]
    assert len(restarted) == 1 and "SIGKILL" in restarted[0], result.notes
    # The restarted ranks read all of epoch 1 again and trained on it from step 6 on.
    assert [[epoch for epoch, _ in shard.groups] for shard in result.shards] == [[1], [1]]
    assert sum(s.rows_read for s in result.shards) == ROWS
    skipped = 2 * int(local_sizes(ROWS // 2, 24)[:6].sum())  # each rank holds half of epoch 1
    assert sum(s.rows_trained for s in result.shards) == ROWS - skipped


def test_the_streamed_ddp_model_is_as_good_as_one_workers_streamed_model(
    data: Dataset, parquet: Path, two_ranks: TrainResult, tmp_path: Path
) -> None:
    """The ranks see other batches than one worker (each shuffles only its own groups), so the
    models differ as two seeds of one worker do. Tolerance from that spread, measured here:
    the DDP model's held-out AUC lies within the one-worker seeds' range widened by the range
    itself on each side (plus 0.005 for a range that happens to be tiny)."""
    held_out, held_labels, _ = make_dataset(2000, seed=1)
    one = []
    for seed in (3, 4, 5):
        config = CONFIG.model_copy(update={"seed": seed})
        result = _train(data, parquet, tmp_path / f"s{seed}", config)
        one.append(auc(predict(result.out_dir, held_out), held_labels))
    spread = max(one) - min(one) + 0.005
    ddp = auc(predict(two_ranks.out_dir, held_out), held_labels)
    assert min(one) - spread <= ddp <= max(one) + spread, (ddp, one)
    assert ddp > 0.75


def test_an_encode_that_cannot_reach_the_ranks_is_one_line(
    data: Dataset, parquet: Path, tmp_path: Path
) -> None:
    spec = data[2]
    inner = encoder(spec)
    with pytest.raises(TrainingError, match=r"^workers=2 stream .* encode must be picklable"):
        _train(data, parquet, tmp_path, encode=lambda table: inner(table))
    torchrun = TWO.model_copy(update={"launcher": "torchrun"})
    with pytest.raises(TrainingError, match=r"^launcher torchrun streams .* TransformEncoder"):
        _train(data, parquet, tmp_path, torchrun)
    assert not (tmp_path / "v1").exists()


def test_too_few_row_groups_for_the_ranks_are_refused_before_any_rank_starts(
    data: Dataset, tmp_path: Path
) -> None:
    inputs, labels, _ = data
    one_group = write_parquet(inputs, labels, tmp_path / "one.parquet", ROWS)
    with pytest.raises(TrainingError, match=r"1 row group\(s\) to 2 DDP ranks gives rank 0 0 rows"):
        _train(data, one_group, tmp_path)
    assert not (tmp_path / "v1").exists()
    source = ShardBatches(one_group, encoder(data[2]), 3, 0, 2)
    assert [len(shard) for shard in source.shards(0)] == [0, 1]


@pytest.mark.slow  # one more DDP launch (~8 s)
def test_weighted_rows_are_the_global_batchs_weighted_mean_across_ranks(
    data: Dataset, two_ranks: TrainResult, tmp_path: Path
) -> None:
    """Each rank knows only its own rows' weights: the ranks all-reduce sum(w) every step.
    Weighting every row 4 is then the unweighted run up to float rounding."""
    inputs, labels, _ = data
    path = write_parquet(inputs, labels, tmp_path / "w.parquet", GROUP_ROWS)
    table = pq.read_table(path)
    pq.write_table(
        table.append_column("w", pa.array(np.full(ROWS, 4.0, np.float32))),
        path,
        row_group_size=GROUP_ROWS,
    )
    weighted = _train(data, path, tmp_path, weight_column="w")
    assert weighted.steps == 48
    np.testing.assert_allclose(weighted.loss_history, two_ranks.loss_history, atol=1e-5)


@pytest.mark.slow  # one more DDP launch (~6 s)
def test_a_non_finite_input_in_one_ranks_shard_stops_every_rank_with_its_message(
    data: Dataset, tmp_path: Path
) -> None:
    """Only the rank whose shard holds the bad row sees it; the launcher ends the others and
    repeats that rank's one-line message."""
    inputs, labels, _ = data
    dense = inputs["dense"].copy()
    dense[2600, 1] = np.inf
    path = write_parquet({**inputs, "dense": dense}, labels, tmp_path / "nan.parquet", GROUP_ROWS)
    with pytest.raises(TrainingError, match=r"DDP worker.*non-finite value.*row 2600 is"):
        _train(data, path, tmp_path)
    assert not (tmp_path / "v1").exists()
