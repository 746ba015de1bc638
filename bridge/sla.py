"""SLA timers: a missed response or resolution deadline, and the escalation rounds. Pure.

``step(incident, now, policy)`` is a timer step (``bridge.scheduler``): the scheduler applies
it to an incident whose ``due_at`` has come, inside the transaction on the incident's identity,
and it answers with the decision (``unchanged`` when none of its timers is due). Nothing here
reads a clock, the store or the configuration: ``SlaPolicy`` carries what it needs.

Rules (CONTRACT.md, "Priorities (P0-P3)"), for open incidents (not maintenance requests, not
storm roll-ups) whose deadlines are not paused by a silence:

* **response** — not acknowledged by ``respond_by``: the breach is recorded (``sla-breached``
  label), commented on the issue, and the first escalation round pages the ``escalation``
  contacts; then a round every ``escalate_every`` of the priority while nobody acknowledges,
  ``escalate_max`` rounds in all. A round pages by SMS when the priority's ``page`` rule says so
  at that moment (``always``; ``business_hours`` inside business hours), else by email.
* **resolution** — still open at ``resolve_by``: the breach is recorded, labelled, commented
  and counted (the scheduler counts, from the event).

An acknowledgement stops the rounds (``Incident.due_at`` no longer includes them); a reopening
starts a new episode with no breach and no round (``engine._reopen``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bridge.engine import Decision
from bridge.model import EffectSpec, EventKind, Incident, Priority, TimelineEvent

Page = Literal["always", "business_hours", "never"]
Channel = Literal["sms", "email"]


@dataclass(frozen=True, slots=True)
class Escalation:
    """A priority's paging rule (``rules/priorities.yaml``: page, escalate_every/_max)."""

    page: Page
    every: timedelta
    rounds: int  # escalate_max: rounds in all, the first included; 0 pages nobody


@dataclass(frozen=True, slots=True)
class Contact:
    """An escalation contact as far as paging goes: the name, and how they can be reached
    (an address or number in the config *and* the channel configured)."""

    name: str
    email: bool
    sms: bool

    def reached_by(self, channels: tuple[Channel, ...]) -> list[Channel]:
        """The channels a round on ``channels`` reaches this contact on — the notify policy's
        rule: SMS when asked for and possible, email when asked for or instead of the SMS."""
        sms = "sms" in channels and self.sms
        email = self.email and ("email" in channels or not sms)
        ways: list[Channel] = []
        if sms:
            ways.append("sms")
        if email:
            ways.append("email")
        return ways


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """What the SLA step needs from the rules and the configuration."""

    escalation: Mapping[Priority, Escalation]
    in_business_hours: Callable[[datetime], bool]
    contacts: tuple[Contact, ...] = field(default=())


def channels_at(rule: Escalation, now: datetime, in_business_hours: bool) -> tuple[Channel, ...]:
    """How a round pages at ``now``: SMS for ``always``, and for ``business_hours`` inside
    business hours; email otherwise."""
    if rule.page == "always" or (rule.page == "business_hours" and in_business_hours):
        return ("sms",)
    return ("email",)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _paging(contacts: tuple[Contact, ...], channels: tuple[Channel, ...]) -> str:
    """``On-call by SMS, Ops lead by email``; who a round reaches, by name only (the text is
    shown on the issue: never an address or a number)."""
    reached = []
    for contact in contacts:
        ways = contact.reached_by(channels)
        if ways:
            reached.append(f"{contact.name} by {' and '.join(_WAY[w] for w in ways)}")
    return ", ".join(reached)


_WAY: dict[Channel, str] = {"sms": "SMS", "email": "email"}


