"""The data-parallel recipe: N local worker processes, torch.distributed (gloo), real DDP.

``train_ddp`` starts ``config.workers`` processes with the ``spawn`` start method (a process
that used deltalake must not fork) on a free loopback port. Every worker holds the whole
training set (``DDPRecipe``: N workers see exactly the rows one worker would, see
``spindle.train._ddp_recipe``). ``train_ddp_stream`` starts the same ranks on a Parquet file
instead: each streams only its shard of the row groups (``ShardBatches``,
``StreamDDPRecipe``), and the report adds what every rank read (``ShardRead``).

With ``config.launcher == "torchrun"`` the same ranks are started by ``torch.distributed.run``
instead (``spindle.train.ddp_worker``): the job (inputs and labels, or how to stream the file;
spec, config, and the import paths the model's code needs: a custom module's import root) is
written to a directory beside the checkpoints, and with ``config.nnodes > 1`` the ranks span
machines that share that directory and those import paths (see :func:`torchrun_command`).

Rank 0 owns the checkpoint directory (lock, saves, loads on resume) and sends the resumed state
to the other ranks; at the end it writes the final weights and the run's figures to
``result-<fingerprint>.pt`` in the checkpoint dir, which the parent process reads back. While
it trains, rank 0 appends ``{"done", "total"}`` lines (at most two a second, and the last step)
to ``progress-<fingerprint>.jsonl`` beside it, which the parent tails for its ``progress``
callback: the same file works for spawned ranks and for torchrun's, on any machine that shares
the directory.
"""

from __future__ import annotations

import faulthandler
import io
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import (
    ProcessExitedException,
    ProcessRaisedException,
    start_processes,
)

from spindle.core import (
    TrainingConfig,
    TrainingError,
    atomic_write_bytes,
    kill_point,
)
from spindle.train._checkpoint import CheckpointStore
from spindle.train._ddp_progress import ProgressTail, progress_file, progress_writer
from spindle.train._ddp_recipe import DDPRecipe, StreamDDPRecipe, gather_objects
from spindle.train._shard import ShardBatches, ShardRead, StreamData
from spindle.train._spec import InputSpec
from spindle.train._torchrun import DDPJob, WorkerDied, run_torchrun, write_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DDPOutcome:
    """What the workers of one ``train_ddp`` call produced, as rank 0 reported it.

    ``cpu_s`` sums the training-loop CPU time of every rank; ``seconds`` is rank 0's loop wall
    time; ``loss_history`` is the global (all-rank) mean loss of every step this call ran.
    """

    state_dict: dict[str, torch.Tensor]
    global_step: int
    steps_run: int
    examples_run: int
    seconds: float
    cpu_s: float
    final_loss: float
    loss_history: list[float]
    resumed_from_step: int | None
    warm_started: bool
    notes: list[str]
    shards: tuple[ShardRead, ...] = ()


def train_ddp(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spec: InputSpec,
    config: TrainingConfig,
    epochs: int,
    checkpoint_dir: Path,
    fingerprint: str,
    base_file: Path | None,
    progress: Callable[[int, int], None] | None = None,
    weights: np.ndarray | None = None,
) -> DDPOutcome:
    """Train with ``config.workers`` processes and return rank 0's report.

    The processes are local ``spawn`` children, or ``torchrun`` ranks (``config.launcher``),
    which may span ``config.nnodes`` machines. ``progress`` is called with ``(steps done,
    total steps)`` from a thread of this process that tails rank 0's progress file (about
    twice a second, and for the last step). ``weights`` are the rows' example weights (None:
    unweighted), held by every rank like the rest of the training set.

    A rank that dies of a signal (no Python error: a segfault, the OOM killer) costs one
    restart of every rank on one machine, from rank 0's last checkpoint; the outcome's notes
    say so, with the Python stack's top frame where ``faulthandler`` could write it
    (``crash-<fingerprint>-rank<R>.txt`` in the checkpoint dir, kept as ``.seen``).

    Raises:
        TrainingError: a worker failed (its error message is repeated here), e.g. non-finite
            input or loss, or died again after the restart; the last good checkpoint is kept.
    """
    job = DDPJob(
        inputs=inputs,
        labels=labels,
        spec=spec,
        config=config,
        epochs=epochs,
        checkpoint_dir=str(checkpoint_dir),
        fingerprint=fingerprint,
        base_file=str(base_file) if base_file is not None else None,
        result_file=str(result_file_of(Path(checkpoint_dir), fingerprint)),
        weights=weights,
        import_paths=_import_paths(config),
    )
    return run_job(job, progress)


