from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from spindle.features import OnlineStore


def _products(popularity: list[int]) -> pa.Table:
    return pa.table(
        {
            "product_id": ["p1", "p2", "p3"],
            "name_words": ["merino sock yarn", "steel crochet hooks", "linen dk yarn"],
            "product_type": ["yarn", "hooks", "yarn"],
            "popularity": popularity,
            "product__is_discounted__v1": [True, False, None],
            "product__price_usd__v1": [12.5, 3.0, None],
            "feature_ts": pa.array([dt.datetime(2026, 1, 2)] * 3, pa.timestamp("us")),
        }
    )


def test_materialize_read_back_types_and_retrieval(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "online.db")
    assert store.as_of() is None and store.known_products() == 0
    store.materialize("product", _products([5, 9, 1]), "2026-01-02")
    store.materialize(
        "user", pa.table({"user_id": ["u1"], "user__country__v1": ["DE"]}), "2026-01-02"
    )
    rows = store.products(["p2", "nope", "p1"])
    assert rows.column("product_id").to_pylist() == ["p2", "p1"]
    assert rows.column("product__is_discounted__v1").to_pylist() == [False, True]
    assert rows.schema.field("product__is_discounted__v1").type == pa.bool_()
    assert store.popular(2) == ["p2", "p1"]
    assert store.retrieve("linen yarn", 2)[0] == "p3"  # both words match
    assert store.user("u1") == {"user_id": "u1", "user__country__v1": "DE"}
    assert store.user("u2") is None
    reader = OnlineStore(tmp_path / "online.db")  # another process's view reloads on change
    assert reader.popular(1) == ["p2"]
    store.materialize("product", _products([50, 9, 1]), "2026-01-03")
    assert reader.popular(1) == ["p1"] and reader.as_of() == "2026-01-03"
    store.close()
    reader.close()
