"""Delta Lake storage shared by the stages: partition overwrites, versions, time travel.

A day is always written with a partition overwrite (``date = 'YYYY-MM-DD'``) so re-running a
day is idempotent; schema evolution is additive (``schema_mode='merge'``). Readers pin a version.
"""

from __future__ import annotations

import functools
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
    """The latest version of a Delta table as an artifact.

    The version is the number of the newest commit file in ``_delta_log`` (a commit is one
    atomically created ``<version>.json``), read from a directory listing instead of loading
    the table: pinning a day's tables opened every table's log (about 20 ms each, growing
    with the log) dozens of times per ingested day.
    """
    log = Path(path) / "_delta_log"
    try:
        names = [entry.name for entry in log.iterdir()]
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DataError(f"Delta table {name} does not exist at {path}; ingest data first") from exc
    commits = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
    if not commits:
        raise DataError(f"Delta table {name} at {path} has no commit; ingest data first")
    # A Delta version is immutable, so (table, version) identifies its content.
    return TableVersion.at(name, max(commits), str(path))


def open_dataset(path: str | Path, version: int | None = None) -> pads.Dataset:
    """A pyarrow dataset over a Delta table, at ``version`` (time travel) or the latest.

    A version is immutable, so the dataset of (table, version) is opened once per process and
    reused (the latest is first resolved to its number from the log's listing): one ingested
    day pins and reads the same tables in several steps, and each open replays the log.
    """
    if version is None:
        if not table_exists(path):
            raise DataError(f"no Delta table at {path}; ingest data first")
        version = current_version(path, str(path)).version
    resolved = Path(path).resolve()
    try:  # the commit file's identity: a table removed and re-created reuses version numbers
        commit = (resolved / "_delta_log" / f"{version:020d}.json").stat()
        stamp = (commit.st_mtime_ns, commit.st_ino)
    except OSError:  # an old version whose commit file was cleaned up (a checkpoint holds it)
        stamp = (0, 0)
    return _dataset_at(str(resolved), version, stamp)


@functools.lru_cache(maxsize=64)
def _dataset_at(path: str, version: int, stamp: tuple[int, int]) -> pads.Dataset:
    del stamp  # part of the cache key only
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError
    from pyarrow import fs

    try:
        dt = DeltaTable(path, version=version)
    except (TableNotFoundError, DeltaError) as exc:
        raise DataError(
            f"no Delta table at {path} in version {version} ({exc}); ingest data first, or pin "
            "a version that exists"
        ) from exc
    # pyarrow's own local filesystem, not deltalake's default Python handler (PyFileSystem):
    # with the handler every file read calls back into Python, so a DuckDB scan of the dataset
    # that holds the GIL while pyarrow's reader threads wait for it can hang for good (seen once
    # in validation's count query; duckdb/duckdb#16501 is the same deadlock with fsspec)
    return dt.to_pyarrow_dataset(filesystem=fs.SubTreeFileSystem(path, fs.LocalFileSystem()))
