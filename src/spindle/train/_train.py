"""``train_model``: the training step, from model inputs to an immutable model version directory."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spindle.core import (
    TrainingConfig,
    TrainingError,
    atomic_directory,
    sha256_file,
    sha256_json,
)
from spindle.train._async import AsyncRecipe
from spindle.train._batches import (
    ArrayBatches,
    BatchSource,
    check_weights,
)
from spindle.train._checkpoint import CheckpointStore
from spindle.train._ddp import DDPOutcome, train_ddp
from spindle.train._export import MODEL_FILE, export_onnx
from spindle.train._model import Model, build_model
from spindle.train._recipe import SyncRecipe, step_threads
from spindle.train._shard import ShardRead
from spindle.train._spec import InputSpec, check_inputs, check_labels
from spindle.train._warm_start import SPEC_FILE, WEIGHTS_FILE

_SAMPLE_ROWS = 256


@dataclass(frozen=True)
class TrainResult:
    """What one call of ``train_model`` produced and what it cost.

    ``seconds``, ``cpu_s`` and the rates measure the training loop of this call (the steps it
    ran: fewer than ``steps`` after a resume); setup and export are excluded. ``utilisation``
    is ``cpu_s / (seconds * threads * workers)``; with several workers ``cpu_s`` sums every
    worker's loop and ``seconds`` is rank 0's. ``peak_rss_mb`` is this process's peak so far
    (with workers: the parent's, not theirs). ``loss_history`` is the mean loss of every step
    this call ran (over all workers' rows). ``peak_rows_held`` is the most training rows held
    in memory at once: all of them in memory, the shuffle buffer's peak when streamed (with
    workers streaming their shards: the largest of the ranks' buffers). ``shards`` says what
    each rank read when DDP workers streamed (``ShardRead``; empty otherwise).
    ``weights_sha256`` hashes the state_dict canonically (names sorted, dtype, shape, bytes):
    equal exactly when the weights are bit-identical.
    """

    out_dir: Path
    onnx_path: Path
    weights_path: Path
    weights_sha256: str
    examples: int
    epochs: int
    steps: int
    seconds: float
    examples_per_s: float
    cpu_s: float
    m_examples_per_cpu_s: float
    utilisation: float
    peak_rss_mb: float
    final_loss: float
    resumed_from_step: int | None
    warm_started: bool
    notes: tuple[str, ...]
    workers: int = 1
    loss_history: tuple[float, ...] = ()
    peak_rows_held: int = 0
    shards: tuple[ShardRead, ...] = ()


def train_model(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spec: InputSpec,
    config: TrainingConfig,
    out_dir: Path,
    *,
    checkpoint_dir: Path,
    base_weights: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    weights: np.ndarray | None = None,
) -> TrainResult:
    """Train a ranker and write its model version directory.

    The head and loss follow ``spec.task`` (see ``with_head``): binary and ranking one logit
    with pointwise logistic loss, regression one value with squared error on the
    standardised label, multiclass ``spec.classes`` logits with softmax cross-entropy.

    Resumes from the newest intact checkpoint of the same run (same config, data and base) in
    ``checkpoint_dir``; otherwise warm starts from ``base_weights`` if given (for
    ``config.warm_start_epochs`` epochs instead of ``config.epochs``; whether to warm start is
    the caller's choice). ``out_dir`` appears atomically with ``model.onnx``, ``weights.pt``
    (``torch.save`` of the state_dict) and ``input_spec.json``. Checkpoints stay in
    ``checkpoint_dir`` (the last two) for the caller to remove once the run is recorded.

    Args:
        inputs: model inputs as ``spindle.features.Transform`` makes them (see ``InputSpec``).
        labels: float32 ``[N]``: in {0, 1} (binary, ranking), finite values (regression),
            class indices ``0..K-1`` (multiclass).
        spec: the input spec.
        config: hyperparameters, seed, threads, checkpoint interval.
        out_dir: the model version directory to create; must not exist.
        checkpoint_dir: this run's checkpoint directory.
        base_weights: a base version directory or its ``weights.pt``, to warm start from.
        progress: called after every step with ``(steps done, total steps)``; with
            ``config.workers > 1``, about twice a second from a thread tailing rank 0's
            progress file (see ``train_ddp``).
        weights: float32 ``[N]`` example weights, finite and >= 0, not all zero (None: every
            row counts the same). Each step's loss is then the weighted mean
            ``sum(w * l) / sum(w)`` over the global batch (with DDP too), so scaling every
            weight by a power of two changes nothing, and a row of weight 0 adds no gradient.

    With ``config.max_staleness_steps > 0`` the bounded-staleness recipe (``AsyncRecipe``)
    runs instead of the sync one. With ``config.workers > 1`` the loop runs in that many local DDP worker processes (see
    ``spindle.train.train_ddp``) with the same global batch; this process then exports.

    Raises:
        TrainingError: no rows, inputs that do not match the spec, labels outside {0, 1},
            weights that are not float32 ``[N]``, finite, >= 0 and not all zero, non-finite
            inputs or loss, ``out_dir`` exists, or the export does not verify.

    Example:
        >>> result = train_model({"dense": x}, y, InputSpec(n_dense=4), TrainingConfig(),
        ...     Path("models/v1"), checkpoint_dir=Path("ckpt/run1"))  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise TrainingError(f"{out_dir} exists; model versions are immutable: choose a new dir")
    rows = check_inputs(inputs, spec)
    check_labels(labels, rows, spec)
    if rows == 0:
        raise TrainingError(
            "the training set is empty (0 rows): check the date window and the data validation "
            "report of those days; there is nothing to train on"
        )
    if weights is not None:
        _check_weights(weights, rows)
    base_file = _base_file(base_weights)
    epochs = config.warm_start_epochs if base_file is not None else config.epochs
    data_id = data_sha256(inputs, labels, weights)
    fingerprint = _run_fingerprint(data_id, spec, config, base_file, epochs)
    sample = {name: array[:_SAMPLE_ROWS] for name, array in inputs.items()}
    if config.workers > 1 and config.max_staleness_steps > 0:
        raise TrainingError(
            f"workers={config.workers} with max_staleness_steps={config.max_staleness_steps}: "
            "DDP workers update synchronously; set max_staleness_steps=0 for DDP, or workers=1 "
            "for the bounded-staleness recipe"
        )
    if config.workers > 1:
        return _train_workers(
            inputs,
            labels,
            spec,
            config,
            out_dir,
            checkpoint_dir,
            base_file,
            epochs,
            fingerprint,
            progress,
            weights,
        )
    rng = np.random.default_rng(config.seed)  # the recipe's generator: the permutations
    source = ArrayBatches(inputs, labels, rng, weights)
    return _train_one_process(
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
        peak_rows_held=rows,
    )


def _train_one_process(
    source: BatchSource,
    spec: InputSpec,
    config: TrainingConfig,
    out_dir: Path,
    checkpoint_dir: Path,
    base_file: Path | None,
    epochs: int,
    fingerprint: str,
    sample: dict[str, np.ndarray],
    progress: Callable[[int, int], None] | None,
    *,
    peak_rows_held: int,
) -> TrainResult:
    """The sync or bounded-staleness recipe in this process, then the export."""
    store = CheckpointStore(checkpoint_dir, fingerprint)
    recipe_type = AsyncRecipe if config.max_staleness_steps > 0 else SyncRecipe
    recipe = recipe_type(spec, config, epochs, store, progress)
    try:
        recipe.setup_source(source, base_file)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        recipe.train()
        seconds = time.perf_counter() - wall0
        cpu_s = time.process_time() - cpu0
        _write_version(out_dir, recipe.model, spec, sample)
    finally:
        recipe.cleanup()
    return _result(
        out_dir,
        recipe.model,
        rows=source.rows,
        epochs=epochs,
        steps=recipe.global_step,
        examples_run=recipe.examples_run,
        seconds=seconds,
        cpu_s=cpu_s,
        cores=config.threads,  # the process's budget: step threads + the batch thread
        final_loss=recipe.final_loss,
        resumed_from_step=recipe.resumed_from_step,
        warm_started=recipe.warm_started,
        notes=recipe.notes,
        workers=1,
        loss_history=recipe.loss_history,
        peak_rows_held=peak_rows_held,
    )


def _train_workers(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spec: InputSpec,
    config: TrainingConfig,
    out_dir: Path,
    checkpoint_dir: Path,
    base_file: Path | None,
    epochs: int,
    fingerprint: str,
    progress: Callable[[int, int], None] | None,
    weights: np.ndarray | None,
) -> TrainResult:
    """The data-parallel path: ``config.workers`` processes train, this one exports."""
    outcome = train_ddp(
        inputs,
        labels,
        spec,
        config,
        epochs,
        checkpoint_dir,
        fingerprint,
        base_file,
        progress,
        weights,
    )
    sample = {name: array[:_SAMPLE_ROWS] for name, array in inputs.items()}
    rows = int(labels.shape[0])
    return _export_ddp(out_dir, spec, config, epochs, outcome, sample, rows, rows)


def _export_ddp(
    out_dir: Path,
    spec: InputSpec,
    config: TrainingConfig,
    epochs: int,
    outcome: DDPOutcome,
    sample: dict[str, Any],
    rows: int,
    peak_rows_held: int,
) -> TrainResult:
    """Rank 0's weights of a data-parallel run written as the version, and its figures."""
    model = build_model(spec, config)
    model.load_state_dict(outcome.state_dict)
    _write_version(out_dir, model, spec, sample)
    return _result(
        out_dir,
        model,
        rows=rows,
        epochs=epochs,
        steps=outcome.global_step,
        examples_run=outcome.examples_run,
        seconds=outcome.seconds,
        cpu_s=outcome.cpu_s,
        cores=config.threads * config.workers,
        final_loss=outcome.final_loss,
        resumed_from_step=outcome.resumed_from_step,
        warm_started=outcome.warm_started,
        notes=outcome.notes,
        workers=config.workers,
        loss_history=outcome.loss_history,
        peak_rows_held=peak_rows_held,
    )


def _result(
    out_dir: Path,
    model: Model,
    *,
    rows: int,
    epochs: int,
    steps: int,
    examples_run: int,
    seconds: float,
    cpu_s: float,
    cores: int,
    final_loss: float,
    resumed_from_step: int | None,
    warm_started: bool,
    notes: list[str],
    workers: int,
    loss_history: list[float],
    peak_rows_held: int,
) -> TrainResult:
    utilisation = cpu_s / (seconds * cores) if seconds > 0 else 0.0
    return TrainResult(
        out_dir=out_dir,
        onnx_path=out_dir / MODEL_FILE,
        weights_path=out_dir / WEIGHTS_FILE,
        weights_sha256=state_dict_sha256(model.state_dict()),
        examples=rows,
        epochs=epochs,
        steps=steps,
        seconds=seconds,
        examples_per_s=examples_run / seconds if seconds > 0 else 0.0,
        cpu_s=cpu_s,
        m_examples_per_cpu_s=examples_run / 1e6 / cpu_s if cpu_s > 0 else 0.0,
        utilisation=utilisation,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        final_loss=final_loss,
        resumed_from_step=resumed_from_step,
        warm_started=warm_started,
        notes=tuple(notes + _efficiency_notes(cores // workers, utilisation)),
        workers=workers,
        loss_history=tuple(loss_history),
        peak_rows_held=peak_rows_held,
    )


def _run_fingerprint(
    data_id: str,
    spec: InputSpec,
    config: TrainingConfig,
    base_file: Path | None,
    epochs: int,
    source: dict[str, Any] | None = None,
) -> str:
    """The identity of a run: only a checkpoint with the same fingerprint may be resumed.

    ``source`` describes how batches are read when that changes their order (streaming).
    """
    identity: dict[str, Any] = {
        "config": config.model_dump(mode="json"),
        "spec": spec.to_dict(),
        "data": data_id,
        "base": sha256_file(base_file) if base_file is not None else None,
        "epochs": epochs,
    }
    if source is not None:
        identity["source"] = source
    if config.framework == "custom":
        # A user's module edited between a kill and the rerun is another run: its
        # checkpoints may not even load into the new code.
        from spindle.train._custom import module_sha256

        identity["custom_module_sha256"] = module_sha256(config)
    return sha256_json(identity)


def _write_version(
    out_dir: Path, model: Model, spec: InputSpec, sample: dict[str, np.ndarray]
) -> None:
    """Write the model version directory atomically: all three files or nothing."""
    with atomic_directory(out_dir) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS_FILE)
        export_onnx(model, spec, tmp / MODEL_FILE, sample)
        text = json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n"
        (tmp / SPEC_FILE).write_text(text)


def _efficiency_notes(threads: int, utilisation: float) -> list[str]:
    spinning = os.environ.get("OMP_WAIT_POLICY") != "PASSIVE"
    if step_threads(threads) > 1 and utilisation < 0.7 and spinning:
        # Measured: with other busy processes on 2 cores, OpenMP's spinning threads made
        # two step threads ten times slower than one; PASSIVE waiting removed the collapse.
        return [
            f"CPU utilisation was {utilisation:.2f} with {threads} threads: if other processes "
            "share the cores, start the trainer with OMP_WAIT_POLICY=PASSIVE or use threads=2"
        ]
    return []


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor, names sorted."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def data_sha256(
    inputs: dict[str, np.ndarray], labels: np.ndarray, weights: np.ndarray | None = None
) -> str:
    """sha256 over (name, dtype, shape, bytes) of every input array, the labels and the
    example weights when given (without them, the digest is what it always was)."""
    digest = hashlib.sha256()
    arrays = {**inputs, "__labels__": labels}
    if weights is not None:
        arrays["__weights__"] = weights
    for name, array in sorted(arrays.items()):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{name}\0{contiguous.dtype}\0{contiguous.shape}\0".encode())
        digest.update(contiguous.data)
    return digest.hexdigest()


def _check_weights(weights: np.ndarray, rows: int) -> None:
    if weights.dtype != np.float32 or weights.shape != (rows,):
        raise TrainingError(
            f"example weights must be float32 [{rows}] (one per input row), got "
            f"{weights.dtype} {weights.shape}"
        )
    check_weights(weights)
    if not weights.any():
        raise TrainingError(
            f"every one of the {rows} example weights is 0: there is nothing to learn from; "
            "give some rows a positive weight"
        )


def _base_file(base_weights: Path | None) -> Path | None:
    if base_weights is None:
        return None
    path = Path(base_weights)
    file = path / WEIGHTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise TrainingError(
            f"base weights {file} do not exist; pass a model version directory "
            "written by train_model, or None to train from scratch"
        )
    return file
