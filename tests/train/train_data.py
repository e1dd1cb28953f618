"""Synthetic model inputs with a known signal (also imported by the SIGKILL test's child)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.train import InputSpec

CAT_CARDINALITIES = (50, 20, 5)
VOCAB = 1000
TEXT_LEN = 6
N_DENSE = 4


def make_dataset(
    rows: int,
    kinds: tuple[str, ...] = ("cat", "text", "dense"),
    seed: int = 0,
    vocab: int = VOCAB,
    cat_cardinalities: tuple[int, ...] = CAT_CARDINALITIES,
) -> tuple[dict[str, np.ndarray], np.ndarray, InputSpec]:
    """Inputs of the given kinds, labels drawn from a logistic model of them, and the spec.

    The true logit sums a per-id effect of every categorical column, 1.5 x the number of query
    words that appear in the name (text column 0 vs 1) and a linear function of the dense
    columns. The effects are fixed (seed 1234), so datasets with different ``seed`` are
    independent samples of the same problem (train vs held-out).
    """
    truth = np.random.default_rng(1234)
    cat_effects = [truth.normal(0, 1.0, c) for c in cat_cardinalities]
    dense_weights = np.array([1.0, -1.0, 0.5, 0.0])[:N_DENSE]
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    logit = np.full(rows, -0.5)
    if "cat" in kinds:
        cat = np.stack([rng.integers(0, c, rows) for c in cat_cardinalities], axis=1)
        inputs["cat"] = cat.astype(np.int64)
        logit += sum(effects[cat[:, j]] for j, effects in enumerate(cat_effects))
    if "text" in kinds:
        query = np.zeros((rows, TEXT_LEN), np.int64)
        query[:, :3] = rng.integers(1, vocab, (rows, 3))
        name = rng.integers(1, vocab, (rows, TEXT_LEN))
        name[:, 4:] = 0
        shared = rng.integers(0, 4, rows)  # how many query words the name repeats
        for k in range(3):
            name[:, k] = np.where(shared > k, query[:, k], name[:, k])
        inputs["text"] = np.stack([query, name], axis=1)
        overlap = (query[:, :3, None] == name[:, None, :]).any(axis=2).sum(axis=1)
        logit += 1.5 * overlap - 2.0
    if "dense" in kinds:
        dense = rng.standard_normal((rows, N_DENSE)).astype(np.float32)
        inputs["dense"] = dense
        logit += dense @ dense_weights
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    spec = InputSpec(
        cat_cardinalities=cat_cardinalities if "cat" in kinds else (),
        text_vocab_size=vocab if "text" in kinds else 0,
        n_text=2 if "text" in kinds else 0,
        text_len=TEXT_LEN if "text" in kinds else 0,
        n_dense=N_DENSE if "dense" in kinds else 0,
    )
    return inputs, labels, spec


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney; scores are continuous, ties are negligible)."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def write_parquet(
    inputs: dict[str, np.ndarray], labels: np.ndarray, path: Path, row_group_rows: int
) -> Path:
    """Write model inputs as a Parquet file of plain columns, ``row_group_rows`` per row group."""
    columns: dict[str, pa.Array | np.ndarray] = {"label": labels}
    for name, array in inputs.items():
        flat = array.reshape(array.shape[0], -1)
        for j in range(flat.shape[1]):
            columns[f"{name}_{j}"] = flat[:, j]
    pq.write_table(pa.table(columns), path, row_group_size=row_group_rows)
    return path


class Encoder:
    """The inverse of ``write_parquet`` for ``spec``: Arrow columns back to model inputs (a
    module-level class, so it pickles to spawned DDP ranks)."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec

    def __call__(self, table: pa.Table) -> tuple[dict[str, np.ndarray], np.ndarray]:
        inputs = {}
        for name, shape in self.spec.shapes().items():
            width = int(np.prod(shape))
            stacked = np.stack(
                [table.column(f"{name}_{j}").to_numpy() for j in range(width)], axis=1
            )
            inputs[name] = stacked.reshape(table.num_rows, *shape)
        return inputs, table.column("label").to_numpy().astype(np.float32)


def encoder(spec: InputSpec) -> Callable[[pa.Table], tuple[dict[str, np.ndarray], np.ndarray]]:
    """The inverse of ``write_parquet`` for ``spec`` (an ``Encoder``)."""
    return Encoder(spec)
