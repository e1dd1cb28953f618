"""Declared candidate retrieval: a model's ``serving.candidates.sql`` run by DuckDB over an
in-memory snapshot of its view's online rows, or its ``match`` answered by an inverted index.

The snapshot (the table ``candidates``) is copied from the online store into an in-memory
DuckDB database once per store version and replaced whole when the store changes; each request
runs the SQL on its own cursor, so concurrent requests do not wait on each other. The request's
context fields are the SQL's ``$name`` parameters. A ``match`` retrieval builds its index
(:class:`~spindle.serve._word_index.WordIndex`) once per store version the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from spindle.core import SQL_RULES, ServingError, lock_connection, select_problem
from spindle.features import OnlineStore
from spindle.serve._declared import Retrieval
from spindle.serve._word_index import WordIndex

_STORE_COLUMNS = ("__spindle_key",)
T = TypeVar("T")


class RetrievalError(ServingError):
    """The declared retrieval cannot run (its view is not in the store, or its SQL fails)."""


class Retriever:
    """Runs declared retrievals against snapshots of the online store.

    Args:
        store: the online store whose views are retrieved from.

    Example:
        >>> Retriever(store).retrieve("ranker", Retrieval("item", sql), ("item_id",), {})  # doctest: +SKIP
        ['i3', 'i1']
    """

    def __init__(self, store: OnlineStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._snapshots: dict[Any, tuple[str | None, duckdb.DuckDBPyConnection]] = {}
        self._indexes: dict[Any, tuple[str | None, WordIndex]] = {}

    def index(
        self, view: str, keys: tuple[str, ...], column: str, order_by: str | None
    ) -> WordIndex:
        """The inverted index of ``view``'s ``column`` words (rebuilt when the store's version
        changed; a request in flight keeps the one it started with).

        Raises:
            RetrievalError: the store does not hold the view, or it lacks a column named.
        """

        def build(rows: pa.Table) -> WordIndex:
            absent = [c for c in (*keys, column, order_by) if c and c not in rows.column_names]
            if absent:
                raise RetrievalError(
                    f"serving.candidates.match reads column {absent[0]!r}, which view {view!r} "
                    f"does not have (it has {', '.join(rows.column_names)})"
                )
            return WordIndex.build(rows, keys, column, order_by)

        return self._per_version(self._indexes, (view, column, order_by), view, build)

    def snapshot(self, view: str) -> duckdb.DuckDBPyConnection:
        """A DuckDB database holding ``view``'s online rows as ``candidates`` (reloaded when
        the store's version changed; a request in flight keeps the one it started with).

        Raises:
            RetrievalError: the store does not hold the view yet.
        """

        def build(rows: pa.Table) -> duckdb.DuckDBPyConnection:
            rows = rows.drop_columns([c for c in _STORE_COLUMNS if c in rows.column_names])
            con = duckdb.connect()
            con.register("__rows", rows)
            con.execute("CREATE TABLE candidates AS SELECT * FROM __rows")
            con.unregister("__rows")
            lock_connection(con)  # the declared SQL reads candidates, never a file
            return con

        return self._per_version(self._snapshots, view, view, build)

    def _per_version(
        self,
        cache: dict[Any, tuple[str | None, T]],
        name: Any,
        view: str,
        build: Callable[[pa.Table], T],
    ) -> T:
        """``build`` of ``view``'s online rows, once per store version (double-checked)."""
        version = self.store.version()
        cached = cache.get(name)
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:
            cached = cache.get(name)
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = self.store.backend.read(view)
            if rows is None:
                raise RetrievalError(
                    f"view {view!r} is not in the online store yet: candidates cannot be "
                    "retrieved (materialise it, or send candidates)"
                )
            built = build(rows)
            cache[name] = (version, built)
            return built

    def retrieve(
        self, model: str, retrieval: Retrieval, keys: tuple[str, ...], context: Mapping[str, Any]
    ) -> list[Any]:
        """The candidates' keys, in the SQL's order (a tuple per candidate for several keys).

        Args:
            model: the model (for messages).
            retrieval: its declared view and SQL.
            keys: the view's entity keys; the SQL returns them by name (or first).
            context: the request's context; ``$name`` in the SQL reads ``context[name]``.

        Raises:
            ServingError: the context lacks a parameter the SQL reads (a client error).
            RetrievalError: the view is not in the store, the SQL is not one SELECT over
                ``candidates`` (files, statements and other tables are refused), or it fails.
        """
        names = retrieval.parameters()
        absent = [n for n in names if n not in context]
        if absent:
            raise ServingError(
                f"context.{absent[0]}: missing; the candidate retrieval of model {model} "
                f"({retrieval.key}) reads ${absent[0]}"
            )
        if retrieval.match is not None:
            match = retrieval.match
            words = context[names[0]]
            if words is not None and not isinstance(words, str):
                raise RetrievalError(
                    f"model {model}: {retrieval.key} reads ${names[0]} as text, got "
                    f"{type(words).__name__}"
                )
            index = self.index(retrieval.view, keys, match.column, match.order_by)
            return index.top(words or "", match.limit)
        assert retrieval.sql is not None  # a Retrieval declares sql or match
        found = select_problem(retrieval.sql, ["candidates"])  # a version's own record too
        if found is not None:
            raise RetrievalError(
                f"model {model}: serving.candidates.sql {found}; {SQL_RULES['candidates']}"
            )
        cursor = self.snapshot(retrieval.view).cursor()
        try:
            result = cursor.execute(retrieval.sql, {n: context[n] for n in names})
            rows = result.fetchall()
            names_out = [d[0] for d in result.description or ()]
        except duckdb.Error as exc:
            first = " ".join(str(exc).split())[:300]
            raise RetrievalError(
                f"model {model}: serving.candidates.sql does not run on the online rows of "
                f"view {retrieval.view!r}: {first}"
            ) from None
        finally:
            cursor.close()
        return _keys_of(names_out, rows, keys, model)


def _keys_of(
    columns: list[str], rows: list[tuple[Any, ...]], keys: tuple[str, ...], model: str
) -> list[Any]:
    """The keys of each returned row: the columns named as the keys, else the first ones."""
    if all(k in columns for k in keys):
        positions = [columns.index(k) for k in keys]
    elif len(columns) >= len(keys):
        positions = list(range(len(keys)))
    else:
        raise RetrievalError(
            f"model {model}: serving.candidates.sql returns {columns}, not the keys {list(keys)}"
        )
    if len(keys) == 1:
        return [row[positions[0]] for row in rows]
    return [tuple(row[p] for p in positions) for row in rows]
