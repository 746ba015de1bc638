"""The dead man's switch: the always-firing heartbeat alert (``heartbeat.alertname``, default
``Watchdog``) stops arriving → a P0 incident "Alerting pipeline is down"; it returns → resolved.

Each replica's ingestor records the heartbeat's arrival as the store's ``heartbeat`` mark
(bridge/ingest.py, at most every ``timeout / 10``). :meth:`Heartbeat.check` is a tick of the
scheduler (bridge/scheduler.py) on every replica:

* never seen (no mark): nothing — the switch arms on the first heartbeat, so a setup without a
  Watchdog is never paged for it;
* the mark older than ``timeout`` (plus the mark's own ``timeout / 10`` resolution, so it never
  pages before a whole ``timeout`` has passed without a heartbeat), and this process up for as
  long (a bridge that was down itself heard no heartbeat: it gives Alertmanager one ``timeout``
  to deliver the next before paging): :func:`outage_step` opens the incident on its fixed
  identity ``heartbeat:<alertname>`` — or reopens it within ``github.reopen_window`` of its last
  resolution, like any incident;
* the mark fresh again while the incident is open: :func:`return_step` resolves it, as of the
  heartbeat's return.

Both are steps applied through ``Ingestor.apply``: one transaction on the fixed identity, so
however many replicas see the outage, it is opened (and resolved) once, and the notify policy
tells Slack and the P0 stakeholders (email + SMS) as for any P0 incident.

The incident has no alerts: nothing in Alertmanager stands for it, so reconciliation leaves it
alone. Its ``earliest_starts_at`` is when the current outage began (the last heartbeat before
it); an outage the incident already covers — open, or closed by hand — is not opened again.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta

import structlog

from bridge.clock import Clock
from bridge.durations import format_duration
from bridge.engine import Decision, Policy, Timeline, mark_resolved, reopen_episode, synced
from bridge.identity import identity_key
from bridge.ingest import HEARTBEAT_MARK, Ingestor, Step, heartbeat_resolution
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Incident, Priority
from bridge.store.base import Store

log = structlog.get_logger(__name__)

RULE = "heartbeat"  # the incident's priority_rule: what decided P0
RESOLUTION = "heartbeat"  # Incident.resolution when the heartbeat returned
RECEIVER = "incident-bridge"  # no Alertmanager receiver stands for this incident


def heartbeat_identity(alertname: str) -> str:
    """The pipeline-down incident's fixed identity (its key is the identity's sha256)."""
    return f"heartbeat:{alertname}"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _texts(alertname: str, timeout: timedelta, last_seen: datetime) -> dict[str, str]:
    summary = f"Alerting pipeline is down: no {alertname} for {format_duration(timeout)}"
    description = (
        f"No {alertname} alert has reached incident-bridge since {_stamp(last_seen)}"
        f" (heartbeat.timeout {format_duration(timeout)}). Prometheus, Alertmanager or the"
        " route from Alertmanager to the bridge may be down: other alerts may not be arriving"
        f" either. Resolves when the {alertname} arrives again."
    )
    return {"summary": summary, "description": description}


def outage_step(alertname: str, timeout: timedelta, last_seen: datetime, policy: Policy) -> Step:
    """The heartbeat has not been seen since ``last_seen``: open the pipeline-down incident,
    reopen it within the reopen window, or leave it (already open, or this outage closed by
    hand)."""

    def step(current: Incident | None, now: datetime) -> Decision:
        unchanged = Decision(outcome="unchanged", incident=current)
        if current is not None and (
            current.state == "open" or current.earliest_starts_at >= last_seen
        ):
            return unchanged
        texts = _texts(alertname, timeout, last_seen)
        since = f"no {alertname} since {_stamp(last_seen)}"
        reopen = (
            current is not None
            and current.resolved_at is not None
            and now - current.resolved_at <= policy.reopen_window
        )
        if current is not None and reopen:
            incident = copy.copy(current)
            reopen_episode(incident, Priority.P0, RULE, last_seen, now, policy)
            incident.earliest_starts_at = last_seen  # this outage's start
            incident.summary = texts["summary"]
            incident.common_annotations = texts
            timeline = Timeline(incident)
            event = timeline.add(
                now, "reopened", f"Reopened as P0: {since}", priority="P0", why=since
            )
            return Decision(
                outcome="reopened",
                incident=incident,
                changed=True,
                events=timeline.events,
                effects=[
                    EffectSpec("github.comment", event_seq=event.seq),
                    EffectSpec("github.sync"),
                ],
            )
        identity = heartbeat_identity(alertname)
        incident = Incident(
            key="",  # the store fills key and identity
            identity="",
            kind="incident",
            receiver=RECEIVER,
            group_key=identity,
            group_labels={},
            state="open",
            priority=Priority.P0,
            priority_rule=RULE,
            summary=texts["summary"],
            opened_at=now,
            earliest_starts_at=last_seen,
            respond_by=policy.respond_by(Priority.P0, now),
            resolve_by=policy.resolve_by(Priority.P0, last_seen),
            common_annotations=texts,
        )
        timeline = Timeline(incident)
        timeline.add(now, "opened", f"Incident opened as P0 ({RULE}): {since}", priority="P0")
        return synced("opened", incident, timeline.events, is_new=True)

    return step


def return_step(alertname: str, returned_at: datetime) -> Step:
    """The heartbeat arrived again at ``returned_at``: an open pipeline-down incident is
    resolved as of then, with the usual comment and close."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if current is None or current.state != "open":
            return Decision(outcome="unchanged", incident=current)
        incident = copy.copy(current)
        duration = mark_resolved(incident, min(returned_at, now), RESOLUTION)
        assert incident.resolved_at is not None
        timeline = Timeline(incident)
        why = f"{alertname} arrives again after {duration} without it"
        event = timeline.add(
            incident.resolved_at, "resolved", f"Resolved: {why}", duration=duration, why=why
        )
        return Decision(
            outcome="resolved",
            incident=incident,
            changed=True,
            events=timeline.events,
            effects=[EffectSpec("github.comment", event_seq=event.seq), EffectSpec("github.sync")],
        )

    return step


