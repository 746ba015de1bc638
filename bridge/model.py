"""The domain vocabulary: priorities, alert snapshots, incidents, timeline events, effects.

Plain dataclasses with no I/O, shared by the engine, the store, the renderer and the adapters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


class Priority(enum.StrEnum):
    """Incident priority P0 (critical) .. P3 (low); a lower number is more urgent."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """0 for P0 .. 3 for P3."""
        return int(self.value[1])

    def outranks(self, other: Priority) -> bool:
        """True when this priority is strictly more urgent than ``other``."""
        return self.rank < other.rank

    @staticmethod
    def highest(*priorities: Priority) -> Priority:
        """The most urgent of the given priorities."""
        return min(priorities, key=lambda p: p.rank)


AlertStatus = Literal["firing", "resolved"]
IncidentState = Literal["open", "resolved"]
# "storm": an alert storm roll-up (bridge/storm.py), numbered like incidents (INC-NNN).
IncidentKind = Literal["incident", "maint", "storm"]


def number_series(kind: IncidentKind) -> str:
    """The counter an incident's number comes from: storm roll-ups are numbered ``INC-NNN``
    with the incidents, maintenance requests ``MAINT-NNN`` on their own."""
    return "number:maint" if kind == "maint" else "number:incident"


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """One alert as an Alertmanager notification showed it."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A parsed Alertmanager webhook (payload version 4)."""

    receiver: str
    status: AlertStatus
    alerts: tuple[AlertSnapshot, ...]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    group_key: str
    truncated_alerts: int


@dataclass(frozen=True, slots=True)
class Classification:
    """The priority of one alert and the rule that decided it."""

    priority: Priority
    rule: str
    maintenance: bool = False
    maintenance_type: str = "perfective"


@dataclass(slots=True)
class AlertState:
    """What the bridge knows about one alert of an incident, merged across snapshots."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    priority: Priority
    rule: str
    updated_at: datetime  # when the bridge last saw this alert change
    # Resolved because a complete snapshot no longer listed it, not because Alertmanager said so;
    # a later firing snapshot of the same episode may revive it.
    resolved_by_absence: bool = False


@dataclass(slots=True)
class Incident:
    """One incident (or maintenance request): the state of one Alertmanager alert group."""

    key: str  # sha256 hex of the identity string; the marker's key=
    identity: str
    kind: IncidentKind
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    state: IncidentState
    priority: Priority
    priority_rule: str
    summary: str
    opened_at: datetime
    earliest_starts_at: datetime
    respond_by: datetime | None
    resolve_by: datetime | None
    alerts: dict[str, AlertState] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    maintenance_type: str = "perfective"
    truncated_alerts: int = 0
    resolved_at: datetime | None = None
    resolution: str | None = None  # "alerts" | "manual"
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    # A human closed the issue: stay resolved until an alert starts firing anew (new startsAt).
    manual_hold: bool = False
    reopen_count: int = 0
    event_seq: int = 0
    # How it was acknowledged: "assigned" | "label" | "comment" | "silence".
    acknowledged_via: str | None = None
    # SLA timers (bridge/sla.py): when a deadline was missed, and the escalation rounds sent.
    response_breached_at: datetime | None = None
    resolution_breached_at: datetime | None = None
    escalations: int = 0
    next_escalation_at: datetime | None = None
    # Every alert silenced in Alertmanager (bridge/reconcile.py): deadlines paused since then.
    paused_at: datetime | None = None
    # Flapping (bridge/flapping.py): recent fire/resolve flips; the close waits until quiet.
    flips: list[datetime] = field(default_factory=list)
    flapping: bool = False
    quiet_until: datetime | None = None
    # A reported incident: the issue people opened with the ``incident`` label, adopted.
    reported_issue: int | None = None
    # When its post-incident review was first asked for (a P0/P1 resolution, bridge/review.py):
    # later resolutions and reopenings update the same review.
    review_requested_at: datetime | None = None
    id: int | None = None  # store row id, assigned on insert
    number: int | None = None  # INC-/MAINT- number, assigned on insert

    @property
    def display_id(self) -> str:
        """``INC-042`` / ``MAINT-007``; ``INC-???`` before the store numbered it."""
        prefix = "MAINT" if self.kind == "maint" else "INC"
        return f"{prefix}-{self.number:03d}" if self.number is not None else f"{prefix}-???"

    @property
    def urgent(self) -> bool:
        """A P0/P1 incident: its GitHub writes go first and may use the budget's reserve."""
        return self.kind == "incident" and self.priority.rank <= 1

    @property
    def due_at(self) -> datetime | None:
        """When a timer of this incident is next due (``bridge/scheduler.py``, ``bridge/sla.py``),
        None when nothing is pending. Kept in the store's ``due_at`` column on every save, so due
        incidents are found by index: a timer is a durable due row, not a sleeping task."""
        if self.kind != "incident" or self.state != "open":
            return None
        due: list[datetime] = []
        if self.paused_at is None:
            if self.acknowledged_at is None:
                if self.response_breached_at is None:
                    if self.respond_by is not None and not self.ended_by(self.respond_by):
                        due.append(self.respond_by)
                elif self.next_escalation_at is not None and not self.ended_by(
                    self.next_escalation_at
                ):
                    due.append(self.next_escalation_at)
            if (
                self.resolution_breached_at is None
                and self.resolve_by is not None
                and not self.ended_by(self.resolve_by)
            ):
                due.append(self.resolve_by)
        if self.quiet_until is not None:
            due.append(self.quiet_until)
        return min(due) if due else None

    def ended_by(self, moment: datetime) -> bool:
        """A flapping incident waiting out its quiet period (``quiet_until``) with nothing firing
        whose alerts all ended by ``moment``: it will resolve as of that end, so a deadline at
        ``moment`` is not missed by the wait."""
        if self.quiet_until is None:
            return False
        ends: list[datetime] = []
        for alert in self.alerts.values():
            if alert.status == "firing" or alert.ends_at is None:
                return False
            ends.append(alert.ends_at)
        return bool(ends) and max(ends) <= moment

    def firing_alerts(self) -> list[AlertState]:
        """Firing alerts, oldest first."""
        return sorted(
            (a for a in self.alerts.values() if a.status == "firing"),
            key=lambda a: (a.starts_at, a.fingerprint),
        )


