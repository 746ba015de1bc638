"""The incident state machine. Pure: no I/O, no clock of its own.

``apply_notification(current, notification, now, policy)`` merges one Alertmanager snapshot into
the latest incident of its identity and returns the new state, the timeline events and the
effects (outbox rows) the change calls for. The caller runs it inside the store transaction that
persists the result, so duplicates meet here and become no-ops.

Rules (CONTRACT.md "Identity and the incident lifecycle"):

* alerts merge by fingerprint; a snapshot older than what we know (earlier ``startsAt``) is
  ignored, and a firing snapshot never revives an alert that resolved with the same ``startsAt``;
* when ``truncatedAlerts`` is 0 the snapshot is the whole group, so a firing alert missing from
  it has ended ("resolved by absence"; a later firing snapshot of the same episode revives it);
  when alerts were truncated, a missing alert means nothing;
* open while any alert fires; resolved when none does; a new ``startsAt`` within
  ``reopen_window`` of the resolution reopens, later it is a new incident;
* a resolved notification for an unknown group opens nothing; heartbeat alerts are never
  incidents; a manually closed incident stays closed until an alert starts firing anew;
* the priority only rises while open;
* flapping (bridge/flapping.py): a resolution and a reopening are flips; more than
  ``flapping.max_flips`` of them within ``flapping.window`` make the incident flapping, and a
  flapping incident whose alerts all resolve stays open until quiet for the window
  (``quiet_until``; ``settle_flapping`` is the timer step that then closes it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bridge.flapping import FlapPolicy, flapping_text, record_flip
from bridge.model import (
    AlertSnapshot,
    AlertState,
    Classification,
    EffectSpec,
    EventKind,
    Incident,
    Notification,
    Priority,
    TimelineEvent,
)

# What a notification did (counted in incident_bridge_notifications_total{outcome}).
NotificationOutcome = Literal[
    "opened",
    "reopened",
    "updated",
    "resolved",
    "unchanged",
    "heartbeat",
    "unknown_resolved",
]
# Lifecycle steps applied through Ingestor.apply (timers, GitHub events, reconciliation).
Outcome = Literal[
    NotificationOutcome,
    "acknowledged",
    "closed",
    "timer",
    "reconciled",
    "reported",
    "silenced",
]

# Above this many alerts changing in one notification the timeline gets one summary line.
_EVENT_DETAIL_LIMIT = 5


@dataclass(frozen=True, slots=True)
class Policy:
    """What the engine needs from configuration and rules, as plain values and pure functions."""

    classify: Callable[[Mapping[str, str], Mapping[str, str]], Classification]
    respond_by: Callable[[Priority, datetime], datetime]
    resolve_by: Callable[[Priority, datetime], datetime]
    reopen_window: timedelta = timedelta(hours=24)
    heartbeat_alertname: str = "Watchdog"
    flapping: FlapPolicy = field(default_factory=FlapPolicy)


@dataclass(slots=True)
class Decision:
    """The engine's answer for one notification."""

    outcome: Outcome
    incident: Incident | None = None
    is_new: bool = False
    changed: bool = False
    events: list[TimelineEvent] = field(default_factory=list)
    effects: list[EffectSpec] = field(default_factory=list)


def synced(
    outcome: Outcome,
    incident: Incident,
    events: list[TimelineEvent],
    *,
    is_new: bool = False,
) -> Decision:
    """A changed incident whose issue follows it: the decision of most lifecycle steps (its
    one effect is the GitHub sync; the notify policy adds the messages its events call for)."""
    return Decision(
        outcome=outcome,
        incident=incident,
        is_new=is_new,
        changed=True,
        events=events,
        effects=[EffectSpec("github.sync")],
    )


@dataclass(slots=True)
class _Merge:
    alerts: dict[str, AlertState]
    fired: list[AlertState] = field(default_factory=list)  # new alert or new episode, firing
    revived: list[AlertState] = field(default_factory=list)
    resolved: list[AlertState] = field(default_factory=list)
    updated: bool = False  # labels, annotations or classification changed

    @property
    def changed(self) -> bool:
        return bool(self.fired or self.revived or self.resolved or self.updated)


def summary_of(notification: Notification, alerts: list[AlertSnapshot]) -> str:
    """The common ``summary`` annotation, else the first alert's, else the alertname."""
    common = notification.common_annotations.get("summary", "").strip()
    if common:
        return common
    for alert in alerts:
        text = alert.annotations.get("summary", "").strip()
        if text:
            return text
    name = notification.common_labels.get("alertname") or (
        alerts[0].labels.get("alertname", "") if alerts else ""
    )
    return name.strip() or "alert group"