def train_ddp_stream(
    stream: StreamData,
    spec: InputSpec,
    config: TrainingConfig,
    epochs: int,
    checkpoint_dir: Path,
    fingerprint: str,
    base_file: Path | None,
    progress: Callable[[int, int], None] | None = None,
) -> DDPOutcome:
    """``train_ddp`` with every rank streaming only its shard of ``stream``'s Parquet file.

    Every rank runs the epoch's one-worker step count on its own rows (``ShardBatches``); the
    outcome's ``shards`` say what each rank read. Launch, restarts and errors as
    ``train_ddp``; with ``launcher: torchrun`` the encoder must be a ``TransformEncoder``.

    Raises:
        TrainingError: as ``train_ddp``; also a split that leaves a rank fewer rows than steps
            in some epoch (before any rank starts).
    """
    first = stream.source(spec, config.seed, 0, config.workers)
    first.check_shards(epochs, config.batch_size)
    job = DDPJob(
        inputs={},
        labels=np.zeros(0, np.float32),
        spec=spec,
        config=config,
        epochs=epochs,
        checkpoint_dir=str(checkpoint_dir),
        fingerprint=fingerprint,
        base_file=str(base_file) if base_file is not None else None,
        result_file=str(result_file_of(Path(checkpoint_dir), fingerprint)),
        import_paths=_import_paths(config),
        stream=stream,
    )
    return run_job(job, progress)


def result_file_of(checkpoint_dir: Path, fingerprint: str) -> Path:
    """Where rank 0 of the run ``fingerprint`` writes its report."""
    return checkpoint_dir / f"result-{fingerprint[:16]}.pt"


def run_job(job: DDPJob, progress: Callable[[int, int], None] | None) -> DDPOutcome:
    """Launch ``job``'s ranks (restarting them once after a signal) and read rank 0's report.

    Raises:
        TrainingError: as ``train_ddp``.
    """
    config, checkpoint_dir, fingerprint = job.config, Path(job.checkpoint_dir), job.fingerprint
    world = config.workers
    result_file = Path(job.result_file)
    result_file.unlink(missing_ok=True)
    job_dir = write_job(job) if config.launcher == "torchrun" else None
    restarts: list[str] = []
    while True:
        try:
            with ProgressTail(progress_file(checkpoint_dir, fingerprint), progress):
                _launch(job, job_dir, world)
            break
        except WorkerDied as died:
            crash = _crash_report(checkpoint_dir, fingerprint)
            # One restart on one machine: the ranks resume from rank 0's last checkpoint (the
            # same weights an unbroken run reaches). On several machines the others would
            # have to start again too, so that stays the operator's rerun.
            if len(restarts) >= MAX_RESTARTS or config.nnodes > 1:
                raise TrainingError(f"{died}{crash}{_after(restarts)}") from None
            restarts.append(f"{died}{crash}")
            log.warning("%s%s; restarting the workers from the last checkpoint", died, crash)
    _clear_crash_reports(checkpoint_dir, fingerprint)
    report = torch.load(result_file, map_location="cpu", weights_only=True)
    result_file.unlink(missing_ok=True)
    return DDPOutcome(
        state_dict=report["model"],
        global_step=int(report["global_step"]),
        steps_run=int(report["steps_run"]),
        examples_run=int(report["examples_run"]),
        seconds=float(report["seconds"]),
        cpu_s=float(report["cpu_s"]),
        final_loss=float(report["final_loss"]),
        loss_history=[float(x) for x in report["loss_history"]],
        resumed_from_step=report["resumed_from_step"],
        warm_started=bool(report["warm_started"]),
        notes=[
            *(f"restarted the workers from the last checkpoint after: {r}" for r in restarts),
            *report["notes"],
        ],
        shards=tuple(ShardRead.from_dict(d) for d in report.get("shards", [])),
    )


