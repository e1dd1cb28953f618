"""Ingest one day of every declared source into Delta tables: read, check, quarantine, write.

Two phases. First every declared source is read and checked, in ``check_order`` (a rule that
``uses`` another source sees that source's good rows of the day): a bad *row* is set aside with
its reason (unreadable value, event time outside the day and its allowed lateness, a failed
rule, a repeated primary key), and the good rows are kept. A partition that cannot be used at
all (unreadable, a required column missing) is quarantined whole with its reason and stops the
day: nothing of the day is written. Then, only when every source passed, the good rows go to
``<tables>/raw/<source>`` and the set-aside rows to ``<tables>/quarantine``, one partition of
the day each; a dimension is written only when its rows differ from its latest copy at or
before the day (``_dimensions``: readers take that copy), which the day's notes say.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from spindle.core import (
    DataError,
    IngestResult,
    Location,
    RawPartition,
    SchemaError,
    SourceDeclaration,
    TableVersion,
    check_order,
    lock_connection,
    sha256_file,
    sha256_json,
    write_partition,
)
from spindle.data._days import SourceRead, read_source_day, read_source_days
from spindle.data._dimensions import unchanged_copy
from spindle.data._raw_store import Root, is_object_store_url, object_identity, raw_object
from spindle.data._readers import REJECTED_SCHEMA, _Unusable, resolve_location, source_files
from spindle.data._retract import RetractedKeys, set_aside_retracted
from spindle.data._row_rules import apply_rules, check_event_times, drop_duplicate_keys

if TYPE_CHECKING:
    import duckdb

# The quarantine table holds what the readers and checks set aside: one schema for all.
QUARANTINE_SCHEMA = REJECTED_SCHEMA
_HASHES: dict[tuple[str, int, int], str] = {}
_SETTLED_NS = 60 * 10**9


@dataclass(frozen=True)
class SourceCheck:
    """One source's day after the checks: what will be written, and what is set aside.

    Attributes:
        good: the rows to write (declared columns, then any extra columns the files had; a
            declared ``date`` column is replaced by the day ingested under when written).
        bad: the rows set aside with their reason (``QUARANTINE_SCHEMA``); ``row_number`` is
            the row's position in the day's files (in the dump, for a dump).
        files: the files read.
        extra_columns: columns the files had that the declaration does not name (kept).
    """

    source: str
    good: pa.Table
    bad: pa.Table
    files: tuple[str, ...]
    extra_columns: tuple[str, ...]


@dataclass(frozen=True)
class DayCheck:
    """Every declared source of one day, checked, nothing written (ingest's first phase).

    Attributes:
        checked: the sources with rows (or a partition) that day, in ``check_order``.
        missing: declared sources without a partition (or rows) on a day their calendar
            expects data: a missing-data anomaly.
        closed: sources without data on a day their calendar says is closed (expected).
        problems: whole partitions that cannot be used, by source: why (naming the file).
        schema_problems: the sources of ``problems`` whose files were read but do not fit the
            declaration (a required column missing, an uncastable type).
        undated: per dump source, rows whose event time cannot be read: they belong to no day
            and are not ingested (said in the notes of every day).
    """

    date: str
    checked: tuple[SourceCheck, ...]
    missing: tuple[str, ...]
    closed: tuple[str, ...]
    problems: dict[str, str]
    schema_problems: tuple[str, ...] = ()
    undated: dict[str, int] = field(default_factory=dict)


def _has_data(read: SourceRead) -> bool:
    return read.table.num_rows > 0 or read.rejected.num_rows > 0 or read.problem is not None


def _present(read: SourceRead, decl: SourceDeclaration) -> bool:
    """Whether the source has data for the day: a partition (daily), or rows (a dump)."""
    if decl.layout == "static":
        return True
    return bool(read.files) if decl.layout == "daily" else _has_data(read)


def _with_extras(read: SourceRead) -> pa.Table:
    """The read rows with the files' extra columns appended (additive schema evolution)."""
    table = read.table
    if read.extras is not None:
        for name in read.extras.column_names:
            if name != "date" and name not in table.column_names:
                table = table.append_column(name, read.extras.column(name))
    return table


def _renumber(bad: pa.Table, positions: np.ndarray) -> pa.Table:
    """``bad`` with each row_number (a position in the step's input) made a file position."""
    if bad.num_rows == 0:
        return bad
    rows = positions[bad.column("row_number").to_numpy()]
    index = bad.schema.get_field_index("row_number")
    return bad.set_column(index, "row_number", pa.array(rows, pa.int64()))


def _check_source(
    read: SourceRead,
    decl: SourceDeclaration,
    date: str,
    goods: Mapping[str, pa.Table],
    con: duckdb.DuckDBPyConnection,
    retracted: Sequence[RetractedKeys] = (),
) -> SourceCheck:
    """Retracted rows (reason ``retracted:<id>``), event times, rules (over the good rows of
    the sources they use), then primary key."""
    table = _with_extras(read)
    positions = read.row_numbers
    if positions is None:  # pragma: no cover - every read with rows carries its positions
        positions = np.arange(table.num_rows)
    # check_order put every used source first, so each has its good rows (maybe none) here
    others = {name: goods[name] for rule in decl.rules for name in rule.uses}
    bad = [read.rejected]
    steps = (
        lambda t, d, day: set_aside_retracted(t, d, day, retracted),
        check_event_times,
        lambda t, d, day: apply_rules(t, d, day, others, con=con),
        drop_duplicate_keys,
    )
    for step in steps:
        table, aside = step(table, decl, date)
        bad.append(_renumber(aside, positions))
        keep = np.ones(len(positions), dtype=bool)
        keep[aside.column("row_number").to_numpy()] = False
        positions = positions[keep]
    extra = tuple(c for c in read.extra_columns if c != "date")
    return SourceCheck(decl.name, table, pa.concat_tables(bad), read.files, extra)


def check_day(
    root: Root,
    sources: Mapping[str, SourceDeclaration],
    date: str,
    retracted: Mapping[str, Sequence[RetractedKeys]] | None = None,
) -> DayCheck:
    """Read and check every declared source of ``date``, writing nothing (ingest's first phase).

    Args:
        root: the workspace root (locations are relative to it).
        sources: the declarations (``load_sources(root)``).
        date: the UTC day, ``YYYY-MM-DD``.
        retracted: per source, the recorded retractions whose rows are set aside.

    Returns:
        A :class:`DayCheck`: per source the good rows and the rows set aside with reasons, the
        sources missing (or expectedly closed) that day, and the unusable partitions.

    Raises:
        ConfigError: the rules' ``uses`` form a cycle.
    """
    import duckdb

    found = _Found(retracted=dict(retracted or {}))
    with duckdb.connect() as con:  # one for the day's rules (opening one costs ~40 ms)
        lock_connection(con)  # the rules read Arrow rows only, never a file
        for name in check_order(dict(sources)):
            _check_one(root, sources[name], date, con, found)
    return DayCheck(
        date,
        tuple(found.checked),
        tuple(found.missing),
        tuple(found.closed),
        found.problems,
        tuple(found.schema),
        found.undated,
    )


@dataclass
class _Found:
    """What check_day has found so far (the fields of DayCheck, being filled)."""

    checked: list[SourceCheck] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    schema: list[str] = field(default_factory=list)
    undated: dict[str, int] = field(default_factory=dict)
    goods: dict[str, pa.Table] = field(default_factory=dict)  # for the rules that use them
    retracted: dict[str, Sequence[RetractedKeys]] = field(default_factory=dict)


def _check_one(
    root: Root,
    decl: SourceDeclaration,
    date: str,
    con: duckdb.DuckDBPyConnection,
    found: _Found,
) -> None:
    """Read and check one source's day; record it in ``found``."""
    reads = read_source_days(root, decl, [date])
    read = reads.days[date]
    if reads.undated.num_rows:
        found.undated[decl.name] = reads.undated.num_rows
    found.goods[decl.name] = decl.arrow_schema().empty_table()
    if not _present(read, decl):
        closed = decl.calendar.is_closed(dt.date.fromisoformat(date))
        (found.closed if closed else found.missing).append(decl.name)
    elif read.problem is not None:
        found.problems[decl.name] = read.problem
        if read.schema_problem:
            found.schema.append(decl.name)
    else:
        result = _check_source(
            read, decl, date, found.goods, con, found.retracted.get(decl.name, ())
        )
        found.goods[decl.name] = result.good
        found.checked.append(result)


def _file_hash(path: str, root: Root) -> str:
    """sha256 of a file (an object's bytes, streamed), remembered by (path, size, mtime) so a
    year's dump is hashed once."""
    if is_object_store_url(path):
        key = (path, *object_identity(root, path))
        if key in _HASHES:
            return _HASHES[key]
        digest = raw_object(root, path).sha256()
        # an object's time has whole seconds: one rewritten within its second, at the same
        # size, would look unchanged, so only an object a minute old is remembered
        if key[2] < time.time_ns() - _SETTLED_NS:
            _HASHES[key] = digest
        return digest
    info = os.stat(path)
    key = (path, info.st_size, info.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(Path(path))
    return _HASHES[key]


def _files_of(root: Root, decl: SourceDeclaration, date: str) -> list[str]:
    """The files a source's day is read from (the whole dump for a dump or dimension)."""
    try:
        if decl.format == "delta":
            log = os.path.join(resolve_location(root, decl.location), "_delta_log")
            return sorted(os.path.join(log, n) for n in os.listdir(log))
        return source_files(root, decl, date if decl.layout == "daily" else None)
    except (OSError, _Unusable):
        return []


def raw_partitions(
    root: Root, sources: Mapping[str, SourceDeclaration], date: str
) -> list[RawPartition]:
    """The raw inputs of ``date``: one per declared source with data that day (a daily
    partition with files; a dump or Delta table with rows on the day; every dimension).

    Each content hash covers the files (sha256) and the declaration, so a changed file or a
    changed declaration re-ingests the day.

    Example:
        >>> [p.source for p in raw_partitions(ws.root, sources, "2026-01-05")]  # doctest: +SKIP
        ['customers', 'orders']
    """
    parts: list[RawPartition] = []
    for name in check_order(dict(sources)):
        decl = sources[name]
        files = _files_of(root, decl, date)
        if decl.layout == "daily" and not files:
            continue
        if decl.layout in ("dump", "delta") and not _has_data(read_source_day(root, decl, date)):
            continue
        identity = {
            "declaration": decl.model_dump(mode="json"),
            "files": {_stable_name(f, root): _file_hash(f, root) for f in files if _is_file(f)},
        }
        uri = os.path.dirname(files[0]) if decl.layout == "daily" else decl.location
        parts.append(RawPartition(name, date, uri, sha256_json(identity), len(files)))
    return parts


def _is_file(path: str) -> bool:
    return is_object_store_url(path) or os.path.isfile(path)  # objects: listed as files


def _stable_name(path: str, root: Root) -> str:
    """A file's name in an identity: relative to the workspace (a copied or moved workspace
    keeps its identities), to the installed packages for a ``package://`` file, or its URL."""
    if is_object_store_url(path):
        return path
    resolved = os.path.abspath(path)
    base = os.path.abspath(root)
    if resolved.startswith(base + os.sep):
        return os.path.relpath(resolved, base)
    marker = f"{os.sep}site-packages{os.sep}"
    return resolved.split(marker, 1)[1] if marker in resolved else resolved


def day_content_hash(root: Root, sources: Mapping[str, SourceDeclaration], date: str) -> str:
    """The content hash an ingest of ``date`` records (``IngestResult.content_hash``): of the
    day's raw inputs (``raw_partitions``: files and declarations)."""
    return sha256_json({p.source: p.content_hash for p in raw_partitions(root, sources, date)})


def _raise_problems(check: DayCheck) -> None:
    if not check.problems:
        return
    listed = "; ".join(f"{name}: {why}" for name, why in check.problems.items())
    message = (
        f"{check.date}: {len(check.problems)} partition(s) cannot be used, nothing of the day"
        f" was written: {listed}. Fix or re-export the file(s) (or the declaration in"
        " sources/), then run `spindle ingest` again"
    )
    if set(check.problems) == set(check.schema_problems):
        raise SchemaError(message)
    raise DataError(message)


def ingest_day(
    root: Root,
    sources: Mapping[str, SourceDeclaration],
    tables_dir: Location | Path,
    date: str,
    retracted: Mapping[str, Sequence[RetractedKeys]] | None = None,
) -> IngestResult:
    """Check and load one day of every declared source into Delta tables under ``tables_dir``.

    Args:
        root: the workspace root (source locations are relative to it).
        sources: the declarations (``load_sources(root)``), loaded once by the caller.
        tables_dir: root of the Delta tables (``raw/<source>``, ``quarantine``).
        date: the UTC day, ``YYYY-MM-DD``.
        retracted: per source, the recorded retractions: their rows are quarantined with
            reason ``retracted:<id>``, never loaded.

    Returns:
        An :class:`IngestResult` with the new table versions, row counts, quarantine reasons,
        the declared sources missing that day (an expected, calendar-closed gap is a note
        instead) and notes (new columns kept, dimensions unchanged since their last copy and
        so not written again).

    Raises:
        SchemaError: a partition lacks a required column or holds an uncastable type (every
            such partition named; nothing written).
        DataError: a partition cannot be read (likewise).

    Example:
        >>> ingest_day(ws.root, load_sources(ws.root), ws.tables_dir, "2026-01-02")  # doctest: +SKIP
    """
    check = check_day(root, sources, date, retracted)
    _raise_problems(check)
    versions: list[TableVersion] = []
    unchanged: dict[str, str] = {}  # a dimension not written again -> the copy it equals
    for item in check.checked:
        # the table's `date` is the day ingested under, as text (a declared `date` is replaced)
        good = item.good.drop_columns(["date"]) if "date" in item.good.column_names else item.good
        table = tables_dir / "raw" / item.source
        static = sources[item.source].layout == "static"
        kept = unchanged_copy(table, good, date) if static else None
        if kept is None:
            versions.append(write_partition(table, good, date, f"raw/{item.source}"))
        else:
            unchanged[item.source] = kept
    bad = (
        pa.concat_tables([c.bad for c in check.checked])
        if check.checked
        else QUARANTINE_SCHEMA.empty_table()
    )
    versions.append(write_partition(tables_dir / "quarantine", bad, date, "quarantine"))
    return IngestResult(
        date=date,
        uri=str(tables_dir / "raw"),
        content_hash=day_content_hash(root, sources, date),
        rows_ingested=sum(c.good.num_rows for c in check.checked),
        rows_quarantined=bad.num_rows,
        tables=tuple(versions),
        quarantine_reasons=_reason_counts(bad),
        missing_sources=check.missing,
        notes=_notes(check, unchanged),
    )


def _reason_counts(bad: pa.Table) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for source, reason in zip(
        bad.column("source").to_pylist(), bad.column("reason").to_pylist(), strict=True
    ):
        key = f"{source}: {_shown(reason)}"
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def _shown(reason: str) -> str:
    """A reason without the values it names (repeated keys differ only in their values)."""
    return reason.split(" = ")[0] if reason.startswith("duplicate primary key") else reason


def _notes(check: DayCheck, unchanged: Mapping[str, str]) -> tuple[str, ...]:
    rows = {c.source: c.good.num_rows for c in check.checked}
    kept = ", ".join(f"{name} ({copy}, {rows[name]} rows)" for name, copy in unchanged.items())
    notes = (
        [
            f"unchanged dimension(s) not written again, {check.date} reads their copy of the"
            f" day shown: {kept}"
        ]
        if unchanged
        else []
    )
    notes += [
        f"{c.source}: new column(s) {list(c.extra_columns)} kept (schema evolution)"
        for c in check.checked
        if c.extra_columns
    ]
    notes += [
        f"{name}: no data for {check.date}, a closed day in its calendar (expected)"
        for name in check.closed
    ]
    notes += [
        f"{name}: {n} row(s) of the dump have no readable event time, so no day holds them"
        " (not ingested): fix their event time in the file"
        for name, n in check.undated.items()
    ]
    return tuple(notes)


def unread_files(
    root: Root, sources: Mapping[str, SourceDeclaration], raw_dir: Path | Location, date: str
) -> list[str]:
    """Files of ``date`` under ``raw_dir`` that no declaration reads (to warn, never to ignore).

    A file belongs to ``date`` when the day appears in its path (``date=2026-01-01/``,
    ``2026-01-01.csv``, ...).

    Returns:
        Paths relative to ``raw_dir``, sorted.
    """
    from spindle.data._raw_store import undeclared_files

    if isinstance(raw_dir, Location) and not raw_dir.is_local:
        urls = undeclared_files(root, sources.values(), raw_dir)
        return sorted(u.removeprefix(raw_dir.url + "/") for u in urls if date in u)
    raw_dir = raw_dir.path if isinstance(raw_dir, Location) else raw_dir
    found = undeclared_files(root, sources.values(), str(raw_dir))
    base = Path(root)
    shown = [(base / f).relative_to(raw_dir).as_posix() for f in found]
    return sorted(f for f in shown if date in f)
