"""One DDP rank's shard of a streamed training set: only its row groups, only its buffer.

Epoch ``e`` permutes the file's row groups with a generator seeded by ``(seed, e)`` (the same
permutation on every rank, from the file's metadata alone) and cuts the permuted list into
``world`` contiguous runs, each cut at the group boundary nearest to ``rows * r / world``
(``split_groups``): a *balanced split by rows*, not round-robin. Every cut is within half a
row group of the even share, whatever the group sizes (round-robin positions ``r, r+N, ...``
can leave ranks several groups apart when sizes vary, e.g. a short last group per writer
batch). Rank ``r`` reads only its run, as record batches of ``chunk_rows``, encodes them and
shuffles within its own buffer of ``buffer_rows`` rows (generator seeded by ``(seed, e, r)``);
it never opens another rank's groups and never holds more than its buffer plus one chunk.

Every rank takes the same number of steps per epoch, the one-worker count
``ceil(rows / batch_size)``: rank ``r`` cuts its ``R_r`` rows into exactly that many local
batches of ``floor(R_r (k+1) / S) - floor(R_r k / S)`` rows (sizes differ by at most one),
so no row is dropped and no rank idles, and each step's global batch (the ranks' local batches
together) holds about ``rows / S <= batch_size`` rows. A rank with fewer rows than steps in
some epoch (fewer or much larger row groups than ranks) is refused before training starts.
The position in an epoch is the step alone, so a resumed rank re-reads its shard up to it.
"""

from __future__ import annotations

import math
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from spindle.core import TrainingError
from spindle.train._batches import Batch, Encode, ParquetBatches, _concat, _take
from spindle.train._spec import InputSpec, check_inputs, check_labels


