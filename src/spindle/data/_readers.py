"""Read a declared source's raw files into Arrow tables of exactly the declared schema.

Nothing is dropped without a recorded reason: a value that cannot be read as its declared type
sets its row aside (the reason names the column and the value); a file that cannot be read, or
lacks a required column, quarantines its whole partition (the reason names the file). Event
times are converted from their declared zone to UTC. ``_days`` cuts what is read into UTC days
(a historical dump or a Delta table is read once and split by event time).
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import PACKAGE_SCHEME, SourceDeclaration
from spindle.data._casts import MostlyUnreadable, cast_column
from spindle.data._raw_store import (
    Root,
    fetched,
    is_object_store_url,
    location_regex,
    store_dates,
    store_files,
)

#: Rows set aside while reading or checking a source (the shape of the ``quarantine`` table).
REJECTED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("row_number", pa.int64()),
        ("reason", pa.string()),
        ("row_json", pa.string()),
        ("date", pa.string()),
    ]
)


class _Unusable(Exception):
    """A file cannot be used at all; the message is the partition's quarantine reason.

    ``schema`` is true when the file was read but does not fit the declaration (a required
    column missing, a column of a type that cannot be cast), false when it cannot be read.
    """

    def __init__(self, message: str, *, schema: bool = False) -> None:
        super().__init__(message)
        self.schema = schema


@dataclass
class _Conformed:
    """Rows of some files cast to the declared types; bad cells are null, ``reasons`` says why."""

    table: pa.Table
    reasons: dict[int, str]  # row -> the first reason it is set aside (rows without one pass)
    row_json: dict[int, str]
    extra: list[str]
    extras: pa.Table | None = None  # the values of the ``extra`` columns, row for row


def package_path(location: str) -> str:
    """The file system path of ``package://<package>/<path>``: the folder of the installed
    package (found with ``importlib.util.find_spec``, which does not import it), then the path.

    Raises:
        _Unusable: the package is not installed (the reason says what to install).
    """
    import importlib.util

    package, _, inside = location[len(PACKAGE_SCHEME) :].partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise _Unusable(
            f"{location}: package {package!r} is not installed here;"
            f" install it (pip install {package.split('.')[0]}) or change the location"
        )
    return os.path.join(glob.escape(folders[0]), inside)


def resolve_location(root: Root, location: str) -> str:
    """The absolute path (possibly a glob) of a location: relative to the workspace ``root``,
    absolute as written, inside an installed package (``package://``), or an ``s3://`` URL."""
    if location.startswith(PACKAGE_SCHEME):
        return package_path(location)
    if is_object_store_url(location):
        return location
    return os.path.join(glob.escape(str(root)), location)


def _location_regex(root: Path, location: str) -> re.Pattern[str]:
    """A regex over absolute POSIX paths for a location (globs, ``{date}`` as a named group)."""
    return location_regex((root / location).as_posix())


def _expand(paths: Iterable[str]) -> list[str]:
    """Files of ``paths``; a folder stands for the visible files below it."""
    files: list[str] = []
    for path in sorted(paths):
        if not os.path.isdir(path):
            files.append(path)
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
            files.extend(os.path.join(folder, n) for n in sorted(names) if n[:1] not in "._")
    return files


def source_files(root: Root, source: SourceDeclaration, date: str | None) -> list[str]:
    """The files of one day (daily layout) or of the whole dump (``date=None``); for an
    ``s3://`` location, the objects' URLs (``root`` a :class:`SourceRoot`).

    Raises:
        DataError: an ``s3://`` location is not under ``raw_dir``, or cannot be listed.
    """
    location = (
        source.location.replace(SourceDeclaration.DATE_FIELD, date) if date else source.location
    )
    if is_object_store_url(location):
        return store_files(root, location)
    return _expand(glob.glob(resolve_location(root, location), recursive=True))


def list_partition_dates(root: Root, source: SourceDeclaration) -> list[str]:
    """The dates that have a partition, for a source with ``{date}`` in its location."""
    if source.layout != "daily" or source.location.startswith(PACKAGE_SCHEME):
        return []
    if is_object_store_url(source.location):
        return [d for d in store_dates(root, source.location) if _is_date(d)]
    regex = _location_regex(Path(root), source.location)
    static = (Path(root) / source.location.split(SourceDeclaration.DATE_FIELD)[0]).as_posix()
    base = static if static.endswith("/") else os.path.dirname(static)
    base = re.split(r"[*?\[]", base)[0]
    dates: set[str] = set()
    for folder, dirs, names in os.walk(base or "."):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in [*dirs, *names]:
            match = regex.fullmatch(Path(folder, name).as_posix())
            if match and _is_date(match.group("date")):
                dates.add(match.group("date"))
    return sorted(dates)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _read_file(
    path: str, source: SourceDeclaration, bad_lines: list[str], name: str = ""
) -> pa.Table:
    """Read one file as stored (CSV and JSON lines as text, cast later). Raises _Unusable.

    ``name``: what the reasons call the file (an object's URL, ``path`` its local copy).
    """
    try:
        if source.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if source.format == "csv":
            return _read_csv(path, source, bad_lines)
        return _read_jsonl(path, source)
    except _Unusable:
        raise
    except Exception as exc:  # any reader failure means the file is unusable; say which
        what = f"{name or path}: cannot be read as {source.format}"
        raise _Unusable(f"{what}: {_first_line(exc).replace(path, name or path)}") from exc


def _read_csv(path: str, source: SourceDeclaration, bad_lines: list[str]) -> pa.Table:
    if path.endswith(".zip"):
        return _read_zipped_csv(path, source, bad_lines)
    return _read_csv_stream(path, source, bad_lines)


def _read_csv_stream(
    path_or_file: str | IO[bytes], source: SourceDeclaration, bad_lines: list[str]
) -> pa.Table:
    from pyarrow import csv

    opts = source.csv_options

    def on_invalid(row: Any) -> str:
        bad_lines.append(f"malformed CSV line {row.number}: {row.text[:200]!r}")
        return "skip"

    return csv.read_csv(
        path_or_file,
        read_options=csv.ReadOptions(
            column_names=None if opts.header else list(source.columns),
        ),
        parse_options=csv.ParseOptions(
            delimiter=opts.delimiter, quote_char=opts.quote, invalid_row_handler=on_invalid
        ),
        convert_options=csv.ConvertOptions(
            column_types={c: pa.string() for c in source.columns},
            null_values=opts.null_values,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )


def _read_zipped_csv(path: str, source: SourceDeclaration, bad_lines: list[str]) -> pa.Table:
    """A ``.csv.zip``: a zip archive holding exactly one file (folders and ``__MACOSX`` entries
    aside), read as CSV while it is decompressed (nothing is extracted to disk)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir() and not m.filename.startswith("__MACOSX/")
        ]
        if len(members) != 1:
            names = ", ".join(m.filename for m in members) or "nothing"
            raise _Unusable(f"{path}: a zipped CSV must hold exactly one file; it holds {names}")
        with archive.open(members[0]) as member:
            return _read_csv_stream(member, source, bad_lines)


def _read_jsonl(path: str, source: SourceDeclaration) -> pa.Table:
    # DuckDB, not pyarrow.json: pyarrow refuses a whole file when one row's value changes
    # type (a price "abc" among numbers), and that must cost one row, not the partition.
    import duckdb

    with duckdb.connect() as con:
        # Types are taken from the declaration, not guessed: read every key as its JSON text.
        present = con.read_json(path, format="newline_delimited", sample_size=-1).columns
        rel = con.read_json(
            path, format="newline_delimited", columns={c: "VARCHAR" for c in present}
        )
        return rel.to_arrow_table()


def _conform(raw: pa.Table, source: SourceDeclaration, path: str) -> _Conformed:
    """Cast a file's rows to the declared schema. Raises _Unusable for a file-level problem."""
    missing = [c for c in source.columns if c not in raw.column_names]
    required = [c for c in missing if not source.columns[c].nullable]
    if required:
        raise _Unusable(
            f"{path}: missing required column(s) {', '.join(required)}"
            f" (found: {', '.join(raw.column_names) or 'none'})",
            schema=True,
        )
    reasons: dict[int, str] = {}
    arrays: list[pa.Array] = []
    for name, spec in source.columns.items():
        if name in missing:
            arrays.append(pa.nulls(raw.num_rows, spec.arrow_type()))
            continue
        values = raw.column(name).combine_chunks()
        try:
            cast, bad = cast_column(values, name, source)
        except MostlyUnreadable as exc:
            raise _Unusable(
                f"{path}: column {name}: {exc}; is the declared type right?", schema=True
            ) from exc
        except TypeError as exc:
            raise _Unusable(
                f"{path}: column {name} holds {values.type}, which cannot be read as {spec.type}",
                schema=True,
            ) from exc
        if not spec.nullable:
            for null in np.flatnonzero(pc.is_null(values).to_numpy(zero_copy_only=False)):
                bad.setdefault(int(null), f"column {name}: empty in a column that is not nullable")
        for row, why in sorted(bad.items()):
            reasons.setdefault(row, why)
        arrays.append(cast)
    nullable = pa.schema([f.with_nullable(True) for f in source.arrow_schema()])
    table = pa.Table.from_arrays(arrays, schema=nullable)
    rows = sorted(reasons)
    row_json = dict(zip(rows, _rows_json(raw.take(rows)), strict=True)) if rows else {}
    extra = [c for c in raw.column_names if c not in source.columns]
    return _Conformed(table, reasons, row_json, extra, raw.select(extra) if extra else None)


def _rows_json(table: pa.Table) -> list[str]:
    return [json.dumps(r, default=str, sort_keys=True) for r in table.to_pylist()]


def _read_all(
    root: Root, source: SourceDeclaration, date: str | None
) -> tuple[_Conformed, list[str], list[str]]:
    """Read and conform every file of a partition (or the whole dump / Delta table)."""
    if source.format == "delta":
        path = resolve_location(root, source.location)
        files = [path]
        try:
            from deltalake import DeltaTable

            raw = DeltaTable(path).to_pyarrow_dataset().to_table()
        except Exception as exc:  # not a Delta table, or unreadable: the reason names it
            raise _Unusable(f"{path}: cannot be read as delta: {_first_line(exc)}") from exc
        return _conform(raw, source, path), files, []
    files = source_files(root, source, date)
    parts: list[_Conformed] = []
    bad_lines: list[str] = []
    for file in files:
        if is_object_store_url(file):
            parts.append(_conform(_read_object(root, file, source, bad_lines), source, file))
        else:
            parts.append(_conform(_read_file(file, source, bad_lines), source, file))
    return _concat(parts, source), files, bad_lines


def _concat(parts: list[_Conformed], source: SourceDeclaration) -> _Conformed:
    nullable = pa.schema([f.with_nullable(True) for f in source.arrow_schema()])
    if not parts:
        return _Conformed(nullable.empty_table(), {}, {}, [])
    offset = 0
    reasons: dict[int, str] = {}
    row_json: dict[int, str] = {}
    extra: list[str] = []
    for part in parts:
        reasons.update({offset + i: why for i, why in part.reasons.items()})
        row_json.update({offset + i: j for i, j in part.row_json.items()})
        extra.extend(c for c in part.extra if c not in extra)
        offset += part.table.num_rows
    table = pa.concat_tables([p.table for p in parts])
    return _Conformed(table, reasons, row_json, extra, _concat_extras(parts, extra))


def _concat_extras(parts: list[_Conformed], names: list[str]) -> pa.Table | None:
    """The extra columns of every part, a column null where a file did not have it."""
    if not names:
        return None
    tables = []
    for part in parts:
        n = part.table.num_rows
        have = part.extras if part.extras is not None else pa.table({})
        tables.append(
            pa.table({c: have.column(c) if c in have.column_names else pa.nulls(n) for c in names})
        )
    return pa.concat_tables(tables, promote_options="permissive")


def _files_or_none(root: Root, source: SourceDeclaration, date: str | None = None) -> list[str]:
    """The files of a partition, or none when the location itself cannot be resolved."""
    try:
        return source_files(root, source, date)
    except _Unusable:
        return []


def _read_object(root: Root, url: str, source: SourceDeclaration, bad_lines: list[str]) -> pa.Table:
    """Read an object of the store from a copy in the node's scratch folder (removed after).

    Raises:
        _Unusable: it vanished since it was listed, or cannot be read (the reason names it).
    """
    try:
        with fetched(root, url) as local:
            return _read_file(local, source, bad_lines, name=url)
    except FileNotFoundError as exc:
        raise _Unusable(f"{url}: the object is gone (removed since it was listed)") from exc
