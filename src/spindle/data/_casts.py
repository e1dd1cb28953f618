"""Cast raw Arrow columns to a declaration's types, naming each value that cannot be cast.

Used by ``_readers``: a value that fails to cast becomes null in the result and an entry
``row -> reason`` ("column price: cannot read 'abc' as float64"); nothing is coerced silently
(an impossible date is refused, not rolled over). Timestamps come out as naive UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import SourceDeclaration

_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


class MostlyUnreadable(Exception):
    """So many values of a column fail to cast that its declared type is likely wrong."""


#: A column with at least this many unreadable values, and more than ``_MOSTLY_BAD`` of the
#: rows seen so far, quarantines its partition: the declared type is probably wrong, and
#: finding each bad value alone would cost a cast per row.
_MANY_BAD = 1000
_MOSTLY_BAD = 0.1


def _cast_chunked(
    values: pa.Array,
    target: pa.DataType,
    caster: Callable[[pa.Array], pa.Array],
    reason: Callable[[Any], str],
) -> tuple[pa.Array, dict[int, str]]:
    """Cast all values; where that fails, halve the failing piece until each bad value stands
    alone (about 2·log2(n) casts per bad value, not one per row), and set those aside."""
    pieces: list[pa.Array] = []
    bad: dict[int, str] = {}
    pending = [(0, len(values))]
    while pending:  # depth first, first half first: pieces come out in row order
        start, length = pending.pop()
        piece = values.slice(start, length)
        try:
            pieces.append(caster(piece))
        except pa.ArrowInvalid as exc:
            if length == 1:
                bad[start] = reason((piece[0].as_py(), exc))
                pieces.append(pa.nulls(1, target))
                if len(bad) >= _MANY_BAD and len(bad) > _MOSTLY_BAD * (start + 1):
                    raise MostlyUnreadable(
                        f"{len(bad)} of its first {start + 1} values cannot be read"
                        f" (e.g. {bad[min(bad)]})"
                    ) from exc
            else:
                half = length // 2
                pending += [(start + half, length - half), (start, half)]
    if not pieces:
        return pa.array([], target), bad
    return pa.concat_arrays([p.cast(target) for p in pieces]), bad


def _to_utc(naive: pa.Array, timezone: str, name: str) -> tuple[pa.Array, dict[int, str]]:
    """Read naive timestamps as wall-clock times in ``timezone``; return naive UTC."""
    if timezone == "UTC":
        return naive, {}

    def localize(a: pa.Array) -> pa.Array:
        aware = pc.assume_timezone(a, timezone, ambiguous="earliest", nonexistent="raise")
        return pc.cast(aware, pa.timestamp("us"))

    def why(found: tuple[Any, BaseException]) -> str:
        return f"column {name}: {found[0]} does not exist in {timezone} (a daylight-saving gap)"

    return _cast_chunked(naive, pa.timestamp("us"), localize, why)


def _normalised(values: pa.Array, parsed: pa.Array, fmt: str) -> np.ndarray:
    """Where Arrow's strptime rolled an impossible date over (31/02 -> 03/03) instead of failing.

    Values that print back identically are fine; the few that do not (unpadded numbers, say)
    are checked with Python's strict ``datetime.strptime``.
    """
    printed = pc.strftime(parsed, format=fmt)
    differs = pc.fill_null(pc.not_equal(printed, values), False).to_numpy(zero_copy_only=False)
    rolled = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(differs):
        try:
            dt.datetime.strptime(values[int(i)].as_py(), fmt)
        except ValueError:
            rolled[i] = True
    return rolled


def _cast_timestamp(
    values: pa.Array, name: str, timezone: str, fmt: str | None
) -> tuple[pa.Array, dict[int, str]]:
    target = pa.timestamp("us")
    if pa.types.is_timestamp(values.type) and values.type.tz is not None:
        return pc.cast(pc.cast(values, pa.timestamp("us", "UTC")), target), {}
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return _to_utc(pc.cast(values, target), timezone, name)
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        raise TypeError(values.type)
    bad: dict[int, str] = {}
    if fmt is not None:
        parsed = pc.strptime(values, format=fmt, unit="us", error_is_null=True)
        failed = pc.and_(pc.is_valid(values), pc.is_null(parsed)).to_numpy(zero_copy_only=False)
        failed |= _normalised(values, parsed, fmt)
        for i in np.flatnonzero(failed):
            bad[int(i)] = (
                f"column {name}: cannot read {values[int(i)].as_py()!r} as timestamp ({fmt})"
            )
        if pa.types.is_timestamp(parsed.type) and parsed.type.tz is not None:
            return pc.cast(pc.cast(parsed, pa.timestamp("us", "UTC")), target), bad
        utc, gap = _to_utc(pc.cast(parsed, target), timezone, name)
        return utc, {**gap, **bad}

    def why(found: tuple[Any, BaseException]) -> str:
        return f"column {name}: cannot read {found[0]!r} as timestamp"

    has_offset = pc.fill_null(pc.match_substring_regex(values, _OFFSET.pattern), False)
    nothing = pa.nulls(len(values), values.type)
    aware, bad_aware = _cast_chunked(
        pc.if_else(has_offset, values, nothing),
        target,
        lambda a: pc.cast(pc.cast(a, pa.timestamp("us", "UTC")), target),
        why,
    )
    naive, bad_naive = _cast_chunked(
        pc.if_else(has_offset, nothing, values), target, lambda a: pc.cast(a, target), why
    )
    local, gap = _to_utc(naive, timezone, name)
    return pc.if_else(has_offset, aware, local), {**bad_aware, **bad_naive, **gap}


def cast_column(
    values: pa.Array, name: str, source: SourceDeclaration
) -> tuple[pa.Array, dict[int, str]]:
    """Cast one column to its declared type; raises TypeError when no value of it could be."""
    spec = source.columns[name]
    if spec.type == "timestamp":
        fmt = None
        if source.event_time is not None and source.event_time.column == name:
            fmt = source.event_time.format
        if fmt is None and source.format == "csv":
            fmt = source.csv_options.timestamp_format
        return _cast_timestamp(values, name, source.column_timezone(name), fmt)
    target = spec.arrow_type()

    def why(found: tuple[Any, BaseException]) -> str:
        return f"column {name}: cannot read {found[0]!r} as {spec.type}"

    try:
        return _cast_chunked(values, target, lambda a: pc.cast(a, target, safe=True), why)
    except pa.ArrowNotImplementedError as exc:
        raise TypeError(values.type) from exc
