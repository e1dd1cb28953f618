"""The online store: the latest feature values per entity for serving, over a pluggable backend.

:class:`OnlineStore` is what serving and the pipeline use. It writes through an
:class:`OnlineStoreBackend` (SQLite by default, chosen by URL) — incrementally, one partition
(day) at a time after the entity's watermark — and keeps an in-memory copy of the (small)
product table with a word index for retrieval, reloaded when the backend's version changes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from spindle.core import FeatureError, open_dataset, table_exists
from spindle.features._compute import feature_table_path
from spindle.features._online_backend import MaterializeResult, OnlineStoreBackend
from spindle.features._online_sqlite import SQLiteOnlineStore

ONLINE_ENTITIES = ("product", "user")
_KEYS = {"product": "product_id", "user": "user_id"}  # until materialisation reads the views


def open_online_backend(location: str | Path) -> OnlineStoreBackend:
    """The backend a URL names: ``sqlite:///PATH`` (or a plain path) opens SQLite.

    Raises:
        FeatureError: a ``redis://`` URL (no Redis backend ships with spindle yet) or an
            unknown scheme.

    Example:
        >>> backend = open_online_backend("sqlite:///.spindle/online.db")  # doctest: +SKIP
    """
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return SQLiteOnlineStore(Path(text))
    if scheme == "sqlite":
        # SQLAlchemy's spelling: sqlite:///relative/path, sqlite:////absolute/path
        return SQLiteOnlineStore(Path(rest.removeprefix("/")))
    if scheme in ("redis", "rediss"):
        client = (
            "redis-py is installed"
            if importlib.util.find_spec("redis") is not None
            else "redis-py is not installed either"
        )
        raise FeatureError(
            f"online store {text}: spindle has no Redis backend yet ({client}). Either set "
            "online_store_url in spindle.yaml to sqlite:///PATH (the default), or implement "
            "spindle.features.OnlineStoreBackend over redis-py (the contract suite in "
            "tests/features/test_online_backends.py says what it must do) and pass it as "
            "OnlineStore(backend)"
        )
    raise FeatureError(
        f"online store {text}: unknown scheme {scheme!r}; use sqlite:///PATH (or a plain path)"
    )


@dataclass(frozen=True)
class _Catalog:
    """The product table as loaded, with its retrieval indexes (replaced whole on a reload)."""

    products: pa.Table
    row_of: dict[str, int]
    word_index: dict[str, list[int]]
    by_popularity: list[str]

    @classmethod
    def of(cls, products: pa.Table) -> _Catalog:
        ids = products.column("product_id").to_pylist()
        index: dict[str, list[int]] = {}
        if "name_words" in products.column_names:
            for i, name in enumerate(products.column("name_words").to_pylist()):
                for word in set((name or "").split()):
                    index.setdefault(word, []).append(i)
        popularity = (
            products.column("popularity").to_pylist()
            if "popularity" in products.column_names
            else [0] * len(ids)
        )
        ranked = sorted(zip(popularity, ids, strict=True), key=lambda p: (-(p[0] or 0), p[1]))
        return cls(products, {pid: i for i, pid in enumerate(ids)}, index, [p for _, p in ranked])


class OnlineStore:
    """Latest feature values for ``product`` and ``user`` entities, with retrieval for serving.

    Args:
        location: a backend URL or SQLite path (see :func:`open_online_backend`), or a backend.

    Example:
        >>> store = OnlineStore("sqlite:///.spindle/online.db")  # doctest: +SKIP
        >>> store.materialize("product", products, "2026-01-03").summary()  # doctest: +SKIP
        'product@2026-01-03: 12 inserted, 340 updated, 1 deleted, 2650 unchanged'
    """

    def __init__(self, location: str | Path | OnlineStoreBackend) -> None:
        self.backend = (
            location if isinstance(location, OnlineStoreBackend) else open_online_backend(location)
        )
        self._loaded_version: str | None = None
        self._catalog = _Catalog.of(pa.table({"product_id": pa.array([], pa.string())}))

    @property
    def url(self) -> str:
        return self.backend.url

    def close(self) -> None:
        self.backend.close()

    # -- writing ---------------------------------------------------------------------------
    def materialize(
        self,
        entity: str,
        table: pa.Table,
        partition: str,
        *,
        snapshot: bool = True,
        restate: bool = False,
    ) -> MaterializeResult:
        """Apply the ``partition`` (day) rows of ``entity`` incrementally, in one transaction.

        Args:
            entity: ``product`` or ``user``.
            table: one row per key (``product_id`` / ``user_id``).
            partition: the day, ``YYYY-MM-DD``.
            snapshot: the rows are the entity's complete state that day (the feature tables
                are), so a key they lack is deleted; False for a change log.
            restate: re-apply the partition at the watermark (its day was recomputed).

        Returns:
            Rows inserted, updated, deleted and unchanged, or ``skipped`` when ``partition`` is
            before the watermark (or at it without ``restate``).

        Raises:
            FeatureError: unknown entity, missing key column, a null or duplicate key.
        """
        if entity not in ONLINE_ENTITIES:
            raise FeatureError(
                f"online store: unknown entity {entity!r}; expected one of {ONLINE_ENTITIES}"
            )
        return self.backend.materialize(
            entity,
            _KEYS[entity],
            _plain_strings(table),
            partition,
            snapshot=snapshot,
            restate=restate,
        )

    # -- reading ---------------------------------------------------------------------------
    def watermark(self, entity: str = "product") -> str | None:
        """The last partition (day) materialised for ``entity`` (None before the first)."""
        return self.backend.watermark(entity)

    def as_of(self, entity: str = "product") -> str | None:
        """The day whose values are loaded for ``entity`` (the watermark)."""
        return self.backend.watermark(entity)

    def version(self) -> str | None:
        return self.backend.version()

    def refresh(self) -> bool:
        """Reload the product table if the store changed since the last load. True if reloaded."""
        version = self.backend.version()
        if version == self._loaded_version:
            return False
        products = self.backend.read("product")
        self._loaded_version = version
        if products is not None:
            # One reference swap: a concurrent request sees the old catalogue or the new one.
            self._catalog = _Catalog.of(products)
        return True

    def products(self, ids: list[str]) -> pa.Table:
        """Rows for ``ids`` that exist, in the order asked (unknown ids are left out)."""
        self.refresh()
        catalog = self._catalog
        rows = [catalog.row_of[i] for i in ids if i in catalog.row_of]
        return catalog.products.take(pa.array(rows, pa.int64()))

    def known_products(self) -> int:
        self.refresh()
        return len(self._catalog.row_of)

    def popular(self, n: int) -> list[str]:
        """The ``n`` most purchased products of the trailing window."""
        self.refresh()
        return self._catalog.by_popularity[:n]

    def retrieve(self, query: str, n: int) -> list[str]:
        """Candidates for a query: products matching most query words, then popular items."""
        self.refresh()
        catalog = self._catalog
        scores: dict[int, int] = {}
        for word in set(query.lower().split()):
            for row in catalog.word_index.get(word, ()):
                scores[row] = scores.get(row, 0) + 1
        rank = {pid: r for r, pid in enumerate(catalog.by_popularity)}
        ids = catalog.products.column("product_id").to_pylist() if scores else []
        matched = sorted(scores, key=lambda r: (-scores[r], rank.get(ids[r], 1 << 30)))
        chosen = [ids[r] for r in matched[: max(n * 3 // 4, 1)]]
        for pid in catalog.by_popularity:
            if len(chosen) >= n:
                break
            if pid not in chosen:
                chosen.append(pid)
        return chosen[:n]

    def user(self, user_id: str) -> dict[str, Any] | None:
        """The latest feature row of a user, or None for an unknown user."""
        rows = self.backend.read("user", [user_id])
        if rows is None or rows.num_rows == 0:
            return None
        row: dict[str, Any] = rows.to_pylist()[0]
        return row


def _plain_strings(table: pa.Table) -> pa.Table:
    """Large and view strings as plain strings: rows computed in memory and rows read back from
    Delta then have the same schema, so alternating between them is not a column change."""
    fields = [
        pa.field(f.name, pa.string())
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
        else f
        for f in table.schema
    ]
    target = pa.schema(fields)
    return table if target.equals(table.schema) else table.cast(target)


def _partitions(tables_dir: Path, entity: str, after: str, before: str) -> list[str]:
    path = feature_table_path(tables_dir, entity)
    if not table_exists(path):
        return []
    days = open_dataset(path).to_table(
        columns=["date"], filter=(pads.field("date") > after) & (pads.field("date") < before)
    )
    return sorted(pc.unique(days.column("date")).to_pylist())


def catch_up_online(
    store: OnlineStore,
    tables_dir: Path,
    through: str,
    latest: Mapping[str, pa.Table] | None = None,
) -> list[MaterializeResult]:
    """Bring each entity of ``store`` up to day ``through``, one partition at a time, in order.

    Partitions of the feature tables after the entity's watermark and before ``through`` are
    materialised first (the days an outage left out), then ``through`` itself — restated if it
    is the watermark, since the caller recomputed it. A store with no watermark starts at
    ``through``: the partitions are complete snapshots, so older days add nothing.

    Args:
        store: the online store.
        tables_dir: root of the Delta tables (``features/product``, ``features/user``).
        through: the day just computed.
        latest: that day's rows per entity when already in memory (read from the table if not).

    Returns:
        One result per partition and entity, in the order applied.
    """
    results = []
    for entity in ONLINE_ENTITIES:
        watermark = store.watermark(entity)
        if watermark is not None:
            for day in _partitions(tables_dir, entity, watermark, through):
                results.append(
                    store.materialize(entity, _read_partition(tables_dir, entity, day), day)
                )
        rows = (latest or {}).get(entity)
        if rows is None:
            rows = _read_partition(tables_dir, entity, through)
            if rows.num_rows == 0:
                continue
        results.append(store.materialize(entity, rows, through, restate=True))
    return results


def _read_partition(tables_dir: Path, entity: str, day: str) -> pa.Table:
    path = feature_table_path(tables_dir, entity)
    if not table_exists(path):
        return pa.table({})
    rows = open_dataset(path).to_table(filter=pads.field("date") == day)
    return rows.drop_columns(["date"]) if "date" in rows.column_names else rows
