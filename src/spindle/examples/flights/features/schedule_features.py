"""Request-time features of a departure's schedule: plain typed functions over request rows.

Each function receives rows holding the request's columns (``sched_dep_time``, local HHMM,
and ``sched_dep_date``, the local ISO date) and returns one value per row, in the rows' order.
Training sets and the server call the same functions (``spindle.features`` applies them).
A missing value (null) gives a null feature, which the transform encodes as missing.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _hhmm(rows: pa.Table) -> list[int | None]:
    """The rows' scheduled departures, local HHMM (None where unknown)."""
    values: list[int | None] = rows.column("sched_dep_time").to_pylist()
    return values


def _hours(hhmm: int) -> float:
    """Local HHMM in hours after midnight: 1745 -> 17.75."""
    return hhmm // 100 + (hhmm % 100) / 60.0


def dep_hour(rows: pa.Table) -> pa.Array:
    """Scheduled departure in hours after local midnight: 1745 -> 17.75."""
    return pa.array([None if t is None else _hours(t) for t in _hhmm(rows)], pa.float64())


def hour_of_day(rows: pa.Table) -> pa.Array:
    """The scheduled local hour as a two-digit category: 545 -> "05"."""
    return pa.array([None if t is None else f"{t // 100:02d}" for t in _hhmm(rows)], pa.string())


def weekday(rows: pa.Table) -> pa.Array:
    """The local departure date's day of the week: "2013-01-05" -> "Sat"."""
    days: dict[str, str] = {}
    out: list[str | None] = []
    for date in rows.column("sched_dep_date").to_pylist():
        if date is None:
            out.append(None)
            continue
        if date not in days:
            days[date] = _WEEKDAYS[dt.date.fromisoformat(date).weekday()]
        out.append(days[date])
    return pa.array(out, pa.string())


def hours_since_plane_left(rows: pa.Table) -> pa.Array:
    """Hours from the plane's previous departure (``plane_leg.left_hour@1``, joined before the
    request features) to this scheduled departure: 17:45 after a leg that left at 14:30 ->
    3.25; a leg from the evening before wraps around midnight. Null when the plane has no
    previous departure within the view's TTL."""
    left = rows.column("plane_leg__left_hour__v1").to_pylist()
    out: list[float | None] = []
    for scheduled, then in zip(_hhmm(rows), left, strict=True):
        if scheduled is None or then is None:
            out.append(None)
            continue
        out.append((_hours(scheduled) - then) % 24.0)
    return pa.array(out, pa.float64())
