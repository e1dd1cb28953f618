"""An in-memory as-of join of Arrow tables (numpy): the point-in-time join without DuckDB.

For each event row it finds the latest feature row with the same key(s) and
``feature_ts <= event time``, as DuckDB's ``ASOF LEFT JOIN ... ON keys AND ts >= feature_ts``
does: every event kept, in its order; a null key or time never matches. The keys of both sides
are mapped jointly to dense integer ids (``dictionary_encode``), combined with the time into
one int64 per row, the feature rows sorted once and every event looked up by binary search.
The age (``epoch(ts) - epoch(feature_ts)``, seconds as DOUBLE) and the TTL nulling are computed
as :func:`spindle.features.ttl_select` computes them in SQL, so both give the same values.

It compares the raw int64 values of the times and keys, so it takes only inputs it compares
exactly as DuckDB does: keys of the same integer, string, boolean or date type on both sides,
times ``timestamp[us]`` both with or both without a time zone. :func:`asof_unsupported` says
why not otherwise, and the caller runs DuckDB's join instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Where joins on an in-memory connection run: "auto" (in Arrow where the types allow),
#: "duckdb" (always DuckDB's ASOF join) or "arrow" (in Arrow on any connection).
ENGINE = "auto"
ENGINES = ("auto", "duckdb", "arrow")
_LIMIT = 1 << 62  # composite keys stay below this (int64, with room to spare)
#: Threads of the row-wise steps (numpy releases the GIL in them); at most four, and never
#: more than the CPUs this process may run on.
THREADS = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
#: Rows per block of a row-wise step: its temporaries stay small (cache-sized, and reused by the
#: allocator instead of fresh pages from the kernel, which cost more than the arithmetic).
_BLOCK_ROWS = 1 << 16


def _each(rows: int, step: Callable[[int, int], None]) -> None:
    """Run ``step(lo, hi)`` over ``[0, rows)`` in blocks of ``_BLOCK_ROWS``, the blocks split
    into one contiguous run per thread.

    Each step writes only its own block of preallocated arrays, so the blocks never race.
    """
    blocks = max(1, -(-rows // _BLOCK_ROWS))
    parts = min(THREADS, blocks)

    def run(first: int, last: int) -> None:
        for block in range(first, last):
            step(block * _BLOCK_ROWS, min(rows, (block + 1) * _BLOCK_ROWS))

    if parts == 1:
        run(0, blocks)
        return
    bounds = [blocks * i // parts for i in range(parts + 1)]
    with ThreadPoolExecutor(parts, thread_name_prefix="spindle-asof") as pool:
        for done in [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(parts)]:
            done.result()


def _key_type_ok(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_date32(kind)
    )


def _time_type_ok(kind: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(kind) and kind.unit == "us")


def asof_unsupported(
    events: pa.Schema, features: pa.Schema, keys: Sequence[str], event_time: str
) -> str | None:
    """Why :func:`asof_join` cannot join these schemas exactly as DuckDB would (None: it can).

    Args:
        events: the events' schema (keys and ``event_time``).
        features: the feature rows' schema (keys and ``feature_ts``).
        keys: the key columns, on both sides.
        event_time: the events' time column.

    Returns:
        None, or a short reason (a missing column, a type it does not compare).
    """
    for name in (*keys, event_time):
        if name not in events.names:
            return f"events lack {name}"
    for name in (*keys, "feature_ts"):
        if name not in features.names:
            return f"features lack {name}"
    for key in keys:
        left, right = events.field(key).type, features.field(key).type
        if left != right or not _key_type_ok(left):
            return f"key {key} is {left} / {right}"
    ev, ft = events.field(event_time).type, features.field("feature_ts").type
    if not (_time_type_ok(ev) and _time_type_ok(ft)) or (ev.tz is None) != (ft.tz is None):
        return f"times are {ev} / {ft}"
    return None


def _valid(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if column.null_count == 0:
        return np.ones(len(column), dtype=bool)
    return np.asarray(pc.is_valid(column))


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    """The values of an integer column as int64 (nulls as 0), read from its buffer.

    Not ``to_numpy``: pyarrow's imports pandas on first use (a second of CPU).
    """
    filled = pc.fill_null(column, 0) if column.null_count else column
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks() if filled.num_chunks != 1 else filled.chunk(0)
    values = np.frombuffer(filled.buffers()[1], dtype=np.dtype(str(filled.type)))
    return values[filled.offset : filled.offset + len(filled)].astype(np.int64, copy=False)


def _range(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The smallest and largest value of two arrays ((0, 0) when both are empty)."""
    parts = [x for x in (a, b) if len(x)]
    if not parts:
        return 0, 0
    return min(int(x.min()) for x in parts), max(int(x.max()) for x in parts)


