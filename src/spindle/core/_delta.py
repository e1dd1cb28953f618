"""Delta Lake storage shared by the stages: partition overwrites, versions, time travel.

A day is always written with a partition overwrite (``date = 'YYYY-MM-DD'``) so re-running a
day is idempotent; schema evolution is additive (``schema_mode='merge'``). Readers pin a version.
A table lives in a local folder or under an ``s3://`` prefix (a :class:`Location`): delta-rs
commits there atomically either way (on S3 with a conditional put of the commit file, so two
writers of one version still meet as a :class:`CommitConflict`).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core._artifacts import TableVersion
from spindle.core._errors import CommitConflict, DataError
from spindle.core._location import Location, store_error

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    from deltalake import DeltaTable
    from pyarrow import fs

# deltalake and pyarrow are imported in the functions that use them: `table_exists` and the
# modules that only name these functions (on the path of `spindle status`) stay light.


TablePath = str | Path | Location
"""Where a table is: a local path, or a :class:`Location` (local or in an object store)."""


def table_exists(path: TablePath) -> bool:
    """True when a Delta table has been created at ``path``.

    Raises:
        DataError: the object store holding ``path`` cannot be reached.
    """
    where = Location.of(path)
    if where.is_local:
        return (where.path / "_delta_log").is_dir()
    return (where / "_delta_log").is_dir()


def open_table(path: TablePath, version: int | None = None) -> DeltaTable:
    """A delta-rs ``DeltaTable`` at ``path`` (with its store's options), at ``version``.

    Raises:
        DataError: no table there, or its object store cannot be read.
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    where = Location.of(path)
    try:
        return DeltaTable(where.url, version=version, storage_options=where.storage_options)
    except (DeltaError, OSError) as exc:
        if where.is_local and not isinstance(exc, DeltaError):
            raise
        raise DataError(f"cannot open the Delta table at {where} ({_first_line(exc)})") from exc


def write_partition(path: TablePath, table: pa.Table, date: str, name: str) -> TableVersion:
    """Replace the ``date`` partition of the Delta table at ``path`` with ``table``.

    The write goes through the process's open handle of the table (brought up to its latest
    commit first) when there is one: loading the table's log again for every write cost about
    as much as the write itself late in a year of daily partitions.

    Args:
        path: the table's directory (created with the first write).
        table: rows to write; must hold a string column ``date`` equal to ``date``.
        date: the partition, ``YYYY-MM-DD``.
        name: the table's logical name, used in the returned artifact id.

    Returns:
        The table's version after the write.

    Raises:
        CommitConflict: another writer committed to the table first (a ``TransientError``:
            nothing was written, and the runner retries the step).
        DataError: the write failed (the previous version stays intact: Delta commits atomically).
    """
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError

    if "date" not in table.column_names:
        table = table.append_column("date", pa.array([date] * table.num_rows, pa.string()))
    where = _resolved(path)
    try:
        with _LOCK:
            target = _latest_handle(where)
            write_deltalake(
                target if target is not None else where.url,
                table,
                mode="overwrite",
                predicate=f"date = '{date}'",
                partition_by=["date"],
                schema_mode="merge",
                storage_options=None if target is not None else where.storage_options,
            )
    except (DeltaError, OSError) as exc:
        _HANDLES.pop(where, None)  # reopened from the log next time
        if not isinstance(exc, DeltaError):  # the object store failed (locally: raised as is)
            if where.is_local:
                raise
            raise store_error(where, f"writing partition date={date} of {name} at", exc) from exc
        if isinstance(exc, CommitFailedError):  # another writer committed first: retry it
            raise CommitConflict(
                f"writing partition date={date} of Delta table {name} at {path}: another "
                f"writer committed to the table first ({_first_line(exc)}); nothing was "
                "written, and the write is safe to retry"
            ) from exc
        raise DataError(
            f"writing partition date={date} of Delta table {name} at {path} failed: {exc}"
        ) from exc
    return current_version(path, name)


def _resolved(path: TablePath) -> Location:
    """The location of ``path``, a local one made absolute (the key of the handle cache)."""
    where = Location.of(path)
    if where.is_local:
        return Location(str(where.path.resolve()), (), where.scratch)
    return where


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def current_version(path: TablePath, name: str) -> TableVersion:
    """The latest version of a Delta table as an artifact.

    The version is the number of the newest commit file in ``_delta_log`` (a commit is one
    atomically created ``<version>.json``), read from a directory listing instead of loading
    the table: pinning a day's tables opened every table's log (about 20 ms each, growing
    with the log) dozens of times per ingested day.

    Raises:
        DataError: there is no table at ``path`` (or its object store cannot be read).
    """
    where = Location.of(path)
    try:
        if where.is_local:
            names = [entry.name for entry in (where.path / "_delta_log").iterdir()]
        else:
            names = [entry.name for entry in (where / "_delta_log").iterdir()]
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DataError(f"Delta table {name} does not exist at {path}; ingest data first") from exc
    commits = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
    if not commits:
        raise DataError(f"Delta table {name} at {path} has no commit; ingest data first")
    # A Delta version is immutable, so (table, version) identifies its content.
    return TableVersion.at(name, max(commits), str(path))


def open_dataset(path: TablePath, version: int | None = None) -> pads.Dataset:
    """A pyarrow dataset over a Delta table, at ``version`` (time travel) or the latest.

    A version is immutable, so the dataset of (table, version) is opened once per process and
    reused (the latest is first resolved to its number from the log's listing): one ingested
    day pins and reads the same tables in several steps, and each open replays the log.

    Raises:
        DataError: no table (or no such version) at ``path``, or its object store failed.
    """
    if version is None:
        if not table_exists(path):
            raise DataError(f"no Delta table at {path}; ingest data first")
        version = current_version(path, str(path)).version
    resolved = _resolved(path)
    # the commit file's identity: a table removed and re-created reuses version numbers
    stamp = _stamp(resolved / "_delta_log" / f"{version:020d}.json")
    return _dataset_at(resolved, version, stamp)


def _stamp(commit: Location) -> tuple[int, int]:
    """A commit file's (mtime, inode) ((0, 0) once cleaned up: a checkpoint holds it)."""
    if commit.is_local:
        try:
            found = commit.path.stat()
        except OSError:
            return (0, 0)
        return (found.st_mtime_ns, found.st_ino)
    from pyarrow import fs

    filesystem, key = commit.filesystem()
    with commit.translated("reading"):
        info = filesystem.get_file_info(key)
    if info.type == fs.FileType.NotFound:
        return (0, 0)
    return (int(info.mtime_ns or 0), int(info.size or 0))


@functools.lru_cache(maxsize=64)
def _dataset_at(path: Location, version: int, stamp: tuple[int, int]) -> pads.Dataset:
    del stamp  # part of the cache key only
    from deltalake.exceptions import DeltaError

    try:
        with _LOCK:
            return _dataset_of(_handle(path, version), path.url)
    except (DeltaError, OSError) as exc:
        _HANDLES.pop(path, None)
        if not isinstance(exc, DeltaError):
            if path.is_local:
                raise
            raise store_error(path, f"reading version {version} of", exc) from exc
        raise DataError(
            f"no Delta table at {path} in version {version} ({exc}); ingest data first, or pin "
            "a version that exists"
        ) from exc


# Each table is opened once per process and moved from version to version (replaying only the
# commits in between), and each of its files is made a dataset fragment once (a file of a Delta
# table never changes): opening a year of daily partitions from its log and rebuilding every
# fragment's partition and statistics expression took ~0.2 s per table version, several times
# per ingested day. The handles are shared by readers and writers: every use holds the lock.
_LOCK = threading.RLock()


@dataclass
class _Handle:
    """The process's open handle of one Delta table and the fragments of its files."""

    table: DeltaTable
    origin: tuple[int, int]  # the first commit's identity: a re-created table is a new one
    filesystem: fs.FileSystem
    schema: pa.Schema | None = None
    fragments: dict[str, pads.Fragment] = field(default_factory=dict)


_HANDLES: dict[Location, _Handle] = {}


def _origin(path: Location) -> tuple[int, int]:
    """The identity of the table's first commit file ((0, 0) once the log was cleaned up)."""
    return _stamp(path / "_delta_log" / f"{0:020d}.json")


def _handle(path: Location, version: int | None) -> _Handle:
    """The handle of the table at ``path`` (resolved), loaded at ``version`` (None: latest).

    Raises:
        DeltaError: no table there, or no such version.
        OSError: its object store failed.
    """
    from deltalake import DeltaTable
    from pyarrow import fs

    origin = _origin(path)
    found = _HANDLES.get(path)
    if found is None or found.origin != origin:
        table = DeltaTable(path.url, version=version, storage_options=path.storage_options)
        filesystem, root = path.filesystem()
        found = _Handle(table, origin, fs.SubTreeFileSystem(root, filesystem))
        _HANDLES[path] = found
    elif version is None:
        found.table.update_incremental()
    elif found.table.version() != version:
        found.table.load_as_version(version)
    return found


def _latest_handle(path: Location) -> DeltaTable | None:
    """The table at ``path`` (resolved) at its latest commit, to write through (None: no
    table yet)."""
    if not table_exists(path):
        return None
    return _handle(path, None).table


def _dataset_of(handle: _Handle, path: str) -> pads.Dataset:
    """A pyarrow dataset of the handle's loaded version, reusing the fragments of known files.

    The fragments are the ones deltalake makes (each with its partition value and column
    statistics as its expression, so scans skip files a filter excludes), in the table's file
    order; only files not seen before are made, from the partitions they are in.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    table = handle.table
    schema = pa.schema(table.schema().to_arrow())
    if handle.schema is None or not schema.equals(handle.schema):
        handle.schema, handle.fragments = schema, {}
    prefix = path.rstrip("/") + "/"
    files = [uri.removeprefix(prefix) for uri in table.file_uris()]
    missing = [f for f in files if f not in handle.fragments]
    if missing:
        dates = _partition_dates(missing)
        pruning = None if dates is None else [("date", "in", dates)]
        made = table.to_pyarrow_dataset(
            filesystem=handle.filesystem, file_pruning_predicate=pruning
        )
        handle.fragments.update((f.path, f) for f in made.get_fragments())
    if any(f not in handle.fragments for f in files):  # paths spelled otherwise: all at once
        whole = table.to_pyarrow_dataset(filesystem=handle.filesystem)
        handle.fragments = {f.path: f for f in whole.get_fragments()}
        return whole
    if len(handle.fragments) > 2 * len(files) + 64:  # forget files long removed
        handle.fragments = {f: handle.fragments[f] for f in files}
    fmt = pads.ParquetFileFormat(
        default_fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=True)
    )
    chosen = [handle.fragments[f] for f in files]
    return pads.FileSystemDataset(chosen, schema, fmt, handle.filesystem)


def _partition_dates(files: list[str]) -> list[str] | None:
    """The ``date=`` partitions of ``files`` (relative paths), or None when one has none."""
    dates: set[str] = set()
    for name in files:
        part = next((p for p in name.split("/") if p.startswith("date=")), None)
        if part is None:
            return None
        dates.add(part.removeprefix("date="))
    return sorted(dates)
