"""Seed replicas of a model version: the same training run with other seeds, to measure noise.

A replica is trained exactly as the version was — the version's own recorded config, its
training set (the same pinned table versions), its transform and its base version for a warm
start — except for ``training.seed``. Replicas are evaluation artifacts, not model versions:
they live under ``.spindle/artifacts/replicas/MODEL/VERSION/`` (never in the registry or the
model repository), and a directory named by everything that determines the replica is reused
by every later evaluation of the same version.

The training is the train stage's (``spindle.train.train_replica``: encoding with the version's
transform, the training through its trainer, the replica directory and its manifest). This
module only resolves the version, its rows, each replica's seed and directories, reuses a
replica already trained (one lock per replica) and returns the list.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    ModelConfig,
    NotFound,
    Progress,
    ServingError,
    file_lock,
    read_package,
    read_transform_text,
    sha256_json,
    step_progress,
)
from spindle.features import stream_rows
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import trainset_file, trainset_location
from spindle.orchestrate._version_store import version_folder
from spindle.serve import ModelRuntime
from spindle.train import ReplicaPlan, train_replica


def replica_seed(seed: int, index: int) -> int:
    """The ``training.seed`` of replica ``index`` (1, 2, ...) of a version trained with ``seed``.

    Deterministic and spread out (a hash, not ``seed + index``), so the replicas of one version
    never reuse a seed that a neighbouring config uses on purpose.

    Example:
        >>> replica_seed(42, 1) == replica_seed(42, 1) != replica_seed(42, 2)
        True
    """
    return int(sha256_json({"seed": seed, "replica": index})[:8], 16) % 2**31


@dataclass(frozen=True)
class Replica:
    """One seed replica of a model version.

    Attributes:
        model, version: the version it replicates.
        index: 1 .. K-1 (the version itself is replica 0).
        seed: its ``training.seed``.
        path: its directory (loadable with ``serve.ModelRuntime.load``).
        reused: found in the cache rather than trained by this call.
    """

    model: str
    version: int
    index: int
    seed: int
    path: Path
    reused: bool

    @property
    def system(self) -> str:
        """Its system name in an evaluation report."""
        return f"replica_{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (as in the evaluation report's ``replicas``)."""
        return {
            "system": self.system,
            "index": self.index,
            "seed": self.seed,
            "path": str(self.path),
            "reused": self.reused,
        }


def train_replicas(
    ctx: Context, model: str, version: int, k: int, progress: Progress | None = None
) -> list[Replica]:
    """Train (or reuse) the K-1 seed replicas of ``model@version``.

    Args:
        k: the number of replicas including the version itself; ``k == 1`` returns ``[]``.
        progress: hears each replica's training steps (one task per replica).

    Returns:
        Replicas 1 .. k-1, in order.

    Raises:
        ValueError: ``k < 1``.
        NotFound: the version's training set is gone from the registry and cannot be rebuilt.
        TrainingError: a replica's training failed (its checkpoints are kept for a rerun).

    Example:
        >>> [r.seed for r in train_replicas(ctx, "search_ranker", 4, 3)]  # doctest: +SKIP
        [1371713711, 695678447]
    """
    if k < 1:
        raise ValueError(f"replicas must be at least 1 (the version itself), got {k}")
    source = version_folder(ctx, model, version)
    manifest = read_package(source).to_json()
    config = ModelConfig.model_validate(manifest["config"])
    resolved: tuple[ReplicaPlan, pa.Table] | None = None  # only once a replica has to train
    replicas = []
    for index in range(1, k):
        seed = replica_seed(config.training.seed, index)
        key = sha256_json(
            {
                "files": manifest["files"],
                "config_hash": manifest["config_hash"],
                "training_set": manifest["training_set"]["id"],
                "base": manifest.get("base_version"),
                "seed": seed,
            }
        )[:16]
        path = ctx.workspace.artifacts_dir / "replicas" / model / str(version) / f"{index}-{key}"
        # Two evaluations of the same candidate at once: the second waits, then reuses.
        with file_lock(path.with_name(f".{path.name}.lock")):
            reused = _usable(path)
            if not reused:
                if resolved is None:
                    rows = _training_rows(ctx, config, manifest)
                    resolved = _plan(ctx, config, manifest, source), rows
                on_step = None
                if progress is not None:
                    on_step = step_progress(
                        progress,
                        f"replica {index}/{k - 1} of {model}@{version}",
                        epochs=_replica_epochs(config, manifest),
                        batch_size=config.training.batch_size,
                    )
                artifacts = ctx.workspace.artifacts_dir
                plan, table = resolved
                train_replica(
                    plan,
                    table,
                    index,
                    seed,
                    path,
                    scratch=artifacts / "scratch" / model / f"replica-{key}",
                    checkpoints=artifacts / "checkpoints" / model / f"replica-{key}",
                    progress=on_step,
                )
        replicas.append(Replica(model, version, index, seed, path, reused))
    return replicas


def _plan(ctx: Context, config: ModelConfig, manifest: dict[str, Any], source: Path) -> ReplicaPlan:
    """The version's config, manifest, transform (as it is) and base directory."""
    base = manifest.get("base_version")
    base_dir = version_folder(ctx, config.name, int(base)) if base is not None else None
    return ReplicaPlan(config, manifest, read_transform_text(source), base_dir)


def _replica_epochs(config: ModelConfig, manifest: dict[str, Any]) -> int:
    """The epochs a replica runs: the warm-start epochs when the version had a base."""
    warm = manifest.get("base_version") is not None
    return config.training.warm_start_epochs if warm else config.training.epochs


def _usable(path: Path) -> bool:
    """A complete replica directory whose files match their checksums."""
    if not path.is_dir():
        return False
    try:
        ModelRuntime.load(path)
    except ServingError:  # ChecksumMismatch is one: a damaged cache entry is retrained
        shutil.rmtree(path)
        return False
    return True


def _training_rows(ctx: Context, config: ModelConfig, manifest: dict[str, Any]) -> pa.Table:
    """The version's own training set: its Parquet file, else rebuilt from its pinned tables."""
    info = manifest["training_set"]
    try:
        uri = ctx.store.get_artifact(info["id"]).uri
    except NotFound:
        uri = None
    if uri is not None and trainset_location(ctx, uri).is_file():
        return pq.read_table(trainset_file(ctx, uri))
    stream = stream_rows(
        ctx.workspace.tables_dir,
        config,
        ctx.features.resolve(config),
        tuple(info["dates"]),
        {name: int(v) for name, v in info["table_versions"].items()},
        sources=ctx.sources,
    )
    return pa.Table.from_batches(list(stream.batches), schema=stream.schema)
