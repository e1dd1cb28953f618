"""``train_from_parquet``: train on a Parquet training set streamed, in one process or in DDP
ranks that each stream only their shard."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from spindle.core import TrainingConfig, TrainingError
from spindle.train._batches import Encode, ParquetBatches
from spindle.train._ddp import train_ddp_stream
from spindle.train._shard import CheckedEncode, StreamData
from spindle.train._spec import InputSpec
from spindle.train._train import (
    _SAMPLE_ROWS,
    TrainResult,
    _base_file,
    _export_ddp,
    _run_fingerprint,
    _train_one_process,
)


def train_from_parquet(
    path: Path,
    encode: Encode,
    spec: InputSpec,
    config: TrainingConfig,
    out_dir: Path,
    *,
    checkpoint_dir: Path,
    data_id: str,
    base_weights: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    buffer_rows: int = 262_144,
    chunk_rows: int = 32_768,
    columns: list[str] | None = None,
    weight_column: str | None = None,
) -> TrainResult:
    """``train_model`` for a training set in a Parquet file, streamed: never held whole in RAM.

    Rows are read as Arrow record batches of ``chunk_rows``, encoded by ``encode`` (e.g. a
    fitted ``Transform`` and the label column; vectorised), checked against ``spec`` chunk by
    chunk, and shuffled per epoch by a seeded permutation of the row groups plus a shuffle
    inside a buffer of ``buffer_rows`` rows (``ParquetBatches``); a background thread prepares
    the next batches. The batch order is therefore not the in-memory path's (that permutes all
    rows), but it is as deterministic: same file, seed and threads give bit-identical weights,
    and a resumed run (the checkpoint holds epoch and step) ends bit-identical too.

    With ``config.workers > 1`` the DDP ranks each stream only their shard of the row groups
    (``train_ddp_stream``, ``ShardBatches``), each with its own buffer of ``buffer_rows``; the
    result's ``shards`` say what every rank read. ``encode`` then travels to the ranks: it
    must pickle (a module-level function or object, e.g. ``TransformEncoder``) for spawned
    ranks, and be a ``TransformEncoder`` for torchrun's.

    Args:
        path: the Parquet file of raw rows.
        encode: maps an Arrow table of rows to ``(inputs, labels)``.
        data_id: identifies the file's contents and the encoding (e.g. a hash of the
            training set and the transform): part of the run's fingerprint, so checkpoints of
            other data are never resumed.
        base_weights, progress: as for ``train_model``.
        buffer_rows, chunk_rows: the shuffle buffer and the read size, in rows (memory).
        columns: the columns ``encode`` reads (None: all); the others are never read.
        weight_column: the column of example weights (None: unweighted); each step's loss is
            their weighted mean, as ``train_model``'s ``weights``.

    Raises:
        TrainingError: as ``train_model``; with workers, also an ``encode`` that cannot travel
            to the ranks, or row groups too few or too large to give every rank a row per step.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise TrainingError(f"{out_dir} exists; model versions are immutable: choose a new dir")
    if config.workers > 1 and config.max_staleness_steps > 0:
        raise TrainingError(
            f"workers={config.workers} with max_staleness_steps={config.max_staleness_steps}: "
            "DDP workers update synchronously; set max_staleness_steps=0 for DDP, or workers=1 "
            "for the bounded-staleness recipe"
        )
    source = ParquetBatches(
        Path(path),
        CheckedEncode(encode, spec),
        config.seed,
        buffer_rows=buffer_rows,
        chunk_rows=chunk_rows,
        columns=columns,
        weight_column=weight_column,
    )
    if source.rows == 0:
        raise TrainingError(
            f"the training set {path} is empty (0 rows): check the date window and the data "
            "validation report of those days; there is nothing to train on"
        )
    base_file = _base_file(base_weights)
    epochs = config.warm_start_epochs if base_file is not None else config.epochs
    fingerprint = _run_fingerprint(
        data_id,
        spec,
        config,
        base_file,
        epochs,
        source=_parquet_source(buffer_rows, chunk_rows, weight_column),
    )
    sample = source.sample(_SAMPLE_ROWS)
    if config.workers > 1:
        stream = StreamData(
            str(path),
            encode,
            buffer_rows,
            chunk_rows,
            tuple(columns) if columns is not None else None,
            weight_column,
        )
        return _train_stream_workers(
            stream, source.rows, spec, config, out_dir, checkpoint_dir, base_file, epochs,
            fingerprint, sample, progress,
        )  # fmt: skip
    result = _train_one_process(
        source,
        spec,
        config,
        out_dir,
        checkpoint_dir,
        base_file,
        epochs,
        fingerprint,
        sample,
        progress,
        peak_rows_held=0,
    )
    return replace(result, peak_rows_held=source.max_rows_held)


def _train_stream_workers(
    stream: StreamData,
    rows: int,
    spec: InputSpec,
    config: TrainingConfig,
    out_dir: Path,
    checkpoint_dir: Path,
    base_file: Path | None,
    epochs: int,
    fingerprint: str,
    sample: dict[str, Any],
    progress: Callable[[int, int], None] | None,
) -> TrainResult:
    """The streamed data-parallel path: ``config.workers`` ranks stream, this one exports."""
    if config.launcher != "torchrun":
        _check_picklable(stream.encode, config.workers)
    outcome = train_ddp_stream(
        stream, spec, config, epochs, checkpoint_dir, fingerprint, base_file, progress
    )
    peak = max((s.peak_rows_held for s in outcome.shards), default=0)
    result = _export_ddp(out_dir, spec, config, epochs, outcome, sample, rows, peak)
    return replace(result, shards=outcome.shards)


def _check_picklable(encode: Encode, workers: int) -> None:
    """Refuse an ``encode`` that cannot be sent to spawned ranks, in one line.

    Raises:
        TrainingError: ``encode`` does not pickle (e.g. a nested function or a lambda).
    """
    try:
        pickle.dumps(encode)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise TrainingError(
            f"workers={workers} stream the training set in every rank, so encode must be "
            f"picklable (a module-level function or object, e.g. TransformEncoder): {error}"
        ) from None


def _parquet_source(buffer_rows: int, chunk_rows: int, weight_column: str | None) -> dict[str, Any]:
    """How a streamed run reads its batches, for its fingerprint (unweighted: as before)."""
    source: dict[str, Any] = {"parquet": True, "buffer_rows": buffer_rows, "chunk_rows": chunk_rows}
    if weight_column is not None:
        source["weight_column"] = weight_column
    return source
