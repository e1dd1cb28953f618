"""Backfill: recompute one feature version from the raw logs for past partitions.

A new feature (or a new version) gets its column by schema evolution the first time a day is
computed; older partitions hold nulls until they are backfilled. Backfill works one day
partition at a time: it reads the partition, computes only the chosen feature for that day
(the same SQL or Python function that ingest uses), replaces that one column and commits the
partition with an atomic Delta overwrite. Every other column is written back exactly as it was read, so
backfilling one feature never changes another's values. A partition whose column already
holds the computed values is not written at all: a rerun changes nothing (no new table
version), and a run killed mid-way resumes by skipping the days already committed — a kill
loses at most the partition in progress. A version whose computation changed since it was
first materialised is refused (see ``_fingerprints.py``). Recording the backfill as a run with
lineage is the orchestrator's part (``spindle.orchestrate.backfill``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from spindle.core import (
    CommitConflict,
    FeatureError,
    Location,
    TableVersion,
    open_dataset,
    table_exists,
    write_partition,
)
from spindle.features._compute import compute_group, feature_table_path
from spindle.features._fingerprints import check_fingerprints, record_fingerprints
from spindle.features._registry import FeatureRegistry
from spindle.features._retracted import Exclusion

Progress = Callable[[str, int, int], None]
# runs a plain function over argument tuples, maybe elsewhere and at once (a task pool's map):
# ``map_days(fn, calls, label)``, results in the calls' order
DayMapper = Callable[[Callable[..., Any], list[tuple[Any, ...]], str], list[Any]]
# days handed to a DayMapper at once (progress is heard after each batch)
DAYS_PER_BATCH = 8


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did, per day: ``written``, ``unchanged`` (already right) or ``no rows``."""

    ref: str
    column: str
    days: dict[str, str]
    table_version: int | None

    @property
    def written(self) -> list[str]:
        return [d for d, status in self.days.items() if status == "written"]

    def to_dict(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "column": self.column,
            "days": dict(self.days),
            "written": self.written,
            "table_version": self.table_version,
        }


def _partition(path: Location, date: str) -> pa.Table:
    dataset = open_dataset(path)
    return dataset.to_table(filter=pads.field("date") == date)


def _backfill_day(
    tables_dir: Location | Path,
    registry: FeatureRegistry,
    ref: str,
    date: str,
    versions: dict[str, int] | None,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> tuple[str, int | None]:
    definition = registry.get(ref)
    path = feature_table_path(tables_dir, definition.group)
    existing = _partition(path, date)
    if existing.num_rows == 0:
        return "no rows", None
    computed = compute_group(
        tables_dir, registry, definition.group, date, [definition], versions, exclusions
    )
    column = definition.column
    values = _aligned(existing, computed, list(definition.entity_keys), column)
    if column in existing.column_names:
        current = existing.column(column)
        values = values.cast(current.type)
        if current.equals(values):
            return "unchanged", None
        table = existing.set_column(existing.schema.get_field_index(column), column, values)
    else:
        table = existing.append_column(column, values)
    record_fingerprints(tables_dir, [definition])  # first materialisation of this version
    version = _write_retrying(path, table, date, f"features/{definition.group}")
    return "written", version.version


def _write_retrying(path: Location, table: pa.Table, date: str, name: str) -> TableVersion:
    """``write_partition``, tried again while days backfilled at once race for the commit.

    Overwrites of other day partitions do not conflict, but the first commit of a new column
    changes the table's schema, which the commits racing it must see first.
    """
    for attempt in range(5):
        try:
            return write_partition(path, table, date, name)
        except CommitConflict:
            if attempt == 4:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


def _aligned(
    existing: pa.Table, computed: pa.Table, keys: list[str], column: str
) -> pa.ChunkedArray:
    """``computed``'s ``column`` in the row order of ``existing``, matched on the entity keys."""
    order = pa.array(range(existing.num_rows), pa.int64())
    joined = (
        existing.select(keys)
        .append_column("__spindle_row", order)
        .join(computed.select([*keys, column]), keys=keys, join_type="left outer")
        .sort_by("__spindle_row")
    )
    return joined.column(column)


def latest_feature_day(tables_dir: Location | Path, ref: str, registry: FeatureRegistry) -> str:
    """The newest day partition of the feature table holding ``ref``.

    Raises:
        FeatureError: the feature is unknown or its table holds no rows yet.
    """
    definition = registry.get(ref)
    path = feature_table_path(tables_dir, definition.group)
    if not table_exists(path):
        raise FeatureError(f"feature table features/{definition.group} does not exist at {path}")
    newest = pc.max(open_dataset(path).to_table(columns=["date"]).column("date")).as_py()
    if newest is None:
        raise FeatureError(f"feature table features/{definition.group} holds no rows yet")
    return str(newest)


def backfill_feature(
    tables_dir: Location | Path,
    registry: FeatureRegistry,
    ref: str,
    dates: list[str],
    progress: Progress | None = None,
    versions: dict[str, int] | None = None,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
    map_days: DayMapper | None = None,
) -> BackfillResult:
    """Recompute feature ``ref`` (``group.name@V``) for each day of ``dates``, in order.

    Args:
        tables_dir: root of the Delta tables (raw tables are read, feature tables written).
        registry: the feature definitions (must define ``ref``).
        dates: day partitions to recompute (``YYYY-MM-DD``).
        progress: called as ``progress("backfill REF", done, total)`` after each day.
        versions: raw table versions to read (``{"raw/sessions": 3}``); latest when absent.
        exclusions: per source, the recorded retractions whose rows are not read.
        map_days: runs the days as tasks (``map_days(fn, calls, label)``, e.g. a Ray
            cluster's); days run one at a time in this process when None.

    Returns:
        The status of each day and the feature table's version after the last write.

    Raises:
        FeatureError: ``ref`` is unknown, is computed at request time (a request group), its
            feature table does not exist yet (ingest a day first), its computation changed
            since it was first materialised, or the computation failed.

    Example:
        >>> backfill_feature(tables, registry, "account.minutes_28d@2", ["2026-01-01"]).days
        {'2026-01-01': 'written'}
    """
    definition = registry.get(ref)
    if definition.computation == "request":
        raise FeatureError(
            f"{ref} is computed per request (group {definition.group}); it has no table to backfill"
        )
    path = feature_table_path(tables_dir, definition.group)
    if not table_exists(path):
        raise FeatureError(
            f"feature table features/{definition.group} does not exist at {path}; "
            "run `spindle ingest` for at least one day first"
        )
    check_fingerprints(tables_dir, [definition])
    days: dict[str, str] = {}
    last: int | None = None
    calls = [(tables_dir, registry, ref, d, versions, exclusions) for d in dates]
    # one day at a time here; with a mapper, the first day alone (it may add the column to
    # the table's schema), then the others a batch at a time, each day a task
    batches = (
        [calls[i : i + 1] for i in range(len(calls))]
        if map_days is None
        else [calls[:1]]
        + [calls[i : i + DAYS_PER_BATCH] for i in range(1, len(calls), DAYS_PER_BATCH)]
    )
    for batch in batches:
        if not batch:
            continue
        if map_days is None:
            results = [_backfill_day(*batch[0])]
        else:
            results = map_days(
                _backfill_day, batch, f"backfill {ref} {batch[0][3]}..{batch[-1][3]}"
            )
        for call, (status, version) in zip(batch, results, strict=True):
            days[call[3]] = status
            last = version if version is not None and (last is None or version > last) else last
        if progress is not None:
            progress(f"backfill {ref}", len(days), len(dates))
    return BackfillResult(ref, definition.column, days, last)
