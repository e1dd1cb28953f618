"""Retracted keys on disk: reading an ids file, salted digests, the stored keys, matching rows.

A retraction names rows of a source by the values of one column (the primary key by default).
Its keys are kept under ``<state>/retractions/<id>.parquet`` (one column ``key``, text):

- for a *deletion* request, only ``sha256(salt || value)`` of each id (hex), the salt being
  the workspace's own (``<state>/retractions/salt``), so the plain ids are not kept once the
  rows are gone, yet a re-ingested raw file cannot bring them back;
- for any other reason (``fraud``, ...), the ids themselves.

DuckDB matches a row by ``sha256(salt || CAST(col AS VARCHAR))`` and Python by
:func:`digest`: the same text, the same hex digest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    DataError,
    Location,
    SourceDeclaration,
    atomic_write_bytes,
    atomic_write_text,
    open_dataset,
    retracted_sql,
    table_exists,
)
from spindle.data._row_rules import _set_aside

RETRACTION_KIND = "retraction"
HASHED_REASON = "deletion"
_KEY_TYPES = ("string", "int32", "int64")


class RetractedKeys(NamedTuple):
    """The rows one retraction takes out of a source: ``column``'s values among ``keys``
    (salted digests when ``salt`` is set)."""

    retraction_id: str
    column: str
    keys: tuple[str, ...]
    salt: str | None


@dataclass(frozen=True)
class Retraction:
    """A recorded retraction (an artifact of kind ``retraction`` in the metadata store).

    Attributes:
        id: ``retraction-N``.
        uri: the stored keys (``<state>/retractions/<id>.parquet``).
        content_hash: sha256 of source, column, reason and the sorted stored keys (the same
            retraction recorded again has the same hash).
        hashed: the keys are salted digests (a deletion request), not the ids.
        rows_matched: rows of the source's table the keys matched when it was recorded.
    """

    kind: ClassVar[str] = RETRACTION_KIND
    id: str
    uri: str
    content_hash: str
    source: str
    column: str
    reason: str
    who: str
    ids: int
    rows_matched: int
    hashed: bool
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def properties(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "column": self.column,
            "reason": self.reason,
            "who": self.who,
            "ids": self.ids,
            "rows_matched": self.rows_matched,
            "hashed": self.hashed,
            **self.extra,
        }


def retractions_dir(state_dir: Path) -> Path:
    """Where retractions keep their keys and the salt: ``<state>/retractions``."""
    return state_dir / "retractions"


def workspace_salt(state_dir: Path) -> str:
    """The workspace's salt for deletion digests (made once, 32 hex characters, kept)."""
    path = retractions_dir(state_dir) / "salt"
    if not path.is_file():
        atomic_write_text(path, secrets.token_hex(16) + "\n")
    return path.read_text(encoding="utf-8").strip()


def digest(value: str, salt: str) -> str:
    """``sha256(salt || value)`` as lowercase hex (what DuckDB's ``sha256`` returns)."""
    return hashlib.sha256((salt + value).encode("utf-8")).hexdigest()


def key_column(decl: SourceDeclaration, column: str | None, where: str) -> tuple[str, str]:
    """The column a retraction matches on and its declared type: ``column``, else the
    source's one-column primary key.

    Raises:
        DataError: no column given and the primary key is not one column; the column is not
            declared; or its type is not text or integer.
    """
    if column is None:
        if len(decl.primary_key) != 1:
            raise DataError(
                f"source {decl.name} ({where}) has "
                f"{'no primary key' if not decl.primary_key else 'a primary key of several columns'}"
                "; pass --column C to name the column the ids are values of"
            )
        column = decl.primary_key[0]
    spec = decl.columns.get(column)
    if spec is None:
        raise DataError(
            f"column {column!r} is not declared for source {decl.name} ({where}; declared: "
            f"{', '.join(decl.columns)}); pass --column with one of them"
        )
    if spec.type not in _KEY_TYPES:
        raise DataError(
            f"column {decl.name}.{column} is {spec.type}: a retraction matches a text or "
            f"integer column ({', '.join(_KEY_TYPES)}); pass --column with such a column"
        )
    return column, spec.type


def read_ids(path: Path, column: str, kind: str) -> list[str]:
    """The ids of ``path``: one per line, or the column ``column`` of a CSV or Parquet file.

    Each id is checked against the column's type and returned in the text DuckDB casts a
    value of that type to (``"007"`` of an integer column is ``"7"``). Repeats are dropped.

    Raises:
        DataError: the file is missing, unreadable, lacks ``column`` or holds no id, or an id
            does not parse as the column's type (names the file and line).
    """
    if not path.is_file():
        raise DataError(f"ids file {path} does not exist; pass --file with a file of ids")
    try:
        rows = _raw_ids(path, column)
    except (OSError, UnicodeDecodeError, pa.ArrowException, csv.Error) as exc:
        raise DataError(
            f"ids file {path} cannot be read ({exc}); pass a text, CSV or Parquet file"
        ) from exc
    ids: dict[str, None] = {}
    for line, value in rows:
        ids[_parsed(value, kind, f"{path}:{line}", column)] = None
    if not ids:
        raise DataError(f"ids file {path} holds no id; put one id per line (or a {column} column)")
    return list(ids)


