"""The scheduler: fires incidents' timers from durable state.

A timer is not a sleeping task but a column: every save of an incident writes its next due
moment (``Incident.due_at``: the response or resolution deadline, the next escalation round, the
end of a flapping incident's quiet period) to the store, indexed. This loop asks the store for
the incidents whose moment has come and applies the timer *steps* (pure functions of the
incident and now, e.g. ``bridge.sla.step``) to each through ``Ingestor.apply``: one transaction
per incident on its identity, the same path a webhook takes. Firing is therefore exactly once
whoever fires it — two replicas that find the same due incident serialize on its identity, and
the second finds its state already moved on (a breach recorded, an escalation round counted),
so it decides nothing. What a step asks for outside (a comment, a page) is an outbox effect of
that transaction, claimed with a lease and a fencing token like every other.

*Ticks* are the periodic checks that belong to no incident (the heartbeat's dead man's switch):
each runs once per pass with the current time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import structlog

from bridge.clock import Clock
from bridge.engine import Decision
from bridge.ingest import Ingestor, Step
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Incident
from bridge.store.base import Store, StoreUnavailable

log = structlog.get_logger(__name__)

# A timer step: the incident (open, its ``due_at`` come) and now → a decision; unchanged when
# none of its timers is due.
TimerStep = Callable[[Incident, datetime], Decision]
Tick = Callable[[datetime], Awaitable[None]]

_IDLE_POLL = 5.0  # seconds: the longest sleep, so a timer set by another replica is seen soon
_BATCH = 100
_MIN_PAUSE = 0.05  # seconds between passes, however much is due


def _name(tick: Tick) -> str:
    return getattr(tick, "__qualname__", None) or repr(tick)


def chain(steps: Sequence[TimerStep]) -> Step:
    """One lifecycle step that runs ``steps`` in order on the evolving incident, merging their
    events and effects (a ``github.sync`` asked for twice is queued once)."""

    def step(current: Incident | None, now: datetime) -> Decision:
        merged = Decision(outcome="unchanged", incident=current)
        if current is None:
            return merged
        incident = current
        for timer in steps:
            decision = timer(incident, now)
            if not decision.changed or decision.incident is None:
                continue
            incident = decision.incident
            merged.changed = True
            merged.outcome = "timer"
            merged.incident = incident
            merged.events.extend(decision.events)
            for effect in decision.effects:
                if effect.kind == "github.sync" and any(
                    e.kind == "github.sync" for e in merged.effects
                ):
                    continue
                merged.effects.append(effect)
        if merged.changed:
            merged.effects[:] = _sync_after_comments(merged.effects)
        return merged

    return step


def _sync_after_comments(effects: list[EffectSpec]) -> list[EffectSpec]:
    """The sync renders the latest state: it goes after the comments the steps asked for."""
    github = [e for e in effects if e.kind.startswith("github.")]
    comments = [e for e in github if e.kind != "github.sync"]
    syncs = [e for e in github if e.kind == "github.sync"]
    others = [e for e in effects if not e.kind.startswith("github.")]
    return comments + syncs + others


class Scheduler:
    """Fires due timers; runs on every replica (firing is idempotent, see the module doc)."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        clock: Clock,
        steps: Sequence[TimerStep],
        ticks: Sequence[Tick] = (),
        *,
        metrics: Metrics | None = None,
        batch: int = _BATCH,
        idle_poll: float = _IDLE_POLL,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._ingestor = ingestor
        self._clock = clock
        self._step = chain(steps)
        self._ticks = tuple(ticks)
        self._batch = batch
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._stopping = False
        # When the loop will look again on its own (None while a pass runs, or before it ran).
        self._sleeping_until: datetime | None = None

    def wake(self) -> None:
        """Look now."""
        self._wake.set()

    @property
    def asleep_until(self) -> datetime | None:
        """When the loop will look again on its own; None while a pass runs."""
        return self._sleeping_until

    def wake_for(self, due: datetime | None) -> None:
        """A change committed an incident whose next timer is ``due``: look now if that is
        before the loop would look on its own (a burst of new incidents, due in minutes, wakes
        nothing); always while a pass runs, which may have read the due incidents already."""
        until = self._sleeping_until
        if due is not None and (until is None or due < until):
            self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Fire every timer due now and run the ticks; return how many incidents changed."""
        now = self._clock()
        fired = 0
        for due in await self._store.due_incidents(now, self._batch):
            if self._stopping:
                break
            try:
                decision = await self._ingestor.apply(
                    due.key, due.identity, self._step, incident_id=due.id
                )
            except StoreUnavailable:
                raise
            except Exception:  # a bug on one incident must not hold up the timers after it
                log.exception("timer_failed", incident_id=due.id, due_at=due.due_at.isoformat())
                continue
            if decision.changed:
                fired += 1
                self._count(decision)
                log.info(
                    "timer",
                    incident=decision.incident.display_id if decision.incident else None,
                    due_at=due.due_at.isoformat(),
                    events=[e.kind for e in decision.events],
                    effects=len(decision.effects),
                )
            else:
                # Due, yet no step had anything to do: a bug, not a reason to spin.
                log.warning("timer_not_handled", incident_id=due.id, due_at=due.due_at.isoformat())
        for tick in self._ticks:
            try:
                await tick(self._clock())
            except StoreUnavailable as error:
                log.warning("scheduler_tick_store_unavailable", tick=_name(tick), error=str(error))
            except Exception:  # one failing tick must not keep the others from running
                log.exception("scheduler_tick_failed", tick=_name(tick))
        return fired

    def _count(self, decision: Decision) -> None:
        """The steps are pure: what they decided is counted here, once it is committed."""
        incident = decision.incident
        if self._metrics is None or incident is None:
            return
        for event in decision.events:
            if event.kind == "sla_breached":
                self._metrics.sla_breaches.labels(
                    priority=str(incident.priority), kind=str(event.data.get("which"))
                ).inc()

    async def next_pass(self) -> float:
        """One pass of the loop: fire what is due and run the ticks; return how many seconds
        to wait before the next pass (a wake-up cuts the wait short)."""
        try:
            fired = await self.run_once()
            due = await self._store.next_timer()
        except StoreUnavailable as error:
            log.warning("scheduler_store_unavailable", error=str(error))
            return self._idle_poll
        except Exception:  # a bug must not end the loop
            log.exception("scheduler_crashed")
            return self._idle_poll
        if due is None:
            return self._idle_poll
        wait = (due - self._clock()).total_seconds()
        if wait <= 0 and not fired:
            # Due, yet nothing fired (no step handles it, logged above): not a reason to spin.
            return self._idle_poll
        return min(self._idle_poll, max(0.0, wait))

    async def run_forever(self) -> None:
        """Work until ``stop()``: sleep until the next due timer, a wake-up or the idle poll."""
        while not self._stopping:
            self._wake.clear()
            self._sleeping_until = None
            timeout = await self.next_pass()
            if self._stopping:
                break
            # Never spin: at least a short pause between passes.
            pause = max(timeout, _MIN_PAUSE)
            self._sleeping_until = self._clock() + timedelta(seconds=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
