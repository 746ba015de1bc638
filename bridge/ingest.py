"""Accepting one notification: identity → engine → one durable store transaction.

The same path applies every other change of an incident's state — a timer coming due, a GitHub
event, reconciliation with Alertmanager — through ``Ingestor.apply``: a pure step on the latest
incident of a key, in one transaction, with the notifications its decision calls for and, when it
resolves a P0/P1 incident, its post-incident review (bridge/review.py).

A firing heartbeat alert (``heartbeat.alertname``) is never an incident, but its arrival is
remembered as the store's ``heartbeat`` mark, which the dead man's switch (bridge/heartbeat.py)
watches.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bridge import review
from bridge.clock import Clock
from bridge.engine import Decision, Policy, apply_notification
from bridge.identity import IdentityMode, identity_key, identity_of
from bridge.measures import observe
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Incident, Notification
from bridge.store.base import Store

# A lifecycle step: the incident as stored (None: none under that key) and now → the decision.
Step = Callable[[Incident | None, datetime], Decision]

HEARTBEAT_MARK = "heartbeat"  # the store mark: when a heartbeat alert last arrived


def heartbeat_resolution(timeout: timedelta) -> timedelta:
    """How stale the ``heartbeat`` mark may be: a replica writes it at most this often (one
    write per Watchdog would be one fsync per Alertmanager repeat), so the switch allows for it
    before paging."""
    return timeout / 10


def observe_improvement(metrics: Metrics, decision: Decision) -> None:
    """MTTD / MTTA / MTTR and incident time from a committed decision (bridge/measures.py)."""
    seen = observe(decision)
    if seen is None:
        return
    priority = str(seen.priority)
    if seen.detect is not None:
        metrics.detect_by_priority(priority).observe(seen.detect)
    if seen.acknowledge is not None:
        metrics.time_to_acknowledge.labels(priority=priority).observe(seen.acknowledge)
    if seen.resolve is not None:
        metrics.time_to_resolve.labels(priority=priority).observe(seen.resolve)
    if seen.incident_time is not None:
        for service in seen.services:
            metrics.count_incident_time(service, priority, seen.incident_time)


class Ingestor:
    """Applies notifications to the store; the webhook handler's only collaborator."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        identity_mode: IdentityMode,
        clock: Clock,
        metrics: Metrics,
        on_effects: Callable[[], None] = lambda: None,
        on_timer: Callable[[datetime], None] = lambda _due: None,
        notify: Callable[[Decision], list[EffectSpec]] = lambda _decision: [],
        heartbeat_timeout: timedelta = timedelta(minutes=10),
        on_heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._identity_mode = identity_mode
        self._clock = clock
        self._metrics = metrics
        self._on_effects = on_effects
        self._on_timer = on_timer  # a committed incident's next timer (the scheduler's wake)
        self._notify = notify
        self._heartbeat_every = heartbeat_resolution(heartbeat_timeout)
        self._on_heartbeat = on_heartbeat
        self._heartbeat_written: datetime | None = None  # the mark this process last wrote

    async def ingest(self, notification: Notification) -> Decision:
        identity = identity_of(notification, self._identity_mode)
        key = identity_key(identity)

        def decide(current: Incident | None) -> Decision:
            now = self._clock()
            decision = apply_notification(current, notification, now, self._policy)
            # Messages are effects of the same transaction: told once, whatever happens next.
            decision.effects.extend(self._notify(decision))
            review.request(current, decision, now)  # a P0/P1 resolved: its review
            return decision

        decision = await self._store.ingest(key, identity, decide)
        observe_improvement(self._metrics, decision)
        self._metrics.alerts.inc(len(notification.alerts))
        self._metrics.notifications_by_outcome(decision.outcome).inc()
        opened = decision.incident if decision.outcome == "opened" else None
        if opened is not None and opened.kind == "incident":
            self._metrics.opened_by_priority(str(opened.priority)).inc()
        if decision.incident is not None and any(e.kind == "flapping" for e in decision.events):
            self._metrics.flapping.labels(priority=str(decision.incident.priority)).inc()
        if decision.effects:
            self._on_effects()
        self._timer_of(decision)
        heartbeat = self._policy.heartbeat_alertname
        if any(
            alert.status == "firing" and alert.labels.get("alertname") == heartbeat
            for alert in notification.alerts
        ):
            await self._heartbeat()
        return decision

    def _timer_of(self, decision: Decision) -> None:
        if decision.changed and decision.incident is not None:
            due = decision.incident.due_at
            if due is not None:
                self._on_timer(due)

    async def _heartbeat(self) -> None:
        """Remember that the heartbeat arrived. Skipped while this process wrote the mark less
        than ``heartbeat_resolution`` ago; that never skips the heartbeat's return after an
        outage: the switch pages only once the mark is older than the timeout, so this
        process's own last write (never later than the mark) is older still."""
        now = self._clock()
        written = self._heartbeat_written
        if written is not None and timedelta(0) <= now - written < self._heartbeat_every:
            return
        await self._store.set_mark(HEARTBEAT_MARK, now)
        self._heartbeat_written = now
        self._on_heartbeat()

    async def apply(
        self, key: str, identity: str, step: Step, *, incident_id: int | None = None
    ) -> Decision:
        """Run ``step`` on the latest incident of ``key`` in one store transaction and persist
        its decision with the notifications it calls for. With ``incident_id``, only that
        incident is stepped: when a newer incident took the key, nothing changes."""

        def decide(current: Incident | None) -> Decision:
            if incident_id is not None and (current is None or current.id != incident_id):
                return Decision(outcome="unchanged", incident=current)
            now = self._clock()
            decision = step(current, now)
            decision.effects.extend(self._notify(decision))
            review.request(current, decision, now)
            return decision

        decision = await self._store.ingest(key, identity, decide)
        observe_improvement(self._metrics, decision)
        if decision.effects:
            self._on_effects()
        self._timer_of(decision)
        return decision
