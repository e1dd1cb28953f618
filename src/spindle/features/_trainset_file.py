"""A training set written to one Parquet file, batch by batch: the plain function the
orchestrator runs as the ``training_set`` step's task (here, or on a cluster's worker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from spindle.core import Location, ModelConfig, SourceDeclaration
from spindle.features._definitions import FeatureDefinition
from spindle.features._retracted import Exclusion
from spindle.features._training_set import stream_rows


@dataclass(frozen=True)
class WrittenRows:
    """What :func:`write_training_rows` wrote: its row count and the immature examples left out."""

    rows: int
    immature_examples: int


def write_training_rows(
    path: Path,
    tables_dir: Location | Path,
    config: ModelConfig,
    definitions: list[FeatureDefinition],
    dates: tuple[str, ...],
    versions: dict[str, int],
    sources: Mapping[str, SourceDeclaration],
    holdout: bool,
    exclusions: Mapping[str, Sequence[Exclusion]],
) -> WrittenRows:
    """Stream the point-in-time rows of ``dates`` (see :func:`stream_rows`) into ``path``.

    The file appears whole or not at all: it is written next to ``path`` and renamed over it.
    A training set larger than memory is written without holding it.

    Args:
        path: the Parquet file to write (its folder is created).
        tables_dir, config, definitions, dates, versions, sources, holdout, exclusions: as
            :func:`stream_rows` takes them.

    Returns:
        The rows written and the examples left out as immature.

    Raises:
        DataError: as :func:`stream_rows` raises it (no days, no data yet).
    """
    stream = stream_rows(
        tables_dir,
        config,
        definitions,
        dates,
        versions,
        sources=sources,
        holdout=holdout,
        exclusions=exclusions,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n_rows = 0
    with pq.ParquetWriter(tmp, stream.schema) as writer:
        for batch in stream.batches:
            writer.write_batch(batch)
            n_rows += batch.num_rows
    tmp.replace(path)
    return WrittenRows(n_rows, stream.immature_examples)
