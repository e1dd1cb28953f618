"""Transform.fit_batches: fitting from a stream of batches matches fitting the whole table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from test_transform import _definitions, _rows

from spindle.features import Transform


def _many_rows(copies: int, seed: int) -> pa.Table:
    """Rows of ``_rows`` repeated with varied prices and ids, so counts and moments matter."""
    base = _rows()
    rng = np.random.default_rng(seed)
    tables = []
    for i in range(copies):
        prices = pa.array(rng.lognormal(2.0, 1.0, base.num_rows))
        table = base.set_column(
            base.schema.get_field_index("product__price_usd__v1"), "product__price_usd__v1", prices
        )
        ids = pa.array([f"p{rng.integers(0, 40)}" for _ in range(base.num_rows)])
        index = table.schema.get_field_index("product__product_id__v1")
        tables.append(table.set_column(index, "product__product_id__v1", ids).slice(0, 3 - i % 2))
    return pa.concat_tables(tables)


def test_fit_from_batches_equals_fit_on_the_table() -> None:
    table = _many_rows(200, seed=0)
    whole = Transform.fit(table, _definitions())
    streamed = Transform.fit_batches(table.to_batches(max_chunksize=37), _definitions())
    assert len(table.to_batches(max_chunksize=37)) > 10
    for a, b in zip(whole.encodings, streamed.encodings, strict=True):
        assert (a.column, a.kind, a.vocab, a.buckets, a.max_words, a.log) == (
            b.column,
            b.kind,
            b.vocab,
            b.buckets,
            b.max_words,
            b.log,
        )
        np.testing.assert_allclose([a.mean, a.std], [b.mean, b.std], rtol=1e-12)
    out, again = whole.transform(table), streamed.transform(table)
    for key in out:
        np.testing.assert_allclose(out[key], again[key], rtol=1e-6)


def test_fit_from_one_batch_is_bit_identical_to_fit() -> None:
    table = _many_rows(50, seed=1)
    assert Transform.fit_batches([table], _definitions()).to_json() == (
        Transform.fit(table, _definitions()).to_json()
    )
