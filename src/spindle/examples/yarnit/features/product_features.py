"""Python features of the product group: plain typed functions over the day's base rows.

Each function receives the group's base rows for one day (the columns a SQL expression sees:
``product_id``, ``name_words``, ``list_price``, ``discount_pct``, ``usd_per_unit``, ...) as an
Arrow table and returns one value per row, in the rows' order. spindle checks the length and
casts the values to the dtype declared in ``product.yaml``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def name_word_count(base: pa.Table) -> pa.Array:
    """How many words the product's name has (0 for a missing name)."""
    words = pc.utf8_split_whitespace(base["name_words"])
    counts = pc.fill_null(pc.list_value_length(words), 0)
    return counts.combine_chunks() if isinstance(counts, pa.ChunkedArray) else counts
