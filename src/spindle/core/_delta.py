"""Delta Lake storage shared by the stages: partition overwrites, versions, time travel.

A day is always written with a partition overwrite (``date = 'YYYY-MM-DD'``) so re-running a
day is idempotent; schema evolution is additive (``schema_mode='merge'``). Readers pin a version.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core._artifacts import TableVersion
from spindle.core._errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

# deltalake and pyarrow are imported in the functions that use them: `table_exists` and the
# modules that only name these functions (on the path of `spindle status`) stay light.


def table_exists(path: str | Path) -> bool:
    """True when a Delta table has been created at ``path``."""
    return (Path(path) / "_delta_log").is_dir()


def write_partition(path: str | Path, table: pa.Table, date: str, name: str) -> TableVersion:
    """Replace the ``date`` partition of the Delta table at ``path`` with ``table``.

    Args:
        path: the table's directory (created with the first write).
        table: rows to write; must hold a string column ``date`` equal to ``date``.
        date: the partition, ``YYYY-MM-DD``.
        name: the table's logical name, used in the returned artifact id.

    Raises:
        DataError: the write failed (the previous version stays intact: Delta commits atomically).
    """
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.exceptions import DeltaError

    if "date" not in table.column_names:
        table = table.append_column("date", pa.array([date] * table.num_rows, pa.string()))
    try:
        write_deltalake(
            str(path),
            table,
            mode="overwrite",
            predicate=f"date = '{date}'",
            partition_by=["date"],
            schema_mode="merge",
        )
    except DeltaError as exc:
        raise DataError(
            f"writing partition date={date} of Delta table {name} at {path} failed: {exc}"
        ) from exc
    return current_version(path, name)


def current_version(path: str | Path, name: str) -> TableVersion:
    """The latest version of a Delta table as an artifact."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(str(path))
    except TableNotFoundError as exc:
        raise DataError(f"Delta table {name} does not exist at {path}; ingest data first") from exc
    version = dt.version()
    # A Delta version is immutable, so (table, version) identifies its content.
    return TableVersion.at(name, version, str(path))


def open_dataset(path: str | Path, version: int | None = None) -> pads.Dataset:
    """A pyarrow dataset over a Delta table, at ``version`` (time travel) or the latest."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        dt = DeltaTable(str(path), version=version)
    except TableNotFoundError as exc:
        raise DataError(f"no Delta table at {path}; ingest data first") from exc
    return dt.to_pyarrow_dataset()