MAX_RESTARTS = 1


def _import_paths(config: TrainingConfig) -> tuple[str, ...]:
    """What a fresh rank must put on ``sys.path`` to build the model: a custom module's import
    root (the workspace directory, on spindle's import path here); nothing for the ranker."""
    if config.framework != "custom":
        return ()
    from spindle.train._custom import import_roots  # imports the user's code: only when used

    return import_roots(config)


def _launch(job: DDPJob, job_dir: Path | None, world: int) -> None:
    """Run the ranks of ``job`` once (torchrun's when ``job_dir`` is given, else spawned).

    Raises:
        TrainingError: a rank raised (its message is repeated).
        WorkerDied: a rank died of a signal.
    """
    if job_dir is not None:
        run_torchrun(job_dir, job.config)
        return
    try:
        start_processes(  # type: ignore[no-untyped-call]
            _worker,
            args=(world, _free_port(), job),
            nprocs=world,
            join=True,
            start_method="spawn",
        )
    except ProcessRaisedException as error:
        message = str(error).strip().splitlines()[-1]
        raise TrainingError(f"a DDP worker of {world} failed: {message}") from None
    except ProcessExitedException as error:  # killed by a signal: no Python error
        raise WorkerDied(
            f"a DDP worker of {world} died ({error}); nothing was registered, and a "
            "rerun resumes from the last checkpoint"
        ) from None


def _after(restarts: list[str]) -> str:
    return f" (after {len(restarts)} restart: {'; '.join(restarts)})" if restarts else ""


def _crash_file(checkpoint_dir: Path, fingerprint: str, rank: int) -> Path:
    """Where rank ``rank``'s ``faulthandler`` writes the Python stacks if it crashes."""
    return checkpoint_dir / f"crash-{fingerprint[:16]}-rank{rank}.txt"


def _crash_report(checkpoint_dir: Path, fingerprint: str) -> str:
    """``"; rank 0: Segmentation fault in File "...", line N in f"`` for every rank whose
    ``faulthandler`` wrote a fatal error, or ``""`` (a SIGKILL leaves nothing to read)."""
    found = []
    for path in sorted(checkpoint_dir.glob(f"crash-{fingerprint[:16]}-rank*.txt")):
        lines = path.read_text(errors="replace").splitlines()
        fatal = next((line for line in lines if line.startswith("Fatal Python error:")), None)
        if fatal is None:
            continue
        rank = path.stem.rsplit("rank", 1)[-1]
        reason = fatal.removeprefix("Fatal Python error:").strip()
        found.append(f"rank {rank}: {reason} {_crashing_frame(lines)}".rstrip())
        path.rename(path.with_suffix(".seen"))  # kept for the operator, not read twice
    return "; " + "; ".join(found) if found else ""


def _crashing_frame(lines: list[str]) -> str:
    """Where the fatal signal hit, from ``faulthandler``'s dump of every thread.

    The thread that took the signal is marked ``Current thread`` when it runs Python; a crash
    in a thread of native code only (gloo's, OpenMP's) has no such mark: then every listed
    thread was elsewhere, and saying the first one's frame would point at an innocent wait.
    """
    current = False
    for line in lines:
        text = line.strip()
        if text.startswith("Current thread"):
            current = True
        elif current and text.startswith("File "):
            return f"in {text}"
    main = next((t.strip() for t in reversed(lines) if t.strip().startswith("File ")), "")
    return "in a thread of native code (no Python frame)" + (
        f"; the main thread was at {main}" if main else ""
    )


