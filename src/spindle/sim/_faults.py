"""Faults a real log pipeline suffers, parsed from ``KIND@DAY`` and injected into partitions.

Two faults change what *happened* and are applied while a day is generated (``_day``):
``label_flip`` (clicks and purchases drawn from the reflected utility; ``true_*`` keep the real
truth) and the burst half of ``duplicate_burst`` (one user repeats a search ~200 times within
minutes). Everything else changes only what was *logged*, and is applied here to the rows of
one partition, after the late rows of the previous day have joined it:

- ``discount_drop`` (from its day on): purchases with ``discount_pct > 0`` are dropped.
- ``missing_day``: no searches/impressions/purchases partition (products, users, fx written).
- ``missing_slice:CC``: rows of users from country CC are absent from the three event tables.
- ``duplicate_burst``: ~5% of purchases are repeated 5-20 times with the same transaction_id.
- ``schema_change`` (from its day on): impressions gain a ``device`` column (web/ios/android).
- ``corrupt_rows``: ~2% of purchases and ~1% of product rows get a negative or NaN price, the
  unknown currency ``XXX``, a null ``product_id`` or (purchases only) a ``ts`` 2-3 days away.
- ``late_data``: ~30% of the day's searches, with their impressions and purchases, miss the
  day's partition and arrive in the next day's. They keep their ids and their ``ts`` (on the
  day they happened) but carry the ``date`` of the partition they arrived in, as a log shipper
  stamping arrival dates would. If the next day is not simulated they are simply absent.

Fraud flags are raised for the purchases that happened (after ``label_flip``), whatever the
logging faults did to the ``purchases`` table: chargebacks come from the bank, not the log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from spindle.core import ConfigError
from spindle.sim._day import DAY_US
from spindle.sim._schema import Frame, frame_concat, frame_take
from spindle.sim._world import COUNTRIES, COUNTRY_CODES, CURRENCIES, stream

FAULT_KINDS: tuple[str, ...] = (
    "discount_drop",
    "missing_day",
    "missing_slice",
    "duplicate_burst",
    "schema_change",
    "corrupt_rows",
    "label_flip",
    "late_data",
)
PERSISTENT_KINDS = frozenset({"discount_drop", "schema_change"})
"""Kinds that stay in effect from their day on (a format change is not undone overnight)."""
LATE_SHARE = 0.3
DUPLICATE_SHARE = 0.05
CORRUPT_PURCHASE_SHARE = 0.02
CORRUPT_PRODUCT_SHARE = 0.01
UNKNOWN_CURRENCY = len(CURRENCIES)
"""Currency code written as ``XXX`` (``CURRENCY_NAMES`` has it last)."""
CURRENCY_NAMES: tuple[str, ...] = (*CURRENCIES, "XXX")
_F_LATE, _F_DUPLICATE, _F_CORRUPT_PURCHASES, _F_CORRUPT_PRODUCTS = 31, 32, 33, 34


def _kind_problems(kind: str, arg: str | None) -> list[str]:
    if kind not in FAULT_KINDS:
        return [f"unknown fault kind {kind!r}; expected one of: {', '.join(FAULT_KINDS)}"]
    if kind == "missing_slice" and arg not in COUNTRIES:
        found = "no country" if arg is None else f"country {arg!r}"
        return [
            f"missing_slice needs a country, as in missing_slice:DE@3; found {found}; "
            f"expected one of: {', '.join(COUNTRY_CODES)}"
        ]
    if kind != "missing_slice" and arg is not None:
        return [f"{kind} takes no argument (only missing_slice:<COUNTRY> does); found {arg!r}"]
    return []


def _parse_day(text: str, start: dt.date) -> tuple[dt.date | None, list[str]]:
    expected = (
        f"expected an ISO date (YYYY-MM-DD) or a day number >= 1 counted from the start "
        f"{start.isoformat()} (1 = the start)"
    )
    if text.isdigit():
        number = int(text)
        if number >= 1:
            return start + dt.timedelta(days=number - 1), []
        return None, [f"day {text!r} is not valid: {expected}"]
    try:
        return dt.date.fromisoformat(text), []
    except ValueError:
        return None, [f"day {text!r} is not valid: {expected}"]


@dataclass(frozen=True)
class Fault:
    """One fault to inject into the simulated logs on ``date``.

    Args:
        kind: one of ``FAULT_KINDS``.
        date: the day it happens (``discount_drop`` and ``schema_change`` last from then on).
        arg: the country code for ``missing_slice``; ``None`` for every other kind.

    Raises:
        ConfigError: unknown kind, or a missing/unknown/unexpected argument.

    Example:
        >>> Fault.parse("missing_slice:DE@3", dt.date(2026, 1, 1))
        Fault(kind='missing_slice', date=datetime.date(2026, 1, 3), arg='DE')
    """

    kind: str
    date: dt.date
    arg: str | None = None

    def __post_init__(self) -> None:
        problems = _kind_problems(self.kind, self.arg)
        if problems:
            raise ConfigError("fault", problems)

    def __str__(self) -> str:
        head = self.kind if self.arg is None else f"{self.kind}:{self.arg}"
        return f"{head}@{self.date.isoformat()}"

    @classmethod
    def parse(cls, text: str, start: dt.date) -> Fault:
        """Parse ``KIND@DAY`` or ``missing_slice:CC@DAY`` (the ``--fault`` CLI syntax).

        Args:
            text: e.g. ``discount_drop@5``, ``missing_slice:DE@2026-01-03``.
            start: the first simulated day; day number 1 is this day.

        Raises:
            ConfigError: naming the text, what was wrong, and the valid kinds, days or countries.
        """
        head, at, day_text = text.strip().rpartition("@")
        if not at:
            head, day_text = text.strip(), ""
        kind, colon, arg = head.partition(":")
        problems = _kind_problems(kind, arg if colon else None)
        if not at or not day_text:
            problems.append("missing '@DAY': write KIND@DAY, e.g. discount_drop@3")
            date = None
        else:
            date, day_problems = _parse_day(day_text, start)
            problems += day_problems
        if problems or date is None:
            raise ConfigError("--fault", [f"{text!r}: {p}" for p in problems])
        return cls(kind=kind, date=date, arg=arg if colon else None)


@dataclass(frozen=True)
class FaultPlan:
    """Answers "which faults act on this partition?" for a set of faults."""

    faults: tuple[Fault, ...]

    def at(self, kind: str, ordinal: int) -> bool:
        """A fault of this kind happens on this day."""
        return any(f.kind == kind and f.date.toordinal() == ordinal for f in self.faults)

    def since(self, kind: str, ordinal: int) -> bool:
        """A fault of this kind happened on this day or before (persistent kinds)."""
        return any(f.kind == kind and f.date.toordinal() <= ordinal for f in self.faults)

    def missing_countries(self, ordinal: int) -> list[int]:
        """Codes of the countries whose rows vanish on this day."""
        return sorted(
            COUNTRY_CODES.index(f.arg)
            for f in self.faults
            if f.kind == "missing_slice" and f.arg is not None and f.date.toordinal() == ordinal
        )


@dataclass(frozen=True, eq=False)
class Events:
    """The rows of the three event tables bound for one partition."""

    searches: Frame
    impressions: Frame
    purchases: Frame

    def concat(self, other: Events) -> Events:
        return Events(
            frame_concat([self.searches, other.searches]),
            frame_concat([self.impressions, other.impressions]),
            frame_concat([self.purchases, other.purchases]),
        )


def split_late(events: Events, seed: int, ordinal: int) -> tuple[Events, Events]:
    """(on time, late): ~30% of the day's searches arrive late, with all of their rows."""
    late = stream(seed, ordinal, _F_LATE).random(len(events.searches["search"])) < LATE_SHARE

    def part(keep: bool) -> Events:
        return Events(
            frame_take(events.searches, late[events.searches["search"]] != keep),
            frame_take(events.impressions, late[events.impressions["search"]] != keep),
            frame_take(events.purchases, late[events.purchases["search"]] != keep),
        )

    return part(True), part(False)


