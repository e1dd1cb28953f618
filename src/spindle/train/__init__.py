"""Training: the ranker; sync, DDP and bounded-staleness recipes; batch sources; checkpoints;
ONNX export."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.train._async import AsyncRecipe
    from spindle.train._batches import ArrayBatches, BatchSource, ParquetBatches, Prefetcher
    from spindle.train._checkpoint import CheckpointStore, mirror_checkpoints
    from spindle.train._custom import CustomTrainer, load_custom_module
    from spindle.train._ddp import DDPOutcome, train_ddp, train_ddp_stream
    from spindle.train._ddp_recipe import DDPRecipe, StreamDDPRecipe
    from spindle.train._examples import (
        example_weights,
        labels_and_groups,
        model_spec,
        model_spec_from_file,
    )
    from spindle.train._export import export_onnx, predict
    from spindle.train._lightgbm import LightGBMTrainer
    from spindle.train._model import Ranker
    from spindle.train._protocol import (
        ParquetData,
        StreamingTrainer,
        TorchTrainer,
        Trainer,
        streams,
        trainer_for,
    )
    from spindle.train._recipe import SyncRecipe
    from spindle.train._replicas import ReplicaPlan, train_replica
    from spindle.train._row_adam import RowAdam
    from spindle.train._shard import ShardBatches, ShardRead, StreamData, TransformEncoder
    from spindle.train._spec import InputSpec, check_inputs, with_head
    from spindle.train._speed import (
        ParallelismRuns,
        train_at_two_parallelisms,
        train_files_at_two_parallelisms,
    )
    from spindle.train._train import (
        TrainResult,
        data_sha256,
        state_dict_sha256,
        train_model,
    )
    from spindle.train._train_stream import train_from_parquet
    from spindle.train._version import (
        FittedVersion,
        VersionPlan,
        copy_trained_files,
        fit_version,
        version_notes,
        write_version,
    )
    from spindle.train._warm_start import load_weights, warm_start

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "CustomTrainer": "spindle.train._custom",
    "load_custom_module": "spindle.train._custom",
    "LightGBMTrainer": "spindle.train._lightgbm",
    "FittedVersion": "spindle.train._version",
    "VersionPlan": "spindle.train._version",
    "copy_trained_files": "spindle.train._version",
    "example_weights": "spindle.train._examples",
    "fit_version": "spindle.train._version",
    "labels_and_groups": "spindle.train._examples",
    "model_spec": "spindle.train._examples",
    "model_spec_from_file": "spindle.train._examples",
    "version_notes": "spindle.train._version",
    "write_version": "spindle.train._version",
    "ArrayBatches": "spindle.train._batches",
    "AsyncRecipe": "spindle.train._async",
    "BatchSource": "spindle.train._batches",
    "CheckpointStore": "spindle.train._checkpoint",
    "mirror_checkpoints": "spindle.train._checkpoint",
    "DDPOutcome": "spindle.train._ddp",
    "DDPRecipe": "spindle.train._ddp_recipe",
    "StreamDDPRecipe": "spindle.train._ddp_recipe",
    "ShardBatches": "spindle.train._shard",
    "ShardRead": "spindle.train._shard",
    "StreamData": "spindle.train._shard",
    "TransformEncoder": "spindle.train._shard",
    "train_ddp_stream": "spindle.train._ddp",
    "InputSpec": "spindle.train._spec",
    "with_head": "spindle.train._spec",
    "ParquetBatches": "spindle.train._batches",
    "Prefetcher": "spindle.train._batches",
    "Ranker": "spindle.train._model",
    "RowAdam": "spindle.train._row_adam",
    "SyncRecipe": "spindle.train._recipe",
    "ParallelismRuns": "spindle.train._speed",
    "ReplicaPlan": "spindle.train._replicas",
    "ParquetData": "spindle.train._protocol",
    "StreamingTrainer": "spindle.train._protocol",
    "TorchTrainer": "spindle.train._protocol",
    "streams": "spindle.train._protocol",
    "TrainResult": "spindle.train._train",
    "Trainer": "spindle.train._protocol",
    "check_inputs": "spindle.train._spec",
    "data_sha256": "spindle.train._train",
    "export_onnx": "spindle.train._export",
    "load_weights": "spindle.train._warm_start",
    "predict": "spindle.train._export",
    "state_dict_sha256": "spindle.train._train",
    "train_ddp": "spindle.train._ddp",
    "train_from_parquet": "spindle.train._train_stream",
    "train_model": "spindle.train._train",
    "train_at_two_parallelisms": "spindle.train._speed",
    "train_files_at_two_parallelisms": "spindle.train._speed",
    "train_replica": "spindle.train._replicas",
    "trainer_for": "spindle.train._protocol",
    "warm_start": "spindle.train._warm_start",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "ArrayBatches",
    "AsyncRecipe",
    "BatchSource",
    "CheckpointStore",
    "CustomTrainer",
    "DDPOutcome",
    "DDPRecipe",
    "FittedVersion",
    "InputSpec",
    "LightGBMTrainer",
    "ParallelismRuns",
    "ParquetBatches",
    "ParquetData",
    "Prefetcher",
    "Ranker",
    "ReplicaPlan",
    "RowAdam",
    "ShardBatches",
    "ShardRead",
    "StreamDDPRecipe",
    "StreamData",
    "StreamingTrainer",
    "SyncRecipe",
    "TorchTrainer",
    "TrainResult",
    "Trainer",
    "TransformEncoder",
    "VersionPlan",
    "check_inputs",
    "copy_trained_files",
    "data_sha256",
    "example_weights",
    "export_onnx",
    "fit_version",
    "labels_and_groups",
    "load_custom_module",
    "load_weights",
    "mirror_checkpoints",
    "model_spec",
    "model_spec_from_file",
    "predict",
    "state_dict_sha256",
    "streams",
    "train_at_two_parallelisms",
    "train_ddp",
    "train_ddp_stream",
    "train_files_at_two_parallelisms",
    "train_from_parquet",
    "train_model",
    "train_replica",
    "trainer_for",
    "version_notes",
    "warm_start",
    "with_head",
    "write_version",
]
