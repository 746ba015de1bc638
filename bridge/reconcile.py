"""Reconciliation with Alertmanager, and silence awareness (``alertmanager.urls``).

Webhooks are snapshots that can be lost; Alertmanager's API says what is true now. At every
``alertmanager.interval`` the :class:`Reconciler` reads ``GET /api/v2/alerts/groups`` from every
peer (:mod:`bridge.alertmanager_api`) and compares it with the open incidents. The rules are pure
functions of what the peers said (an :class:`Observation`) and of the incident; every change is a
step applied through ``Ingestor.apply`` — one transaction on the incident's identity, the path a
webhook takes — so two rounds (or two replicas) deciding the same thing change it once.

* **Present**: an alert is on a peer when the peer lists its fingerprint, whatever its state
  (active, suppressed by a silence or an inhibition, unprocessed).
* **Resolved by reconciliation**: an open incident (or maintenance request) none of whose firing
  alerts is on any peer is resolved (resolution ``reconciled``, ``resolved_at`` = now, its alerts
  resolved as by absence, so the same episode seen firing again revives them), with a comment
  and a sync like any resolution. Only when every peer answered (a peer that did not may still
  have the alert) and only when the incident last changed at least ``group_wait`` before the
  round began (a webhook that opened it while the peers were being read is not contradicted by
  an answer older than it). A silenced group never sends a resolution: this is how it resolves.
  An incident whose notifications left alerts out (``truncatedAlerts``) resolves so only once
  no peer lists its group (receiver and group labels) at all: the alerts it never saw could
  still fire while the group is there.
  As with a resolution by webhook it is a flip (bridge/flapping.py), and a flapping incident
  is not closed but waits, its alerts resolved, until quiet for the flap window.
* **Silenced**: every firing alert that is present is suppressed with a non-empty
  ``silencedBy`` on some peer → event ``silenced`` naming the silences, acknowledged by
  ``Alertmanager silence <id>`` (via ``silence``) unless already acknowledged, and ``paused_at``:
  the response and resolution deadlines stop counting (``Incident.due_at`` skips them). A group
  only partly silenced is not. What answered is enough to see a silence.
* **Unsilenced**: a paused incident whose alerts still fire but are no longer all silenced →
  event ``unsilenced``; ``respond_by``, ``resolve_by`` and a pending escalation round move later
  by the time spent paused. Only when every peer answered (a silence may be on the one that did
  not).
* **Missed groups**: an active group (some alert neither silenced nor inhibited, the heartbeat
  left out) at least ``group_wait`` old (its oldest alert's ``startsAt``) none of whose alerts is
  in an open incident is a lost webhook. It is counted (``incident_bridge_reconcile_missed_groups``)
  and logged; with ``identity: group_labels`` it is opened through ``Ingestor.ingest`` as the
  notification Alertmanager would have sent (its identity is receiver + group labels, as a
  webhook's, so the webhook arriving later meets the same incident). With ``identity:
  group_key`` it cannot be: the API does not return the ``groupKey``.

It runs on the replica that holds the GitHub writer lease only (``is_writer``): one replica
asks the peers, and the missed-groups gauge is exported once (the other replicas export 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from bridge.alertmanager_api import AlertGroup, PeerAlert, PeerGroups
from bridge.clock import Clock
from bridge.engine import Decision, Timeline, human_duration, mark_resolved, synced
from bridge.flapping import FlapPolicy, flapping_text, record_flip
from bridge.identity import IdentityMode
from bridge.ingest import Ingestor, Step
from bridge.metrics import Metrics
from bridge.model import AlertSnapshot, EffectSpec, Incident, Notification
from bridge.store.base import Store, StoreUnavailable

log = structlog.get_logger(__name__)

RESOLUTION = "reconciled"  # Incident.resolution of an incident resolved by reconciliation
_PAGE = 500


# -- what the peers said ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """One round's answers, merged by fingerprint across the peers that answered."""

    at: datetime  # when the round began, before any peer was asked
    complete: bool  # every peer answered
    present: frozenset[str]  # fingerprints some peer lists, in any state
    # fingerprint → the silences suppressing it on some peer (only silenced alerts are keys)
    silences: Mapping[str, frozenset[str]] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()  # the groups some peer lists (``_group_id``)


