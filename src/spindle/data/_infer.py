"""Draft a source declaration from a sample of a file, for the user to review (``source infer``).

The draft guesses types, nullability, a candidate primary key and the event-time column from
the first rows, and says in YAML comments what it guessed and what to check. It always loads
back through ``load_sources`` (it is validated before it is returned).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from spindle.core import DataError, SourceDeclaration

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_DATE_IN_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME_NAMES = re.compile(r"(_at$|time|^ts$|_ts$|^ts_|timestamp|date|^when$)")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _Column:
    name: str
    type: str
    nullable: bool
    note: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _format_of(path: Path) -> str:
    if path.is_dir() and (path / "_delta_log").is_dir():
        return "delta"
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: cannot tell its format from the name; use a .parquet, .csv, .tsv, .jsonl "
            "file or a Delta table folder"
        )
    return fmt


def _sniff_delimiter(head: bytes) -> str:
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _sample(path: Path, fmt: str, rows: int) -> tuple[pa.Table, str]:
    """The first ``rows`` rows as Arrow (types as the reader infers them), and the delimiter."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
            first = next(batches, None)
            schema = pq.read_schema(path)
            return (pa.Table.from_batches([first]) if first else schema.empty_table()), ","
        if fmt == "delta":
            from deltalake import DeltaTable

            return DeltaTable(str(path)).to_pyarrow_dataset().head(rows), ","
        with path.open("rb") as handle:
            head = b"".join(itertools.islice(handle, rows + 1))
        if fmt == "csv":
            from pyarrow import csv

            delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(head)
            parse = csv.ParseOptions(delimiter=delimiter)
            # the reader's defaults: an empty field is null, not an empty string
            convert = csv.ConvertOptions(null_values=[""], strings_can_be_null=True)
            table = csv.read_csv(BytesIO(head), parse_options=parse, convert_options=convert)
            return table, delimiter
        import duckdb

        with duckdb.connect() as con:
            rel = con.read_json(str(path), format="newline_delimited")
            return rel.limit(rows).to_arrow_table(), ","
    except DataError:
        raise
    except Exception as exc:  # any reader failure: the file cannot be sampled; say why
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: cannot be read as {fmt}: {first_line}") from exc


def _declared_type(values: pa.ChunkedArray) -> _Column | None:
    kind = values.type
    nullable = values.null_count > 0
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        present = pc.drop_null(values)
        if len(present) > 0:
            try:
                pc.cast(present, pa.timestamp("us", "UTC"))
                return _Column("", "timestamp", nullable, "text with a zone offset; read as UTC")
            except pa.ArrowInvalid:
                pass
            try:
                pc.cast(present, pa.timestamp("us"))
            except pa.ArrowInvalid:
                return _Column("", "string", nullable)
            dates_only = pc.max(pc.utf8_length(present)).as_py() <= len("2026-01-01")
            return _Column("", "date" if dates_only else "timestamp", nullable)
        return _Column("", "string", nullable)
    simple = {
        pa.types.is_boolean: "bool",
        pa.types.is_date: "date",
        pa.types.is_timestamp: "timestamp",
        pa.types.is_float32: "float32",
        pa.types.is_floating: "float64",
        pa.types.is_int32: "int32",
        pa.types.is_integer: "int64",
    }
    for test, name in simple.items():
        if test(kind):
            note = None
            if name == "timestamp" and kind.tz is not None:
                note = f"stored with zone {kind.tz}; read as UTC"
            if pa.types.is_int8(kind) or pa.types.is_int16(kind) or pa.types.is_uint8(kind):
                name = "int32"
            return _Column("", name, nullable, note)
    if pa.types.is_decimal(kind):
        extra: dict[str, object] = {"precision": kind.precision, "scale": kind.scale}
        return _Column("", "decimal", nullable, None, extra)
    return None


def _candidate_keys(table: pa.Table, columns: list[_Column]) -> list[list[str]]:
    """Columns (then pairs) unique and never empty in the sample, most key-like first."""
    if table.num_rows < 2:
        return []
    usable = [c for c in columns if not c.nullable and c.type in ("string", "int32", "int64")]
    usable.sort(key=lambda c: (not c.name.lower().endswith("id"), columns.index(c)))

    def unique(names: list[str]) -> bool:
        return bool(table.select(names).group_by(names).aggregate([]).num_rows == table.num_rows)

    singles = [[c.name] for c in usable if unique([c.name])]
    if singles:
        return singles
    pairs = itertools.combinations([c.name for c in usable[:12]], 2)
    return [list(p) for p in pairs if unique(list(p))][:5]


def _event_time(columns: list[_Column]) -> list[str]:
    times = [c for c in columns if c.type in ("timestamp", "date") and not c.nullable]
    times.sort(key=lambda c: (c.type != "timestamp", not _TIME_NAMES.search(c.name.lower())))
    return [c.name for c in times]


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) else json.dumps(name)


def _dated_part(parts: tuple[str, ...]) -> int | None:
    """Index of the last path component holding a date (``2026-01-05.csv``, ``date=2026-01-05``)."""
    dated = [i for i, part in enumerate(parts) if _DATE_IN_NAME.search(part)]
    return dated[-1] if dated else None


