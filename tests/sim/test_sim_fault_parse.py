"""Fault.parse: the ``--fault KIND@DAY`` syntax, and errors that say what would be valid."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spindle.core import ConfigError, SpindleError
from spindle.sim import COUNTRIES, FAULT_KINDS, Fault

START = dt.date(2026, 1, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("discount_drop@1", Fault("discount_drop", START)),
        ("late_data@3", Fault("late_data", dt.date(2026, 1, 3))),
        ("missing_slice:DE@2", Fault("missing_slice", dt.date(2026, 1, 2), "DE")),
        ("label_flip@2026-02-10", Fault("label_flip", dt.date(2026, 2, 10))),
        ("  schema_change@40 ", Fault("schema_change", dt.date(2026, 2, 9))),
    ],
)
def test_parse_accepts_day_numbers_and_iso_dates(text: str, expected: Fault) -> None:
    assert Fault.parse(text, START) == expected


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("nonsense@3", ["unknown fault kind 'nonsense'", *FAULT_KINDS]),
        ("missing_slice@3", ["needs a country", *COUNTRIES]),
        ("missing_slice:XX@3", ["country 'XX'", *COUNTRIES]),
        ("late_data:DE@3", ["takes no argument"]),
        ("late_data@0", ["day '0'", "ISO date", "2026-01-01"]),
        ("late_data@-2", ["day '-2'"]),
        ("late_data@tomorrow", ["day 'tomorrow'"]),
        ("late_data@2026-13-01", ["day '2026-13-01'"]),
        ("late_data", ["missing '@DAY'"]),
        ("late_data@", ["missing '@DAY'"]),
    ],
)
def test_parse_errors_name_the_problem_and_the_valid_values(text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Fault.parse(text, START)
    assert isinstance(info.value, SpindleError)
    assert info.value.path == "--fault"
    message = str(info.value)
    assert repr(text) in message
    for needle in needles:
        assert needle in message


def test_parse_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Fault.parse("bogus@someday", START)
    assert len(info.value.problems) == 2


def test_constructing_an_invalid_fault_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown fault kind"):
        Fault("flood", START)
    with pytest.raises(ConfigError, match="needs a country"):
        Fault("missing_slice", START)


@given(
    kind=st.sampled_from(FAULT_KINDS),
    offset=st.integers(min_value=0, max_value=3000),
    country=st.sampled_from(sorted(COUNTRIES)),
)
def test_str_and_parse_round_trip(kind: str, offset: int, country: str) -> None:
    fault = Fault(
        kind, START + dt.timedelta(days=offset), country if kind == "missing_slice" else None
    )
    assert Fault.parse(str(fault), START) == fault
    number = str(fault).replace(fault.date.isoformat(), str(offset + 1))
    assert Fault.parse(number, START) == fault