class _Change:
    """The incident copied on the first change, and the events numbered after its last one."""

    def __init__(self, current: Incident) -> None:
        self.current = current
        self.incident: Incident | None = None
        self.events: list[TimelineEvent] = []
        self.effects: list[EffectSpec] = []

    def edit(self) -> Incident:
        if self.incident is None:
            self.incident = copy.copy(self.current)
        return self.incident

    def add(self, at: datetime, kind: EventKind, text: str, **data: Any) -> TimelineEvent:
        incident = self.edit()
        incident.event_seq += 1
        event = TimelineEvent(seq=incident.event_seq, at=at, kind=kind, text=text, data=data)
        self.events.append(event)
        return event

    def comment(self, event: TimelineEvent) -> None:
        self.effects.append(EffectSpec("github.comment", event_seq=event.seq))

    def decision(self) -> Decision:
        if self.incident is None:
            return Decision(outcome="unchanged", incident=self.current)
        if self.events:
            self.effects.append(EffectSpec("github.sync"))  # labels and the body's timeline
        return Decision(
            outcome="timer",
            incident=self.incident,
            changed=True,
            events=self.events,
            effects=self.effects,
        )


def step(current: Incident, now: datetime, policy: SlaPolicy) -> Decision:
    """The SLA timers of ``current`` that are due at ``now``; unchanged when none is."""
    if current.kind != "incident" or current.state != "open" or current.paused_at is not None:
        return Decision(outcome="unchanged", incident=current)
    change = _Change(current)
    rule = policy.escalation[current.priority]
    if current.acknowledged_at is None:
        if current.response_breached_at is None:
            if current.respond_by is not None and current.respond_by <= now:
                _response_breach(change, current.respond_by, now, rule, policy)
        elif current.next_escalation_at is not None and current.next_escalation_at <= now:
            _round(change, now, rule, policy)
    if (
        current.resolution_breached_at is None
        and current.resolve_by is not None
        and current.resolve_by <= now
    ):
        incident = change.edit()
        incident.resolution_breached_at = now
        event = change.add(
            now,
            "sla_breached",
            f"Resolution deadline missed: still open at {_time(current.resolve_by)}"
            f" ({current.priority})",
            which="resolution",
            deadline=current.resolve_by.isoformat(),
        )
        change.comment(event)
    return change.decision()


def timer(policy: SlaPolicy) -> Callable[[Incident, datetime], Decision]:
    """The SLA step bound to ``policy``, as the scheduler takes it."""

    def sla_step(current: Incident, now: datetime) -> Decision:
        return step(current, now, policy)

    return sla_step


def _response_breach(
    change: _Change, deadline: datetime, now: datetime, rule: Escalation, policy: SlaPolicy
) -> None:
    incident = change.edit()
    incident.response_breached_at = now
    channels = channels_at(rule, now, policy.in_business_hours(now))
    if rule.rounds <= 0:
        paging = f"no escalation for {incident.priority} (escalate_max: 0)"
    else:
        reached = _paging(policy.contacts, channels)
        paging = (
            f"paging {reached}"
            if reached
            else "nobody to page: no escalation contact is reachable (see `escalation`)"
        )
    event = change.add(
        now,
        "sla_breached",
        f"Response deadline missed: not acknowledged by {_time(deadline)}"
        f" ({incident.priority}); {paging}",
        which="response",
        deadline=deadline.isoformat(),
    )
    change.comment(event)
    if rule.rounds > 0:
        _round(change, now, rule, policy, channels)


def _round(
    change: _Change,
    now: datetime,
    rule: Escalation,
    policy: SlaPolicy,
    channels: tuple[Channel, ...] | None = None,
) -> None:
    """One escalation round, or none when the priority's rounds are spent."""
    incident = change.edit()
    if incident.escalations >= rule.rounds:
        incident.next_escalation_at = None  # e.g. rules changed: nothing more to page
        return
    if channels is None:
        channels = channels_at(rule, now, policy.in_business_hours(now))
    incident.escalations += 1
    last = incident.escalations >= rule.rounds
    incident.next_escalation_at = None if last else now + rule.every
    reached = _paging(policy.contacts, channels)
    paged = f"paged {reached}" if reached else "nobody reachable to page"
    then = (
        "no further pages"
        if incident.next_escalation_at is None
        else f"next at {_time(incident.next_escalation_at)} unless acknowledged"
    )
    change.add(
        now,
        "escalated",
        f"Escalation {incident.escalations} of {rule.rounds}: {paged}; {then}",
        round=incident.escalations,
        channels=list(channels),
    )
