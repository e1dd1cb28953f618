"""A training set written to one Parquet file, batch by batch: the plain functions the
orchestrator runs as the ``training_set`` step's tasks (here, or on a cluster's workers).

A model with ``examples.partitions: N`` is built as N tasks (:func:`write_training_rows` with
``part=(i, N)``: the examples whose ``partition_key`` hashes to ``i``, joined with the views)
and one more that merges their files in the training set's order (:func:`merge_training_parts`):
the same rows, in the same order and row groups, as one task writes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import Location, ModelConfig, SourceDeclaration
from spindle.features._definitions import FeatureDefinition
from spindle.features._examples import order_by
from spindle.features._pit import BATCH_ROWS, bounded_connection
from spindle.features._retracted import Exclusion
from spindle.features._training_set import spill_root, stream_rows, training_limit_mb


@dataclass(frozen=True)
class WrittenRows:
    """What :func:`write_training_rows` wrote: its row count and the immature examples left out."""

    rows: int
    immature_examples: int
    # the examples' columns, which order the rows (what a merge of parts sorts by)
    example_columns: tuple[str, ...] = ()


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
    part: tuple[int, int] | None = None,
) -> WrittenRows:
    """Stream the point-in-time rows of ``dates`` (see :func:`stream_rows`) into ``path``.

    The file appears whole or not at all: it is written next to ``path`` and renamed over it.
    A training set larger than memory is written without holding it.

    Args:
        path: the Parquet file to write (its folder is created).
        tables_dir, config, definitions, dates, versions, sources, holdout, exclusions, part:
            as :func:`stream_rows` takes them (``part``: one part of a partitioned build).

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
        part=part,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n_rows = 0
    with pq.ParquetWriter(tmp, stream.schema) as writer:
        for batch in stream.batches:
            writer.write_batch(batch)
            n_rows += batch.num_rows
    tmp.replace(path)
    return WrittenRows(n_rows, stream.immature_examples, stream.example_columns)


def merge_training_parts(
    parts: list[Path],
    path: Path,
    config: ModelConfig,
    example_columns: tuple[str, ...],
    tables_dir: Location | Path,
) -> int:
    """Merge the parts of a partitioned build into ``path``, in the training set's order.

    One DuckDB sort over the parts' files (spilled under ``<state>/tmp/duckdb`` within the
    training sets' memory limit), written a batch of ``BATCH_ROWS`` at a time as one task
    writes, cast to the parts' schema. The file appears whole or not at all; the parts stay
    (the caller removes them).

    Returns:
        The rows written.
    """
    schema = pq.read_schema(parts[0])
    spill_root(tables_dir).mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="trainset-merge-", dir=spill_root(tables_dir)))
    con = bounded_connection(spill, training_limit_mb())
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
    order = order_by(config, list(example_columns))
    tmp = path.with_suffix(".tmp")
    n_rows = 0
    try:
        reader = con.sql(f"SELECT * FROM read_parquet([{files}]) ORDER BY {order}")
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in reader.to_arrow_reader(BATCH_ROWS):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                n_rows += batch.num_rows
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    tmp.replace(path)
    return n_rows
