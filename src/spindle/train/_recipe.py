"""The single-process synchronous recipe: setup, train, save/load checkpoint, cleanup, written out.

Deterministic given the config: the seed fixes the initial weights (``torch.manual_seed``) and
the batch order (see ``spindle.train._batches``: in memory, a numpy generator draws one
permutation of the rows per epoch; streamed from Parquet, the order is a function of seed and
epoch). Batches are prepared by a background thread (``Prefetcher``) while the step runs. A
checkpoint holds everything the loop reads (weights, both optimisers, both RNG states, epoch,
step in epoch, the source's data position and the running loss), so a resumed run ends with
bit-identical weights to an uninterrupted one.

The embedding tables (stacked into one parameter by ``Ranker``) get a sparse gradient and
``RowAdam``, a lazy Adam whose step costs in proportion to the rows a batch touches rather than
the table size; the MLP gets torch's fused Adam (``LeanAdam``: its kernel, called directly).
The prefetch thread also checks each batch for non-finite inputs and plans its embedding
lookups (``_prepare``), so the step runs the model's fused planned path
(``spindle.train._plan``, ``spindle.train._fused``). Measured on the 2-core CI machine
at batch 1024 (~40k embedding rows of 16): per-table ``SparseAdam`` + foreach Adam 50-58k
examples/s, stacked table + ``RowAdam`` + fused Adam 72-110k in the same runs (SparseAdam's
coalescing and sparse intermediates were over half of the step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spindle.core import TrainingConfig, TrainingError
from spindle.train._batches import ArrayBatches, Batch, BatchSource, Prefetcher
from spindle.train._checkpoint import CheckpointStore
from spindle.train._head import head_losses
from spindle.train._lean_adam import LeanAdam
from spindle.train._model import build_model
from spindle.train._plan import EmbeddingPlan
from spindle.train._row_adam import RowAdam
from spindle.train._spec import InputSpec
from spindle.train._warm_start import warm_start

Progress = Callable[[int, int], None]


class SyncRecipe:
    """One training run in this process.

    Use it as ``setup`` → ``train`` → (read ``model``) → ``cleanup``, the last in a ``finally``.

    Args:
        spec: the input shapes.
        config: hyperparameters, seed and threads.
        epochs: epochs of this run (``config.epochs``, or ``config.warm_start_epochs`` when the
            caller warm starts).
        checkpoints: where this run's checkpoints live (None: do not checkpoint; a DDP worker
            other than rank 0).
        progress: called after every step with ``(steps done, total steps)``.
    """

    def __init__(
        self,
        spec: InputSpec,
        config: TrainingConfig,
        epochs: int,
        checkpoints: CheckpointStore | None,
        progress: Progress | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.epochs = epochs
        self.checkpoints = checkpoints
        self.progress = progress
        self.notes: list[str] = []
        self.resumed_from_step: int | None = None
        self.warm_started = False
        self.steps_run = 0
        self.examples_run = 0
        self.final_loss = math.nan
        self.loss_history: list[float] = []
        self._last_save = time.monotonic()
        self._saved_step = -1
        self._previous_threads = torch.get_num_threads()

    # -- setup ------------------------------------------------------------------------------

    def setup(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        base_weights: Path | None,
        weights: np.ndarray | None = None,
    ) -> None:
        """Seed, build model and optimisers, then resume from a checkpoint or warm start.

        The training set is in memory (``inputs``, ``labels``, optional example ``weights``);
        ``setup_source`` takes any ``BatchSource`` (e.g. ``ParquetBatches`` for a set larger
        than memory).
        """
        self.rng = np.random.default_rng(self.config.seed)
        self.setup_source(ArrayBatches(inputs, labels, self.rng, weights), base_weights)

    def setup_source(self, source: BatchSource, base_weights: Path | None) -> None:
        """``setup`` with the batches drawn from ``source``."""
        torch.manual_seed(self.config.seed)
        torch.set_num_threads(step_threads(self.config.threads))
        self.source = source
        self.rows = source.rows
        self.steps_per_epoch = math.ceil(self.rows / self.config.batch_size)
        self.total_steps = self.epochs * self.steps_per_epoch

        self.model = build_model(self.spec, self.config)
        sparse = self.model.sparse_parameters()
        self.sparse_optimizer = RowAdam(sparse, lr=self.config.learning_rate) if sparse else None
        self.dense_optimizer = LeanAdam(
            self.model.dense_parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )
        if self.config.weight_decay > 0 and sparse:
            self.notes.append("weight_decay applies to the MLP only (RowAdam has none)")

        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.loss_sum = 0.0
        self.loss_rows: float = 0  # rows, or their summed weights when weighted

        # Resume (continue this run) wins over warm start (begin a run from another model).
        state, step, skipped = self._latest_checkpoint()
        self.notes += skipped
        if state is not None:
            self.load_checkpoint(state)
            self.resumed_from_step = step
            self.notes.append(f"resumed from the checkpoint of step {step} of {self.total_steps}")
        elif base_weights is not None:
            self.warm_started, warm_notes = warm_start(self.model, base_weights)
            self.notes += warm_notes

    # -- train ------------------------------------------------------------------------------

    def train(self) -> None:
        """Run the remaining steps of every epoch, checkpointing every N steps and at the end.

        Epochs and steps in messages count from 0; the global step counts steps before it.

        Raises:
            TrainingError: non-finite inputs or loss (naming epoch, step and batch rows); the
                last good checkpoint is kept and nothing is saved after the bad step.
        """
        self.model.train()
        while self.epoch < self.epochs:
            self.source.begin_epoch(self.epoch)
            batches = Prefetcher(
                self.source.batches(self.epoch, self.step_in_epoch, self.config.batch_size),
                prepare=self._prepare,
            )
            try:
                for step, batch in enumerate(batches, start=self.step_in_epoch):
                    self._step(step, batch)
            finally:
                batches.close()
            self.final_loss = self.loss_sum / self.loss_rows if self.loss_rows > 0 else 0.0
            self.epoch += 1
            self.step_in_epoch = 0
            self.source.end_epoch()
            self.loss_sum, self.loss_rows = 0.0, 0
        if self.steps_run and self._saved_step != self.global_step:
            # The end state too, so a crash during export does not redo the training.
            self.save_checkpoint()
        self.model.eval()

    def _step(self, step: int, batch: Batch) -> None:
        """Check the batch, compute the loss, apply the gradients, count, maybe checkpoint."""
        self._check_batch(batch, step)
        loss, loss_value = self._loss(batch)
        if not math.isfinite(loss_value):
            raise TrainingError(
                f"the loss became {loss_value} in epoch {self.epoch}, step {step} "
                f"(global step {self.global_step}), batch rows {_rows_text(batch.rows)}; "
                f"the model diverged: lower learning_rate (now {self.config.learning_rate}); "
                "the last good checkpoint is kept"
            )
        self.dense_optimizer.zero_grad(set_to_none=True)
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        self._apply_gradients()

        self.step_in_epoch = step + 1
        self.global_step += 1
        self.steps_run += 1
        examples, counted = self._counted(batch)
        self.examples_run += examples
        # The epoch's loss is the mean over its rows, weighted as the steps' losses are.
        self.loss_sum += loss_value * counted
        self.loss_rows += counted
        self.loss_history.append(loss_value)
        if self._checkpoint_due():
            self.save_checkpoint()
        if self.progress is not None:
            self.progress(self.global_step, self.total_steps)

    def _prepare(self, batch: Batch) -> Batch:
        """Find non-finite inputs and plan the embedding lookups (runs in the prefetch thread)."""
        dense = batch.inputs.get("dense")
        bad = None
        if dense is not None:
            finite = np.isfinite(dense.numpy()).all(axis=1)
            bad = None if finite.all() else int(np.argmin(finite))
        return replace(batch, plan=self._plan(batch), nonfinite_row=bad)

    def _plan(self, batch: Batch) -> EmbeddingPlan | None:
        """The ``EmbeddingPlan`` of the rows this process computes (all of the batch here)."""
        cat, text = batch.inputs.get("cat"), batch.inputs.get("text")
        return self.model.plan(
            cat.numpy() if cat is not None else None, text.numpy() if text is not None else None
        )

    def _loss(self, batch: Batch) -> tuple[torch.Tensor, float]:
        """The loss to back-propagate and the batch's mean loss (what is checked and logged)."""
        logits = self.model(**batch.inputs, plan=batch.plan)
        loss = mean_loss(logits, batch.labels, batch.weights, self.spec)
        return loss, float(loss.item())

    def _counted(self, batch: Batch) -> tuple[int, float]:
        """The step's rows and what its loss counts for in the epoch's mean: the rows, or
        their summed weights when weighted (the batch is the whole step's here)."""
        rows = len(batch.rows)
        return rows, rows if batch.weights is None else float(batch.weights.sum().item())

    def _apply_gradients(self) -> None:
        """One optimiser step of the gradients just computed."""
        self.dense_optimizer.step()
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.step()

    def _extra_state(self) -> dict[str, Any]:
        """State a derived recipe adds to every checkpoint (none here)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``_extra_state`` added."""

    def _checkpoint_due(self) -> bool:
        """Every ``checkpoint_every_steps`` steps, or ``checkpoint_every_s`` seconds if set."""
        if self.global_step % self.config.checkpoint_every_steps == 0:
            return True
        every_s = self.config.checkpoint_every_s
        return every_s is not None and time.monotonic() - self._last_save >= every_s

    def _latest_checkpoint(self) -> tuple[dict[str, Any] | None, int, list[str]]:
        if self.checkpoints is None:
            return None, 0, []
        return self.checkpoints.load_latest()

    def _check_batch(self, batch: Batch, step: int) -> None:
        bad_position = batch.nonfinite_row
        if bad_position is None:
            return
        dense = batch.inputs["dense"]
        raise TrainingError(
            f"non-finite value in inputs['dense'] in epoch {self.epoch}, step {step} "
            f"(global step {self.global_step}), batch rows {_rows_text(batch.rows)}: "
            f"row {int(batch.rows[bad_position])} is {dense[bad_position].tolist()}; fix or "
            "drop that row upstream (the transform should never emit NaN/inf); the last good "
            "checkpoint is kept"
        )

    # -- checkpoints ------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Write every piece of state the loop reads, atomically (see ``CheckpointStore``)."""
        if self.checkpoints is None:
            return
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "dense_optimizer": self.dense_optimizer.state_dict(),
            "sparse_optimizer": (
                self.sparse_optimizer.state_dict() if self.sparse_optimizer is not None else None
            ),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            **self.source.state(),
            "loss_sum": self.loss_sum,
            "loss_rows": self.loss_rows,
            "final_loss": self.final_loss,
            "warm_started": self.warm_started,
            **self._extra_state(),
        }
        self.checkpoints.save(self.global_step, state)
        self._last_save = time.monotonic()
        self._saved_step = self.global_step

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        """Restore what ``save_checkpoint`` wrote."""
        self.model.load_state_dict(state["model"])
        self.dense_optimizer.load_state_dict(state["dense_optimizer"])
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.load_state_dict(state["sparse_optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.source.load_state(state)
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.loss_sum = float(state["loss_sum"])
        rows = state["loss_rows"]  # an int unweighted, the summed weights (float) weighted
        self.loss_rows = int(rows) if isinstance(rows, int) else float(rows)
        self.final_loss = float(state["final_loss"])
        self.warm_started = bool(state["warm_started"])
        self._load_extra_state(state)

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Release the checkpoint dir and restore the process's thread count."""
        if self.checkpoints is not None:
            self.checkpoints.close()
        torch.set_num_threads(self._previous_threads)


def mean_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    spec: InputSpec | None = None,
) -> torch.Tensor:
    """The batch's mean loss of the head (``spec``'s task; None: logistic, a binary head);
    with example weights, ``sum(w * l) / sum(w)``.

    A batch whose weights are all zero has loss 0 (and no gradient): its rows do not count.
    """
    if weights is None:
        return head_losses(spec, logits, labels, reduction="mean")
    summed = weighted_loss_sum(logits, labels, weights, spec)
    total = float(weights.sum().item())
    return summed / total if total > 0 else summed * 0.0


def weighted_loss_sum(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    spec: InputSpec | None = None,
) -> torch.Tensor:
    """``sum(w * l)`` of the rows' losses ``l`` (the numerator of the weighted mean)."""
    return (head_losses(spec, logits, labels) * weights).sum()


def step_threads(threads: int) -> int:
    """Intra-op threads of the step when a process has ``threads``: one feeds the batches.

    Measured at batch 1024 on the 2-core machine (ranker of ``benchmarks/train_throughput.py``,
    median of 6 runs each): one step thread plus the batch thread 410-420k examples/s; two step
    threads plus the batch thread 174k with OpenMP's passive waiting (each parallel region
    wakes a sleeping thread), 348-354k with spinning threads, which also collapse as soon as
    other work shares the cores.
    """
    return max(1, threads - 1)


def _rows_text(rows: np.ndarray) -> str:
    """The source rows of a batch, for messages: the first eight and the count."""
    shown = ", ".join(str(int(r)) for r in rows[:8])
    return f"[{shown}{', ...' if len(rows) > 8 else ''}] ({len(rows)} rows)"
