"""The online-store backend contract: what SQLite (the default) and a Redis store must provide.

A backend holds, per entity (a feature view), the latest feature row of every key and a
*watermark*: the last partition (day) materialised. Materialising a partition is incremental
(only new or changed rows are written), atomic (a reader sees the store before or after it,
never half of it) and ordered (a partition at or before the watermark is skipped).
``tests/features/test_online_backends.py`` runs the same suite against every backend.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from spindle.core import FeatureError

TIME_COLUMN = "feature_ts"
"""Not compared when deciding whether a row changed: an unchanged row keeps its old value."""


@dataclass(frozen=True)
class MaterializeResult:
    """What one materialisation did to one entity.

    ``watermark`` is the entity's watermark after the call. A skipped call (partition at or
    before the watermark) changed nothing. ``rewritten`` means the columns changed (a feature
    was added or retyped), so the table was rebuilt from the partition.
    """

    entity: str
    partition: str
    watermark: str | None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: bool = False
    rewritten: bool = False

    def summary(self) -> str:
        if self.skipped:
            return f"{self.entity}@{self.partition}: skipped (watermark {self.watermark})"
        return (
            f"{self.entity}@{self.partition}: {self.inserted} inserted, {self.updated} updated, "
            f"{self.deleted} deleted, {self.unchanged} unchanged"
            + (" (columns changed: rewritten)" if self.rewritten else "")
        )


_ARROW_TYPES = {
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "double": pa.float64(),
    "float": pa.float32(),
}


def typed_array(values: Sequence[Any], type_name: str) -> pa.Array:
    """Python values as the Arrow array of the type they had when materialised (its name:
    ``int64``, ``double``, ``bool``...; any other type was stored as text)."""
    target = _ARROW_TYPES.get(type_name)
    if target is None:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if type_name == "bool":
        return pa.array([None if v is None else bool(v) for v in values], target)
    return pa.array(values, target)


def typed_columns(columns: Sequence[tuple[str, Sequence[Any]]]) -> list[pa.Array]:
    """Columns of Python values (each with its stored type name) as Arrow arrays.

    The columns of one type are built as one array and sliced: a request looks up a few rows
    of dozens of columns, and one ``pa.array`` per column was most of its lookup's time.
    """
    by_type: dict[str, list[int]] = {}
    for position, (type_name, _) in enumerate(columns):
        by_type.setdefault(type_name, []).append(position)
    out: list[pa.Array] = [pa.array([])] * len(columns)
    for type_name, positions in by_type.items():
        flat = typed_array([v for p in positions for v in columns[p][1]], type_name)
        start = 0
        for position in positions:
            length = len(columns[position][1])
            out[position] = flat.slice(start, length)
            start += length
    return out


@dataclass(frozen=True)
class StoredRows:
    """One entity's rows as a backend holds them.

    Attributes:
        names: the stored columns, in the order of each row's values.
        types: each column's Arrow type name (see :func:`typed_array`).
        key: the stored key column.
        rows: the rows, one tuple of Python values each.
    """

    names: Sequence[str]
    types: Sequence[str]
    key: str
    rows: Sequence[tuple[Any, ...]]

    def table(self) -> pa.Table:
        """The rows as an Arrow table, each column typed as materialised."""
        columns = [(t, [row[i] for row in self.rows]) for i, t in enumerate(self.types)]
        return pa.Table.from_arrays(typed_columns(columns), names=list(self.names))


class KeyedRows:
    """What the SQL backends share on top of their own ``_meta`` (one entry of their meta
    table) and ``read_rows_many``: the watermark, key and version reads, and the Arrow reads.
    Subclasses set ``_lock``, held around every use of their connection."""

    _lock: threading.Lock

    def _meta(self, key: str) -> str | None:
        raise NotImplementedError

    def read_rows_many(
        self, asks: Sequence[tuple[str, Sequence[str] | None]]
    ) -> list[StoredRows | None]:
        raise NotImplementedError

    def watermark(self, entity: str) -> str | None:
        with self._lock:
            return self._meta(f"as_of:{entity}")

    def key(self, entity: str) -> str | None:
        with self._lock:
            return self._meta(f"key:{entity}")

    def version(self) -> str | None:
        with self._lock:
            return self._meta("version")

    def read(self, entity: str, keys: Sequence[str] | None = None) -> pa.Table | None:
        return self.read_many([(entity, keys)])[0]

    def read_many(self, asks: Sequence[tuple[str, Sequence[str] | None]]) -> list[pa.Table | None]:
        return [None if rows is None else rows.table() for rows in self.read_rows_many(asks)]


def check_key_column(entity: str, key: str, table: pa.Table, partition: str) -> None:
    """Raise ``FeatureError`` (nothing written) when a partition lacks its key column."""
    if key not in table.column_names:
        raise FeatureError(
            f"online store: cannot materialise {entity!r} partition {partition}: "
            f"its key column {key!r} is missing (columns: {', '.join(table.column_names)})"
        )


def behind_watermark(watermark: str | None, partition: str, restate: bool) -> bool:
    """Whether ``partition`` is skipped: before the watermark, or the watermark's own
    partition when it is not restated."""
    return watermark is not None and (
        partition < watermark or (partition == watermark and not restate)
    )


def needs_rewrite(
    entity: str,
    partition: str,
    stored: tuple[str | None, str | None],
    schema: dict[str, str],
    key: str,
    snapshot: bool,
) -> bool:
    """Whether the entity's table is rebuilt from the partition: its first one, or one whose
    columns or key differ from the stored ``(schema JSON, key)``.

    Raises:
        FeatureError: the columns change but the partition is not a complete snapshot.
    """
    schema_text, stored_key = stored
    if schema_text is not None and json.loads(schema_text) == schema and stored_key == key:
        return False
    if schema_text is not None and not snapshot:
        raise FeatureError(
            f"online store: partition {partition} of {entity!r} changes its columns "
            "but is not a complete snapshot; materialise a complete snapshot first"
        )
    return True


def next_version(old: str | None, what: str) -> str:
    """The store's version token after a write of ``what`` (``<counter>:<what>``)."""
    head = (old or "").split(":")[0]
    return f"{int(head) + 1 if head.isdigit() else 1}:{what}"


