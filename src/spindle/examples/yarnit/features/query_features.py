"""Request-time features of the search ranker: plain typed functions over request rows.

Each function receives rows holding the request's columns (``query``) and the joined views'
features and kept columns (``name_words``, ``product_type`` of the product view) as an Arrow
table, and returns one value per row, in the rows' order. Training sets and the server call
the same functions (``spindle.features`` applies them), so training and serving agree.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _type_words(product_type: str) -> set[str]:
    """The words that name a product type: the type and its singular (``needles``, ``needle``)."""
    singular = product_type[:-1] if product_type.endswith("s") else product_type
    return {product_type, singular}


def _scores(rows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the share of query words in the product name, and 1.0 if it names the type."""
    queries = rows.column("query").to_pylist()
    names = rows.column("name_words").to_pylist()
    types = rows.column("product_type").to_pylist()
    query_sets: dict[str, set[str]] = {}
    name_sets: dict[str, set[str]] = {}
    overlap = np.zeros(rows.num_rows, np.float64)
    type_match = np.zeros(rows.num_rows, np.float64)
    for i, (query, name, ptype) in enumerate(zip(queries, names, types, strict=True)):
        if not query:
            continue
        q = query_sets.get(query)
        if q is None:
            q = query_sets[query] = set(query.split())
        if not q:  # whitespace only: no words, as without a query (no share of none)
            continue
        if name:
            words = name_sets.get(name)
            if words is None:
                words = name_sets[name] = set(name.split())
            overlap[i] = len(q & words) / len(q)
        if ptype and q & _type_words(ptype):
            type_match[i] = 1.0
    return overlap, type_match


def text(rows: pa.Table) -> pa.Array:
    """The words of the search query, as sent."""
    return pa.array(rows.column("query").to_pylist(), pa.string())


def word_overlap(rows: pa.Table) -> pa.Array:
    """Share of the query's words that appear in the product's name (0 for a query without
    words)."""
    return pa.array(_scores(rows)[0])


def type_match(rows: pa.Table) -> pa.Array:
    """1.0 when the query names the product's type (e.g. "needles"), else 0.0."""
    return pa.array(_scores(rows)[1])