def _dense(left: pa.ChunkedArray, right: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """Ids of one key column of both sides (equal values, equal ids), and their count."""
    kind = left.type
    if pa.types.is_integer(kind) or pa.types.is_date32(kind) or pa.types.is_boolean(kind):
        as_int = pa.int64() if pa.types.is_integer(kind) else pa.int32()
        a, b = _ints(left.cast(as_int)), _ints(right.cast(as_int))
        lo, hi = _range(a, b)
        if lo >= 0 and hi < _LIMIT >> 32:  # small non-negative values are their own ids
            return a, b, hi + 1
        if hi - lo < _LIMIT >> 32:  # a small range: the offsets are
            return a - lo, b - lo, hi - lo + 1
    merged = pa.chunked_array([*left.chunks, *right.chunks], type=kind).combine_chunks()
    encoded = merged.dictionary_encode()
    ids = _ints(pa.chunked_array([encoded.indices]))
    return ids[: len(left)], ids[len(left) :], len(encoded.dictionary)


def _key_ids(
    events: pa.Table, features: pa.Table, keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """One int64 id per row of each side for the composite key, and the number of ids."""
    ev_ids, ft_ids, n = _dense(events[keys[0]], features[keys[0]])
    for key in keys[1:]:
        a, b, m = _dense(events[key], features[key])
        if n * m >= _LIMIT:  # re-densify the ids so far before combining further
            _, inverse = np.unique(np.concatenate([ev_ids, ft_ids]), return_inverse=True)
            ev_ids, ft_ids = inverse[: len(ev_ids)], inverse[len(ev_ids) :]
            n = int(inverse.max()) + 1 if len(inverse) else 1
        ev_ids, ft_ids, n = ev_ids * m + a, ft_ids * m + b, n * m
    return ev_ids, ft_ids, n


@dataclass(frozen=True)
class AsofMatch:
    """For each event: the matched feature row (``index``; only where ``matched``) and its age
    in seconds (DuckDB's ``epoch(ts) - epoch(feature_ts)``; NaN where not matched)."""

    index: np.ndarray
    matched: np.ndarray
    age_s: np.ndarray


def _composite(
    ev_ids: np.ndarray, ev_ts: np.ndarray, ft_ids: np.ndarray, ft_ts: np.ndarray, n_ids: int
) -> tuple[np.ndarray, np.ndarray]:
    """One sortable int64 per row: key id, then time (times ranked if the product is large)."""
    base, top = _range(ev_ts, ft_ts)
    span = top - base + 1
    if n_ids * span >= _LIMIT:
        _, inverse = np.unique(np.concatenate([ev_ts, ft_ts]), return_inverse=True)
        ev_ts, ft_ts, span = inverse[: len(ev_ts)], inverse[len(ev_ts) :], int(inverse.max()) + 1
        base = 0
    return _offset(ev_ids, ev_ts, span, base), _offset(ft_ids, ft_ts, span, base)


def _offset(ids: np.ndarray, ts: np.ndarray, span: int, base: int) -> np.ndarray:
    """``ids * span + ts - base`` as a fresh int64 array, computed over threads."""
    key = np.empty(len(ts), np.int64)

    def step(lo: int, hi: int) -> None:
        part = key[lo:hi]
        np.multiply(ids[lo:hi], span, out=part)
        part += ts[lo:hi]
        part -= base

    _each(len(ts), step)
    return key


def _search(sorted_keys: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """``searchsorted(side="right") - 1`` of every needle, over threads. Each thread sorts its
    needles first: a binary search for sorted needles stays in cache, which more than pays for
    the sort."""
    pos = np.empty(len(needles), np.int64)

    def step(lo: int, hi: int) -> None:
        some = needles[lo:hi]
        order = np.argsort(some)
        found = np.searchsorted(sorted_keys, some[order], side="right")
        found -= 1
        pos[lo:hi][order] = found

    _each(len(needles), step)
    return pos


def _sort(keys: np.ndarray) -> np.ndarray:
    """The order of ``keys``; equal keys (duplicate feature rows) keep their input order."""
    order = np.argsort(keys)  # the fastest sort; stable only needed when keys repeat
    ordered = keys[order]
    if bool(np.any(ordered[1:] == ordered[:-1])):
        order = np.argsort(keys, kind="stable")
    return order


def asof_match(
    events: pa.Table, features: pa.Table, keys: Sequence[str], event_time: str
) -> AsofMatch:
    """The latest feature row with the event's keys and ``feature_ts <= event_time``, per event.

    Args:
        events: the events (keys and ``event_time``); see :func:`asof_unsupported` for types.
        features: the feature rows (keys and ``feature_ts``).
        keys: the key columns.
        event_time: the events' time column.

    Returns:
        The match of every event row, in the events' order.
    """
    ev_ids, ft_ids, n_ids = _key_ids(events, features, keys)
    ev_ok = _valid(events[event_time])
    ft_ok = _valid(features["feature_ts"])
    for key in keys:
        ev_ok &= _valid(events[key])
        ft_ok &= _valid(features[key])
    ev_ts = _ints(events[event_time].cast(pa.int64()))
    ft_ts = _ints(features["feature_ts"].cast(pa.int64()))
    rows: np.ndarray | None = None  # the feature rows that can match (None: all of them)
    f_ids, f_ts = ft_ids, ft_ts
    if not ft_ok.all():
        rows = np.flatnonzero(ft_ok)
        f_ids, f_ts = ft_ids[rows], ft_ts[rows]
    if ev_ok.all():
        ev_key, ft_key = _composite(ev_ids, ev_ts, f_ids, f_ts, n_ids)
    else:
        valid = np.flatnonzero(ev_ok)
        some, ft_key = _composite(ev_ids[valid], ev_ts[valid], f_ids, f_ts, n_ids)
        ev_key = np.full(len(ev_ok), -1, np.int64)  # below every feature row: never matched
        ev_key[valid] = some
    if len(ft_key) > 1 and not bool(np.all(ft_key[1:] >= ft_key[:-1])):
        order = _sort(ft_key)
        rows, ft_key = (order if rows is None else rows[order]), ft_key[order]
    pos = _search(ft_key, ev_key)
    n = len(pos)
    # pos becomes the index where every feature row can match (no copy of n rows)
    index = pos if rows is None else np.empty(n, np.int64)
    matched, age = np.empty(n, bool), np.zeros(n, np.float64)
    some_rows = len(ft_key) > 0

    def step(lo: int, hi: int) -> None:
        found, hit, when = pos[lo:hi], matched[lo:hi], age[lo:hi]
        np.greater_equal(found, 0, out=hit)
        hit &= ev_ok[lo:hi]
        if some_rows:
            np.maximum(found, 0, out=found)
            at = index[lo:hi]
            if rows is not None:
                np.take(rows, found, out=at)
            hit &= np.take(ft_ids, at) == ev_ids[lo:hi]
            # DuckDB's epoch(): microseconds as DOUBLE divided by 1e6, per side, then the
            # difference
            np.divide(np.take(ft_ts, at), 1e6, out=when)
        else:
            index[lo:hi] = 0
        np.subtract(ev_ts[lo:hi] / 1e6, when, out=when)
        when[~hit] = np.nan

    _each(n, step)
    return AsofMatch(index, matched, age)


def _bits(mask: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


def _arrow(values: np.ndarray, kind: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """A numpy array of int64, float64 or bool as an Arrow array (null where not ``valid``).

    Not ``pa.array``: it imports pandas on first use (a second of CPU).
    """
    data = _bits(values) if kind == pa.bool_() else pa.py_buffer(np.ascontiguousarray(values))
    nulls = None if valid is None or bool(valid.all()) else _bits(valid)
    return pa.Array.from_buffers(kind, len(values), [nulls, data])


def asof_columns(
    features: pa.Table,
    match: AsofMatch,
    columns: Sequence[str],
    ttl_s: int | None,
    age_column: str,
    keep: Sequence[str] = (),
) -> dict[str, pa.ChunkedArray | pa.Array]:
    """The matched feature rows' columns per event: ``keep`` as is, ``columns`` nulled past the
    TTL (as :func:`spindle.features.ttl_select`), then the age (null where nothing matched).

    Args:
        features: the feature rows the match indexes.
        match: from :func:`asof_match`.
        columns: the pinned columns (nulled where the age exceeds ``ttl_s``).
        ttl_s: seconds; None: no limit.
        age_column: the age's name.
        keep: columns taken without the TTL.

    Returns:
        Name to column, in the order ``keep``, ``columns``, age.
    """
    fresh = match.matched.copy()
    if ttl_s is not None:
        with np.errstate(invalid="ignore"):
            fresh &= match.age_s <= int(ttl_s)
    out: dict[str, pa.ChunkedArray | pa.Array] = {}
    for names, mask in ((keep, match.matched), (columns, fresh)):
        index = _arrow(match.index, pa.int64(), valid=mask)  # a null index takes a null
        for name in names:
            out[name] = features[name].take(index)
    out[age_column] = _arrow(match.age_s, pa.float64(), valid=match.matched)
    return out


def asof_join(
    events: pa.Table,
    features: pa.Table,
    keys: Sequence[str],
    columns: Sequence[str],
    ttl_s: int | None,
    event_time: str = "ts",
    age_column: str = "feature_age_s",
) -> pa.Table:
    """Every event with the pinned ``columns`` of its latest feature row (within ``ttl_s``).

    The same rows as :func:`spindle.features.pit_join` (DuckDB's ASOF join), in the events'
    order: the events' columns, ``columns`` nulled past the TTL, then ``age_column``.

    Args:
        events: the events (keys and ``event_time``, ``timestamp[us]``).
        features: the feature rows (keys, ``feature_ts``, ``columns``).
        keys: the key columns (same types on both sides).
        columns: the pinned feature columns.
        ttl_s: feature rows older than this (seconds) give nulls; None: no limit.
        event_time: the events' time column.
        age_column: the age's name.

    Returns:
        The joined table.

    Raises:
        ValueError: the inputs are not ones it compares exactly (see :func:`asof_unsupported`).

    Example:
        >>> asof_join(events, features, ["account_id"], ["account__spend__v1"], 86400)
    """
    why = asof_unsupported(events.schema, features.schema, keys, event_time)
    if why is not None:
        raise ValueError(f"asof_join cannot join these inputs exactly: {why}")
    match = asof_match(events, features, keys, event_time)
    out = events
    for name, column in asof_columns(features, match, columns, ttl_s, age_column).items():
        out = out.append_column(pa.field(name, column.type), column)
    return out