def observe(answers: Sequence[PeerGroups], at: datetime) -> Observation:
    """Merge the peers' answers (those that failed count only as making it incomplete)."""
    present: set[str] = set()
    silences: dict[str, set[str]] = {}
    groups: set[str] = set()
    for answer in answers:
        for group in answer.groups or ():
            groups.add(_group_id(group.receiver, group.labels))
            for alert in group.alerts:
                present.add(alert.fingerprint)
                if alert.suppressed and alert.silenced_by:
                    silences.setdefault(alert.fingerprint, set()).update(alert.silenced_by)
    return Observation(
        at=at,
        complete=all(answer.groups is not None for answer in answers),
        present=frozenset(present),
        silences={fp: frozenset(ids) for fp, ids in silences.items()},
        groups=frozenset(groups),
    )


# -- the rules, as lifecycle steps -------------------------------------------------------------


def _last_change(incident: Incident) -> datetime:
    firing = incident.firing_alerts()
    return max([incident.opened_at, *(alert.updated_at for alert in firing)])


def _resolve(current: Incident, now: datetime, flapping: FlapPolicy) -> Decision:
    incident = copy.copy(current)
    incident.alerts = dict(current.alerts)
    gone = current.firing_alerts()
    for alert in gone:
        ended = copy.copy(alert)
        ended.status = "resolved"
        ended.ends_at = now
        ended.updated_at = now
        ended.resolved_by_absence = True  # Alertmanager did not say it resolved; it is gone
        incident.alerts[alert.fingerprint] = ended
    timeline = Timeline(incident)
    # Every alert gone is a flip, as a resolution by webhook is (bridge/flapping.py).
    if incident.kind == "incident" and record_flip(incident, now, flapping):
        flips = len(incident.flips)
        timeline.add(now, "flapping", flapping_text(flips, flapping), flips=flips)
    if incident.flapping:
        # A flapping incident's close waits until it has been quiet for the flap window; the
        # engine's settle_flapping timer closes it then, as it would after a webhook.
        if incident.quiet_until is None:
            incident.quiet_until = now + flapping.window
        timeline.add(
            now,
            "alert_resolved",
            f"{len(gone)} alert{'s' if len(gone) != 1 else ''} gone from Alertmanager"
            " (reconciliation); closing once quiet",
            count=len(gone),
        )
        return synced("reconciled", incident, timeline.events)
    duration = mark_resolved(incident, now, RESOLUTION)
    event = timeline.add(
        now,
        "reconciled",
        "Resolved by reconciliation: none of its alerts is active in Alertmanager any more"
        f" (after {duration})",
        duration=duration,
    )
    return Decision(
        outcome="reconciled",
        incident=incident,
        changed=True,
        events=timeline.events,
        effects=[EffectSpec("github.comment", event_seq=event.seq), EffectSpec("github.sync")],
    )


def _silence(current: Incident, ids: list[str], now: datetime) -> Decision:
    incident = copy.copy(current)
    incident.paused_at = now
    named = ", ".join(ids)
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
        incident.acknowledged_by = f"Alertmanager silence {ids[0]}"
        incident.acknowledged_via = "silence"
    noun = "silence" if len(ids) == 1 else "silences"
    event = Timeline(incident).add(
        now,
        "silenced",
        f"Silenced in Alertmanager ({noun} {named}): acknowledged, deadlines paused",
        silences=ids,
    )
    return synced("silenced", incident, [event])


