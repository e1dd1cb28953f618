"""A tiny model config and its tables: two numeric features and a 0/1 label, for the stage
functions that take rows as Arrow tables (the speed check's runs, seed replicas)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from train_runs import CONFIG

from spindle.core import ModelConfig
from spindle.features import EncodingSpec, FeatureDefinition


def _feature(name: str) -> FeatureDefinition:
    return FeatureDefinition(
        group="thing",
        name=name,
        version=1,
        owner="test",
        description=name,
        dtype="float64",
        tags=(),
        sql=name,
        encoding=EncodingSpec(kind="numeric"),
    )


DEFINITIONS = [_feature("x"), _feature("z")]
MODEL = ModelConfig.model_validate(
    {
        "name": "m",
        "owner": "o",
        "team": "t",
        "task": "binary",
        "features": ["thing.x@1", "thing.z@1"],
        "examples": {
            "sql": "SELECT id, ts, y FROM events",
            "sources": ["events"],
            "event_time": "ts",
            "label": "y",
        },
    }
)
# one epoch of small batches: 13 steps on 400 rows (a checkpoint at step 10)
QUICK = CONFIG.model_copy(update={"epochs": 1, "batch_size": 32})


def rows(n: int, seed: int) -> pa.Table:
    """Two numeric features and a 0/1 label drawn from a logistic model of them."""
    rng = np.random.default_rng(seed)
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x - z)))).astype(np.int64)
    return pa.table({d.column: v for d, v in zip(DEFINITIONS, (x, z), strict=True)} | {"y": y})