def _alert_state(snap: AlertSnapshot, cls: Classification, now: datetime) -> AlertState:
    return AlertState(
        fingerprint=snap.fingerprint,
        status=snap.status,
        labels=snap.labels,
        annotations=snap.annotations,
        starts_at=snap.starts_at,
        ends_at=snap.ends_at,
        generator_url=snap.generator_url,
        priority=cls.priority,
        rule=cls.rule,
        updated_at=now,
    )


def _merge(
    known: Mapping[str, AlertState],
    snapshot: list[AlertSnapshot],
    classes: Mapping[str, Classification],
    complete: bool,
    now: datetime,
) -> _Merge:
    merged = _Merge(alerts=dict(known))
    seen: set[str] = set()
    for snap in snapshot:
        seen.add(snap.fingerprint)
        cls = classes[snap.fingerprint]
        old = known.get(snap.fingerprint)
        new = _alert_state(snap, cls, now)
        if old is None or snap.starts_at > old.starts_at:
            merged.alerts[snap.fingerprint] = new
            if snap.status == "firing":
                merged.fired.append(new)
            elif old is not None and old.status == "firing":
                merged.resolved.append(new)
            else:
                merged.updated = True
            continue
        if snap.starts_at < old.starts_at:
            continue  # a snapshot of an older episode
        if old.status == "resolved" and snap.status == "firing":
            if old.resolved_by_absence:
                merged.alerts[snap.fingerprint] = new
                merged.revived.append(new)
            continue  # stale: it already resolved with this startsAt
        if old.status == "firing" and snap.status == "resolved":
            merged.alerts[snap.fingerprint] = new
            merged.resolved.append(new)
            continue
        if (
            old.labels != new.labels
            or old.annotations != new.annotations
            or old.generator_url != new.generator_url
            or old.ends_at != new.ends_at
            or old.priority != new.priority
            or old.rule != new.rule
        ):
            merged.alerts[snap.fingerprint] = new
            merged.updated = True
    if complete:
        for fingerprint, old in known.items():
            if fingerprint not in seen and old.status == "firing":
                gone = copy.copy(old)
                gone.status = "resolved"
                gone.ends_at = now
                gone.updated_at = now
                gone.resolved_by_absence = True
                merged.alerts[fingerprint] = gone
                merged.resolved.append(gone)
    return merged


def _alert_name(alert: AlertState) -> str:
    name = alert.labels.get("alertname", "alert")
    where = alert.labels.get("instance") or alert.labels.get("service")
    return f"{name} on {where}" if where else name


class Timeline:
    """Collects the events of one decision, numbering them after the incident's last one."""

    def __init__(self, incident: Incident) -> None:
        self.incident = incident
        self.events: list[TimelineEvent] = []

    def add(self, at: datetime, kind: EventKind, text: str, **data: Any) -> TimelineEvent:
        self.incident.event_seq += 1
        event = TimelineEvent(seq=self.incident.event_seq, at=at, kind=kind, text=text, data=data)
        self.events.append(event)
        return event

    def alerts(self, kind: EventKind, verb: str, alerts: list[AlertState], now: datetime) -> None:
        if len(alerts) > _EVENT_DETAIL_LIMIT:
            self.add(now, kind, f"{len(alerts)} alerts {verb}", count=len(alerts))
            return
        for alert in alerts:
            at = alert.starts_at if kind == "alert_firing" else (alert.ends_at or now)
            self.add(
                min(at, now),
                kind,
                f"Alert {verb}: {_alert_name(alert)}",
                fingerprint=alert.fingerprint,
            )


def _highest_firing(alerts: Mapping[str, AlertState]) -> AlertState | None:
    firing = [a for a in alerts.values() if a.status == "firing"]
    if not firing:
        return None
    return min(firing, key=lambda a: (a.priority.rank, a.starts_at, a.fingerprint))


def human_duration(delta: timedelta) -> str:
    """``1h 5m``, ``2d 3h``, ``45s``: how long something lasted, for people (comments, reviews)."""
    seconds = max(0, int(delta.total_seconds()))
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    parts += [f"{seconds}s"] if seconds or not parts else []
    return " ".join(parts)


def _latest_first(alert: AlertSnapshot) -> tuple[datetime, bool]:
    """How late in an alert's life a snapshot is: its episode, then resolved after firing."""
    return alert.starts_at, alert.status == "resolved"