def _unsilence(current: Incident, now: datetime) -> Decision:
    assert current.paused_at is not None
    paused = max(timedelta(0), now - current.paused_at)
    incident = copy.copy(current)
    incident.paused_at = None
    if incident.respond_by is not None:
        incident.respond_by += paused
    if incident.resolve_by is not None:
        incident.resolve_by += paused
    if incident.next_escalation_at is not None:
        incident.next_escalation_at += paused
    event = Timeline(incident).add(
        now,
        "unsilenced",
        f"Silence ended while alerts still fire: deadlines resume, {human_duration(paused)} later",
        paused_seconds=int(paused.total_seconds()),
    )
    return synced("silenced", incident, [event])


def reconcile_step(
    observation: Observation, group_wait: timedelta, flapping: FlapPolicy | None = None
) -> Step:
    """The lifecycle step for one incident given what the peers said (see the module doc);
    ``flapping`` is the configuration's (a resolution is a flip)."""
    flap = flapping or FlapPolicy()

    def step(current: Incident | None, now: datetime) -> Decision:
        unchanged = Decision(outcome="unchanged", incident=current)
        if current is None or current.state != "open" or current.kind not in ("incident", "maint"):
            return unchanged
        firing = [alert.fingerprint for alert in current.firing_alerts()]
        if not firing:
            return unchanged  # nothing the peers could contradict (e.g. a flapping close)
        present = [fp for fp in firing if fp in observation.present]
        if not present:
            group = _group_id(current.receiver, current.group_labels)
            if current.truncated_alerts > 0 and group in observation.groups:
                # Alertmanager left some of the group's alerts out of its notifications: the
                # bridge does not know them all, so while the group is on a peer, "none of its
                # alerts" cannot be said. Once no peer lists the group, none of them fires
                # (its last notification, which may have left out the last resolutions, was
                # the group's last).
                return unchanged
            settled = _last_change(current) <= observation.at - group_wait
            return _resolve(current, now, flap) if observation.complete and settled else unchanged
        if current.kind != "incident":
            return unchanged  # a maintenance request has no deadlines to pause
        silenced = all(observation.silences.get(fp) for fp in present)
        if silenced and current.paused_at is None:
            ids = sorted(set().union(*(observation.silences[fp] for fp in present)))
            return _silence(current, ids, now)
        if not silenced and current.paused_at is not None and observation.complete:
            return _unsilence(current, now)
        return unchanged

    return step


# -- groups Alertmanager has and the bridge does not -------------------------------------------


@dataclass(frozen=True, slots=True)
class MissedGroup:
    """An active group no open incident holds: its webhook was lost (or never sent to us)."""

    receiver: str
    labels: dict[str, str]
    alerts: tuple[PeerAlert, ...]  # the active ones (not suppressed), oldest first
    peer: str  # a peer that lists it (the notification's externalURL)

    @property
    def oldest(self) -> datetime:
        return self.alerts[0].starts_at


def _group_id(receiver: str, labels: Mapping[str, str]) -> str:
    """A group as Alertmanager's API and its notifications both name it: receiver and labels."""
    return json.dumps([receiver, sorted(labels.items())], separators=(",", ":"))


