"""Batch sources: where the training loop's batches come from, and the thread that prefetches them.

A source yields one epoch's batches in a deterministic order that depends only on the seed, the
epoch and (for arrays) the recipe's numpy generator, so a checkpoint's epoch and step (plus the
source's ``state()``) fix the exact batches a resumed run sees.

- ``ArrayBatches``: the training set in memory (tensors sharing the arrays' memory); one
  permutation of the rows per epoch, each batch gathered from it (``index_select``).

Either source may carry example weights (float32 ``[N]``, one per row): they travel with their
rows into every batch (``Batch.weights``), and the recipe's loss becomes their weighted mean.
- ``ParquetBatches``: the training set as a Parquet file, read as Arrow record batches and
  encoded chunk by chunk (``encode``: e.g. ``Transform.transform``, vectorised); per epoch a
  seeded permutation of the row groups, rows shuffled inside a bounded buffer. Memory is
  bounded by ``buffer_rows`` plus one chunk (and the compressed bytes of the row group being
  read), not by the file.
- ``Prefetcher``: runs a source's iterator in a background thread into a bounded queue, so
  reading, encoding, gathering and planning the embedding lookups (``prepare``) overlap with
  the step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from spindle.core import TrainingError
from spindle.train._plan import EmbeddingPlan

Encode = Callable[[pa.Table], tuple[dict[str, np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Batch:
    """One batch: model inputs, float32 labels, the source rows they came from, and what the
    prefetch thread found out while preparing it: the plan of its embedding lookups and the
    position of the first row with a non-finite dense input (None: all finite). ``weights``
    are the rows' float32 example weights (None: every row counts the same)."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    rows: np.ndarray
    plan: EmbeddingPlan | None = None
    nonfinite_row: int | None = None
    weights: torch.Tensor | None = None


