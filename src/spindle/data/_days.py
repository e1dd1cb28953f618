"""A declared source's rows by UTC day: a daily partition, or one day of a dump read once.

A historical dump (one file or folder split by event time) or a Delta table is read once per
process and per file content: ``read_dump`` keeps the last few reads keyed by the files' paths,
sizes and modification times (and the declaration), so ingesting a year of days reads a
year's file once, not 365 times. ``dump_cache_stats`` says how many reads and hits there were.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import SourceDeclaration, sha256_json
from spindle.data._raw_store import Root, is_object_store_url, object_identity
from spindle.data._readers import (
    REJECTED_SCHEMA,
    _Conformed,
    _files_or_none,
    _read_all,
    _Unusable,
    resolve_location,
    source_files,
)

_EPOCH = dt.date(1970, 1, 1)
#: Dumps kept in memory at once (a year of 340,000 rows is ~60 MB of Arrow); a workspace with
#: more dump and dimension sources than this would read each again every day.
_CACHED_DUMPS = 16


@dataclass(frozen=True)
class SourceRead:
    """One day of one source, as read.

    Attributes:
        table: the readable rows, exactly the declared schema (timestamps in UTC).
        rejected: rows set aside with their reason (``REJECTED_SCHEMA``).
        files: the files read (paths as found).
        problem: when set, the whole partition is quarantined (``table`` is empty): why, naming
            the file.
        extra_columns: columns found in the files that the declaration does not name.
        extras: the values of ``extra_columns`` for the rows of ``table`` (None without any).
        schema_problem: ``problem`` is a file that does not fit the declaration (a required
            column missing, a type that cannot be cast), not one that cannot be read.
        row_numbers: each row of ``table``'s position in the files read (in the whole dump
            for a dump), as in the ``row_number`` of rejected rows.
    """

    source: str
    date: str
    table: pa.Table
    rejected: pa.Table
    files: tuple[str, ...] = ()
    problem: str | None = None
    extra_columns: tuple[str, ...] = ()
    extras: pa.Table | None = None
    schema_problem: bool = False
    row_numbers: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def quarantined(self) -> bool:
        """Whether the whole partition is set aside (see ``problem``)."""
        return self.problem is not None


@dataclass(frozen=True)
class DaysRead:
    """Several days of one source read at once; ``undated`` holds rejected rows whose event
    time could not be read, so that no day claims them (they are still recorded)."""

    days: dict[str, SourceRead]
    undated: pa.Table = field(default_factory=REJECTED_SCHEMA.empty_table)


@dataclass(frozen=True)
class DumpCacheStats:
    """How often a dump or Delta source was read from its files, and served from memory."""

    reads: int
    hits: int


class _Dump:
    """Rows read once (a whole dump, a Delta table, or one daily partition) and cut into days."""

    def __init__(
        self,
        source: SourceDeclaration,
        conf: _Conformed | None,
        files: list[str],
        bad_lines: list[str],
        problem: _Unusable | None = None,
    ) -> None:
        self.source, self.files, self.bad_lines = source, files, bad_lines
        self.problem = None if problem is None else str(problem)
        self.schema_problem = problem is not None and problem.schema
        self.conf = conf if conf is not None else _Conformed(pa.table({}), {}, {}, [])
        self.flagged = np.zeros(self.conf.table.num_rows, dtype=bool)
        self.flagged[list(self.conf.reasons)] = True
        self.day_numbers = np.zeros(0, dtype=np.int32)
        self.valid = np.zeros(0, dtype=bool)
        if conf is not None and source.layout in ("dump", "delta"):
            assert source.event_time is not None  # required for dumps, checked at load
            times = conf.table.column(source.event_time.column)
            numbers = pc.cast(times, pa.date32()).cast(pa.int32())
            self.day_numbers = pc.fill_null(numbers, -1).to_numpy(zero_copy_only=False)
            self.valid = pc.is_valid(times).to_numpy(zero_copy_only=False)

    @classmethod
    def read(cls, root: Root, source: SourceDeclaration, date: str | None) -> _Dump:
        """Read every file of a dump (``date=None``) or of one daily partition."""
        try:
            conf, files, bad_lines = _read_all(root, source, date)
        except _Unusable as exc:
            return cls(source, None, _files_or_none(root, source, date), [], exc)
        return cls(source, conf, files, bad_lines)

    def day(self, date: str) -> SourceRead:
        """The rows of one UTC day (every row for a dimension)."""
        if self.problem is not None:
            return _quarantined(self.source, date, self.files, self.problem, self.schema_problem)
        if self.source.layout in ("static", "daily"):
            read = _day_read(self, date, np.arange(self.conf.table.num_rows))
            return _with_bad_lines(read, self.bad_lines)
        number = (dt.date.fromisoformat(date) - _EPOCH).days
        return _day_read(self, date, np.flatnonzero(self.valid & (self.day_numbers == number)))

    def undated(self) -> pa.Table:
        """Rejected rows without a readable event time, and malformed lines (no day has them)."""
        if self.problem is not None or self.source.layout in ("static", "daily"):
            return REJECTED_SCHEMA.empty_table()
        rows = [int(i) for i in np.flatnonzero(~self.valid) if int(i) in self.conf.reasons]
        rejected = _rejected(self.source.name, "", self.conf, rows)
        return pa.concat_tables([rejected, _bad_lines_table(self.source.name, "", self.bad_lines)])


class _DumpCache:
    """The last few dumps read, by file identity (path, size, mtime) and declaration."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[str, _Dump] = OrderedDict()
        self.reads = 0
        self.hits = 0

    def get(self, root: Root, source: SourceDeclaration) -> _Dump:
        key = _identity(root, source)
        if key in self.entries:
            self.hits += 1
            self.entries.move_to_end(key)
            return self.entries[key]
        self.reads += 1
        dump = _Dump.read(root, source, None)
        self.entries[key] = dump
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return dump