def apply_notification(
    current: Incident | None, notification: Notification, now: datetime, policy: Policy
) -> Decision:
    """Merge one notification into the latest incident of its identity (None if there is none)."""
    # One alert per fingerprint, as Alertmanager sends them; a sender repeating one (or two
    # alerts with the same labels and no fingerprint): the newest episode counts, and within
    # it the resolution. The merge compares each with the incident's alert, so a repeat would
    # fire and resolve it in one go.
    unique: dict[str, AlertSnapshot] = {}
    for alert in notification.alerts:
        kept = unique.get(alert.fingerprint)
        if kept is None or _latest_first(alert) >= _latest_first(kept):
            unique[alert.fingerprint] = alert
    snapshot = [
        a for a in unique.values() if a.labels.get("alertname") != policy.heartbeat_alertname
    ]
    if not snapshot:
        return Decision(outcome="heartbeat", incident=current)
    classes = {a.fingerprint: policy.classify(a.labels, a.annotations) for a in snapshot}
    complete = notification.truncated_alerts == 0

    if current is not None and current.state == "open":
        return _update_open(current, notification, snapshot, classes, complete, now, policy)

    known = current.alerts if current is not None else {}
    merged = _merge(known, snapshot, classes, complete, now)
    starts_anew = merged.fired or (
        merged.revived and current is not None and not current.manual_hold
    )
    if current is not None and not starts_anew:
        # Resolved (or manually closed) and nothing fires anew: keep the alert states current
        # quietly; the issue is not touched.
        if not merged.changed:
            return Decision(outcome="unchanged", incident=current)
        quiet = copy.copy(current)
        quiet.alerts = merged.alerts
        return Decision(outcome="unchanged", incident=quiet, changed=True)
    if current is None and not any(a.status == "firing" for a in merged.alerts.values()):
        return Decision(outcome="unknown_resolved")
    # A maintenance request is planned work that people close: the condition coming back
    # updates the same request however long it was quiet.
    within_window = (
        current is not None
        and current.resolved_at is not None
        and (current.kind == "maint" or now - current.resolved_at <= policy.reopen_window)
    )
    if current is not None and within_window:
        return _reopen(current, merged, now, policy)
    # A new incident knows only this snapshot's alerts, not an old incident's.
    fresh = merged if current is None else _merge({}, snapshot, classes, complete, now)
    return _open(notification, snapshot, classes, fresh, now, policy)


def _open(
    notification: Notification,
    snapshot: list[AlertSnapshot],
    classes: Mapping[str, Classification],
    merged: _Merge,
    now: datetime,
    policy: Policy,
) -> Decision:
    top = _highest_firing(merged.alerts)
    assert top is not None  # apply_notification only opens when something fires
    firing = [a for a in merged.alerts.values() if a.status == "firing"]
    earliest = min(a.starts_at for a in firing)
    maintenance = all(classes[a.fingerprint].maintenance for a in snapshot)
    maint_type = next(
        (
            classes[a.fingerprint].maintenance_type
            for a in snapshot
            if classes[a.fingerprint].maintenance
        ),
        "perfective",
    )
    incident = Incident(
        key="",  # the caller's store fills key and identity
        identity="",
        kind="maint" if maintenance else "incident",
        receiver=notification.receiver,
        group_key=notification.group_key,
        group_labels=dict(notification.group_labels),
        state="open",
        priority=top.priority,
        priority_rule=top.rule,
        summary=summary_of(notification, snapshot),
        opened_at=now,
        earliest_starts_at=earliest,
        respond_by=None if maintenance else policy.respond_by(top.priority, now),
        resolve_by=None if maintenance else policy.resolve_by(top.priority, earliest),
        alerts=merged.alerts,
        common_labels=dict(notification.common_labels),
        common_annotations=dict(notification.common_annotations),
        external_url=notification.external_url,
        maintenance_type=maint_type,
        truncated_alerts=notification.truncated_alerts,
    )
    timeline = Timeline(incident)
    timeline.alerts("alert_firing", "fired", firing, now)
    what = "Maintenance request opened" if maintenance else f"Incident opened as {top.priority}"
    timeline.add(now, "opened", f"{what} ({top.rule})", priority=str(top.priority))
    return synced("opened", incident, timeline.events, is_new=True)