class TransformEncoder:
    """Encode rows with a fitted feature transform (kept as its JSON) and a label column.

    What the train stage streams with; unlike a closure it can be pickled to spawned ranks and
    written to a torchrun job as JSON (``to_dict``), so every rank encodes with the one
    transform fitted in the launching process.
    """

    def __init__(self, transform_json: str, label: str) -> None:
        self.transform_json = transform_json
        self.label = label
        self._transform: Any = None

    def __call__(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``(transform.transform(table), float32 labels)``."""
        if self._transform is None:
            from spindle.features import Transform  # features load when a rank encodes

            self._transform = Transform.from_json(self.transform_json)
        labels = table.column(self.label).to_numpy(zero_copy_only=False).astype(np.float32)
        return self._transform.transform(table), labels

    def __getstate__(self) -> dict[str, Any]:
        return {"transform_json": self.transform_json, "label": self.label}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.transform_json = state["transform_json"]
        self.label = state["label"]
        self._transform = None

    def to_dict(self) -> dict[str, str]:
        """JSON values (``from_dict`` reads them back)."""
        return {"transform_json": self.transform_json, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TransformEncoder:
        """The inverse of ``to_dict``."""
        return cls(data["transform_json"], data["label"])


class CheckedEncode:
    """``encode``, then check its arrays against ``spec`` (inputs and labels, chunk by chunk).

    Raises:
        TrainingError: from ``check_inputs`` or ``check_labels``, naming the problem.
    """

    def __init__(self, encode: Encode, spec: InputSpec) -> None:
        self.encode = encode
        self.spec = spec

    def __call__(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        inputs, labels = self.encode(table)
        check_labels(labels, check_inputs(inputs, self.spec), self.spec)
        return inputs, labels


@dataclass(frozen=True)
class StreamData:
    """How the ranks stream a Parquet training set (``ShardBatches``'s arguments but the rank).

    ``encode`` is the caller's, unchecked: each rank checks every chunk against the spec.
    """

    path: str
    encode: Encode
    buffer_rows: int
    chunk_rows: int
    columns: tuple[str, ...] | None = None
    weight_column: str | None = None

    def source(self, spec: InputSpec, seed: int, rank: int, world: int) -> ShardBatches:
        """Rank ``rank``'s ``ShardBatches``."""
        return ShardBatches(
            Path(self.path),
            CheckedEncode(self.encode, spec),
            seed,
            rank,
            world,
            buffer_rows=self.buffer_rows,
            chunk_rows=self.chunk_rows,
            columns=list(self.columns) if self.columns is not None else None,
            weight_column=self.weight_column,
        )


@dataclass(frozen=True)
class ShardRead:
    """What one rank of a streamed DDP run read and held (this call's epochs, resumed or not).

    Attributes:
        rank: the rank.
        groups: per epoch run by this call, ``(epoch, row groups read, in read order)``.
        rows_read: rows read from the file (a resumed epoch's re-read part included).
        rows_trained: rows of this rank's local batches that were trained on.
        peak_rows_held: the most rows its shuffle buffer held at once.
        peak_rss_mb: the rank process's peak resident memory.
    """

    rank: int
    groups: tuple[tuple[int, tuple[int, ...]], ...]
    rows_read: int
    rows_trained: int
    peak_rows_held: int
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for ``torch.save`` with ``weights_only`` and for JSON)."""
        return {
            "rank": self.rank,
            "groups": [[epoch, list(groups)] for epoch, groups in self.groups],
            "rows_read": self.rows_read,
            "rows_trained": self.rows_trained,
            "peak_rows_held": self.peak_rows_held,
            "peak_rss_mb": self.peak_rss_mb,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardRead:
        """The inverse of ``to_dict``."""
        return cls(
            rank=int(data["rank"]),
            groups=tuple((int(e), tuple(int(g) for g in gs)) for e, gs in data["groups"]),
            rows_read=int(data["rows_read"]),
            rows_trained=int(data["rows_trained"]),
            peak_rows_held=int(data["peak_rows_held"]),
            peak_rss_mb=float(data["peak_rss_mb"]),
        )


def split_groups(group_rows: list[int], order: np.ndarray, world: int) -> list[np.ndarray]:
    """Cut the row groups ``order`` into ``world`` contiguous runs of about equal rows.

    Args:
        group_rows: rows of every row group of the file.
        order: the epoch's permutation of the group indices.
        world: the number of ranks.

    Returns:
        Rank ``r``'s groups, in read order, for every rank.
    """
    sizes = np.asarray(group_rows, dtype=np.int64)[order]
    ends = np.concatenate([[0], np.cumsum(sizes)])
    total = int(ends[-1])
    cuts = [0]
    for r in range(1, world):
        nearest = int(np.argmin(np.abs(ends - total * r / world)))
        cuts.append(max(nearest, cuts[-1]))
    cuts.append(len(order))
    return [order[cuts[r] : cuts[r + 1]] for r in range(world)]


def epoch_shards(group_rows: list[int], seed: int, epoch: int, world: int) -> list[np.ndarray]:
    """Every rank's row groups in ``epoch``: the seeded permutation, split by rows."""
    order = np.random.default_rng([seed, epoch]).permutation(len(group_rows))
    return split_groups(group_rows, order, world)


def split_problem(path: Path, seed: int, world: int, epochs: int, batch_size: int) -> str | None:
    """Why ``world`` ranks cannot stream ``path``'s row groups (None: they can).

    Every rank needs at least one row per step (``ceil(rows / batch_size)``) in every epoch;
    only the file's metadata is read.

    Returns:
        A one-line reason naming the epoch, the rank and what to change, or None.
    """
    metadata = pq.ParquetFile(path).metadata
    group_rows = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    steps = math.ceil(int(metadata.num_rows) / batch_size)
    for epoch in range(epochs):
        for rank, groups in enumerate(epoch_shards(group_rows, seed, epoch, world)):
            rows = int(sum(group_rows[g] for g in groups))
            if rows < steps:
                return (
                    f"{path}: streaming {len(group_rows)} row group(s) to {world} DDP ranks "
                    f"gives rank {rank} {rows} rows in epoch {epoch}, fewer than the epoch's "
                    f"{steps} steps: write the training set with more, smaller row groups, or "
                    "use fewer workers"
                )
    return None


def local_sizes(rows: int, steps: int) -> np.ndarray:
    """``rows`` cut into ``steps`` local batches whose sizes differ by at most one."""
    edges = np.arange(steps + 1, dtype=np.int64) * rows // steps
    return np.diff(edges)


class ShardBatches(ParquetBatches):
    """Rank ``rank`` of ``world``'s part of a Parquet training set, streamed (see the module).

    ``rows`` is the whole file's (the recipe counts the epoch's steps from it); ``shards``
    gives every rank's groups of an epoch. Arguments as ``ParquetBatches``, plus ``rank`` and
    ``world`` (the number of ranks). ``read()`` reports what this rank read and held.
    """

    def __init__(
        self,
        path: Path,
        encode: Encode,
        seed: int,
        rank: int,
        world: int,
        *,
        buffer_rows: int = 262_144,
        chunk_rows: int = 32_768,
        columns: list[str] | None = None,
        weight_column: str | None = None,
    ) -> None:
        super().__init__(
            path,
            encode,
            seed,
            buffer_rows=buffer_rows,
            chunk_rows=chunk_rows,
            columns=columns,
            weight_column=weight_column,
        )
        self.rank = rank
        self.world = world
        self.groups_read: dict[int, list[int]] = {}
        self.rows_read = 0
        self.rows_trained = 0

    def shards(self, epoch: int) -> list[np.ndarray]:
        """Every rank's row groups in ``epoch`` (the same on every rank)."""
        return epoch_shards(self.group_rows, self.seed, epoch, self.world)

    def check_shards(self, epochs: int, batch_size: int) -> None:
        """Refuse a split that leaves a rank fewer rows than steps in some epoch.

        Raises:
            TrainingError: naming the epoch, the rank's rows and what to change.
        """
        problem = split_problem(self.path, self.seed, self.world, epochs, batch_size)
        if problem is not None:
            raise TrainingError(problem)

    def batches(self, epoch: int, start_step: int, batch_size: int) -> Iterator[Batch]:
        """This rank's local batches of ``epoch`` from ``start_step`` on (``batch_size`` is
        the global one: it fixes the epoch's step count)."""
        groups = self.shards(epoch)[self.rank]
        mine = int(sum(self.group_rows[g] for g in groups))
        sizes = local_sizes(mine, math.ceil(self.rows / batch_size))
        self.groups_read[epoch] = []
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        for step, batch in enumerate(self._buffered(groups, rng, sizes, epoch)):
            if step >= start_step:
                self.rows_trained += len(batch.rows)
                yield batch

    def _buffered(
        self, groups: np.ndarray, rng: np.random.Generator, sizes: np.ndarray, epoch: int
    ) -> Iterator[Batch]:
        """Batches of ``sizes`` rows from the groups' chunks shuffled within the buffer."""
        buffer: list[Batch] = []
        held, step = 0, 0
        for chunk in self._group_chunks(groups, epoch):
            buffer.append(chunk)
            held += len(chunk.rows)
            self.rows_read += len(chunk.rows)
            self.max_rows_held = max(self.max_rows_held, held)
            if held < self.buffer_rows:
                continue
            whole, order = _concat(buffer), torch.from_numpy(rng.permutation(held))
            start = 0
            while step < len(sizes) and held - start >= sizes[step]:
                yield _take(whole, order[start : start + int(sizes[step])])
                start += int(sizes[step])
                step += 1
            buffer, held = [_take(whole, order[start:])], held - start
        if held:
            whole, order = _concat(buffer), torch.from_numpy(rng.permutation(held))
            start = 0
            for size in sizes[step:]:
                yield _take(whole, order[start : start + int(size)])
                start += int(size)

    def _group_chunks(self, groups: np.ndarray, epoch: int) -> Iterator[Batch]:
        """The chunks of ``groups`` in order, recording each group as it is opened."""
        for group in groups:
            self.groups_read[epoch].append(int(group))
            yield from self._chunks(np.array([group]))

    def read(self) -> ShardRead:
        """What this rank read and held so far."""
        groups = tuple((epoch, tuple(found)) for epoch, found in sorted(self.groups_read.items()))
        return ShardRead(
            rank=self.rank,
            groups=groups,
            rows_read=self.rows_read,
            rows_trained=self.rows_trained,
            peak_rows_held=self.max_rows_held,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
