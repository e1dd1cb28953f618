"""The bounded-staleness recipe: asynchronous, parameter-server-style updates, made repeatable.

With ``k = config.max_staleness_steps``, ``k + 1`` workers are in flight: each computes its
gradient on the parameters it pulled from the server, and by the time the server applies it,
``k`` other updates have landed. The server (this recipe's ``model`` and optimisers) therefore
applies at step ``t`` a gradient computed on the parameters of step ``t - min(k, t)``: the
staleness bound a real parameter server enforces by blocking a worker that falls further
behind. The recipe runs that schedule in one process, in a fixed order, so a run is
deterministic, checkpointable and resumable bit-identically like the sync recipe, and
``k = 0`` is exactly the sync recipe (a test checks the weights are bit-identical). It exists
to measure what staleness costs in quality (``spindle speed-check``, "models can train too fast");
wall-clock speed-ups of real asynchronous workers are what DDP gives here.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import torch

from spindle.core import TrainingConfig
from spindle.train._batches import Batch, BatchSource
from spindle.train._checkpoint import CheckpointStore
from spindle.train._model import Model, build_model
from spindle.train._recipe import Progress, SyncRecipe, mean_loss
from spindle.train._spec import InputSpec


class AsyncRecipe(SyncRecipe):
    """The sync recipe with every gradient computed on parameters up to ``k`` steps old.

    Only what differs from ``SyncRecipe`` is here: a second model (the worker's pulled copy)
    computes the loss and gradients, which the server's optimisers then apply; the last ``k + 1``
    parameter snapshots travel in every checkpoint.
    """

    def __init__(
        self,
        spec: InputSpec,
        config: TrainingConfig,
        epochs: int,
        checkpoints: CheckpointStore | None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(spec, config, epochs, checkpoints, progress)
        self.max_staleness_steps = config.max_staleness_steps
        self.snapshots: deque[dict[str, torch.Tensor]] = deque(maxlen=self.max_staleness_steps + 1)

    def setup_source(self, source: BatchSource, base_weights: Path | None) -> None:
        """Set up as ``SyncRecipe`` does, then the worker model and the first snapshot."""
        super().setup_source(source, base_weights)
        self.worker = build_model(self.spec, self.config)
        if not self.snapshots:  # a resumed run restored them from its checkpoint
            self.snapshots.append(_copy(self.model))
        self.notes.append(
            f"bounded staleness: gradients computed on parameters up to "
            f"{self.max_staleness_steps} step(s) old"
        )

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, float]:
        self.worker.load_state_dict(self.snapshots[0])  # the oldest parameters still in flight
        self.worker.zero_grad(set_to_none=True)
        logits = self.worker(**batch.inputs, plan=batch.plan)
        loss = mean_loss(logits, batch.labels, batch.weights, self.spec)
        return loss, float(loss.item())

    def _apply_gradients(self) -> None:
        for server, worker in zip(self.model.parameters(), self.worker.parameters(), strict=True):
            server.grad = worker.grad
        super()._apply_gradients()
        self.snapshots.append(_copy(self.model))

    def _extra_state(self) -> dict[str, Any]:
        return {"stale_snapshots": list(self.snapshots)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.snapshots.clear()
        self.snapshots.extend(state["stale_snapshots"])


def _copy(model: Model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