class Heartbeat:
    """The scheduler's heartbeat tick (:meth:`check`), one per replica."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        policy: Policy,
        alertname: str,
        timeout: timedelta,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._policy = policy
        self._alertname = alertname
        self._timeout = timeout
        self._stale_after = timeout + heartbeat_resolution(timeout)
        self._metrics = metrics
        self._started = clock()  # a heartbeat missed while this process was down is no outage
        self.identity = heartbeat_identity(alertname)
        self.key = identity_key(self.identity)
        self._armed: bool | None = None  # None until the first check
        # What this process last did: the outage (its last heartbeat) it opened or found
        # handled, and whether an incident may be open (None: not known since start-up).
        self._outage: datetime | None = None
        self._maybe_open: bool | None = None

    async def check(self, now: datetime) -> None:
        """One look at the mark: open, resolve, or nothing."""
        last = await self._store.mark(HEARTBEAT_MARK)
        self._log_arming(last)
        if last is None:
            return
        self._metrics.heartbeat_last_seen.set(last.timestamp())
        if now - last > self._stale_after:
            if now - self._started <= self._stale_after:
                return  # missed while this process was down, maybe: wait for the next one
            self._metrics.heartbeat_missing.set(1)
            if self._outage == last:
                return  # this outage is handled: no transaction per tick
            decision = await self._ingestor.apply(
                self.key,
                self.identity,
                outage_step(self._alertname, self._timeout, last, self._policy),
            )
            self._outage, self._maybe_open = last, True
            if decision.changed and decision.incident is not None:
                if decision.is_new:
                    self._metrics.incidents_opened.labels(priority=str(Priority.P0)).inc()
                log.warning(
                    "heartbeat_missing",
                    alertname=self._alertname,
                    last_seen=last.isoformat(),
                    incident=decision.incident.display_id,
                    outcome=decision.outcome,
                )
            return
        self._metrics.heartbeat_missing.set(0)
        if self._maybe_open is False:
            return
        decision = await self._ingestor.apply(
            self.key, self.identity, return_step(self._alertname, last)
        )
        self._outage, self._maybe_open = None, False
        if decision.changed and decision.incident is not None:
            log.info(
                "heartbeat_returned",
                alertname=self._alertname,
                returned_at=last.isoformat(),
                incident=decision.incident.display_id,
            )

    def _log_arming(self, last: datetime | None) -> None:
        armed = last is not None
        if armed == self._armed:
            return
        if armed:
            log.info(
                "heartbeat_armed",
                alertname=self._alertname,
                timeout=format_duration(self._timeout),
                last_seen=last.isoformat() if last else None,
            )
        else:
            log.info(
                "heartbeat_not_armed",
                alertname=self._alertname,
                timeout=format_duration(self._timeout),
                note=f"armed on the first {self._alertname}; never paged before it",
            )
        self._armed = armed
