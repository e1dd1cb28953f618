"""Physical deletion from files: a source's landed raw files and materialised Parquet files.

Re-ingesting a raw file would bring deleted rows back, so each file holding them is rewritten
without them in its own format, atomically (a temp file beside it, renamed over it): a crash
leaves the old file or the new one. CSV and JSON-lines files keep every other line byte for
byte; Parquet files are rewritten with the same schema.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import PACKAGE_SCHEME, SourceDeclaration, atomic_write_bytes, is_object_store_url
from spindle.data._readers import resolve_location, source_files


def raw_files_of(root: Path, source: SourceDeclaration) -> tuple[list[str], list[str]]:
    """Every landed file of ``source`` (all days) spindle can rewrite, and a line for each place
    holding its landed rows that it cannot (a package's data, a Delta table it does not own, a
    zipped CSV)."""
    if source.location.startswith(PACKAGE_SCHEME) or source.format == "delta":
        where = resolve_location(root, source.location)
        return [], [f"source {source.name}: landed rows at {where} (not rewritten)"]
    if is_object_store_url(source.location):  # rewriting objects in place: not done yet
        return [], [
            f"source {source.name}: landed rows at {source.location} (on an object store: not rewritten)"
        ]
    every = source.location.replace(SourceDeclaration.DATE_FIELD, "*")
    files = source_files(root, source.model_copy(update={"location": every}), None)
    zipped = [f for f in files if f.endswith(".zip")]
    notes = [f"{f}: a zipped file of source {source.name} (not rewritten)" for f in zipped]
    return [f for f in files if not f.endswith(".zip")], notes


def forget_in_file(
    path: str,
    source: SourceDeclaration,
    column: str,
    values: Sequence[str],
    *,
    count_only: bool = False,
) -> int:
    """Rewrite one landed file of ``source`` without the rows whose ``column`` holds one of
    ``values`` (atomically, in its format); returns how many rows went (or, with
    ``count_only``, would go; 0: the file is untouched).

    Example:
        >>> forget_in_file("raw/users/date=2026-01-02/part-0.parquet", users, "user_id", ["u42"])  # doctest: +SKIP
        1
    """
    return _rewrite(path, source, column, set(values), write=not count_only)


def _rewrite(
    path: str, source: SourceDeclaration, column: str, wanted: set[str], *, write: bool
) -> int:
    if source.format == "parquet":
        return _rewrite_parquet(Path(path), [column], sorted(wanted), write=write)
    if path.endswith(".zip"):
        return 0  # listed by raw_files_of as not rewritten
    data = Path(path).read_bytes()
    if source.format == "jsonl":
        kept, gone = _jsonl_without(data, column, wanted)
    else:
        kept, gone = _csv_without(data, source, column, wanted)
    if gone and write:
        atomic_write_bytes(path, kept)
    return gone


def _jsonl_without(data: bytes, column: str, wanted: set[str]) -> tuple[bytes, int]:
    kept: list[bytes] = []
    gone = 0
    for line in data.splitlines(keepends=True):
        try:
            row = json.loads(line)
        except ValueError:  # a broken line: drop it when it quotes a value
            row = None
            text = line.decode("utf-8", "replace")
            if any(v in text for v in wanted):
                gone += 1
                continue
        if isinstance(row, dict) and row.get(column) is not None and str(row[column]) in wanted:
            gone += 1
            continue
        kept.append(line)
    return b"".join(kept), gone


def _csv_without(
    data: bytes, source: SourceDeclaration, column: str, wanted: set[str]
) -> tuple[bytes, int]:
    """The CSV without the records whose ``column`` holds a wanted value (a record may span
    lines: a quoted field with a line break); every other line kept byte for byte. A record
    too short to have the column goes when its text quotes a wanted value."""
    opts = source.csv_options
    lines = data.splitlines(keepends=True)
    texts = [line.decode("utf-8", "replace") for line in lines]
    reader = csv.reader(iter(texts), delimiter=opts.delimiter, quotechar=opts.quote)
    kept: list[bytes] = []
    gone, start, index = 0, 0, -1
    names = list(source.columns)
    try:
        for fields in reader:
            end = reader.line_num
            record = lines[start:end]
            if opts.header and start == 0:
                names, record_is_header = fields, True
            else:
                record_is_header = False
            if index < 0 and (record_is_header or not opts.header):
                index = names.index(column) if column in names else len(names) + 1
            text = "".join(texts[start:end])
            if not record_is_header and (
                (len(fields) > index and fields[index] in wanted)
                or (len(fields) <= index and any(v in text for v in wanted))
            ):
                gone += 1
            else:
                kept += record
            start = end
    except csv.Error:  # an unterminated quote at the end: judge the rest as text
        pass
    rest = "".join(texts[start:])
    if rest and any(v in rest for v in wanted):
        gone += 1
    else:
        kept += lines[start:]
    return b"".join(kept), gone


def forget_in_parquet(
    path: Path, columns: Sequence[str], values: Sequence[str], *, count_only: bool = False
) -> int:
    """Rewrite the Parquet file at ``path`` without the rows whose value in any of ``columns``
    is one of ``values`` (same schema, atomically); returns how many rows went (or would)."""
    return _rewrite_parquet(path, columns, values, write=not count_only)


def _rewrite_parquet(
    path: Path, columns: Sequence[str], values: Sequence[str], *, write: bool
) -> int:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    present = [c for c in columns if c in schema.names]
    if not present or not values:
        return 0
    table = pq.read_table(path)
    wanted = pa.array(list(values), pa.string())
    mask = None
    for column in present:
        hit = pc.fill_null(
            pc.is_in(table.column(column).cast(pa.string()), value_set=wanted), False
        )
        mask = hit if mask is None else pc.or_(mask, hit)
    assert mask is not None
    gone = int(pc.sum(mask).as_py() or 0)
    if gone and write:
        sink = pa.BufferOutputStream()
        pq.write_table(table.filter(pc.invert(mask)), sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return gone
