"""A small cron evaluator (five fields: minute hour day-of-month month day-of-week)."""

from __future__ import annotations

import datetime as dt
import itertools

from spindle.core import ConfigError

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("minute", "hour", "day of month", "month", "day of week")


def _field(text: str, lo: int, hi: int, name: str, expr: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(base)
        if not (lo <= start <= end <= hi) or step < 1:
            raise ConfigError("schedule.cron", [f"{expr!r}: {name} {part!r} is outside {lo}-{hi}"])
        values.update(range(start, end + 1, step))
    return values


class Cron:
    """A parsed cron expression; ``times_on(day)`` lists its firing times on a day (UTC)."""

    def __init__(self, expr: str) -> None:
        fields = expr.split()
        if len(fields) != 5:
            raise ConfigError(
                "schedule.cron",
                [
                    f"{expr!r}: expected 5 fields (minute hour day month weekday), found {len(fields)}"
                ],
            )
        try:
            self.minutes, self.hours, self.days, self.months, self.weekdays = (
                _field(f, lo, hi, n, expr)
                for f, (lo, hi), n in zip(fields, _RANGES, _NAMES, strict=True)
            )
        except ValueError as exc:
            raise ConfigError("schedule.cron", [f"{expr!r}: {exc}"]) from exc
        self.expr = expr

    def due_on(self, day: dt.date) -> bool:
        # cron weekday: 0 = Sunday; Python: Monday = 0.
        return (
            day.month in self.months
            and day.day in self.days
            and (day.weekday() + 1) % 7 in self.weekdays
        )

    def times_on(self, day: dt.date) -> list[dt.datetime]:
        if not self.due_on(day):
            return []
        return [
            dt.datetime.combine(day, dt.time(h, m))
            for h in sorted(self.hours)
            for m in sorted(self.minutes)
        ]

    def next_after(self, when: dt.datetime, horizon_days: int = 366) -> dt.datetime | None:
        for offset in range(horizon_days + 1):
            for t in self.times_on(when.date() + dt.timedelta(days=offset)):
                if t > when:
                    return t
        return None

    def interval_h(self, around: dt.date) -> float:
        """The longest gap between firings in the week after ``around`` (the worst detection delay)."""
        times = [t for i in range(8) for t in self.times_on(around + dt.timedelta(days=i))]
        if len(times) < 2:
            return 24.0 * 7
        return max((b - a).total_seconds() for a, b in itertools.pairwise(times)) / 3600
