"""The recipes one DDP rank runs: in memory (``DDPRecipe``) or streaming its shard.

``DDPRecipe``: every rank holds the whole training set and draws the same permutation (same
seed); each *global* batch of ``batch_size`` rows is cut into contiguous per-rank slices, so N
workers see exactly the rows one worker would. Each rank back-propagates its slice's summed
loss scaled by ``N / rows in the global batch``; DDP averages gradients over ranks, which gives
exactly the gradient of the global mean loss (also for an uneven last batch). With example
weights, the slice's weighted loss sum is scaled by ``N / sum of the global batch's weights``
instead (every rank holds the whole batch, so it knows that sum).

``StreamDDPRecipe``: every rank streams only its shard of a Parquet file (``ShardBatches``)
and trains on its own local batch each step; the global batch is the ranks' local batches
together. The rows (or weights) of the global batch are not known to any one rank, so after
the forward pass the ranks all-reduce ``[local loss sum, local count]`` (one small all-reduce,
as the in-memory recipe does for the loss) and scale by ``N / global count``: again exactly
the gradient of the global batch's mean loss.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from spindle.core import TrainingConfig, kill_point
from spindle.train._batches import Batch, BatchSource
from spindle.train._checkpoint import CheckpointStore
from spindle.train._head import head_losses
from spindle.train._plan import EmbeddingPlan
from spindle.train._recipe import SyncRecipe, weighted_loss_sum
from spindle.train._spec import InputSpec


class DDPRecipe(SyncRecipe):
    """The sync recipe run by one rank of a process group, with the model wrapped in DDP.

    Only what differs from ``SyncRecipe`` is here: setup wraps the model, the loss is computed
    on this rank's slice of the global batch and reduced over ranks, resume state comes from
    rank 0, and only rank 0 writes checkpoints (``checkpoints`` is None on the others).
    """

    def __init__(
        self,
        spec: InputSpec,
        config: TrainingConfig,
        epochs: int,
        checkpoints: CheckpointStore | None,
        rank: int,
        world_size: int,
    ) -> None:
        super().__init__(spec, config, epochs, checkpoints, None)
        self.rank = rank
        self.world_size = world_size

    def setup_source(self, source: BatchSource, base_weights: Path | None) -> None:
        """Set up as ``SyncRecipe`` does, then wrap the model in ``DistributedDataParallel``."""
        super().setup_source(source, base_weights)
        self.ddp = DistributedDataParallel(self.model)

    def _latest_checkpoint(self) -> tuple[dict[str, Any] | None, int, list[str]]:
        found: list[Any] = [super()._latest_checkpoint() if self.rank == 0 else None]
        dist.broadcast_object_list(found, src=0)
        state, step, notes = found[0]
        return state, int(step), list(notes)

    def _slice(self, rows: int) -> slice:
        """This rank's part of a global batch of ``rows`` rows."""
        return slice(self.rank * rows // self.world_size, (self.rank + 1) * rows // self.world_size)

    def _plan(self, batch: Batch) -> EmbeddingPlan | None:
        """Plan the lookups of this rank's slice only (the one ``_loss`` computes)."""
        part = self._slice(len(batch.labels))
        return super()._plan(replace(batch, inputs={n: t[part] for n, t in batch.inputs.items()}))

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, float]:
        kill_point(f"ddp:rank{self.rank}:step{self.global_step}")  # a rank dying mid-run
        rows = batch.labels.shape[0]
        part = self._slice(rows)
        local = {name: tensor[part] for name, tensor in batch.inputs.items()}
        logits = self.ddp(**local, plan=batch.plan)
        if batch.weights is None:
            summed = head_losses(self.spec, logits, batch.labels[part], reduction="sum")
            count = float(rows)
        else:  # every rank holds the whole global batch: its weight sum needs no exchange
            summed = weighted_loss_sum(logits, batch.labels[part], batch.weights[part], self.spec)
            count = float(batch.weights.sum().item())
        total = summed.detach().clone()
        dist.all_reduce(total)  # every rank sees the same loss: all stop together on NaN
        if count == 0:  # all weights zero: the batch counts for nothing
            return summed * 0.0, 0.0
        return summed * (self.world_size / count), float(total.item()) / count


class StreamDDPRecipe(DDPRecipe):
    """A DDP rank training on its own streamed shard: its batch is its local batch whole.

    ``_counted`` reports the global step's rows and count (all-reduced in ``_loss``), so the
    epoch's loss and ``examples_run`` are the same on every rank and cover every rank's rows.
    """

    _global_rows = 0
    _global_count = 0.0

    def _plan(self, batch: Batch) -> EmbeddingPlan | None:
        return SyncRecipe._plan(self, batch)

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, float]:
        kill_point(f"ddp:rank{self.rank}:step{self.global_step}")  # a rank dying mid-run
        logits = self.ddp(**batch.inputs, plan=batch.plan)
        if batch.weights is None:
            summed = head_losses(self.spec, logits, batch.labels, reduction="sum")
            count = float(batch.labels.shape[0])
        else:
            summed = weighted_loss_sum(logits, batch.labels, batch.weights, self.spec)
            count = float(batch.weights.sum().item())
        exchanged = torch.tensor(
            [float(summed.detach().item()), count, float(batch.labels.shape[0])],
            dtype=torch.float64,
        )
        dist.all_reduce(exchanged)  # the global batch's loss sum, count and rows
        total, global_count, global_rows = (float(x) for x in exchanged.tolist())
        self._global_rows = int(global_rows)
        self._global_count = global_count
        if global_count == 0:  # all weights zero: the batch counts for nothing
            return summed * 0.0, 0.0
        return summed * (self.world_size / global_count), total / global_count

    def _counted(self, batch: Batch) -> tuple[int, float]:
        if batch.weights is None:
            return self._global_rows, self._global_rows
        return self._global_rows, self._global_count


def gather_objects(value: object) -> list[Any]:
    """``value`` of every rank, in rank order (on every rank)."""
    found: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(found, value)
    return found