def missed_groups(
    answers: Sequence[PeerGroups],
    known: frozenset[str] | set[str],
    at: datetime,
    group_wait: timedelta,
    heartbeat_alertname: str,
    receivers: frozenset[str] | set[str] | None = None,
) -> list[MissedGroup]:
    """Active groups of the bridge's ``receivers`` (None: any) at least ``group_wait`` old
    none of whose alerts (by fingerprint) is in ``known`` (the alerts of the open incidents,
    and of those people closed and keep closed); one per receiver and group labels across the
    peers, in a stable order."""
    merged: dict[str, tuple[AlertGroup, str, dict[str, PeerAlert], set[str]]] = {}
    for answer in answers:
        for group in answer.groups or ():
            if receivers is not None and group.receiver not in receivers:
                continue  # another tool's route, or a `null` receiver: not ours to miss
            entry = merged.setdefault(
                _group_id(group.receiver, group.labels), (group, answer.peer, {}, set())
            )
            _first, _peer, active, every = entry
            for alert in group.alerts:
                if alert.labels.get("alertname") == heartbeat_alertname:
                    continue
                every.add(alert.fingerprint)
                if not alert.suppressed:
                    # Active on any peer is active: that peer notifies for it.
                    active.setdefault(alert.fingerprint, alert)
    missed: list[MissedGroup] = []
    for group_id in sorted(merged):
        group, peer, active, every = merged[group_id]
        if not active or every & known:
            continue
        alerts = tuple(sorted(active.values(), key=lambda a: (a.starts_at, a.fingerprint)))
        if alerts[0].starts_at > at - group_wait:
            continue  # young: its first notification may still be on its way
        missed.append(MissedGroup(group.receiver, dict(group.labels), alerts, peer))
    return missed


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def notification_of(group: MissedGroup) -> Notification:
    """The webhook Alertmanager would have sent for the group (no ``groupKey``: the API has
    none), for ``identity: group_labels``."""
    alerts = tuple(
        AlertSnapshot(
            fingerprint=alert.fingerprint,
            status="firing",
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
            ends_at=None,  # as in a webhook: a firing alert's expected end is not shown
            generator_url=alert.generator_url,
        )
        for alert in group.alerts
    )
    return Notification(
        receiver=group.receiver,
        status="firing",
        alerts=alerts,
        group_labels=dict(group.labels),
        common_labels=_common([a.labels for a in alerts]),
        common_annotations=_common([a.annotations for a in alerts]),
        external_url=group.peer,
        group_key="",
        truncated_alerts=0,
    )


# -- the loop ----------------------------------------------------------------------------------


class PeerSource(Protocol):
    """Where the peers' alert groups come from (``AlertmanagerClient``)."""

    async def poll(self) -> list[PeerGroups]: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Round:
    """What one round saw and did."""

    peers: int
    failed: list[str] = field(default_factory=list)  # peers that did not answer
    resolved: list[str] = field(default_factory=list)  # INC-/MAINT- ids
    silenced: list[str] = field(default_factory=list)
    unsilenced: list[str] = field(default_factory=list)
    missed: list[MissedGroup] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)  # missed groups opened (group_labels)

    @property
    def result(self) -> str:
        """``ok`` (every peer answered), ``partial`` or ``failed`` (none did: nothing decided)."""
        if not self.failed:
            return "ok"
        return "failed" if len(self.failed) == self.peers else "partial"