def _raw_ids(path: Path, column: str) -> list[tuple[int, str]]:
    """(line, text) of each non-blank id; a Parquet row's line is its position + 1."""
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if column not in table.column_names:
            raise DataError(f"ids file {path} has no column {column!r}; name it {column}")
        values = table.column(column).to_pylist()
        return [(i + 1, str(v)) for i, v in enumerate(values) if v is not None]
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((line for line in lines if line.strip()), "")
    if path.suffix == ".csv" or (column in next(csv.reader([first]), []) and "," in first):
        rows = list(csv.reader(lines))
        header = rows[0] if rows else []
        if column not in header:
            raise DataError(
                f"ids file {path}:1: the CSV header has no column {column!r}; name it {column}"
            )
        at = header.index(column)
        return [(n, r[at].strip()) for n, r in enumerate(rows[1:], 2) if len(r) > at and r[at]]
    return [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]


def _parsed(value: str, kind: str, where: str, column: str) -> str:
    if kind == "string":
        return value
    try:
        return str(int(value))
    except ValueError:
        raise DataError(
            f"{where}: id {value!r} is not an integer, as column {column} ({kind}) is; "
            "fix or remove that line"
        ) from None


def stored_keys(ids: Sequence[str], salt: str | None) -> list[str]:
    """What a retraction keeps of ``ids``: salted digests with a salt, else the ids; sorted."""
    return sorted(digest(i, salt) for i in ids) if salt is not None else sorted(ids)


def write_keys(path: Path, keys: Sequence[str]) -> None:
    """Write the stored keys to ``path`` (Parquet, one ``key`` column) atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"key": pa.array(list(keys), pa.string())}), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_keys(path: Path) -> tuple[str, ...]:
    """The stored keys of a retraction (see :func:`write_keys`).

    Raises:
        DataError: the file is missing (the state folder lost it): names it.
    """
    if not path.is_file():
        raise DataError(f"retracted keys {path} are missing; restore the state folder")
    return tuple(str(k) for k in pq.read_table(path).column("key").to_pylist())


def count_matching(
    tables_dir: Location | Path, source: str, retracted: RetractedKeys
) -> dict[str, int]:
    """The rows of the latest ``raw/<source>`` table the keys match, per day partition (empty
    without a table or the column)."""
    path = tables_dir / "raw" / source
    if not table_exists(path):
        return {}
    dataset = open_dataset(path)
    if retracted.column not in dataset.schema.names:
        return {}
    con = duckdb.connect()
    try:
        con.register("__spindle_rows", dataset)
        con.register("__spindle_keys", pa.table({"key": pa.array(retracted.keys, pa.string())}))
        day = "CAST(date AS VARCHAR)" if "date" in dataset.schema.names else "''"
        found = con.execute(
            f"SELECT {day} AS day, count(*) FROM __spindle_rows WHERE "
            + retracted_sql(retracted.column, "__spindle_keys", retracted.salt)
            + " GROUP BY ALL ORDER BY day"
        ).fetchall()
    finally:
        con.close()
    return {str(d): int(n) for d, n in found}


def retracted_rows(table: pa.Table, retracted: RetractedKeys) -> np.ndarray:
    """A boolean mask of ``table``'s rows the keys match (none without the column)."""
    if retracted.column not in table.column_names or table.num_rows == 0:
        return np.zeros(table.num_rows, dtype=bool)
    keys = set(retracted.keys)
    values = table.column(retracted.column).to_pylist()
    salt = retracted.salt
    return np.array(
        [
            v is not None and (digest(str(v), salt) if salt is not None else str(v)) in keys
            for v in values
        ],
        dtype=bool,
    )


def set_aside_retracted(
    table: pa.Table, decl: SourceDeclaration, date: str, retracted: Sequence[RetractedKeys]
) -> tuple[pa.Table, pa.Table]:
    """Set aside the rows of a day's partition that a recorded retraction names.

    A deletion's rows are kept there redacted (``{"redacted": "retracted:<id>"}``): only
    that they were set aside, and why.

    Returns:
        (the other rows, the retracted ones with reason ``retracted:<id>``, in
        ``REJECTED_SCHEMA``), as ingest's row checks do.
    """
    rows: list[int] = []
    reasons: list[str] = []
    taken = np.zeros(table.num_rows, dtype=bool)
    for item in retracted:
        hit = retracted_rows(table, item) & ~taken
        taken |= hit
        found = [int(i) for i in np.flatnonzero(hit)]
        rows += found
        reasons += [f"retracted:{item.retraction_id}"] * len(found)
    order = np.argsort(rows, kind="stable")
    aside = _set_aside(table, decl, [rows[i] for i in order], [reasons[i] for i in order], date)
    hashed = {f"retracted:{r.retraction_id}" for r in retracted if r.salt is not None}
    if hashed and aside.num_rows:  # a deletion's row is not kept, not even in the quarantine
        texts = [
            json.dumps({"redacted": why}) if why in hashed else text
            for why, text in zip(
                aside.column("reason").to_pylist(),
                aside.column("row_json").to_pylist(),
                strict=True,
            )
        ]
        at = aside.schema.get_field_index("row_json")
        aside = aside.set_column(at, aside.schema.field(at), pa.array(texts, pa.string()))
    return table.filter(pa.array(~taken)), aside
