"""Training: the ranker; sync, DDP and bounded-staleness recipes; batch sources; checkpoints;
ONNX export."""

from __future__ import annotations

from spindle.train._async import AsyncRecipe
from spindle.train._batches import ArrayBatches, BatchSource, ParquetBatches, Prefetcher
from spindle.train._checkpoint import CheckpointStore
from spindle.train._ddp import DDPOutcome, DDPRecipe, train_ddp
from spindle.train._export import export_onnx, predict
from spindle.train._model import Ranker
from spindle.train._protocol import TorchTrainer, Trainer, trainer_for
from spindle.train._recipe import SyncRecipe
from spindle.train._row_adam import RowAdam
from spindle.train._spec import InputSpec, check_inputs
from spindle.train._train import (
    TrainResult,
    data_sha256,
    state_dict_sha256,
    train_from_parquet,
    train_model,
)
from spindle.train._warm_start import load_weights, warm_start

__all__ = [
    "ArrayBatches",
    "AsyncRecipe",
    "BatchSource",
    "CheckpointStore",
    "DDPOutcome",
    "DDPRecipe",
    "InputSpec",
    "ParquetBatches",
    "Prefetcher",
    "Ranker",
    "RowAdam",
    "SyncRecipe",
    "TorchTrainer",
    "TrainResult",
    "Trainer",
    "check_inputs",
    "data_sha256",
    "export_onnx",
    "load_weights",
    "predict",
    "state_dict_sha256",
    "train_ddp",
    "train_from_parquet",
    "train_model",
    "trainer_for",
    "warm_start",
]
