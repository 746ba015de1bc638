"""The GitHub write budget's rule: sliding windows, the reserve, shrinking and growing back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.github.budget import GROW_EVERY, Limits, grown, wait_for_slot

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def every(seconds: float, count: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(seconds=seconds * i) for i in range(count)]


@pytest.mark.parametrize(
    ("writes", "now", "limits", "wait"),
    [
        ([], T0, Limits(60, 400), 0.0),
        (every(1, 59), T0 + timedelta(seconds=59), Limits(60, 400), 0.0),
        # The 61st write in a minute waits until the first leaves the window.
        (every(1, 60), T0 + timedelta(seconds=59.5), Limits(60, 400), 0.5),
        (every(1, 60), T0 + timedelta(seconds=60), Limits(60, 400), 0.0),
        # An hour's worth, spread out: the minute window is free, the hour is not.
        (every(9, 400), T0 + timedelta(seconds=3595), Limits(60, 400), 5.0),
        (every(9, 400), T0 + timedelta(seconds=3600), Limits(60, 400), 0.0),
        # Both full: the later of the two.
        (every(0.1, 10), T0 + timedelta(seconds=1), Limits(10, 10), 3599.0),
    ],
)
def test_a_write_waits_for_a_slot_in_both_windows(
    writes: list[datetime], now: datetime, limits: Limits, wait: float
) -> None:
    """A write fits when fewer than the limit were made in the last minute and the last hour."""
    assert wait_for_slot(writes, now, limits) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("factor", "share", "expected"),
    [
        (1.0, 1.0, Limits(60, 400)),
        (1.0, 0.75, Limits(45, 300)),  # P2/P3: everything but the 25 % reserve
        (0.5, 1.0, Limits(30, 200)),
        (0.5, 0.75, Limits(22, 150)),
        (0.001, 0.75, Limits(1, 1)),  # never zero: the queue always moves
    ],
)
def test_limits_scale_with_the_factor_and_the_reserve(
    factor: float, share: float, expected: Limits
) -> None:
    """P0/P1 may use the whole budget; P2/P3 all but the reserve; a shrunk budget scales both."""
    assert Limits(60, 400).scaled(factor, share) == expected


@pytest.mark.parametrize(
    ("factor", "since", "now", "expected"),
    [
        (0.5, None, T0, 1.0),  # never refused: the full budget
        (0.5, T0, T0, 0.5),
        (0.5, T0, T0 + GROW_EVERY - timedelta(seconds=1), 0.5),
        (0.5, T0, T0 + GROW_EVERY, 0.6),
        (0.5, T0, T0 + 3 * GROW_EVERY, 0.8),
        (0.5, T0, T0 + 10 * GROW_EVERY, 1.0),  # capped
    ],
)
def test_a_shrunk_budget_grows_back_slowly(
    factor: float, since: datetime | None, now: datetime, expected: float
) -> None:
    """A tenth of the budget back every five minutes without a refusal."""
    assert grown(factor, since, now) == pytest.approx(expected)
