"""Frames of internal codes -> the Arrow tables of docs/contracts.md, column for column.

Strings (ids, names, countries) are made here and only here, in bulk: ids are written as digit
bytes into Arrow buffers and categorical strings are ``take``-n from small dictionaries, so no
Python object is created per row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spindle.sim._day import DEVICES
from spindle.sim._faults import CURRENCY_NAMES
from spindle.sim._schema import DEVICE_FIELD, SCHEMAS, Frame, digit_chars, fixed_strings
from spindle.sim._world import (
    COUNTRY_CODES,
    CURRENCIES,
    PRODUCT_TYPES,
    UNIX_EPOCH_ORDINAL,
    World,
    words_to_text,
)

SEARCH_DIGITS, IMPRESSION_DIGITS, TRANSACTION_DIGITS = 7, 9, 8
"""Per-day counters in ids (``s20260101-0000042``): room for 10M searches a day."""

_COUNTRIES = pa.array(COUNTRY_CODES, pa.string())
_CURRENCIES = pa.array(CURRENCY_NAMES, pa.string())
_TYPES = pa.array(PRODUCT_TYPES, pa.string())
_DEVICES = pa.array(DEVICES, pa.string())
_REASONS = pa.array(["chargeback"], pa.string())


def _lookup(values: pa.Array, codes: npt.NDArray[Any]) -> pa.Array:
    """``values[codes]`` with negative codes as nulls."""
    return pc.take(values, pa.array(codes, pa.int64(), mask=codes < 0))


def _dates(ordinals: npt.NDArray[Any] | int, n: int) -> pa.Array:
    days = np.broadcast_to(np.asarray(ordinals, np.int64) - UNIX_EPOCH_ORDINAL, (n,))
    return pa.array(days.astype("datetime64[D]"), pa.date32())


def _ts(micros: npt.NDArray[Any]) -> pa.Array:
    return pa.array(np.asarray(micros, np.int64).view("datetime64[us]"), pa.timestamp("us"))


def dated_ids(
    letter: bytes, origin: npt.NDArray[Any], number: npt.NDArray[Any], digits: int
) -> pa.Array:
    """Ids like ``s20260101-0000042``: the day the row happened, then its number that day."""
    n = len(number)
    if n == 0:
        return pa.array([], pa.string())
    first = int(origin.min())
    days = range(first, int(origin.max()) + 1)
    ymd = np.array([int(dt.date.fromordinal(d).strftime("%Y%m%d")) for d in days], np.int64)
    date_chars = digit_chars(ymd, 8)[np.asarray(origin, np.int64) - first]
    return fixed_strings(n, letter, date_chars, b"-", digit_chars(number, digits))


def _table(name: str, columns: list[pa.Array], extra: pa.Field | None = None) -> pa.Table:
    schema = SCHEMAS[name] if extra is None else SCHEMAS[name].append(extra)
    return pa.Table.from_arrays(columns, schema=schema)


def searches_table(f: Frame, ordinal: int, world: World) -> pa.Table:
    """The ``searches`` partition for the day with this ordinal."""
    n = len(f["ts"])
    return _table(
        "searches",
        [
            dated_ids(b"s", f["origin"], f["search"], SEARCH_DIGITS),
            _ts(f["ts"]),
            _lookup(world.user_ids, f["user"]),
            _lookup(_COUNTRIES, f["country"]),
            words_to_text(f["qwords"]),
            _dates(ordinal, n),
        ],
    )


def impressions_table(f: Frame, ordinal: int, world: World, device: bool) -> pa.Table:
    """The ``impressions`` partition; ``device`` adds the column of a ``schema_change``."""
    n = len(f["ts"])
    columns = [
        dated_ids(b"i", f["origin"], f["imp"], IMPRESSION_DIGITS),
        dated_ids(b"s", f["origin"], f["search"], SEARCH_DIGITS),
        _ts(f["ts"]),
        _lookup(world.user_ids, f["user"]),
        _lookup(world.product_ids, f["product"]),
        pa.array(f["position"], pa.int32()),
        pa.array(f["clicked"], pa.bool_()),
        pa.array(f["true_purchase_prob"], pa.float64()),
        pa.array(f["true_relevance"], pa.float64()),
        _dates(ordinal, n),
    ]
    if not device:
        return _table("impressions", columns)
    return _table("impressions", [*columns, _lookup(_DEVICES, f["device"])], DEVICE_FIELD)


def purchases_table(f: Frame, ordinal: int, world: World) -> pa.Table:
    """The ``purchases`` partition (``product == -1`` marks a corrupted, null product id)."""
    n = len(f["ts"])
    return _table(
        "purchases",
        [
            dated_ids(b"t", f["origin"], f["txn"], TRANSACTION_DIGITS),
            _ts(f["ts"]),
            dated_ids(b"s", f["origin"], f["search"], SEARCH_DIGITS),
            _lookup(world.user_ids, f["user"]),
            _lookup(world.product_ids, f["product"]),
            pa.array(f["price"], pa.float64()),
            _lookup(_CURRENCIES, f["currency"]),
            pa.array(f["quantity"], pa.int32()),
            pa.array(f["discount_pct"], pa.float64()),
            _dates(ordinal, n),
        ],
    )


def fraud_table(f: Frame, ordinal: int) -> pa.Table:
    """The ``fraud_flags`` raised on this day."""
    n = len(f["ts"])
    return _table(
        "fraud_flags",
        [
            dated_ids(b"t", f["origin"], f["txn"], TRANSACTION_DIGITS),
            _ts(f["ts"]),
            _lookup(_REASONS, np.zeros(n, np.int64)),
            _dates(ordinal, n),
        ],
    )


def products_frame(world: World, ordinal: int) -> Frame:
    """The catalogue as of 00:00 of the day: every product created on or before it."""
    k = world.day_index(ordinal)
    n = int(world.products_by_day[k])
    return {
        "product": np.arange(n),
        "list_price": world.list_price[:n],
        "currency": world.product_currency[:n].astype(np.int64),
        "discount_pct": world.discount(k),
        "null_id": np.zeros(n, np.bool_),
    }


def products_table(f: Frame, ordinal: int, world: World) -> pa.Table:
    """The ``products`` snapshot partition."""
    idx = f["product"]
    n = len(idx)
    return _table(
        "products",
        [
            _lookup(world.product_ids, np.where(f["null_id"], -1, idx)),
            pc.take(world.product_names, idx),
            _lookup(_TYPES, world.product_type[idx]),
            pa.array(f["list_price"], pa.float64()),
            _lookup(_CURRENCIES, f["currency"]),
            pa.array(world.is_partner[idx], pa.bool_()),
            _dates(world.product_created[idx], n),
            pa.array(f["discount_pct"], pa.float64()),
            _dates(ordinal, n),
        ],
    )


def users_table(world: World, ordinal: int) -> pa.Table:
    """Users who signed up on the day; on the epoch day, every user existing by then."""
    k = world.day_index(ordinal)
    first = 0 if k == 0 else int(world.users_by_day[k - 1])
    idx = np.arange(first, int(world.users_by_day[k]))
    return _table(
        "users",
        [
            pc.take(world.user_ids, idx),
            _lookup(_COUNTRIES, world.user_country[idx]),
            _dates(world.user_signup[idx], len(idx)),
            _dates(ordinal, len(idx)),
        ],
    )


def fx_table(world: World, ordinal: int) -> pa.Table:
    """USD per unit of each currency on the day (USD is exactly 1.0)."""
    rates = world.usd_per_unit[world.day_index(ordinal)]
    return _table(
        "fx_rates",
        [_dates(ordinal, len(CURRENCIES)), pa.array(CURRENCIES, pa.string()), pa.array(rates)],
    )
