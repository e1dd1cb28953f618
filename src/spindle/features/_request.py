"""Query-time features, computed the same way for training sets and for live requests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spindle.core import FeatureError

QUERY_COLUMN = "query__text__v1"
_NEEDED = ("query", "name_words", "product_type")


def _type_words(product_type: str) -> set[str]:
    singular = product_type[:-1] if product_type.endswith("s") else product_type
    return {product_type, singular}


def add_request_features(table: pa.Table) -> pa.Table:
    """Add query–product features to rows holding ``query``, ``name_words`` and ``product_type``.

    Adds ``query__text__v1`` (the query words), ``query__word_overlap__v1`` (share of query
    words found in the product name) and ``query__type_match__v1`` (1.0 when the query names
    the product's type). Training sets and the server both call this function.

    Raises:
        FeatureError: a needed column is missing.
    """
    missing = [c for c in _NEEDED if c not in table.column_names]
    if missing:
        raise FeatureError(
            f"request features need columns {missing}; rows have {table.column_names}"
        )
    queries = table.column("query").to_pylist()
    names = table.column("name_words").to_pylist()
    types = table.column("product_type").to_pylist()
    query_sets: dict[str, set[str]] = {}
    name_sets: dict[str, set[str]] = {}
    overlap = np.zeros(table.num_rows, np.float64)
    type_match = np.zeros(table.num_rows, np.float64)
    for i, (query, name, ptype) in enumerate(zip(queries, names, types, strict=True)):
        if not query:
            continue
        q = query_sets.get(query)
        if q is None:
            q = query_sets[query] = set(query.split())
        if name:
            words = name_sets.get(name)
            if words is None:
                words = name_sets[name] = set(name.split())
            overlap[i] = len(q & words) / len(q)
        if ptype and q & _type_words(ptype):
            type_match[i] = 1.0
    table = _set(table, QUERY_COLUMN, pa.array(queries, pa.string()))
    table = _set(table, "query__word_overlap__v1", pa.array(overlap))
    return _set(table, "query__type_match__v1", pa.array(type_match))


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def assemble_request_rows(
    products: pa.Table, user: dict[str, object] | None, query: str, user_columns: list[str]
) -> pa.Table:
    """Build the rows a model scores for one request: product rows × the user × the query.

    ``products`` comes from :meth:`OnlineStore.products`; ``user`` from :meth:`OnlineStore.user`
    (None for an unknown user, whose features become null, as in a training set); the result
    has the same columns a training set has, so the transform treats both alike.
    """
    n = products.num_rows
    table = products
    for column in user_columns:
        value = None if user is None else user.get(column)
        table = _set(table, column, pa.array([value] * n))
    table = _set(table, "query", pa.array([query.lower()] * n, pa.string()))
    return add_request_features(table)
