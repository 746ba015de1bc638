"""GitHub's content-creation budget, shared by every replica through the store.

GitHub allows about 80 content-creating requests (POST, PATCH, PUT, DELETE) a minute and 500 an
hour per token — its secondary rate limits — and counts people's own actions on the same account
too. ``github.budget`` stays below: ``per_minute`` and ``per_hour`` (defaults 60 and 400), of
which ``reserve`` (25 %) only P0/P1 may use. Reads are not charged.

The rule is pure (:func:`wait_for_slot`); :class:`Budget` applies it to the writes the store has
recorded in the last hour, so every replica sees the same spend. One replica at a time writes to
GitHub (the store's ``github-writer`` lease), so checking and charging need no lock of their own.

When GitHub refuses anyway (403/429: a person on the same account, another tool) the budget
shrinks to half, at once and for every replica, and grows back by a tenth of the configured
limits every five minutes without a refusal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bridge import storm as storms
from bridge.clock import Clock
from bridge.github.client import GitHubError
from bridge.metrics import Metrics
from bridge.store.base import Store

log = structlog.get_logger(__name__)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
SHRINK = 0.5  # on a refusal, the factor is multiplied by this ...
FLOOR = 0.1  # ... never below this
GROW_STEP = 0.1  # and grows back by this much ...
GROW_EVERY = timedelta(minutes=5)  # ... every this long without a refusal
URGENT_RETRY = 1.0  # seconds: a P2/P3 write waiting behind a P0/P1 one looks again this soon


@dataclass(frozen=True, slots=True)
class Limits:
    per_minute: int
    per_hour: int

    def scaled(self, factor: float, share: float = 1.0) -> Limits:
        """The limits at ``factor`` of the budget, for a writer entitled to ``share`` of it."""
        return Limits(
            per_minute=max(1, math.floor(self.per_minute * factor * share)),
            per_hour=max(1, math.floor(self.per_hour * factor * share)),
        )


def wait_for_slot(writes: list[datetime], now: datetime, limits: Limits) -> float:
    """Seconds until one more write fits both sliding windows (0.0: now). ``writes`` are the
    times of the writes of the last hour, oldest first."""
    wait = timedelta(0)
    for window, limit in ((MINUTE, limits.per_minute), (HOUR, limits.per_hour)):
        inside = [w for w in writes if w > now - window]
        if len(inside) >= limit:
            # The write that must leave the window before one more fits.
            leaving = inside[len(inside) - limit]
            wait = max(wait, leaving + window - now)
    return wait.total_seconds()


def grown(factor: float, since: datetime | None, now: datetime) -> float:
    """The budget factor now, after growing back since the last refusal at ``since``."""
    if since is None:
        return 1.0
    steps = int((now - since) / GROW_EVERY)
    return min(1.0, factor + steps * GROW_STEP)


def free_slots(writes: list[datetime], now: datetime, limits: Limits) -> tuple[int, int]:
    """Writes that still fit now in the minute and in the hour window."""
    minute = sum(1 for w in writes if w > now - MINUTE)
    hour = sum(1 for w in writes if w > now - HOUR)
    return max(0, limits.per_minute - minute), max(0, limits.per_hour - hour)


class BudgetExhausted(GitHubError):
    """No write may be made now; retry after ``retry_after`` seconds (nothing was sent).
    ``spent``: the share itself is used up (not merely waiting behind a P0/P1 write)."""

    def __init__(self, message: str, retry_after: float, *, spent: bool = True) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)
        self.spent = spent


class Budget:
    """Charges GitHub writes against the shared budget, P0/P1 first."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        *,
        per_minute: int,
        per_hour: int,
        reserve: float,
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._limits = Limits(per_minute, per_hour)
        self._reserve = reserve

    async def limits(self, *, urgent: bool) -> Limits:
        factor, since = await self._store.budget_factor()
        share = 1.0 if urgent else 1.0 - self._reserve
        now_factor = grown(factor, since, self._clock())
        # The gauge follows the factor as it grows back (and as another replica shrank it),
        # not only when this one is refused.
        self._metrics.github_budget_factor.set(now_factor)
        return self._limits.scaled(now_factor, share)

    async def check(self, *, urgent: bool) -> list[datetime]:
        """Whether one more write fits now: BudgetExhausted saying when to try again if not;
        else the last hour's writes, for ``charge`` once the write has been sent."""
        now = self._clock()
        if not urgent and await self._store.urgent_waiting(now):
            raise BudgetExhausted(
                "a P0/P1 write is waiting: P2/P3 writes go after it", URGENT_RETRY, spent=False
            )
        writes = await self._store.writes_since(now - HOUR)
        wait = wait_for_slot(writes, now, await self.limits(urgent=urgent))
        if wait > 0:
            self._observe(writes, now, wait)
            raise BudgetExhausted(
                f"GitHub write budget spent ({'P0/P1' if urgent else 'P2/P3'}): next slot in"
                f" {wait:.1f}s",
                wait,
            )
        return writes

    async def charge(self, writes: list[datetime]) -> None:
        """Charge one write that was sent (``writes``: what ``check`` returned). A request
        that never reached GitHub is not charged: retries while GitHub is unreachable must not
        spend the budget that new incidents need once it is back."""
        now = self._clock()
        await self._store.record_write(now)
        self._observe([*writes, now], now, 0.0)

    async def spare(self) -> int:
        """How many P2/P3 writes may be asked for now without eating into what the hour's
        P2/P3 share keeps for the roll-ups and ordinary updates (storm.promotions); 0 while a
        P0/P1 write waits."""
        now = self._clock()
        if await self._store.urgent_waiting(now):
            return 0
        limits = await self.limits(urgent=False)
        minute, hour = free_slots(await self._store.writes_since(now - HOUR), now, limits)
        return storms.promotions(minute, hour, limits.per_hour)

    async def refused(self, retry_after: float | None) -> None:
        """GitHub said 403/429 to a write: halve the budget, for every replica."""
        factor, since = await self._store.budget_factor()
        now = self._clock()
        new = max(FLOOR, grown(factor, since, now) * SHRINK)
        await self._store.set_budget_factor(new, now)
        self._metrics.github_budget_factor.set(new)
        log.warning("github_budget_shrunk", factor=new, retry_after=retry_after)

    def _observe(self, writes: list[datetime], now: datetime, wait: float) -> None:
        minute = sum(1 for w in writes if w > now - MINUTE)
        self._metrics.github_budget_used.labels(window="minute").set(minute)
        self._metrics.github_budget_used.labels(window="hour").set(len(writes))
        self._metrics.github_budget_next_slot.set(wait)
