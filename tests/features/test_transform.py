from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from spindle.core import FeatureError
from spindle.features import (
    FeatureRegistry,
    RequestFeature,
    Transform,
    apply_request_features,
    stable_hash,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "spindle" / "examples" / "yarnit"


def _rows() -> pa.Table:
    table = pa.table(
        {
            "query": ["merino sock yarn", "steel hooks", None],
            "name_words": ["merino fingering sock yarn", "steel crochet hooks", "linen dk yarn"],
            "product_type": ["yarn", "hooks", "yarn"],
            "product__product_id__v1": ["p1", "p2", None],
            "product__product_type__v1": ["yarn", "hooks", "yarn"],
            "product__price_usd__v1": [12.5, 4.0, None],
            "product__name_words__v1": [
                "merino fingering sock yarn",
                "steel crochet hooks",
                "linen dk yarn",
            ],
            "user__country__v1": ["US", "DE", None],
        }
    )
    registry = FeatureRegistry.load(EXAMPLE / "features")
    pinned = [registry.get(f"query.{name}@1") for name in ("text", "word_overlap", "type_match")]
    return apply_request_features(table, [RequestFeature.of(d) for d in pinned])


def _definitions() -> list:
    registry = FeatureRegistry.load(EXAMPLE / "features")
    refs = [
        "query.text@1",
        "query.word_overlap@1",
        "query.type_match@1",
        "product.product_id@1",
        "product.product_type@1",
        "product.price_usd@1",
        "product.name_words@1",
        "user.country@1",
    ]
    return [registry.definitions[r] for r in refs]


def test_request_features() -> None:
    rows = _rows()
    assert rows.column("query__word_overlap__v1").to_pylist() == [1.0, 1.0, 0.0]
    assert rows.column("query__type_match__v1").to_pylist() == [1.0, 1.0, 0.0]


def test_transform_shapes_nulls_and_json_roundtrip() -> None:
    rows = _rows()
    transform = Transform.fit(rows, _definitions())
    out = transform.transform(rows)
    spec = transform.input_spec()
    assert (
        out["cat"].shape == (3, 3)
        and out["text"].shape == (3, 2, 8)
        and out["dense"].shape == (3, 3)
    )
    assert spec["n_dense"] == 3 and spec["n_text"] == 2
    assert out["cat"][2, 0] == 0  # null product id → index 0
    assert out["cat"][2, 2] == 0  # null country → OOV 0
    assert np.isfinite(out["dense"]).all()
    again = Transform.from_json(transform.to_json()).transform(rows)
    for key in out:
        np.testing.assert_array_equal(out[key], again[key])


def test_unknown_category_maps_to_zero_and_hash_is_stable() -> None:
    rows = _rows()
    transform = Transform.fit(rows, _definitions())
    other = rows.set_column(
        rows.column_names.index("user__country__v1"),
        "user__country__v1",
        pa.array(["FR", "FR", "FR"]),
    )
    assert (transform.transform(other)["cat"][:, 2] == 0).all()
    assert stable_hash("merino", 1 << 15) == stable_hash("merino", 1 << 15)
    assert 1 <= stable_hash("anything", 8) < 8


def test_missing_column_is_a_clear_error() -> None:
    rows = _rows()
    transform = Transform.fit(rows, _definitions())
    with pytest.raises(FeatureError, match="user__country__v1"):
        transform.transform(rows.drop_columns(["user__country__v1"]))
    with pytest.raises(FeatureError, match="not a valid transform"):
        Transform.from_json('{"format": "other"}')


def test_dense_columns_encode_the_same_in_one_chunk_or_many() -> None:
    """A served request's single-chunk numeric columns convert in one Arrow call, a training
    set's many-chunk ones column by column: the same float32 inputs, bit for bit (nulls and
    NaN as 0, integers and float32 widened, an integer beyond 2**53 rounded in both)."""
    registry = FeatureRegistry.load(EXAMPLE / "features")
    price = registry.definitions["product.price_usd@1"]
    rows = pa.table({"product__price_usd__v1": [12.5, 4.0, None, float("nan"), 7.0, -3.0]})
    transform = Transform.fit(rows, [price])
    column = "product__price_usd__v1"
    values: list[pa.Array] = [
        pa.array([12.5, None, float("nan"), 1e300, -2.0, 0.0], pa.float64()),
        pa.array([3, None, 2**60 + 1, -7, 0, 1], pa.int64()),
        pa.array([1.5, None, 2.25, 0.1, -1.0, 3.0], pa.float32()),
        pa.array([1, 2, None, 4, 5, 6], pa.int32()),
    ]
    for array in values:
        one = transform.transform(pa.table({column: array}))["dense"]
        chunked = pa.table({column: pa.chunked_array([array.slice(0, 2), array.slice(2)])})
        many = transform.transform(chunked)["dense"]
        assert one.dtype == np.float32 and one.shape == (6, 1)
        np.testing.assert_array_equal(one, many)
    assert transform.transform(pa.table({column: values[0]}))["dense"][1, 0] == 0.0  # null
    assert transform.transform(pa.table({column: values[0]}))["dense"][2, 0] == 0.0  # NaN


def test_a_short_request_encodes_categories_as_a_long_table_does() -> None:
    """Up to 64 rows of a string column are dictionary-encoded in Python, longer ones by
    Arrow: the same ids and word ids, nulls and unknown values included."""
    rows = _rows()
    transform = Transform.fit(rows, _definitions())
    few = rows.take([2, 0, 1, 2, 0])
    many = pa.concat_tables([few] * 20)  # 100 rows: Arrow's path
    short, long = transform.transform(few), transform.transform(many)
    for key in short:
        np.testing.assert_array_equal(short[key], long[key][:5])
    assert short["cat"][0, 0] == 0 and short["cat"][1, 0] != 0  # null, then p1
