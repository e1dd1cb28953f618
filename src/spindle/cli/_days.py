"""Day and time options checked once, before any command runs: a clear error, never a traceback."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

# Every command names its day options the same way (`start`: simulate); `now` is a time.
DAY_OPTIONS = ("date", "since", "until", "start")
TIME_OPTIONS = ("now",)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def day_problem(option: str, value: str) -> str | None:
    """Why ``value`` is not a day for ``--option`` (None when it is one)."""
    try:
        if not _DAY.fullmatch(value):
            raise ValueError("not in the form YYYY-MM-DD")
        dt.date.fromisoformat(value)
    except ValueError as exc:
        return f"--{option} {value!r} is not a day ({exc}); expected YYYY-MM-DD, e.g. 2026-01-06"
    return None


def time_problem(option: str, value: str) -> str | None:
    """Why ``value`` is not an ISO time for ``--option`` (None when it is one)."""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError as exc:
        return (
            f"--{option} {value!r} is not a time ({exc}); expected ISO 8601, e.g. 2026-01-06T02:00"
        )
    return None


def option_problems(options: Mapping[str, Any]) -> list[str]:
    """Every malformed day or time among a command's options, one line each."""
    found = []
    for name, value in options.items():
        if not isinstance(value, str):
            continue
        problem = (
            day_problem(name, value)
            if name in DAY_OPTIONS
            else time_problem(name, value)
            if name in TIME_OPTIONS
            else None
        )
        if problem:
            found.append(problem)
    return found
