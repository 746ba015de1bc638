"""Response and resolution deadlines from a priority's policy. Pure.

CONTRACT.md: response deadlines count from the incident's ``opened_at``, resolution deadlines
from the earliest alert ``startsAt``; a target is a duration (added) or ``next_business_day``
(the end of the next business day, :meth:`BusinessHours.next_business_day_end`). A priority rise
sets the new priority's deadlines from the moment of the rise, never later than the old ones.
All datetimes are timezone-aware; a naive one is a ValueError.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from bridge.business_hours import BusinessHours
from bridge.rules import PriorityPolicy, Target

__all__ = ["deadline", "on_priority_rise", "resolve_by", "respond_by"]


def deadline(target: Target, start: datetime, hours: BusinessHours) -> datetime:
    """When ``target`` counted from ``start`` runs out."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("deadlines need a timezone-aware datetime")
    if isinstance(target, timedelta):
        return start + target
    return hours.next_business_day_end(start)


def respond_by(policy: PriorityPolicy, opened_at: datetime, hours: BusinessHours) -> datetime:
    """The response (acknowledgement) deadline of an incident opened at ``opened_at``."""
    return deadline(policy.respond, opened_at, hours)


def resolve_by(
    policy: PriorityPolicy, earliest_starts_at: datetime, hours: BusinessHours
) -> datetime:
    """The resolution deadline of an incident whose earliest alert started at the given time."""
    return deadline(policy.resolve, earliest_starts_at, hours)


def on_priority_rise(
    old_by: datetime | None,
    new_policy: PriorityPolicy,
    rise_at: datetime,
    hours: BusinessHours,
    *,
    which: Literal["respond", "resolve"],
) -> datetime:
    """The deadline after a rise to ``new_policy``'s priority at ``rise_at``.

    The new priority's target counted from the rise, but never later than the old deadline
    (``old_by``; None when there was none).
    """
    target = new_policy.respond if which == "respond" else new_policy.resolve
    new_by = deadline(target, rise_at, hours)
    return new_by if old_by is None else min(old_by, new_by)