class Reconciler:
    """Every ``interval``: read the peers, step the open incidents, look for missed groups."""

    def __init__(
        self,
        source: PeerSource,
        store: Store,
        ingestor: Ingestor,
        clock: Clock,
        metrics: Metrics,
        *,
        group_wait: timedelta,
        interval: timedelta,
        identity_mode: IdentityMode,
        heartbeat_alertname: str,
        flapping: FlapPolicy | None = None,
        is_writer: Callable[[], bool] = lambda: True,
        page: int = _PAGE,
        receivers: Sequence[str] = (),
    ) -> None:
        self._source = source
        self._store = store
        self._ingestor = ingestor
        self._clock = clock
        self._metrics = metrics
        self._group_wait = group_wait
        self._interval = interval
        self._identity_mode = identity_mode
        self._heartbeat = heartbeat_alertname
        self._flapping = flapping or FlapPolicy()
        self._is_writer = is_writer
        self._page = page
        # The bridge's receivers: configured, else learnt from its incidents (kept once seen).
        self._configured = frozenset(receivers)
        self._receivers: set[str] = set(receivers)
        self._stop = asyncio.Event()

    async def _open_incidents(self) -> AsyncIterator[Incident]:
        after = 0
        while True:
            page = await self._store.open_incidents(after, self._page)
            for incident in page:
                yield incident
            if len(page) < self._page:
                return
            assert page[-1].id is not None
            after = page[-1].id

    async def run_once(self) -> Round:
        """One round, whether or not this replica is the writer (tests call it directly)."""
        started = time.perf_counter()
        at = self._clock()
        answers = await self._source.poll()
        done = Round(peers=len(answers))
        for answer in answers:
            if answer.error is not None:
                done.failed.append(answer.peer)
                self._metrics.reconcile_peer_errors.inc()
                log.warning(
                    "alertmanager_unreachable",
                    peer=answer.peer,
                    error=str(answer.error),
                    retryable=answer.error.retryable,
                )
        if done.result != "failed":
            await self._step_incidents(answers, at, done)
        self._metrics.reconcile_runs.labels(result=done.result).inc()
        log.info(
            "reconcile",
            result=done.result,
            peers=done.peers,
            failed=done.failed,
            resolved=done.resolved,
            silenced=done.silenced,
            unsilenced=done.unsilenced,
            missed=len(done.missed),
            opened=done.opened,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return done

    async def _step_incidents(self, answers: list[PeerGroups], at: datetime, done: Round) -> None:
        step = reconcile_step(observe(answers, at), self._group_wait, self._flapping)
        known: set[str] = set()
        async for incident in self._open_incidents():
            known.update(incident.alerts)
            if not self._configured:
                self._receivers.add(incident.receiver)
            # The step is pure: try it on what was read, and take the identity's transaction
            # only when it would change something (it runs again there, on the latest state).
            if incident.id is None or not step(incident, self._clock()).changed:
                continue
            decision = await self._ingestor.apply(
                incident.key, incident.identity, step, incident_id=incident.id
            )
            if decision.incident is not None and decision.changed:
                self._count(decision.incident, [event.kind for event in decision.events], done)
        # Closed by people and held closed while its alerts fire: not missed either.
        for row in await self._store.list_incidents("", limit=self._page, state="resolved"):
            if not self._configured:
                self._receivers.add(row.incident.receiver)
            if row.incident.manual_hold:
                known.update(row.incident.alerts)
        done.missed = missed_groups(
            answers, known, at, self._group_wait, self._heartbeat, frozenset(self._receivers)
        )
        self._metrics.reconcile_missed_groups.set(len(done.missed))
        for group in done.missed:
            await self._missed(group, done)

    def _count(self, incident: Incident, kinds: list[str], done: Round) -> None:
        lists = {
            "reconciled": ("resolved", done.resolved),
            "silenced": ("silenced", done.silenced),
            "unsilenced": ("unsilenced", done.unsilenced),
        }
        for kind in kinds:
            if kind in lists:
                action, ids = lists[kind]
                ids.append(incident.display_id)
                self._metrics.reconcile_actions.labels(action=action).inc()

    async def _missed(self, group: MissedGroup, done: Round) -> None:
        """Log a missed group; with ``identity: group_labels``, open it as its webhook would."""
        action = "counted"
        opened: str | None = None
        if self._identity_mode == "group_labels":
            decision = await self._ingestor.ingest(notification_of(group))
            action = decision.outcome
            if decision.incident is not None and decision.outcome in ("opened", "reopened"):
                opened = decision.incident.display_id
                done.opened.append(opened)
                self._metrics.reconcile_actions.labels(action="opened").inc()
        log.warning(
            "reconcile_missed_group",
            receiver=group.receiver,
            group_labels=group.labels,
            alerts=len(group.alerts),
            oldest_starts_at=group.oldest.isoformat(),
            peer=group.peer,
            action=action,
            incident=opened,
        )

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        """Release the connections to the peers (after ``stop()``)."""
        await self._source.close()

    async def run_forever(self) -> None:
        """A round every ``interval`` while this replica holds the writer lease, until
        ``stop()``. A round that fails (the store unavailable, a bug) is logged; the next one
        runs on time."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval.total_seconds())
            if self._stop.is_set():
                return
            if not self._is_writer():
                # Another replica reconciles and exports the gauge; a sum stays right.
                self._metrics.reconcile_missed_groups.set(0)
                continue
            try:
                await self.run_once()
            except StoreUnavailable as error:
                self._metrics.reconcile_runs.labels(result="failed").inc()
                log.warning("reconcile_store_unavailable", error=str(error))
            except Exception:  # a bug in one round must not stop reconciliation
                self._metrics.reconcile_runs.labels(result="failed").inc()
                log.exception("reconcile_crashed")
