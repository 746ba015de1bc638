"""Prometheus-style durations: ``30s``, ``15m``, ``1h30m``, ``7d``, ``500ms``.

The grammar is Prometheus' own (``model.ParseDuration``): one or more ``<integer><unit>`` terms
with the units in descending order, each at most once — ``y`` (365 days), ``w``, ``d``, ``h``,
``m``, ``s``, ``ms`` — or the bare ``0``. No sign, no fractions, no spaces. Pure module.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

# (suffix, length of one unit in milliseconds), largest first: the order the grammar demands.
_UNITS: tuple[tuple[str, int], ...] = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)

# [0-9] rather than \d: \d would also match non-ASCII (e.g. Arabic-Indic) digits.
_DURATION_RE = re.compile(
    "".join(f"(?:(?P<{'u_' + suffix}>[0-9]+){suffix})?" for suffix, _ in _UNITS)
)

_MAX_MS = int(timedelta.max / timedelta(milliseconds=1))


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration such as ``"1h30m"``; ``ValueError`` for anything else.

    Empty strings, signs (``-5m``), fractions (``1.5h``), bare numbers other than ``0``, unknown
    or repeated units and units out of order (``30s1m``) are all rejected, as Prometheus does.
    """
    if not isinstance(text, str):
        raise TypeError(f"a duration must be a string, not {type(text).__name__}")
    if text == "0":
        return timedelta(0)
    match = _DURATION_RE.fullmatch(text) if text else None
    if match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"not a valid duration: {text!r} (use Prometheus units, e.g. 30s, 15m, 1h30m, 7d)"
        )
    total_ms = 0
    for suffix, unit_ms in _UNITS:
        amount = match.group("u_" + suffix)
        if amount is not None:
            total_ms += int(amount) * unit_ms
    if total_ms > _MAX_MS:
        raise ValueError(f"duration is too long: {text!r}")
    return timedelta(milliseconds=total_ms)


def format_duration(value: timedelta) -> str:
    """The canonical Prometheus spelling of ``value``: 1 hour 30 minutes is ``1h30m``.

    Zero is ``0s``; whole days are written in ``y`` or ``w`` only when they divide exactly
    (``90d``, ``2w``, ``1y``). Precision is one millisecond (anything finer is dropped, as
    Prometheus durations have none). Negative durations have no Prometheus spelling:
    ``ValueError``.
    """
    if value < timedelta(0):
        raise ValueError("negative durations cannot be formatted")
    remaining = value // timedelta(milliseconds=1)
    if remaining == 0:
        return "0s"
    day_ms = 24 * 3600 * 1000
    days, remaining = divmod(remaining, day_ms)
    parts: list[str] = []
    # Whole days read best as given (90d, not 12w6d): years or weeks only when they are exact.
    if days:
        if days % 365 == 0:
            parts.append(f"{days // 365}y")
        elif days % 7 == 0:
            parts.append(f"{days // 7}w")
        else:
            parts.append(f"{days}d")
    for suffix, unit_ms in _UNITS:
        if unit_ms >= day_ms:
            continue
        amount, remaining = divmod(remaining, unit_ms)
        if amount:
            parts.append(f"{amount}{suffix}")
    return "".join(parts)
