"""Business hours: when P1 escalations page and when a P3's "next business day" ends. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Working days (0 = Monday) and the daily window, in one IANA time zone."""

    timezone: str = "UTC"
    days: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(17, 0)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` (timezone-aware) falls inside business hours."""
        local = at.astimezone(self.zone)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_business_day_end(self, at: datetime) -> datetime:
        """The end of the first business day strictly after the day of ``at`` (aware, in UTC)."""
        local = at.astimezone(self.zone)
        day = local.date()
        for _ in range(14):
            day += timedelta(days=1)
            if day.weekday() in self.days:
                end = datetime.combine(day, self.end, tzinfo=self.zone)
                return end.astimezone(ZoneInfo("UTC"))
        raise ValueError("business_hours.days is empty")