def reopen_episode(
    incident: Incident,
    priority: Priority,
    rule: str,
    episode_start: datetime,
    now: datetime,
    policy: Policy,
) -> None:
    """Open ``incident`` (a resolved incident, a copy the caller owns) again for a new episode
    that started at ``episode_start``: unacknowledged, at ``priority``, with fresh deadlines."""
    incident.state = "open"
    incident.resolved_at = None
    incident.resolution = None
    incident.manual_hold = False
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    incident.acknowledged_via = None
    # A new episode: its own deadlines, no breach yet, no escalation round sent (bridge/sla.py).
    incident.response_breached_at = None
    incident.resolution_breached_at = None
    incident.escalations = 0
    incident.next_escalation_at = None
    incident.paused_at = None  # a silence of the last episode says nothing about this one
    incident.reopen_count += 1
    incident.priority = priority
    incident.priority_rule = rule
    if incident.kind == "incident":
        incident.respond_by = policy.respond_by(priority, now)
        incident.resolve_by = policy.resolve_by(priority, episode_start)


SAME_EPISODE = "alerts of the same episode fire again"


def resume_episode(incident: Incident, top: AlertState, now: datetime, policy: Policy) -> None:
    """Open ``incident`` (a resolved incident, a copy the caller owns) again because alerts it
    resolved by absence fire again with the same ``startsAt``: the same episode goes on. Its
    acknowledgement, deadlines, breaches and escalation rounds are kept (nobody is paged anew
    for an episode someone is already on); the priority only rises, as while open."""
    incident.state = "open"
    incident.resolved_at = None
    incident.resolution = None
    incident.manual_hold = False
    incident.paused_at = None
    incident.reopen_count += 1
    if incident.kind == "incident" and top.priority.outranks(incident.priority):
        incident.priority = top.priority
        incident.priority_rule = top.rule
        if incident.respond_by is not None and incident.acknowledged_at is None:
            incident.respond_by = min(incident.respond_by, policy.respond_by(top.priority, now))
        if incident.resolve_by is not None:
            incident.resolve_by = min(incident.resolve_by, policy.resolve_by(top.priority, now))


def _reopen(current: Incident, merged: _Merge, now: datetime, policy: Policy) -> Decision:
    incident = copy.copy(current)
    incident.alerts = merged.alerts
    top = _highest_firing(merged.alerts)
    assert top is not None
    # Only alerts resolved by absence firing again with their startsAt (a peer that answered
    # an empty group list, a lost notification): the episode was never over.
    same_episode = not merged.fired
    if same_episode:
        resume_episode(incident, top, now, policy)
        if incident.priority != current.priority:  # it rose: told what the new one adds
            same: dict[str, object] = {"raised_from": str(current.priority)}
        else:
            same = {}
    else:
        episode_start = min(a.starts_at for a in merged.fired + merged.revived)
        reopen_episode(incident, top.priority, top.rule, episode_start, now, policy)
    timeline = Timeline(incident)
    timeline.alerts("alert_firing", "fired", merged.fired + merged.revived, now)
    event = timeline.add(
        now,
        "reopened",
        f"Reopened as {incident.priority}: "
        + (SAME_EPISODE if same_episode else "alerts fire again"),
        priority=str(incident.priority),
        **({"why": SAME_EPISODE, "episode": "same", **same} if same_episode else {}),
    )
    if incident.kind == "incident":
        # A reopening is a flip. Flapping is counted afresh: an incident closed by hand while
        # it flapped stays flapping only if its recent flips still say so.
        was_flapping, incident.flapping, incident.quiet_until = incident.flapping, False, None
        if record_flip(incident, now, policy.flapping) and not was_flapping:
            _flapping_event(timeline, now, incident, policy)
    return Decision(
        outcome="reopened",
        incident=incident,
        changed=True,
        events=timeline.events,
        effects=[EffectSpec("github.comment", event_seq=event.seq), EffectSpec("github.sync")],
    )


def _flapping_event(timeline: Timeline, now: datetime, incident: Incident, policy: Policy) -> None:
    flips = len(incident.flips)
    timeline.add(now, "flapping", flapping_text(flips, policy.flapping), flips=flips)


def mark_resolved(incident: Incident, at: datetime, resolution: str) -> str:
    """Resolve ``incident`` (a copy the caller owns) at ``at`` — never before its first alert
    started — for ``resolution`` (``alerts``, ``manual``, ``reconciled``, ``heartbeat``):
    a deferred (flapping) close and a silence's pause end with it, a reopening starts afresh.
    Returns how long it lasted (``1h 5m``), for the caller's timeline line."""
    incident.state = "resolved"
    incident.resolution = resolution
    incident.quiet_until = None
    incident.paused_at = None
    incident.resolved_at = max(at, incident.earliest_starts_at)
    return human_duration(incident.resolved_at - incident.earliest_starts_at)


