"""Reading values as Prometheus templates print them, in a threshold row's unit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.values import UNITS, parse_value


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        # plain numbers are in the row's unit
        ("320", "ms", 320.0),
        ("2.3", "percent", 2.3),
        ("17500", "per_second", 17500.0),
        ("6000", "count", 6000.0),
        ("-1.5", "count", -1.5),
        (".5", "percent", 0.5),
        ("5.", "percent", 5.0),
        ("+7", "count", 7.0),
        ("  78  ", "percent", 78.0),
        ("\t500.01\n", "ms", 500.01),
        # exponent form ({{ $value }} of a large or small float)
        ("7.8e+01", "percent", 78.0),
        ("1E3", "ms", 1000.0),
        ("2.5e-1", "percent", 0.25),
        # humanize: SI prefixes scale the number
        ("1.5k", "per_second", 1500.0),
        ("2M", "count", 2_000_000.0),
        ("3G", "count", 3e9),
        ("4T", "count", 4e12),
        ("320m", "ms", 0.32),
        ("5m", "count", 0.005),  # humanize's milli, never five minutes
        ("12u", "count", 12e-6),
        ("12µ", "count", 12e-6),
        ("12μ", "count", 12e-6),
        ("7n", "count", 7e-9),
        ("1.2k", "ms", 1200.0),
        ("500m", "percent", 0.5),
        ("1.5 k", "per_second", 1500.0),
        # humanize1024
        ("1Ki", "count", 1024.0),
        ("2Mi", "count", 2 * 1024.0**2),
        # humanizePercentage
        ("2.3%", "percent", 2.3),
        ("0.1%", "percent", 0.1),
        ("1e+02%", "percent", 100.0),
        ("85 %", "percent", 85.0),
        # humanizeDuration, converted to milliseconds
        ("320ms", "ms", 320.0),
        ("1.5s", "ms", 1500.0),
        ("0s", "ms", 0.0),
        ("12us", "ms", 0.012),
        ("12µs", "ms", 0.012),
        ("800ns", "ms", 0.0008),
        ("1m 30s", "ms", 90_000.0),
        ("2h 0m 5s", "ms", 7_205_000.0),
        ("1d 2h 3m 4s", "ms", 93_784_000.0),
        ("-1m 30s", "ms", -90_000.0),
        ("320 ms", "ms", 320.0),
    ],
)
def test_parse_value(text: str, unit: str, expected: float) -> None:
    """Every form a Prometheus template prints is read, converted to the row's unit."""
    value = parse_value(text, unit)
    assert value is not None
    assert value == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        # a form that does not fit the unit
        ("320ms", "percent"),
        ("1.5s", "per_second"),
        ("1m 30s", "count"),
        ("2.3%", "ms"),
        ("2.3%", "per_second"),
        ("2.3%", "count"),
        ("1.5k%", "percent"),
        # not numbers
        ("", "ms"),
        ("   ", "percent"),
        ("NaN", "ms"),
        ("nan", "percent"),
        ("+Inf", "ms"),
        ("-Inf", "count"),
        ("inf", "count"),
        ("Infinity", "count"),
        ("1e999", "count"),
        ("1e300Y", "count"),
        ("<no value>", "ms"),
        ("high", "percent"),
        ("1_000", "count"),
        ("1,000", "count"),
        ("٣", "count"),  # an Arabic-Indic digit
        ("0x10", "count"),
        ("5 m 3", "count"),
        ("1.2.3", "count"),
        ("5h", "ms"),  # humanizeDuration always prints the seconds
        ("1d", "ms"),
        ("1w", "ms"),
        ("1m30", "ms"),
        # an unknown unit
        ("5", "bytes"),
        ("5", ""),
    ],
)
def test_parse_value_rejects(text: str, unit: str) -> None:
    """A mismatched form, NaN, ±Inf, empty or garbage text, or an unknown unit gives None."""
    assert parse_value(text, unit) is None


@given(st.text(), st.sampled_from([*sorted(UNITS), "bogus"]))
def test_parse_value_never_raises(text: str, unit: str) -> None:
    """Any text gives a finite float or None, never an exception."""
    value = parse_value(text, unit)
    assert value is None or math.isfinite(value)


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(sorted(UNITS)))
def test_plain_numbers_round_trip(number: float, unit: str) -> None:
    """``repr`` of any finite float (plain or exponent form) reads back as itself, in every unit."""
    assert parse_value(repr(number), unit) == number


@given(st.floats(min_value=0.001, max_value=1e6))
def test_humanize_percentage_lands_in_percent(ratio: float) -> None:
    """A ratio printed by humanizePercentage (``%.4g%%`` of ratio*100) reads back as percent."""
    text = f"{ratio * 100:.4g}%"
    value = parse_value(text, "percent")
    assert value == pytest.approx(ratio * 100, rel=1e-3)