_DUMPS = _DumpCache(_CACHED_DUMPS)


def _stat(path: str, root: Root) -> list[object]:
    try:
        if is_object_store_url(path):
            return [path, *object_identity(root, path)]
        info = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, info.st_size, info.st_mtime_ns]


def _identity(root: Root, source: SourceDeclaration) -> str:
    """What a dump's rows depend on: the declaration and each file's path, size and mtime."""
    if source.format == "delta":
        try:
            folder = os.path.join(resolve_location(root, source.location), "_delta_log")
            files = sorted(os.path.join(folder, n) for n in os.listdir(folder))
        except (OSError, _Unusable):
            files = []
    else:
        try:
            files = source_files(root, source, None)
        except _Unusable:
            files = []
    return sha256_json(
        {
            "root": str(root),
            "source": source.model_dump(mode="json"),
            "files": [_stat(f, root) for f in files],
        }
    )


def dump_cache_stats() -> DumpCacheStats:
    """Reads and cache hits of dump and Delta sources in this process (see ``read_source_days``).

    Example:
        >>> before = dump_cache_stats().reads  # doctest: +SKIP
    """
    return DumpCacheStats(_DUMPS.reads, _DUMPS.hits)


def last_event_day(root: Root, source: SourceDeclaration) -> str | None:
    """The last UTC day with a row of a dump or Delta source (None: no dated row, or a daily
    source or dimension, whose days are its partitions or every day).

    Example:
        >>> last_event_day(ws.root, sources["orders"])  # doctest: +SKIP
        '2026-01-31'
    """
    if source.layout not in ("dump", "delta"):
        return None
    dump = _DUMPS.get(root, source)
    if dump.problem is not None or not dump.valid.any():
        return None
    number = int(dump.day_numbers[dump.valid].max())
    return (_EPOCH + dt.timedelta(days=number)).isoformat()


def _day_read(dump: _Dump, date: str, rows: np.ndarray) -> SourceRead:
    """The SourceRead of the rows ``rows`` (positions in the dump) of one day."""
    conf, source = dump.conf, dump.source
    good = rows[~dump.flagged[rows]]
    bad = [int(i) for i in rows[dump.flagged[rows]]]
    taken = pa.array(good, pa.int64())
    table = conf.table.take(taken).cast(source.arrow_schema())
    return SourceRead(
        source.name,
        date,
        table,
        _rejected(source.name, date, conf, bad),
        tuple(dump.files),
        None,
        tuple(conf.extra),
        conf.extras.take(taken) if conf.extras is not None else None,
        row_numbers=good,
    )


def _rejected(name: str, date: str, conf: _Conformed, rows: list[int]) -> pa.Table:
    return pa.table(
        {
            "source": [name] * len(rows),
            "row_number": rows,
            "reason": [conf.reasons[i] for i in rows],
            "row_json": [conf.row_json.get(i, "{}") for i in rows],
            "date": [date] * len(rows),
        },
        schema=REJECTED_SCHEMA,
    )


def _quarantined(
    source: SourceDeclaration, date: str, files: list[str], why: str, schema: bool
) -> SourceRead:
    return SourceRead(
        source.name,
        date,
        source.arrow_schema().empty_table(),
        REJECTED_SCHEMA.empty_table(),
        tuple(files),
        why,
        schema_problem=schema,
    )


def read_source_day(root: Root, source: SourceDeclaration, date: str) -> SourceRead:
    """Read one UTC day of a source: its ``{date}`` partition, or that day of a dump.

    Example:
        >>> read = read_source_day(workspace, sources["orders"], "2026-01-02")  # doctest: +SKIP
        >>> read.table.schema == sources["orders"].arrow_schema()  # doctest: +SKIP
        True
    """
    return read_source_days(root, source, [date]).days[date]


def read_source_days(root: Root, source: SourceDeclaration, dates: list[str]) -> DaysRead:
    """Read several UTC days; a dump or Delta table is read once and split by event time.

    A dump is read from its files at most once per content while it stays among the last few
    read in this process (``dump_cache_stats``). Rows of a daily partition all belong to its
    date (lateness is judged by the caller). Malformed CSV lines are rejected rows of the day
    (row number -1, the line in the reason).
    """
    if source.layout == "daily":
        return DaysRead({d: _Dump.read(root, source, d).day(d) for d in dates})
    dump = _DUMPS.get(root, source)
    return DaysRead({d: dump.day(d) for d in dates}, dump.undated())


def _with_bad_lines(read: SourceRead, bad_lines: list[str]) -> SourceRead:
    if not bad_lines:
        return read
    rejected = pa.concat_tables(
        [read.rejected, _bad_lines_table(read.source, read.date, bad_lines)]
    )
    return SourceRead(
        read.source,
        read.date,
        read.table,
        rejected,
        read.files,
        None,
        read.extra_columns,
        read.extras,
        row_numbers=read.row_numbers,
    )


def _bad_lines_table(name: str, date: str, lines: list[str]) -> pa.Table:
    return pa.table(
        {
            "source": [name] * len(lines),
            "row_number": [-1] * len(lines),
            "reason": lines,
            "row_json": ["{}"] * len(lines),
            "date": [date] * len(lines),
        },
        schema=REJECTED_SCHEMA,
    )
