"""Launch DDP ranks with torchrun (``torch.distributed.run``), on one machine or several.

A *job directory* holds everything a rank needs: ``data.npz`` (the inputs, labels and any
example weights, read back with ``allow_pickle=False``) and ``job.json`` (input spec, training
config, epochs, the checkpoint/result paths, and the import paths the model's code needs). A
rank is ``python -m spindle.train.ddp_worker JOB_DIR``: a fresh process, which does not inherit
the launching process's ``sys.path`` as spawned ranks do, so it puts the job's import paths
first on its own before it builds the model. A rank on another machine needs only spindle
installed, the job directory on shared storage (the checkpoint directory lives beside it, and
rank 0 checkpoints there as usual) and the import paths at the same paths too.

This process runs the torchrun of the first machine and waits for it. With ``nnodes > 1`` the
other machines run the command written to ``JOB_DIR/command.txt`` (also logged): torchrun's
``c10d`` rendezvous at ``rdzv_endpoint`` gathers ``nnodes`` machines, then gives every rank its
number, and the ranks form the gloo group (NCCL would need CUDA, which these machines lack).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spindle.core import TrainingConfig, TrainingError, atomic_directory
from spindle.train._shard import StreamData, TransformEncoder
from spindle.train._spec import InputSpec

log = logging.getLogger(__name__)

_LABELS = "labels"
_WEIGHTS = "weights"
_INPUT = "input__"


class WorkerDied(TrainingError):
    """A rank ended without a Python error (a signal: a segfault, the OOM killer, SIGKILL)."""


@dataclass(frozen=True)
class DDPJob:
    """Everything one DDP rank needs (passed to spawned ranks, or written for torchrun's).

    ``import_paths`` are absolute directories a fresh rank puts first on ``sys.path`` before
    it builds the model (e.g. the workspace directory a user's module is imported from).
    ``stream`` (None: the arrays are the training set) says how each rank streams its shard
    of a Parquet file instead; ``inputs`` and ``labels`` are then empty.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    spec: InputSpec
    config: TrainingConfig
    epochs: int
    checkpoint_dir: str
    fingerprint: str
    base_file: str | None
    result_file: str
    weights: np.ndarray | None = None
    import_paths: tuple[str, ...] = ()
    stream: StreamData | None = None


def write_job(job: DDPJob) -> Path:
    """Write ``job`` to its directory beside the checkpoints (atomically, replacing an older
    one of the same run) and return the directory."""
    job_dir = Path(job.checkpoint_dir) / f"job-{job.fingerprint[:16]}"
    if job_dir.exists():
        shutil.rmtree(job_dir)
    with atomic_directory(job_dir) as tmp:
        arrays = {_INPUT + name: array for name, array in job.inputs.items()}
        arrays[_LABELS] = job.labels
        if job.weights is not None:
            arrays[_WEIGHTS] = job.weights
        with open(tmp / "data.npz", "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
        described = {
            "spec": job.spec.to_dict(),
            "config": job.config.model_dump(mode="json"),
            "epochs": job.epochs,
            "checkpoint_dir": str(Path(job.checkpoint_dir).resolve()),
            "fingerprint": job.fingerprint,
            "base_file": str(Path(job.base_file).resolve()) if job.base_file else None,
            "result_file": str(Path(job.result_file).resolve()),
            "import_paths": [str(Path(p).absolute()) for p in job.import_paths],
        }
        if job.stream is not None:
            described["stream"] = _stream_dict(job.stream)
        (tmp / "job.json").write_text(json.dumps(described, indent=1))
        (tmp / "command.txt").write_text(" ".join(torchrun_command(job_dir, job.config)) + "\n")
    return job_dir


def read_job(job_dir: Path) -> DDPJob:
    """Read a job directory written by :func:`write_job`.

    Raises:
        TrainingError: the directory is missing or incomplete (on another machine: the shared
            storage is not mounted at the same path).
    """
    try:
        job: dict[str, Any] = json.loads((job_dir / "job.json").read_text())
        with np.load(job_dir / "data.npz", allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise TrainingError(
            f"cannot read the DDP job in {job_dir}: {error}. Every machine must see the "
            "checkpoint directory at the same path (shared storage)."
        ) from error
    return DDPJob(
        inputs={k.removeprefix(_INPUT): v for k, v in arrays.items() if k.startswith(_INPUT)},
        labels=arrays[_LABELS],
        spec=InputSpec.from_dict(job["spec"]),
        config=TrainingConfig.model_validate(job["config"]),
        epochs=int(job["epochs"]),
        checkpoint_dir=job["checkpoint_dir"],
        fingerprint=job["fingerprint"],
        base_file=job["base_file"],
        result_file=job["result_file"],
        weights=arrays.get(_WEIGHTS),
        import_paths=tuple(job.get("import_paths", ())),  # absent in older jobs: none to add
        stream=_stream_data(job["stream"]) if job.get("stream") else None,
    )


def _stream_dict(stream: StreamData) -> dict[str, Any]:
    """``stream`` as JSON values (its encoder must be a ``TransformEncoder``).

    Raises:
        TrainingError: another encoder (a Python callable cannot be written as JSON).
    """
    if not isinstance(stream.encode, TransformEncoder):
        raise TrainingError(
            f"launcher torchrun streams a training set only with a TransformEncoder (the train "
            f"stage's), got {type(stream.encode).__name__}: use launcher spawn, or workers=1"
        )
    return {
        "path": str(Path(stream.path).resolve()),
        "encoder": stream.encode.to_dict(),
        "buffer_rows": stream.buffer_rows,
        "chunk_rows": stream.chunk_rows,
        "columns": list(stream.columns) if stream.columns is not None else None,
        "weight_column": stream.weight_column,
    }


def _stream_data(data: dict[str, Any]) -> StreamData:
    columns = data["columns"]
    return StreamData(
        path=data["path"],
        encode=TransformEncoder.from_dict(data["encoder"]),
        buffer_rows=int(data["buffer_rows"]),
        chunk_rows=int(data["chunk_rows"]),
        columns=tuple(columns) if columns is not None else None,
        weight_column=data["weight_column"],
    )


def add_import_paths(paths: Sequence[str]) -> None:
    """Put ``paths`` first on ``sys.path``, in their order (those already on it stay where
    they are), as the launching process has them: a rank imports the model's code from there.
    """
    for entry in reversed(paths):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def torchrun_command(job_dir: Path, config: TrainingConfig) -> list[str]:
    """The command that starts one machine's ranks of ``job_dir`` (the same on every machine)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={config.nnodes}",
        f"--nproc-per-node={config.workers // config.nnodes}",
    ]
    if config.rdzv_endpoint:
        command += [
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={config.rdzv_endpoint}",
            f"--rdzv-id=spindle-{Path(job_dir).name}",
        ]
    else:
        command.append("--standalone")
    return [*command, "-m", "spindle.train.ddp_worker", str(Path(job_dir).resolve())]


def run_torchrun(job_dir: Path, config: TrainingConfig) -> None:
    """Run this machine's torchrun for ``job_dir`` and wait for every rank to finish.

    On success the job directory is removed; on failure it is kept with ``torchrun.log`` and
    each failed rank's ``error-rank<R>.txt``.

    Raises:
        TrainingError: a rank failed with a Python error (its message is repeated).
        WorkerDied: no rank left a Python error (one died of a signal, or torchrun itself
            failed): the tail of torchrun's log is repeated.
    """
    command = torchrun_command(job_dir, config)
    if config.nnodes > 1:
        log.warning(
            "waiting for %d more machine(s) to join at %s; on each run:\n  %s",
            config.nnodes - 1,
            config.rdzv_endpoint,
            " ".join(command),
        )
    with open(job_dir / "torchrun.log", "wb") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    if code == 0:
        shutil.rmtree(job_dir, ignore_errors=True)
        return
    errors = sorted(job_dir.glob("error-rank*.txt"))
    if errors:
        message = " ".join(errors[0].read_text().split())
        raise TrainingError(
            f"a DDP worker of {config.workers} failed: {message} (torchrun log: {job_dir})"
        )
    lines = (job_dir / "torchrun.log").read_text(errors="replace").strip().splitlines()
    message = " | ".join(lines[-3:]) or f"exit code {code}"
    raise WorkerDied(
        f"a DDP worker of {config.workers} failed: {message} (torchrun log: {job_dir})"
    )
