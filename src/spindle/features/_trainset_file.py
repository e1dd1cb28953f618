"""A training set written to one Parquet file, batch by batch: the plain functions the
orchestrator runs as the ``training_set`` step's tasks (here, or on a cluster's workers).

A model with ``examples.partitions: N`` is built as N tasks (:func:`write_training_rows` with
``part=(i, N)``: the examples whose ``partition_key`` hashes to ``i``, joined with the views)
and one more that merges their files in the training set's order (:func:`merge_training_parts`):
the same rows, in the same order and row groups, as one task writes.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
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
    path: Path | Location,
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

    The file appears whole or not at all: it is written next to ``path`` and renamed over it
    (on an object store: written in the node's scratch folder, then put as one object). A
    training set larger than memory is written without holding it.

    Args:
        path: the Parquet file to write (its folder is created), or its object's location.
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
    n_rows = 0
    with _written(path, tables_dir) as tmp, pq.ParquetWriter(tmp, stream.schema) as writer:
        for batch in stream.batches:
            writer.write_batch(batch)
            n_rows += batch.num_rows
    return WrittenRows(n_rows, stream.immature_examples, stream.example_columns)


def merge_training_parts(
    parts: list[Path | Location],
    path: Path | Location,
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
    local = [Location.of(p).local_copy() if isinstance(p, Location) else p for p in parts]
    schema = pq.read_schema(local[0])
    spill_root(tables_dir).mkdir(parents=True, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="trainset-merge-", dir=spill_root(tables_dir)))
    con = bounded_connection(spill, training_limit_mb())
    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in local)
    order = order_by(config, list(example_columns))
    n_rows = 0
    try:
        reader = con.sql(f"SELECT * FROM read_parquet([{files}]) ORDER BY {order}")
        with _written(path, tables_dir) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for batch in reader.to_arrow_reader(BATCH_ROWS):
                writer.write_table(pa.Table.from_batches([batch]).cast(schema))
                n_rows += batch.num_rows
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        for part, copy in zip(parts, local, strict=True):
            if copy != part:  # a part's local copy, not needed again
                copy.unlink(missing_ok=True)
    return n_rows


@contextlib.contextmanager
def _written(path: Path | Location, tables_dir: Location | Path) -> Iterator[Path]:
    """A temp file to write, which becomes ``path`` whole when the block ends without error
    (renamed over a local file; put as one object, from the node's scratch folder)."""
    target = Location.of(path)
    if target.is_local:
        target.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.path.with_suffix(".tmp")
    else:
        scratch = spill_root(tables_dir).parent / "trainsets"
        scratch.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="trainset-", dir=scratch)) / target.name
    try:
        yield tmp
        if target.is_local:
            tmp.replace(target.path)
        else:
            target.put_file(tmp)
    finally:
        if not target.is_local:
            shutil.rmtree(tmp.parent, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
