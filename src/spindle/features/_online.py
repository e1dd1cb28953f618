"""The online store: the latest feature values per entity, in SQLite, for serving.

Each materialisation replaces an entity table inside one transaction, so a reader sees either
the previous day's values or the new ones. Readers keep an in-memory copy of the (small) product
table with a word index for retrieval, and reload it when the store's version changes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from spindle.core import FeatureError

_TABLES = {"product": "product_id", "user": "user_id"}


def _sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "REAL"
    return "TEXT"


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=30, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    return con


class OnlineStore:
    """Latest feature values for ``product`` and ``user`` entities.

    Args:
        path: the SQLite file (created when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = _connect(self.path)
        self._loaded_version: str | None = None
        self._products = pa.table({"product_id": pa.array([], pa.string())})
        self._row_of: dict[str, int] = {}
        self._word_index: dict[str, list[int]] = {}
        self._by_popularity: list[str] = []

    def close(self) -> None:
        self._con.close()

    # -- writing ---------------------------------------------------------------------------
    def materialize(self, entity: str, table: pa.Table, as_of: str) -> None:
        """Replace the values of ``entity`` (``product`` or ``user``) with ``table`` atomically."""
        key = _TABLES.get(entity)
        if key is None or key not in table.column_names:
            raise FeatureError(
                f"online store: cannot materialise {entity!r} without its key column"
            )
        columns = table.column_names
        ddl = ", ".join(f'"{c}" {_sql_type(table.schema.field(c).type)}' for c in columns)
        placeholders = ", ".join("?" for _ in columns)
        rows = [tuple(_sql_value(v) for v in r.values()) for r in table.to_pylist()]
        schema = {f.name: str(f.type) for f in table.schema}
        with self._lock, self._con:
            self._con.execute(f'DROP TABLE IF EXISTS "{entity}"')
            self._con.execute(f'CREATE TABLE "{entity}" ({ddl}, PRIMARY KEY ("{key}"))')
            self._con.executemany(f'INSERT INTO "{entity}" VALUES ({placeholders})', rows)
            for name, value in (
                (f"schema:{entity}", json.dumps(schema)),
                (f"as_of:{entity}", as_of),
                ("version", as_of + ":" + entity),
            ):
                self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    # -- reading ---------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def as_of(self, entity: str = "product") -> str | None:
        """The day whose values are loaded for ``entity`` (None before the first materialisation)."""
        with self._lock:
            return self._meta(f"as_of:{entity}")

    def _read_table(self, entity: str) -> pa.Table | None:
        schema_text = self._meta(f"schema:{entity}")
        if schema_text is None:
            return None
        schema = json.loads(schema_text)
        cursor = self._con.execute(f'SELECT * FROM "{entity}"')
        names = [d[0] for d in cursor.description]
        columns = list(zip(*cursor.fetchall(), strict=False)) or [() for _ in names]
        arrays = {
            n: _typed(list(col), schema.get(n, "string"))
            for n, col in zip(names, columns, strict=True)
        }
        return pa.table(arrays)

    def refresh(self) -> bool:
        """Reload the product table if the store changed since the last load. True if reloaded."""
        with self._lock:
            version = self._meta("version")
            if version == self._loaded_version:
                return False
            products = self._read_table("product")
            self._loaded_version = version
        if products is None:
            return True
        self._products = products
        ids = products.column("product_id").to_pylist()
        self._row_of = {pid: i for i, pid in enumerate(ids)}
        index: dict[str, list[int]] = {}
        if "name_words" in products.column_names:
            for i, name in enumerate(products.column("name_words").to_pylist()):
                for word in set((name or "").split()):
                    index.setdefault(word, []).append(i)
        self._word_index = index
        popularity = (
            products.column("popularity").to_pylist()
            if "popularity" in products.column_names
            else [0] * len(ids)
        )
        self._by_popularity = [
            pid
            for _, pid in sorted(
                zip(popularity, ids, strict=True), key=lambda p: (-(p[0] or 0), p[1])
            )
        ]
        return True

    def products(self, ids: list[str]) -> pa.Table:
        """Rows for ``ids`` that exist, in the order asked (unknown ids are left out)."""
        self.refresh()
        rows = [self._row_of[i] for i in ids if i in self._row_of]
        return self._products.take(pa.array(rows, pa.int64()))

    def known_products(self) -> int:
        self.refresh()
        return len(self._row_of)

    def popular(self, n: int) -> list[str]:
        """The ``n`` most purchased products of the trailing window."""
        self.refresh()
        return self._by_popularity[:n]

    def retrieve(self, query: str, n: int) -> list[str]:
        """Candidates for a query: products matching most query words, then popular items."""
        self.refresh()
        scores: dict[int, int] = {}
        for word in set(query.lower().split()):
            for row in self._word_index.get(word, ()):
                scores[row] = scores.get(row, 0) + 1
        rank = {pid: r for r, pid in enumerate(self._by_popularity)}
        ids = self._products.column("product_id").to_pylist() if scores else []
        matched = sorted(scores, key=lambda r: (-scores[r], rank.get(ids[r], 1 << 30)))
        chosen = [ids[r] for r in matched[: max(n * 3 // 4, 1)]]
        for pid in self._by_popularity:
            if len(chosen) >= n:
                break
            if pid not in chosen:
                chosen.append(pid)
        return chosen[:n]

    def user(self, user_id: str) -> dict[str, Any] | None:
        """The latest feature row of a user, or None for an unknown user."""
        with self._lock:
            if self._meta("schema:user") is None:
                return None
            cursor = self._con.execute('SELECT * FROM "user" WHERE user_id = ?', (user_id,))
            row = cursor.fetchone()
            if row is None:
                return None
            return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _sql_value(value: Any) -> Any:
    """SQLite stores bools as 0/1 and everything non-numeric (dates, timestamps) as ISO text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _typed(values: list[Any], type_name: str) -> pa.Array:
    """Rebuild a column with the Arrow type it had when materialised."""
    mapping = {
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "double": pa.float64(),
        "float": pa.float32(),
    }
    target = mapping.get(type_name)
    if target is None:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if pa.types.is_boolean(target):
        return pa.array([None if v is None else bool(v) for v in values], target)
    return pa.array(values, target)