def drop_countries(events: Events, countries: list[int]) -> Events:
    """Remove the rows of users from these countries (``missing_slice``)."""
    if not countries:
        return events

    def keep(frame: Frame) -> Frame:
        return frame_take(frame, ~np.isin(frame["country"], countries))

    return Events(keep(events.searches), keep(events.impressions), keep(events.purchases))


def drop_discounted(purchases: Frame) -> Frame:
    """Purchases as logged after the format change that lost discounted ones."""
    return frame_take(purchases, purchases["discount_pct"] == 0.0)


def duplicate_purchases(purchases: Frame, seed: int, ordinal: int) -> Frame:
    """~5% of purchases repeated 5-20 times in a row, with the same transaction id."""
    rng = stream(seed, ordinal, _F_DUPLICATE)
    n = len(purchases["ts"])
    repeats = np.where(rng.random(n) < DUPLICATE_SHARE, rng.integers(5, 21, n), 1)
    return frame_take(purchases, np.repeat(np.arange(n), repeats))


def corrupt_purchases(purchases: Frame, seed: int, ordinal: int) -> Frame:
    """~2% of purchases get one of five corruptions (see the module docstring)."""
    rng = stream(seed, ordinal, _F_CORRUPT_PURCHASES)
    n = len(purchases["ts"])
    hit = rng.random(n) < CORRUPT_PURCHASE_SHARE
    how = np.where(hit, rng.integers(0, 5, n), -1)
    shift = rng.choice(np.array([-3, -2, 2, 3]), size=n) * DAY_US
    out = dict(purchases)
    out["price"] = np.where(how == 0, -np.abs(purchases["price"]) - 1.0, purchases["price"])
    out["price"] = np.where(how == 1, np.nan, out["price"])
    out["currency"] = np.where(how == 2, UNKNOWN_CURRENCY, purchases["currency"])
    out["ts"] = np.where(how == 3, purchases["ts"] + shift, purchases["ts"])
    out["product"] = np.where(how == 4, -1, purchases["product"])
    return out


def corrupt_products(products: Frame, seed: int, ordinal: int) -> Frame:
    """~1% of product rows get a negative or NaN price, currency XXX or a null id."""
    rng = stream(seed, ordinal, _F_CORRUPT_PRODUCTS)
    n = len(products["product"])
    how = np.where(rng.random(n) < CORRUPT_PRODUCT_SHARE, rng.integers(0, 4, n), -1)
    out = dict(products)
    out["list_price"] = np.where(how == 0, -np.abs(products["list_price"]), products["list_price"])
    out["list_price"] = np.where(how == 1, np.nan, out["list_price"])
    out["currency"] = np.where(how == 2, UNKNOWN_CURRENCY, products["currency"])
    out["null_id"] = how == 3
    return out