class BatchSource(Protocol):
    """What the recipe needs of its data."""

    rows: int

    def begin_epoch(self, epoch: int) -> None:
        """Fix this epoch's order (main thread; a no-op when resumed mid-epoch)."""

    def batches(self, epoch: int, start_step: int, batch_size: int) -> Iterator[Batch]:
        """The epoch's batches from ``start_step`` on (may run in another thread)."""
        ...

    def end_epoch(self) -> None:
        """Forget the finished epoch's order."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint must hold to replay the same batches."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""


class ArrayBatches:
    """An in-memory training set; one permutation per epoch from ``rng`` (kept in checkpoints).

    Args:
        inputs: model inputs (numpy; shared with torch when writeable, else copied once).
        labels: float32 ``[N]``.
        rng: the recipe's generator (seeded with the config's seed).
        weights: float32 ``[N]`` example weights (None: unweighted).
    """

    def __init__(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        rng: np.random.Generator,
        weights: np.ndarray | None = None,
    ) -> None:
        self.inputs = {name: _tensor(array) for name, array in inputs.items()}
        self.labels = _tensor(labels)
        self.weights = _tensor(weights) if weights is not None else None
        self.rows = int(labels.shape[0])
        self.rng = rng
        self.permutation: np.ndarray | None = None

    def begin_epoch(self, epoch: int) -> None:
        if self.permutation is None:
            self.permutation = self.rng.permutation(self.rows)

    def batches(self, epoch: int, start_step: int, batch_size: int) -> Iterator[Batch]:
        assert self.permutation is not None
        permutation = self.permutation
        order = torch.from_numpy(permutation)
        for start in range(start_step * batch_size, self.rows, batch_size):
            rows = order[start : start + batch_size]
            yield Batch(
                {name: tensor.index_select(0, rows) for name, tensor in self.inputs.items()},
                self.labels.index_select(0, rows),
                permutation[start : start + batch_size],
                weights=self.weights.index_select(0, rows) if self.weights is not None else None,
            )

    def end_epoch(self) -> None:
        self.permutation = None

    def state(self) -> dict[str, Any]:
        permutation = self.permutation
        return {
            "numpy_rng": self.rng.bit_generator.state,
            "permutation": torch.from_numpy(permutation) if permutation is not None else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy_rng"]
        permutation = state["permutation"]
        self.permutation = permutation.numpy() if permutation is not None else None


class ParquetBatches:
    """A training set streamed from a Parquet file, never held whole in memory.

    Epoch ``e`` reads the row groups in the order of a permutation seeded by ``(seed, e)``,
    as record batches of ``chunk_rows``; each chunk is encoded to tensors by ``encode`` and
    appended to a buffer; when the buffer holds ``buffer_rows`` rows it is shuffled (same
    seed) and emptied into batches, the remainder of less than one batch staying for the next
    fill. The order is a function of the seed and the epoch only, so the data position in a
    checkpoint is just the epoch and step: a resumed run re-reads the epoch up to that step
    without training on it. ``max_rows_held`` records the most rows ever buffered.

    Args:
        path: the Parquet file.
        encode: maps an Arrow table of rows to ``(inputs, labels)`` (vectorised: e.g. a fitted
            ``spindle.features.Transform`` and the label column).
        seed: the shuffle seed (the config's).
        buffer_rows: rows shuffled together; bounds memory.
        chunk_rows: rows read and encoded at a time.
        columns: the columns ``encode`` reads (None: all).
        weight_column: the column of example weights (None: unweighted); read as float32 and
            checked chunk by chunk (finite, >= 0).
    """

    def __init__(
        self,
        path: Path,
        encode: Encode,
        seed: int,
        *,
        buffer_rows: int = 262_144,
        chunk_rows: int = 32_768,
        columns: list[str] | None = None,
        weight_column: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.weight_column = weight_column
        if columns is not None and weight_column is not None and weight_column not in columns:
            columns = [*columns, weight_column]
        self.columns = columns
        self.encode = encode
        self.seed = seed
        self.buffer_rows = buffer_rows
        self.chunk_rows = chunk_rows
        metadata = pq.ParquetFile(self.path).metadata
        self.rows = int(metadata.num_rows)
        self.group_rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        self.group_starts = np.concatenate([[0], np.cumsum(self.group_rows)[:-1]]).astype(np.int64)
        self.max_rows_held = 0

    def begin_epoch(self, epoch: int) -> None:
        pass  # the order is a pure function of (seed, epoch)

    def batches(self, epoch: int, start_step: int, batch_size: int) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, epoch])
        buffer: list[Batch] = []
        held = 0
        step = 0
        for chunk in self._chunks(rng.permutation(len(self.group_rows))):
            buffer.append(chunk)
            held += len(chunk.rows)
            self.max_rows_held = max(self.max_rows_held, held)
            if held < self.buffer_rows:
                continue
            # Each batch gathers its rows from the buffer by the permutation: no shuffled
            # copy of the whole buffer, and steps before ``start_step`` cost nothing.
            whole, order = _concat(buffer), torch.from_numpy(rng.permutation(held))
            full = held // batch_size * batch_size
            for start in range(0, full, batch_size):
                if step >= start_step:
                    yield _take(whole, order[start : start + batch_size])
                step += 1
            buffer, held = [_take(whole, order[full:])], held - full
        if held:
            whole, order = _concat(buffer), torch.from_numpy(rng.permutation(held))
            for start in range(0, held, batch_size):
                if step >= start_step:
                    yield _take(whole, order[start : start + batch_size])
                step += 1

    def _chunks(self, groups: np.ndarray) -> Iterator[Batch]:
        file = pq.ParquetFile(self.path)
        for group in groups:
            offset = int(self.group_starts[group])
            for record_batch in file.iter_batches(
                batch_size=self.chunk_rows, row_groups=[int(group)], columns=self.columns
            ):
                table = pa.Table.from_batches([record_batch])
                inputs, labels = self.encode(table)
                count = int(labels.shape[0])
                weights = None
                if self.weight_column is not None:
                    weights = _tensor(column_weights(table, self.weight_column, offset))
                yield Batch(
                    {name: _tensor(array) for name, array in inputs.items()},
                    _tensor(labels),
                    np.arange(offset, offset + count, dtype=np.int64),
                    weights=weights,
                )
                offset += count

    def end_epoch(self) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"data_position": {"source": "parquet", "path": str(self.path)}}

    def load_state(self, state: dict[str, Any]) -> None:
        pass  # epoch and step, restored by the recipe, are the whole position

    def sample(self, rows: int) -> dict[str, np.ndarray]:
        """The encoded first ``rows`` rows of the file (to verify an export on)."""
        file = pq.ParquetFile(self.path)
        first = next(file.iter_batches(batch_size=rows, columns=self.columns), None)
        if first is None:
            return {}
        inputs, _ = self.encode(pa.Table.from_batches([first]))
        return inputs


def _take(batch: Batch, index: torch.Tensor) -> Batch:
    """The rows ``index`` of ``batch``, copied (so the buffer they came from can be freed)."""
    return Batch(
        {name: tensor.index_select(0, index) for name, tensor in batch.inputs.items()},
        batch.labels.index_select(0, index),
        batch.rows[index.numpy()],
        weights=batch.weights.index_select(0, index) if batch.weights is not None else None,
    )


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    names = parts[0].inputs
    return Batch(
        {name: torch.cat([p.inputs[name] for p in parts]) for name in names},
        torch.cat([p.labels for p in parts]),
        np.concatenate([p.rows for p in parts]),
        weights=(
            torch.cat([p.weights for p in parts if p.weights is not None])
            if parts[0].weights is not None
            else None
        ),
    )


class Prefetcher:
    """Iterate ``source`` in a daemon thread, ``depth`` items ahead; errors re-raise here.

    ``prepare``, when given, is applied to every batch in that thread too (the recipe plans the
    embedding lookups there). Always ``close()`` it (the recipe does, in a ``finally``): that
    stops the thread even when the consumer stops early (a crash, an interrupted run).
    """

    _DONE = object()

    def __init__(
        self,
        source: Iterator[Batch],
        depth: int = 4,
        prepare: Callable[[Batch], Batch] | None = None,
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._prepare = prepare
        self._thread = threading.Thread(
            target=self._run, args=(source,), name="spindle-prefetch", daemon=True
        )
        self._thread.start()

    def _run(self, source: Iterator[Batch]) -> None:
        try:
            for batch in source:
                item = self._prepare(batch) if self._prepare is not None else batch
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Batch]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Batch)
            yield item

    def close(self) -> None:
        """Stop the thread and drop what it prefetched."""
        self._stop.set()
        self._thread.join()


def column_weights(table: pa.Table, column: str, first_row: int = 0) -> np.ndarray:
    """The example weights of ``table``'s ``column`` as float32 ``[N]``, checked.

    Args:
        table: rows of a training set.
        column: the weight column (``examples.weight`` of the model).
        first_row: the row number of the table's first row, for messages.

    Returns:
        float32 weights, one per row.

    Raises:
        TrainingError: the column is missing or not numeric, or a weight is null,
            non-finite or negative (names the first such row).
    """
    if column not in table.column_names:
        raise TrainingError(f"the training set has no weight column {column!r}")
    try:
        values = table.column(column).cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TrainingError(f"weight column {column!r} is not numeric: {error}") from None
    weights: np.ndarray = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)
    check_weights(weights, column, first_row)
    return weights


def check_weights(weights: np.ndarray, what: str = "weights", first_row: int = 0) -> None:
    """Refuse example weights that are null (NaN), non-finite or negative.

    Raises:
        TrainingError: naming the first bad row and its value.
    """
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))
    if bad.size:
        raise TrainingError(
            f"example {what} must be finite and >= 0; {bad.size} are not (first: row "
            f"{first_row + int(bad[0])} = {weights[bad[0]]}); fix the weight upstream"
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    """Share the array's memory when torch may (Arrow-backed arrays are read-only: copy those)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())
