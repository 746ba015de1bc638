"""Response and resolution deadlines from the bundled priority policies."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.business_hours import BusinessHours
from bridge.deadlines import deadline, on_priority_rise, resolve_by, respond_by
from bridge.model import Priority
from bridge.rules import NEXT_BUSINESS_DAY, Rules

HOURS = BusinessHours()  # Monday to Friday, 09:00-17:00 UTC
WEDNESDAY = datetime(2025, 2, 12, 14, 32, tzinfo=UTC)
FRIDAY_EVENING = datetime(2025, 2, 14, 22, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Rules:
    """The bundled rules."""
    return Rules.bundled()


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.P0, WEDNESDAY + timedelta(minutes=5)),
        (Priority.P1, WEDNESDAY + timedelta(minutes=15)),
        (Priority.P2, WEDNESDAY + timedelta(hours=2)),
        (Priority.P3, datetime(2025, 2, 13, 17, 0, tzinfo=UTC)),  # end of Thursday
    ],
)
def test_respond_by(rules: Rules, priority: Priority, expected: datetime) -> None:
    """Response deadlines count from opened_at: 5 min, 15 min, 2 h, next business day."""
    assert respond_by(rules.policy(priority), WEDNESDAY, HOURS) == expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.P0, WEDNESDAY + timedelta(hours=1)),
        (Priority.P1, WEDNESDAY + timedelta(hours=4)),
        (Priority.P2, WEDNESDAY + timedelta(hours=24)),
        (Priority.P3, WEDNESDAY + timedelta(days=14)),  # next sprint
    ],
)
def test_resolve_by(rules: Rules, priority: Priority, expected: datetime) -> None:
    """Resolution deadlines count from the earliest startsAt: 1 h, 4 h, 24 h, 14 d."""
    assert resolve_by(rules.policy(priority), WEDNESDAY, HOURS) == expected


def test_next_business_day_skips_the_weekend(rules: Rules) -> None:
    """A P3 opened on Friday evening is due at the end of Monday."""
    due = respond_by(rules.policy(Priority.P3), FRIDAY_EVENING, HOURS)
    assert due == datetime(2025, 2, 17, 17, 0, tzinfo=UTC)


def test_next_business_day_in_the_business_time_zone(rules: Rules) -> None:
    """Business hours in another zone: the end of the next local business day, as UTC."""
    berlin = BusinessHours(timezone="Europe/Berlin", start=time(8), end=time(18))
    # Friday 23:30 UTC is already Saturday 00:30 in Berlin: the next business day is Monday.
    due = respond_by(rules.policy(Priority.P3), datetime(2025, 2, 14, 23, 30, tzinfo=UTC), berlin)
    assert due == datetime(2025, 2, 17, 18, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert due.tzinfo == ZoneInfo("UTC")


def test_deadline_keeps_the_time_zone_of_its_start() -> None:
    """A duration target is added to the start as given."""
    start = datetime(2025, 2, 12, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert deadline(timedelta(minutes=15), start, HOURS) == start + timedelta(minutes=15)
    assert deadline(NEXT_BUSINESS_DAY, start, HOURS) == HOURS.next_business_day_end(start)


def test_naive_datetimes_are_refused(rules: Rules) -> None:
    """Deadlines need timezone-aware datetimes."""
    naive = datetime(2025, 2, 12, 14, 32)  # noqa: DTZ001 -- a naive datetime is what is tested
    with pytest.raises(ValueError, match="timezone-aware"):
        respond_by(rules.policy(Priority.P0), naive, HOURS)


def test_rise_sets_new_deadlines_from_the_rise(rules: Rules) -> None:
    """P2 → P0 an hour in: respond 5 min and resolve 1 h from the rise, both earlier than before."""
    opened = WEDNESDAY
    old_respond = respond_by(rules.policy(Priority.P2), opened, HOURS)  # +2 h
    old_resolve = resolve_by(rules.policy(Priority.P2), opened, HOURS)  # +24 h
    rise = opened + timedelta(hours=1)
    p0 = rules.policy(Priority.P0)
    assert on_priority_rise(old_respond, p0, rise, HOURS, which="respond") == rise + timedelta(
        minutes=5
    )
    assert on_priority_rise(old_resolve, p0, rise, HOURS, which="resolve") == rise + timedelta(
        hours=1
    )


def test_rise_never_makes_a_deadline_later(rules: Rules) -> None:
    """P2 → P1 late in the response window: the old (earlier) deadline stays."""
    opened = WEDNESDAY
    old_respond = respond_by(rules.policy(Priority.P2), opened, HOURS)  # opened + 2 h
    rise = opened + timedelta(hours=1, minutes=55)  # a P1's 15 min would end at +2h10
    p1 = rules.policy(Priority.P1)
    assert on_priority_rise(old_respond, p1, rise, HOURS, which="respond") == old_respond


def test_rise_without_an_old_deadline(rules: Rules) -> None:
    """With no old deadline (e.g. none was set), the new one counts from the rise."""
    rise = FRIDAY_EVENING
    p1 = rules.policy(Priority.P1)
    assert on_priority_rise(None, p1, rise, HOURS, which="resolve") == rise + timedelta(hours=4)


def test_rise_to_next_business_day_target(rules: Rules) -> None:
    """A keyword target after a rise is also counted from the rise and capped by the old one."""
    p3 = rules.policy(Priority.P3)
    old = WEDNESDAY + timedelta(hours=1)
    assert on_priority_rise(old, p3, WEDNESDAY, HOURS, which="respond") == old
    later = WEDNESDAY + timedelta(days=30)
    assert on_priority_rise(later, p3, WEDNESDAY, HOURS, which="respond") == datetime(
        2025, 2, 13, 17, 0, tzinfo=UTC
    )