EventKind = Literal[
    "opened",
    "alert_firing",
    "alert_resolved",
    "priority_raised",
    "resolved",
    "reopened",
    "effect_failed",
    "acknowledged",  # a human (assigned, labelled, commented) or a silence
    "identified",  # labelled ``identified``: the status page says Identified
    "closed_manually",  # a human closed the issue: resolved manually
    "reopened_manually",  # a human reopened the issue
    "sla_breached",  # a response or resolution deadline missed (data: which)
    "escalated",  # the escalation contacts paged (data: round, channel)
    "silenced",  # every alert silenced: acknowledged, deadlines paused
    "unsilenced",  # a silence ended while alerts still fire: deadlines resume
    "flapping",  # fired and resolved too often: notifications damped, close deferred
    "reconciled",  # resolved because Alertmanager no longer has its alerts
    "reported",  # an issue people opened, adopted as an incident
]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One line of an incident's timeline; ``seq`` is unique within the incident."""

    seq: int
    at: datetime
    kind: EventKind
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def event_id(self, incident: Incident) -> str:
        """The id carried by comment markers: ``INC-042.3``."""
        return f"{incident.display_id}.{self.seq}"


EffectKind = Literal[
    "github.sync",
    "github.comment",
    "github.storm",
    "github.pir",  # create or update the post-incident review (bridge/review.py)
    "github.pir_reminder",  # the review is still open 48 h after the resolution
    "notify.slack",
    "notify.email",
    "notify.sms",
]
Lane = Literal["github", "slack", "email", "sms"]
LANES: tuple[Lane, ...] = ("github", "slack", "email", "sms")


def lane_of(kind: EffectKind) -> Lane:
    """The outbox lane an effect runs in: GitHub, or its notification channel."""
    if kind.startswith("notify."):
        channel = kind.removeprefix("notify.")
        assert channel in ("slack", "email", "sms"), kind
        return channel  # type: ignore[return-value]  # checked just above
    return "github"


@dataclass(frozen=True, slots=True)
class EffectSpec:
    """An outside action the engine asks for; the store turns it into an outbox row."""

    kind: EffectKind
    payload: dict[str, Any] = field(default_factory=dict)
    # Comments refer to the event that caused them (its seq within the incident).
    event_seq: int | None = None


@dataclass(frozen=True, slots=True)
class StormMember:
    """An incident listed in an alert storm roll-up, with its own issue's number if it has one."""

    incident: Incident
    issue_number: int | None

    @property
    def waiting(self) -> bool:
        """Still firing and listed only: it gets its own issue when the budget allows."""
        return self.incident.state == "open" and self.issue_number is None
