"""Feature health: a pin that is all null, constant or lost values blocks, naming the feature."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spindle.evaluate import FeatureValues, feature_health_reasons

RNG = np.random.default_rng(0)
PRICE = RNG.lognormal(3.0, 1.0, 2000)


def test_healthy_pins_give_one_passing_summary() -> None:
    (reason,) = feature_health_reasons(
        [
            FeatureValues("product.price_usd@2", PRICE * 1.01, "product.price_usd@1", PRICE),
            FeatureValues("user.country@1", pa.array(["DE", "FR"] * 1000), "user.country@1"),
        ]
    )
    assert reason.passed and not reason.warning
    assert "2 pinned features" in reason.message and "product.price_usd@2" in reason.message


def test_all_null_pin_blocks_where_production_version_is_populated() -> None:
    nulls = pa.chunked_array([pa.nulls(2000, pa.float64())])
    (reason,) = feature_health_reasons(
        [FeatureValues("product.price_usd@2", nulls, "product.price_usd@1", PRICE)]
    )
    assert not reason.passed and reason.check == "feature_health"
    assert reason.metric == "product.price_usd@2"
    assert "null on every holdout row" in reason.message and "@1: 0% null" in reason.message


def test_constant_pin_blocks_and_lost_values_block() -> None:
    constant = FeatureValues(
        "product.price_usd@2", np.full(2000, 7.0), "product.price_usd@1", PRICE
    )
    holes = PRICE.copy()
    holes[:1500] = np.nan
    lossy = FeatureValues("product.price_usd@3", holes, "product.price_usd@1", PRICE)
    first, second = feature_health_reasons([constant, lossy])
    assert not first.passed and "constant" in first.message
    assert not second.passed and "75%" in second.message and second.metric == "product.price_usd@3"


def test_moved_units_warn_and_the_same_pin_never_blocks() -> None:
    cents = FeatureValues("product.price_usd@2", PRICE * 100, "product.price_usd@1", PRICE)
    outage = FeatureValues("user.country@1", pa.array([None] * 10, pa.string()), "user.country@1")
    moved, same = feature_health_reasons([cents, outage])
    assert moved.passed and moved.warning and "PSI" in moved.message
    assert same.passed and same.warning  # production reads that column too: the day's data


def test_a_new_constant_feature_only_warns_but_a_new_empty_one_blocks() -> None:
    flag = FeatureValues("product.is_discounted@1", np.zeros(100, bool))
    empty = FeatureValues("product.new@1", pa.array([None] * 100, pa.float64()))
    constant, dead = feature_health_reasons([flag, empty])
    assert constant.passed and constant.warning
    assert not dead.passed


def test_all_none_values_without_a_type_block_instead_of_crashing() -> None:
    # a Python list of None becomes an Arrow column of type null, which has no distinct count
    (reason,) = feature_health_reasons([FeatureValues("item.price@2", [None] * 50)])
    assert not reason.passed and "item.price@2" in reason.message