def _clear_crash_reports(checkpoint_dir: Path, fingerprint: str) -> None:
    for path in checkpoint_dir.glob(f"crash-{fingerprint[:16]}-rank*.txt"):
        path.unlink(missing_ok=True)


def _worker(rank: int, world: int, port: int, job: DDPJob) -> None:
    """One spawned rank: join the group on the loopback port, then run it."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    run_rank(job)


def run_rank(job: DDPJob) -> None:
    """One rank of an initialised process group: run the recipe and (rank 0) write the report.

    Destroys the process group when done, also on error.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    crash_file = _crash_file(Path(job.checkpoint_dir), job.fingerprint, rank)
    crash_file.parent.mkdir(parents=True, exist_ok=True)
    crash_out = open(crash_file, "w", encoding="utf-8")  # noqa: SIM115 (open while the rank runs)
    faulthandler.enable(file=crash_out, all_threads=True)
    kill_point(f"ddp:rank{rank}")  # a rank dying of a signal, for the test of its error
    store = CheckpointStore(Path(job.checkpoint_dir), job.fingerprint) if rank == 0 else None
    recipe_type = DDPRecipe if job.stream is None else StreamDDPRecipe
    recipe = recipe_type(job.spec, job.config, job.epochs, store, rank, world)
    if rank == 0:
        recipe.progress = progress_writer(progress_file(Path(job.checkpoint_dir), job.fingerprint))
    finished = False
    try:
        source = _setup(recipe, job, rank, world)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        recipe.train()
        seconds = time.perf_counter() - wall0
        cpu = torch.tensor([time.process_time() - cpu0], dtype=torch.float64)
        dist.all_reduce(cpu)
        shards = gather_objects(source.read().to_dict()) if source is not None else []
        if rank == 0:
            _write_report(Path(job.result_file), recipe, seconds, float(cpu.item()), shards)
        finished = True
    finally:
        recipe.cleanup()
        if finished:
            # Leave together: a rank that tore its connections down while rank 0 was still
            # writing the report died at exit in gloo ("terminate called without an active
            # exception", SIGABRT; ~1 run in 5 under torchrun). Bounded: a rank that failed
            # after training makes the others raise here instead of waiting forever.
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=120))
            else:  # NCCL has no monitored barrier
                dist.barrier()
        dist.destroy_process_group()
        faulthandler.disable()
        crash_out.close()
        crash_file.unlink(missing_ok=True)


def _setup(recipe: DDPRecipe, job: DDPJob, rank: int, world: int) -> ShardBatches | None:
    """Set ``recipe`` up on the job's arrays, or on this rank's shard (returned) when the job
    streams."""
    base_file = Path(job.base_file) if job.base_file is not None else None
    if job.stream is None:
        recipe.setup(job.inputs, job.labels, base_file, job.weights)
        return None
    source = job.stream.source(job.spec, job.config.seed, rank, world)
    recipe.setup_source(source, base_file)
    return source


def _write_report(
    path: Path, recipe: DDPRecipe, seconds: float, cpu_s: float, shards: list[dict[str, Any]]
) -> None:
    report = {
        "shards": shards,
        "model": recipe.model.state_dict(),
        "global_step": recipe.global_step,
        "steps_run": recipe.steps_run,
        "examples_run": recipe.examples_run,
        "seconds": seconds,
        "cpu_s": cpu_s,
        "final_loss": recipe.final_loss if math.isfinite(recipe.final_loss) else math.nan,
        "loss_history": recipe.loss_history,
        "resumed_from_step": recipe.resumed_from_step,
        "warm_started": recipe.warm_started,
        "notes": recipe.notes,
    }
    buffer = io.BytesIO()
    torch.save(report, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
