"""Expected schemas of the raw sources and the row checks that send bad rows to quarantine."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us")


@dataclass(frozen=True)
class SourceSchema:
    """Columns a raw source must have, their types, and which may never be null."""

    name: str
    columns: dict[str, pa.DataType]
    required: tuple[str, ...]
    key: str | None
    ts_column: str | None = None
    price_column: str | None = None
    currency_column: str | None = None


SCHEMAS: dict[str, SourceSchema] = {
    "fx_rates": SourceSchema(
        "fx_rates",
        {"currency": pa.string(), "usd_per_unit": pa.float64()},
        ("currency", "usd_per_unit"),
        None,
        price_column="usd_per_unit",
    ),
    "products": SourceSchema(
        "products",
        {
            "product_id": pa.string(),
            "name": pa.string(),
            "product_type": pa.string(),
            "list_price": pa.float64(),
            "currency": pa.string(),
            "is_partner": pa.bool_(),
            "created_date": pa.date32(),
            "discount_pct": pa.float64(),
        },
        ("product_id", "name", "product_type", "list_price", "currency"),
        "product_id",
        price_column="list_price",
        currency_column="currency",
    ),
    "users": SourceSchema(
        "users",
        {"user_id": pa.string(), "country": pa.string(), "signup_date": pa.date32()},
        ("user_id", "country"),
        "user_id",
    ),
    "searches": SourceSchema(
        "searches",
        {
            "search_id": pa.string(),
            "ts": TS,
            "user_id": pa.string(),
            "country": pa.string(),
            "query": pa.string(),
        },
        ("search_id", "ts", "user_id"),
        "search_id",
        ts_column="ts",
    ),
    "impressions": SourceSchema(
        "impressions",
        {
            "impression_id": pa.string(),
            "search_id": pa.string(),
            "ts": TS,
            "user_id": pa.string(),
            "product_id": pa.string(),
            "position": pa.int32(),
            "clicked": pa.bool_(),
            "true_purchase_prob": pa.float64(),
            "true_relevance": pa.float64(),
        },
        ("impression_id", "search_id", "ts", "product_id"),
        "impression_id",
        ts_column="ts",
    ),
    "purchases": SourceSchema(
        "purchases",
        {
            "transaction_id": pa.string(),
            "ts": TS,
            "search_id": pa.string(),
            "user_id": pa.string(),
            "product_id": pa.string(),
            "price": pa.float64(),
            "currency": pa.string(),
            "quantity": pa.int32(),
            "discount_pct": pa.float64(),
        },
        ("transaction_id", "ts", "user_id", "product_id", "price", "currency"),
        "transaction_id",
        ts_column="ts",
        price_column="price",
        currency_column="currency",
    ),
    "fraud_flags": SourceSchema(
        "fraud_flags",
        {"transaction_id": pa.string(), "flagged_ts": TS, "reason": pa.string()},
        ("transaction_id",),
        None,
        ts_column="flagged_ts",
    ),
}

# fx first: every other source's currency check needs the day's rates.
INGEST_ORDER = (
    "fx_rates",
    "products",
    "users",
    "searches",
    "impressions",
    "purchases",
    "fraud_flags",
)
# Events may arrive this many days late and still be accepted (their ts keeps the event time).
MAX_LATENESS_DAYS = 3
