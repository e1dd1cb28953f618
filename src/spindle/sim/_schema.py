"""The raw table names and Arrow schemas the simulator writes (docs/contracts.md, "Raw logs").

Kept apart from the generators so the contract is readable in one place and the tests can pin
every column name and dtype against it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Frame = dict[str, npt.NDArray[Any]]
"""Columns of one table as NumPy arrays (internal codes, not yet strings), all the same length."""

TABLES: tuple[str, ...] = (
    "products",
    "users",
    "fx_rates",
    "searches",
    "impressions",
    "purchases",
    "fraud_flags",
)

_TS = pa.timestamp("us")
_DATE = pa.date32()

SCHEMAS: MappingProxyType[str, pa.Schema] = MappingProxyType(
    {
        "products": pa.schema(
            [
                ("product_id", pa.string()),
                ("name", pa.string()),
                ("product_type", pa.string()),
                ("list_price", pa.float64()),
                ("currency", pa.string()),
                ("is_partner", pa.bool_()),
                ("created_date", _DATE),
                ("discount_pct", pa.float64()),
                ("date", _DATE),
            ]
        ),
        "users": pa.schema(
            [
                ("user_id", pa.string()),
                ("country", pa.string()),
                ("signup_date", _DATE),
                ("date", _DATE),
            ]
        ),
        "fx_rates": pa.schema(
            [("date", _DATE), ("currency", pa.string()), ("usd_per_unit", pa.float64())]
        ),
        "searches": pa.schema(
            [
                ("search_id", pa.string()),
                ("ts", _TS),
                ("user_id", pa.string()),
                ("country", pa.string()),
                ("query", pa.string()),
                ("date", _DATE),
            ]
        ),
        "impressions": pa.schema(
            [
                ("impression_id", pa.string()),
                ("search_id", pa.string()),
                ("ts", _TS),
                ("user_id", pa.string()),
                ("product_id", pa.string()),
                ("position", pa.int32()),
                ("clicked", pa.bool_()),
                ("true_purchase_prob", pa.float64()),
                ("true_relevance", pa.float64()),
                ("date", _DATE),
            ]
        ),
        "purchases": pa.schema(
            [
                ("transaction_id", pa.string()),
                ("ts", _TS),
                ("search_id", pa.string()),
                ("user_id", pa.string()),
                ("product_id", pa.string()),
                ("price", pa.float64()),
                ("currency", pa.string()),
                ("quantity", pa.int32()),
                ("discount_pct", pa.float64()),
                ("date", _DATE),
            ]
        ),
        "fraud_flags": pa.schema(
            [
                ("transaction_id", pa.string()),
                ("flagged_ts", _TS),
                ("reason", pa.string()),
                ("date", _DATE),
            ]
        ),
    }
)

DEVICE_FIELD = pa.field("device", pa.string())
"""The column a ``schema_change`` fault appends to ``impressions`` (after ``date``)."""


def frame_len(frame: Frame) -> int:
    """Rows of a frame (0 for a frame without columns)."""
    for column in frame.values():
        return len(column)
    return 0


def frame_take(frame: Frame, index: npt.NDArray[Any]) -> Frame:
    """Rows of ``frame`` selected by an integer index or a boolean mask, in that order."""
    return {name: column[index] for name, column in frame.items()}


def frame_concat(frames: list[Frame]) -> Frame:
    """Stack frames with the same columns (the first frame's column order wins)."""
    if len(frames) == 1:
        return frames[0]
    return {name: np.concatenate([f[name] for f in frames]) for name in frames[0]}


_FOUR_DIGITS = np.array([list(f"{i:04d}".encode()) for i in range(10_000)], np.uint8)
_FOUR_DIGITS_U32 = _FOUR_DIGITS.view(np.uint32).ravel()


def digit_chars(values: npt.NDArray[Any], digits: int) -> npt.NDArray[np.uint8]:
    """ASCII digits of non-negative ``values`` (< 10**digits), zero-padded, one row each.

    Four digits at a time: one division and one 4-byte table lookup per group, ~10x faster
    than digit-by-digit arithmetic or Arrow's int -> string cast plus padding.
    """
    groups = -(-digits // 4)
    words = np.empty((len(values), groups), np.uint32)
    rest = np.asarray(values, np.int64)
    for col in range(groups - 1, 0, -1):
        rest, group = np.divmod(rest, 10_000)
        words[:, col] = _FOUR_DIGITS_U32[group]
    words[:, 0] = _FOUR_DIGITS_U32[rest]  # < 10_000 when values < 10**digits
    return words.view(np.uint8)[:, 4 * groups - digits :]


def fixed_strings(n: int, *parts: bytes | npt.NDArray[np.uint8]) -> pa.StringArray:
    """Rows of fixed-width strings, each the concatenation of ``parts`` built into Arrow buffers.

    A part is a constant (``bytes``) or one row of characters per string (from ``digit_chars``).
    Formatting millions of ids with Python f-strings would dominate the simulator's run time;
    writing the bytes with NumPy and wrapping them as an Arrow ``StringArray`` is far faster.
    """
    widths = [len(p) if isinstance(p, bytes) else p.shape[1] for p in parts]
    chars = np.empty((n, sum(widths)), np.uint8)
    col = 0
    for part, width in zip(parts, widths, strict=True):
        chars[:, col : col + width] = (
            np.frombuffer(part, np.uint8) if isinstance(part, bytes) else part
        )
        col += width
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(sum(widths))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def fixed_ids(prefix: bytes, numbers: npt.NDArray[Any], digits: int) -> pa.StringArray:
    """Ids like ``p0000042``: ``prefix`` then zero-padded ``numbers``."""
    return fixed_strings(len(numbers), prefix, digit_chars(numbers, digits))
