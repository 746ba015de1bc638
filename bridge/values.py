"""Read a value as Prometheus alert templates print it, in a threshold row's unit. Pure.

Understood forms (CONTRACT.md, classification step 4), with surrounding whitespace ignored:

- a plain number, also in exponent form: ``320``, ``-1.5``, ``7.8e+01``;
- ``humanize``: an SI prefix after the number, ``1.5k`` ``2M`` ``3G`` ``4T`` ``5P`` ``6E``
  ``7Z`` ``8Y``, and below one ``320m`` (= 0.32) ``12u``/``12µ`` ``5n`` ``p`` ``f`` ``a`` ``z``
  ``y``; ``humanize1024``'s ``Ki`` .. ``Yi`` as well;
- ``humanizePercentage``: ``2.3%``;
- ``humanizeDuration``: ``320ms``, ``12us``, ``5ns``, ``1.5s``, ``1m 30s``, ``2h 0m 5s``,
  ``1d 2h 3m 4s`` (every duration ends in ``s``, so a bare ``5m`` is humanize's milli, never
  five minutes — Prometheus's humanizeDuration always prints the seconds).

How a form fits a unit:

==============  =============================  ==========================  ==========
unit            plain / SI-prefixed number     ``N%``                      duration
==============  =============================  ==========================  ==========
``ms``          milliseconds                   no                          → ms
``percent``     percent                        percent                     no
``per_second``  per second                     no                          no
``count``       a count                        no                          no
==============  =============================  ==========================  ==========

An SI prefix only scales the number: ``1.2k`` on a ``ms`` row is 1200 ms and ``500m`` on a
``percent`` row is 0.5 %. A form that does not fit the unit, NaN, ±Inf, an empty text or
anything else gives ``None``; ``parse_value`` never raises.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal, get_args

__all__ = ["UNITS", "Unit", "parse_value"]

Unit = Literal["ms", "percent", "per_second", "count"]
UNITS: Final[frozenset[str]] = frozenset(get_args(Unit))

# ASCII digits only: str.isdigit and \d would accept other scripts' digits.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"

_SI: Final[dict[str, float]] = {
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Z": 1e21,
    "Y": 1e24,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,  # MICRO SIGN
    "μ": 1e-6,  # GREEK SMALL LETTER MU
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
    "a": 1e-18,
    "z": 1e-21,
    "y": 1e-24,
    **{f"{p}i": 1024.0 ** (n + 1) for n, p in enumerate("KMGTPEZY")},
}
_SUB_SECOND: Final[dict[str, float]] = {
    p: _SI[p] for p in ("", "m", "u", "µ", "μ", "n", "p", "f", "a", "z", "y")
}

_SI_NUMBER_RE = re.compile(rf"(?P<num>{_NUMBER})\s*(?P<prefix>[kMGTPEZYmuµμnpfazy]|[KMGTPEZY]i)?")
_PERCENT_RE = re.compile(rf"(?P<num>{_NUMBER})\s*%")
# humanizeDuration below one minute: "1.5s", "320ms", "12us", "0s".
_SECONDS_RE = re.compile(rf"(?P<num>{_NUMBER})\s*(?P<prefix>[munpfazyµμ]?)s")
# humanizeDuration from one minute: "1m 30s", "2h 0m 5s", "1d 2h 3m 4s" (seconds always printed).
_COMPOUND_RE = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<d>[0-9]+)d\s*)?(?:(?P<h>[0-9]+)h\s*)?(?:(?P<m>[0-9]+)m\s*)?"
    r"(?P<s>[0-9]+(?:\.[0-9]*)?)s"
)
_SECONDS_PER = {"d": 86400.0, "h": 3600.0, "m": 60.0}


def parse_value(text: str, unit: str) -> float | None:
    """``text`` read as a number in ``unit`` (ms, percent, per_second, count), else None."""
    value = _parse(text, unit) if isinstance(text, str) else None
    if value is None or not math.isfinite(value):
        return None
    return value


def _parse(text: str, unit: str) -> float | None:
    text = text.strip()
    if unit not in UNITS or not text:
        return None

    found = _SI_NUMBER_RE.fullmatch(text)
    if found is not None:
        return float(found["num"]) * _SI[found["prefix"] or ""]

    found = _PERCENT_RE.fullmatch(text)
    if found is not None:
        return float(found["num"]) if unit == "percent" else None

    seconds = _duration_seconds(text)
    if seconds is not None:
        return seconds * 1000.0 if unit == "ms" else None
    return None


def _duration_seconds(text: str) -> float | None:
    """A humanizeDuration text in seconds, or None when ``text`` is not one."""
    found = _SECONDS_RE.fullmatch(text)
    if found is not None:
        return float(found["num"]) * _SUB_SECOND[found["prefix"]]
    found = _COMPOUND_RE.fullmatch(text)
    if found is None or not (found["d"] or found["h"] or found["m"]):
        return None
    total = float(found["s"])
    for part, factor in _SECONDS_PER.items():
        if found[part]:
            total += int(found[part]) * factor
    return -total if found["sign"] == "-" else total
