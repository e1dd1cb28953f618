"""Example weights: every trainer weights each row's loss, and without weights nothing changes.

A torch step's loss is ``sum(w * l) / sum(w)`` over the global batch (one worker or N), so a
power-of-two scale of every weight changes no bit, a row of weight 0 adds nothing, and DDP
follows one worker; scikit-learn gets ``sample_weight``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_data import encoder, make_dataset, write_parquet
from train_runs import CONFIG, ROWS, Dataset, Stop, stop_after

from spindle.core import TrainingConfig, TrainingError
from spindle.train import TrainResult, train_from_parquet, train_model, trainer_for


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    """Uneven weights, a tenth of the rows at 0."""
    rng = np.random.default_rng(7)
    w = rng.uniform(0.25, 3.0, ROWS).astype(np.float32)
    w[rng.random(ROWS) < 0.1] = 0.0
    return w


@pytest.fixture(scope="module")
def weighted(
    data: Dataset, weights: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    """One uninterrupted weighted run of CONFIG."""
    root = tmp_path_factory.mktemp("weighted")
    inputs, labels, spec = data
    return train_model(
        inputs, labels, spec, CONFIG, root / "v1", checkpoint_dir=root / "c", weights=weights
    )


def test_weights_change_the_run_and_doubling_them_changes_nothing(
    data: Dataset,
    weights: np.ndarray,
    weighted: TrainResult,
    reference: TrainResult,
    tmp_path: Path,
) -> None:
    inputs, labels, spec = data
    doubled = train_model(
        inputs,
        labels,
        spec,
        CONFIG,
        tmp_path / "v",
        checkpoint_dir=tmp_path / "c",
        weights=weights * 2,
    )
    assert weighted.weights_sha256 != reference.weights_sha256  # the weights matter
    assert doubled.weights_sha256 == weighted.weights_sha256  # only their ratios do
    assert doubled.loss_history == weighted.loss_history
    assert doubled.final_loss == weighted.final_loss


def test_a_weighted_run_resumes_bit_identically(
    data: Dataset, weights: np.ndarray, weighted: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    args = (inputs, labels, spec, CONFIG, tmp_path / "v1")
    with pytest.raises(Stop):
        train_model(*args, checkpoint_dir=tmp_path / "c", progress=stop_after(27), weights=weights)
    resumed = train_model(*args, checkpoint_dir=tmp_path / "c", weights=weights)
    assert resumed.resumed_from_step == 20
    assert resumed.weights_sha256 == weighted.weights_sha256
    assert resumed.final_loss == weighted.final_loss


def test_unweighted_checkpoints_are_not_resumed_by_a_weighted_run(
    data: Dataset, weights: np.ndarray, weighted: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    args = (inputs, labels, spec, CONFIG, tmp_path / "v1")
    with pytest.raises(Stop):
        train_model(*args, checkpoint_dir=tmp_path / "c", progress=stop_after(27))
    again = train_model(*args, checkpoint_dir=tmp_path / "c", weights=weights)
    assert again.resumed_from_step is None
    assert again.weights_sha256 == weighted.weights_sha256


FULL_BATCH = CONFIG.model_copy(update={"batch_size": 512, "epochs": 6})


def test_rows_of_weight_zero_train_as_if_they_were_not_there(tmp_path: Path) -> None:
    """Full-batch steps: weight 0 on rows R follows the loss curve of a run without R."""
    inputs, labels, spec = make_dataset(500, seed=2)
    dropped = np.zeros(500, bool)
    dropped[::5] = True  # every fifth row
    weights = np.where(dropped, 0.0, 1.0).astype(np.float32)
    zeroed = train_model(
        inputs,
        labels,
        spec,
        FULL_BATCH,
        tmp_path / "a",
        checkpoint_dir=tmp_path / "ca",
        weights=weights,
    )
    kept = {name: array[~dropped] for name, array in inputs.items()}
    without = train_model(
        kept, labels[~dropped], spec, FULL_BATCH, tmp_path / "b", checkpoint_dir=tmp_path / "cb"
    )
    assert zeroed.steps == without.steps == 6
    np.testing.assert_allclose(zeroed.loss_history, without.loss_history, rtol=0, atol=1e-6)
    # ... and not the curve of a run that counts every row
    every = train_model(
        inputs, labels, spec, FULL_BATCH, tmp_path / "c", checkpoint_dir=tmp_path / "cc"
    )
    assert np.abs(np.subtract(every.loss_history, without.loss_history)).max() > 1e-3


def test_the_bounded_staleness_recipe_weights_its_loss(
    data: Dataset, weights: np.ndarray, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    stale = CONFIG.model_copy(update={"max_staleness_steps": 2})
    runs = [
        train_model(
            inputs,
            labels,
            spec,
            stale,
            tmp_path / f"v{i}",
            checkpoint_dir=tmp_path / f"c{i}",
            weights=w,
        )
        for i, w in enumerate((weights, weights * 4, None))
    ]
    assert runs[0].weights_sha256 == runs[1].weights_sha256 != runs[2].weights_sha256


def test_two_weighted_workers_follow_one_weighted_worker(
    data: Dataset, weights: np.ndarray, weighted: TrainResult, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    two = train_model(
        inputs,
        labels,
        spec,
        CONFIG.model_copy(update={"workers": 2}),
        tmp_path / "v",
        checkpoint_dir=tmp_path / "c",
        weights=weights,
    )
    assert two.workers == 2 and two.steps == weighted.steps == 48
    np.testing.assert_allclose(two.loss_history, weighted.loss_history, rtol=0, atol=1e-5)
    assert two.final_loss == pytest.approx(weighted.final_loss, abs=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: np.where(np.arange(w.size) == 17, -1.0, w).astype(np.float32), "row 17"),
        (lambda w: np.where(np.arange(w.size) == 5, np.nan, w).astype(np.float32), "row 5"),
        (lambda w: np.zeros_like(w), "is 0"),
        (lambda w: w[:-1], "float32"),
        (lambda w: w.astype(np.float64), "float32"),
    ],
)
def test_bad_weights_are_one_clear_error(
    data: Dataset, weights: np.ndarray, change: object, message: str, tmp_path: Path
) -> None:
    inputs, labels, spec = data
    bad = change(weights)  # type: ignore[operator]
    with pytest.raises(TrainingError, match=message) as info:
        train_model(
            inputs,
            labels,
            spec,
            CONFIG,
            tmp_path / "v",
            checkpoint_dir=tmp_path / "c",
            weights=bad,
        )
    assert "\n" not in str(info.value)
    assert not (tmp_path / "v").exists()


# -- streamed from Parquet -------------------------------------------------------------------


def _parquet(data: Dataset, weights: np.ndarray, path: Path) -> Path:
    inputs, labels, _ = data
    write_parquet(inputs, labels, path, 500)
    table = pq.read_table(path).append_column("w", pa.array(weights.astype(np.float64)))
    pq.write_table(table, path, row_group_size=500)
    return path


def _stream(data: Dataset, path: Path, root: Path, **kwargs: object) -> TrainResult:
    spec = data[2]
    return train_from_parquet(
        path,
        encoder(spec),
        spec,
        CONFIG,
        root / "v",
        checkpoint_dir=root / "c",
        data_id="test",
        buffer_rows=600,
        chunk_rows=200,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_streamed_run_weights_its_loss_and_resumes_bit_identically(
    data: Dataset, weights: np.ndarray, tmp_path: Path
) -> None:
    once = _parquet(data, weights, tmp_path / "w1.parquet")
    twice = _parquet(data, weights * 2, tmp_path / "w2.parquet")
    plain = _stream(data, once, tmp_path / "plain")
    first = _stream(data, once, tmp_path / "a", weight_column="w")
    doubled = _stream(data, twice, tmp_path / "b", weight_column="w")
    assert first.weights_sha256 == doubled.weights_sha256 != plain.weights_sha256
    with pytest.raises(Stop):
        _stream(data, once, tmp_path / "r", weight_column="w", progress=stop_after(27))
    resumed = _stream(data, once, tmp_path / "r", weight_column="w")
    assert resumed.resumed_from_step == 20
    assert resumed.weights_sha256 == first.weights_sha256


def test_a_negative_weight_in_the_stream_names_its_row(
    data: Dataset, weights: np.ndarray, tmp_path: Path
) -> None:
    bad = weights.copy()
    bad[1234] = -2.0
    path = _parquet(data, bad, tmp_path / "bad.parquet")
    with pytest.raises(TrainingError, match=r"row 1234 = -2\.0") as info:
        _stream(data, path, tmp_path / "run", weight_column="w")
    assert "\n" not in str(info.value)


# -- scikit-learn ----------------------------------------------------------------------------

KINDS = ("cat", "dense")


def _sklearn(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spec: object,
    out: Path,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    config = TrainingConfig(framework="sklearn", epochs=4)
    trainer = trainer_for(config)
    result = trainer.train(
        inputs,
        labels,
        spec,
        config,
        out,
        checkpoint_dir=out.with_suffix(".c"),  # type: ignore[arg-type]
        weights=weights,
    )
    return np.asarray(trainer.predict(result.out_dir, inputs))


def test_sklearn_integer_weights_fit_as_duplicated_rows(tmp_path: Path) -> None:
    inputs, labels, spec = make_dataset(800, KINDS, seed=4)
    counts = np.random.default_rng(5).integers(0, 4, 800)
    counts[:2] = (1, 1)
    plain = _sklearn(inputs, labels, spec, tmp_path / "plain")
    weighted = _sklearn(inputs, labels, spec, tmp_path / "w", counts.astype(np.float32))
    repeated = {name: np.repeat(array, counts, axis=0) for name, array in inputs.items()}
    duplicated = _sklearn(repeated, np.repeat(labels, counts), spec, tmp_path / "dup")
    # predict on the same rows: the duplicated fit scores the original inputs too
    trainer = trainer_for(TrainingConfig(framework="sklearn"))
    dup_scores = trainer.predict(tmp_path / "dup", inputs)
    assert np.abs(weighted - plain).max() > 0.5  # sample_weight reached the estimator
    # equal up to lbfgs's tolerance (tol=1e-6 on the objective: ~3e-3 on a logit)
    np.testing.assert_allclose(weighted, dup_scores, rtol=0, atol=1e-2)
    assert duplicated.shape == (int(counts.sum()),)


def test_sklearn_refuses_bad_weights(tmp_path: Path) -> None:
    inputs, labels, spec = make_dataset(300, KINDS, seed=4)
    bad = np.ones(300, np.float32)
    bad[9] = np.inf
    with pytest.raises(TrainingError, match="row 9") as info:
        _sklearn(inputs, labels, spec, tmp_path / "v", bad)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_torchrun_ranks_train_on_the_weights(
    data: Dataset, weights: np.ndarray, weighted: TrainResult, tmp_path: Path
) -> None:
    """The job directory carries the weights to every torchrun rank."""
    inputs, labels, spec = data
    config = CONFIG.model_copy(update={"workers": 2, "launcher": "torchrun"})
    two = train_model(
        inputs, labels, spec, config, tmp_path / "v", checkpoint_dir=tmp_path / "c", weights=weights
    )
    np.testing.assert_allclose(two.loss_history, weighted.loss_history, rtol=0, atol=1e-5)
