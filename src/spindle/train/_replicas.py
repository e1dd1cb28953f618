"""Train one seed replica of a model version: the evaluation's measure of run-to-run noise.

``train_replica`` trains a version's own training set again, exactly as the version was trained
(its recorded config, its transform reused as it is, its base version for a warm start) except
for ``training.seed``, and writes the replica directory atomically: the trained files, the
transform and a manifest naming the version, the replica's index and seed. It knows no
workspace, registry or runner: ``orchestrate.train_replicas`` resolves the version, its rows,
the seeds and the directories, reuses a replica already trained and returns the list.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from spindle.core import ModelConfig, atomic_directory, write_package
from spindle.features import Transform
from spindle.train._examples import encode_examples
from spindle.train._version import copy_trained_files

if TYPE_CHECKING:  # the frameworks load when a replica trains, not when this is imported
    from spindle.train._train import TrainResult


@dataclass(frozen=True)
class ReplicaPlan:
    """The version whose replicas are trained, resolved by the caller.

    Attributes:
        config: the version's recorded config (its manifest's ``config``).
        manifest: the version's manifest (its ``version``, ``config_hash``, ``training_set``
            and ``base_version`` go into each replica's).
        transform_json: the version's feature transform, reused as it is (not refitted).
        base_dir: the directory of the version's base (a warm start), or None.
    """

    config: ModelConfig
    manifest: Mapping[str, Any]
    transform_json: str
    base_dir: Path | None = None


def train_replica(
    plan: ReplicaPlan,
    table: pa.Table,
    index: int,
    seed: int,
    dest: Path,
    *,
    scratch: Path,
    checkpoints: Path,
    progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train replica ``index`` of ``plan``'s version with ``training.seed = seed`` into ``dest``.

    The rows are encoded with the version's transform and trained through ``trainer_for``
    into ``scratch`` (removed on return and on error), resuming ``checkpoints`` if a killed
    run left them (they are removed once the replica is written, kept after an error).

    Args:
        plan: the version replicated.
        table: the version's training set.
        index: the replica's number (1, 2, ...; the version itself is 0).
        seed: its ``training.seed``.
        dest: the replica directory to create (atomically; must not exist).
        scratch: the trainer's output directory, this replica's own.
        checkpoints: this replica's checkpoint directory.
        progress: hears ``(steps done, total steps)``, or None.

    Returns:
        The trainer's result (its final loss and seconds are in the replica's manifest).

    Raises:
        DataError: a label column that is not numeric.
        FeatureError: a feature column missing from ``table``.
        TrainingError: the trainer's errors (empty or non-finite inputs, a failed export).

    Example:
        >>> plan = ReplicaPlan(config, manifest, read_transform_text(version_dir))  # doctest: +SKIP
        >>> train_replica(plan, table, 1, 1371713711, Path("replicas/1"), scratch=Path("s"),
        ...               checkpoints=Path("c")).final_loss  # doctest: +SKIP
        0.5312
    """
    from spindle.train._protocol import trainer_for

    training = plan.config.training.model_copy(update={"seed": seed})
    shutil.rmtree(scratch, ignore_errors=True)  # a crashed attempt's output
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        examples = encode_examples(table, Transform.from_json(plan.transform_json), plan.config)
        result = examples.train(
            trainer_for(training),
            training,
            scratch,
            checkpoint_dir=checkpoints,
            base_dir=plan.base_dir,
            progress=progress,
        )
        with atomic_directory(dest) as tmp:
            names = copy_trained_files(scratch, result.weights_path.name, plan.transform_json, tmp)
            write_package(tmp, _manifest(plan, index, seed, result), names)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result


def _manifest(plan: ReplicaPlan, index: int, seed: int, result: TrainResult) -> dict[str, Any]:
    version = plan.manifest
    return {
        "model": plan.config.name,
        "version": version["version"],
        "replica": index,
        "seed": seed,
        "base_version": version.get("base_version"),
        "config_hash": version["config_hash"],
        "training_set": version["training_set"]["id"],
        "final_loss": result.final_loss,
        "seconds": result.seconds,
    }