def _resolve_by_alerts(incident: Incident, timeline: Timeline, now: datetime) -> list[EffectSpec]:
    """Resolve ``incident`` (a copy the caller owns) because every alert has resolved: at the
    last alert's end, with the resolution event; returns its comment and the sync."""
    ended = [a.ends_at for a in incident.alerts.values() if a.ends_at is not None]
    # When the last alert ended (Alertmanager's endsAt), which may be before the bridge
    # heard of it.
    duration = mark_resolved(incident, min(max(ended), now) if ended else now, "alerts")
    assert incident.resolved_at is not None
    event = timeline.add(
        incident.resolved_at,
        "resolved",
        f"Resolved: every alert resolved after {duration}",
        duration=duration,
    )
    return [EffectSpec("github.comment", event_seq=event.seq), EffectSpec("github.sync")]


def settle_flapping(incident: Incident, now: datetime) -> Decision:
    """Timer step: a flapping incident quiet until ``quiet_until`` — nothing fired again —
    is resolved now, as of when its last alert ended, and stops flapping."""
    quiet_until = incident.quiet_until
    if incident.state != "open" or quiet_until is None or quiet_until > now:
        return Decision(outcome="unchanged", incident=incident)
    settled = copy.copy(incident)
    settled.quiet_until = None
    if settled.firing_alerts():  # a re-fire clears quiet_until; never close a firing incident
        return Decision(outcome="updated", incident=settled, changed=True)
    settled.flapping = False
    timeline = Timeline(settled)
    effects = _resolve_by_alerts(settled, timeline, now)
    return Decision(
        outcome="resolved",
        incident=settled,
        changed=True,
        events=timeline.events,
        effects=effects,
    )


def _update_open(
    current: Incident,
    notification: Notification,
    snapshot: list[AlertSnapshot],
    classes: Mapping[str, Classification],
    complete: bool,
    now: datetime,
    policy: Policy,
) -> Decision:
    merged = _merge(current.alerts, snapshot, classes, complete, now)
    common_summary = notification.common_annotations.get("summary", "").strip()
    summary_changed = bool(common_summary) and common_summary != current.summary
    truncated_changed = notification.truncated_alerts != current.truncated_alerts
    if not (merged.changed or summary_changed or truncated_changed):
        return Decision(outcome="unchanged", incident=current)

    incident = copy.copy(current)
    incident.alerts = merged.alerts
    incident.truncated_alerts = notification.truncated_alerts
    incident.common_labels = dict(notification.common_labels)
    incident.common_annotations = dict(notification.common_annotations)
    if summary_changed:
        incident.summary = common_summary
    timeline = Timeline(incident)
    timeline.alerts("alert_firing", "fired", merged.fired + merged.revived, now)
    timeline.alerts("alert_resolved", "resolved", merged.resolved, now)

    top = _highest_firing(merged.alerts)
    flaps = incident.kind == "incident"
    if top is None:
        was_firing = any(a.status == "firing" for a in current.alerts.values())
        if flaps and was_firing and record_flip(incident, now, policy.flapping):
            _flapping_event(timeline, now, incident, policy)
        if not incident.flapping:
            effects = _resolve_by_alerts(incident, timeline, now)
            return Decision(
                outcome="resolved",
                incident=incident,
                changed=True,
                events=timeline.events,
                effects=effects,
            )
        # Flapping: the close waits until the group has been quiet for the flap window.
        if incident.quiet_until is None:
            incident.quiet_until = now + policy.flapping.window
        return synced("updated", incident, timeline.events)

    if flaps and current.quiet_until is not None:
        # A re-fire during the quiet period: a flip, and the close is off.
        incident.quiet_until = None
        if record_flip(incident, now, policy.flapping):
            _flapping_event(timeline, now, incident, policy)
    if incident.kind == "incident" and top.priority.outranks(incident.priority):
        old = incident.priority
        incident.priority = top.priority
        incident.priority_rule = top.rule
        if incident.respond_by is not None and incident.acknowledged_at is None:
            incident.respond_by = min(incident.respond_by, policy.respond_by(top.priority, now))
            if incident.response_breached_at is not None:
                # Already late and nobody on it: page now, at the new priority's pace and rounds
                # (bridge/sla.py), rather than when the old priority's next round was due.
                incident.next_escalation_at = now
        if incident.resolve_by is not None:
            incident.resolve_by = min(incident.resolve_by, policy.resolve_by(top.priority, now))
        timeline.add(
            now,
            "priority_raised",
            f"Priority raised {old} → {top.priority} ({top.rule})",
            old=str(old),
            new=str(top.priority),
        )
    return synced("updated", incident, timeline.events)