@runtime_checkable
class OnlineStoreBackend(Protocol):
    """Storage of the latest feature rows per entity key (SQLite by default; Redis at scale)."""

    @property
    def url(self) -> str:
        """Where the store lives (``sqlite:///PATH``, ``redis://HOST``)."""
        ...

    def materialize(
        self,
        entity: str,
        key: str,
        table: pa.Table,
        partition: str,
        *,
        snapshot: bool = True,
        restate: bool = False,
    ) -> MaterializeResult:
        """Apply one partition of ``entity`` rows (one per ``key``) in one transaction.

        Inserts new keys and updates rows whose values (all but ``feature_ts``) changed; when
        ``snapshot`` (the partition is the complete state of the day) deletes keys it lacks.
        Skips a partition before the watermark, and the watermark's own partition unless
        ``restate`` (the day was recomputed). Raises ``FeatureError`` (nothing written) on a
        missing key column or a null or duplicate key.
        """
        ...

    def watermark(self, entity: str) -> str | None:
        """The last partition materialised for ``entity`` (None before the first)."""
        ...

    def key(self, entity: str) -> str | None:
        """The key column ``entity`` is stored by (None before its first materialisation)."""
        ...

    def version(self) -> str | None:
        """A token that changes with every write (readers reload their caches on a change)."""
        ...

    def read(self, entity: str, keys: Sequence[str] | None = None) -> pa.Table | None:
        """Rows of ``keys`` that exist, in the order asked (all rows when None); numbers, bools
        and strings keep their Arrow types, dates and timestamps come back as ISO text. None
        before the entity's first materialisation."""
        ...

    def read_many(self, asks: Sequence[tuple[str, Sequence[str] | None]]) -> list[pa.Table | None]:
        """:meth:`read` of several entities from one snapshot of the store (one request's
        lookups see the same state, and pay for one transaction)."""
        ...

    def read_rows_many(
        self, asks: Sequence[tuple[str, Sequence[str] | None]]
    ) -> list[StoredRows | None]:
        """:meth:`read_many` as the stored Python values (serving builds one request's
        Arrow columns of every entity at once from them)."""
        ...

    def delete_keys(self, entity: str, keys: Sequence[str]) -> int:
        """Delete the rows of ``keys`` of ``entity`` (a deletion request) in one transaction and
        leave no copy of them in the store's storage (SQLite: freed pages zeroed, WAL
        truncated, file vacuumed). Returns how many rows were deleted (0 for an entity never
        materialised); the watermark stays, and :meth:`version` changes when rows went."""
        ...

    def close(self) -> None: ...