def _source_name(path: Path) -> str:
    parts = path.parts
    at = _dated_part(parts)
    stem = path.stem if path.is_file() else path.name
    if at is not None and at < len(parts) - 1:  # raw/clicks/date=2026-01-05/part-0.parquet
        stem = parts[at - 1] if at > 0 else stem
    elif at is not None:  # raw/clicks/2026-01-05.jsonl is "clicks", clicks_2026-01-05.csv too
        rest = _DATE_IN_NAME.sub("", stem)
        stem = rest if re.sub(r"[^A-Za-z0-9]+", "", rest) else path.parent.name
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"source_{name}".strip("_")
    return name[:64]


def _location(path: Path, root: Path) -> str:
    """The file as a location: a date in its path becomes ``{date}`` (a daily partition); the
    ``part-00000`` file of a dated folder becomes a glob over the folder's parts."""
    try:
        shown = path.resolve().relative_to(root.resolve())
    except ValueError:
        shown = path.resolve()
    parts = list(shown.parts)
    at = _dated_part(shown.parts)
    if at is None:
        return shown.as_posix()
    parts[at] = _DATE_IN_NAME.sub("{date}", parts[at], count=1)
    if at < len(parts) - 1 and re.match(r"^part[-_]?\d+", parts[-1]):
        parts[-1] = f"*{shown.suffix}"
    return Path(*parts).as_posix()


def infer_source(
    path: str | Path, name: str | None = None, root: str | Path = ".", sample_rows: int = 10_000
) -> str:
    """Draft a declaration (YAML text with review comments) from the first rows of ``path``.

    Args:
        path: a .parquet, .csv/.tsv or .jsonl file, or a Delta table folder.
        name: the source's name (default: from the file name).
        root: the workspace; the draft's location is relative to it when the file is inside.
        sample_rows: how many rows are read to guess.

    Raises:
        DataError: the file cannot be read or its format is not known.

    Example:
        >>> print(infer_source("data.csv", name="orders"))  # doctest: +SKIP
    """
    file = Path(path)
    if not file.exists():
        raise DataError(f"{file}: no such file or folder")
    fmt = _format_of(file)
    table, delimiter = _sample(file, fmt, sample_rows)
    columns: list[_Column] = []
    skipped: list[str] = []
    for column_name in table.column_names:
        column = _declared_type(table.column(column_name))
        if column is None:
            skipped.append(f"{column_name} ({table.schema.field(column_name).type})")
            continue
        column.name = column_name
        columns.append(column)
    if not columns:
        raise DataError(f"{file}: no column of a supported type in the first {sample_rows} rows")
    text = _render(
        file, fmt, delimiter, name or _source_name(file), Path(root), table, columns, skipped
    )
    SourceDeclaration.model_validate(yaml.safe_load(text))  # the draft must load back
    return text


def _render(
    file: Path,
    fmt: str,
    delimiter: str,
    name: str,
    root: Path,
    table: pa.Table,
    columns: list[_Column],
    skipped: list[str],
) -> str:
    times = _event_time(columns)
    keys = _candidate_keys(table, columns)
    location = _location(file, root)
    daily = "{date}" in location
    if not times and not daily:
        location = f"raw/{name}/{{date}}{file.suffix}"
    lines = [
        f"# Drafted by `spindle source infer` from {file} ({table.num_rows} rows sampled).",
        "# REVIEW every line marked REVIEW, then keep this file as sources/<name>.yaml.",
        f"name: {name}",
    ]
    if daily:
        lines.append(
            f"location: {json.dumps(location)}  # one partition per day ({{date}} = YYYY-MM-DD)"
        )
    elif times:
        lines.append(f"location: {json.dumps(location)}  # one dump, split into days by event time")
    else:
        lines.append(
            f"location: {json.dumps(location)}  # REVIEW: no event time found, so this is a daily "
            "snapshot: put each day's file here"
        )
    lines.append(f"format: {fmt}")
    if fmt == "csv":
        lines.append(f"csv: {{delimiter: {json.dumps(delimiter)}, header: true}}")
    lines.append(f"kind: {'events' if times else 'snapshot'}  # events | snapshot | changelog")
    if times:
        others = f"; other candidates: {', '.join(times[1:])}" if len(times) > 1 else ""
        lines.append(
            f"event_time: {{column: {_key(times[0])}, timezone: UTC}}"
            f"  # REVIEW: the zone times without an offset are written in{others}"
        )
    if keys:
        shown = ", ".join(f"({', '.join(k)})" for k in keys[1:4])
        others = f"; other candidates: {shown}" if shown else ""
        lines.append(
            f"primary_key: [{', '.join(_key(k) for k in keys[0])}]  # REVIEW: unique in the "
            f"sample{others}"
        )
    else:
        lines.append("primary_key: []  # REVIEW: no column was unique in the sample")
    lines.append("columns:")
    for column in columns:
        spec: dict[str, object] = {"type": column.type}
        if column.nullable:
            spec["nullable"] = True
        spec.update(column.extra)
        value = (
            column.type
            if len(spec) == 1
            else yaml.safe_dump(spec, default_flow_style=True, sort_keys=False)
        )
        comment = f"  # {column.note}" if column.note else ""
        lines.append(f"  {_key(column.name)}: {str(value).strip()}{comment}")
    lines.extend(f"  # skipped {s}: type not supported" for s in skipped)
    lines += [
        "allowed_lateness: 0s  # REVIEW: how late rows may arrive (e.g. 2d)",
        'rules: []  # e.g. - {check: "amount > 0", reason: non-positive amount}',
        "provenance:  # REVIEW",
        f"  origin: {json.dumps(f'TODO: who produces {name}')}",
        "  licence: internal",
        "  retention_days: 400",
        "tags: []  # e.g. [pii]",
        "",
    ]
    return "\n".join(lines)
