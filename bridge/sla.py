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
from typing import Literal

from bridge.engine import Decision, Timeline
from bridge.model import EffectSpec, Incident, Priority
from bridge.notify.policy import paged_by

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
        return paged_by(channels, email=self.email, sms=self.sms)


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


def _due(at: datetime | None, now: datetime) -> bool:
    return at is not None and at <= now


def step(current: Incident, now: datetime, policy: SlaPolicy) -> Decision:
    """The SLA timers of ``current`` that are due at ``now``; unchanged when none is."""
    if current.kind != "incident" or current.state != "open" or current.paused_at is not None:
        return Decision(outcome="unchanged", incident=current)
    unanswered = current.acknowledged_at is None
    # A flapping incident waiting out its quiet period, everything ended before a deadline,
    # will resolve as of that end: the deadline is not missed and nobody is paged for it.
    response = (
        unanswered
        and current.response_breached_at is None
        and _due(current.respond_by, now)
        and not (current.respond_by is not None and current.ended_by(current.respond_by))
    )
    escalation = (
        unanswered
        and current.response_breached_at is not None
        and _due(current.next_escalation_at, now)
        and not (
            current.next_escalation_at is not None and current.ended_by(current.next_escalation_at)
        )
    )
    resolution = (
        current.resolution_breached_at is None
        and _due(current.resolve_by, now)
        and not (current.resolve_by is not None and current.ended_by(current.resolve_by))
    )
    if not (response or escalation or resolution):
        return Decision(outcome="unchanged", incident=current)

    incident = copy.copy(current)
    timeline = Timeline(incident)
    comments: list[EffectSpec] = []
    rule = policy.escalation[incident.priority]
    if response:
        comments.append(_response_breach(incident, timeline, now, rule, policy))
    elif escalation:
        _round(incident, timeline, now, rule, policy)
    if resolution:
        assert incident.resolve_by is not None  # _due checked it
        incident.resolution_breached_at = now
        event = timeline.add(
            now,
            "sla_breached",
            f"Resolution deadline missed: still open at {_time(incident.resolve_by)}"
            f" ({incident.priority})",
            which="resolution",
            deadline=incident.resolve_by.isoformat(),
        )
        comments.append(EffectSpec("github.comment", event_seq=event.seq))
    # The sync puts the sla-breached label on and the rounds into the body's timeline.
    effects = [*comments, EffectSpec("github.sync")] if timeline.events else []
    return Decision(
        outcome="timer", incident=incident, changed=True, events=timeline.events, effects=effects
    )


def timer(policy: SlaPolicy) -> Callable[[Incident, datetime], Decision]:
    """The SLA step bound to ``policy``, as the scheduler takes it."""

    def sla_step(current: Incident, now: datetime) -> Decision:
        return step(current, now, policy)

    return sla_step


def _response_breach(
    incident: Incident, timeline: Timeline, now: datetime, rule: Escalation, policy: SlaPolicy
) -> EffectSpec:
    """Record the missed response deadline and page round 1; the breach's comment."""
    assert incident.respond_by is not None  # step() checked it
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
    event = timeline.add(
        now,
        "sla_breached",
        f"Response deadline missed: not acknowledged by {_time(incident.respond_by)}"
        f" ({incident.priority}); {paging}",
        which="response",
        deadline=incident.respond_by.isoformat(),
    )
    if rule.rounds > 0:
        _round(incident, timeline, now, rule, policy, channels)
    return EffectSpec("github.comment", event_seq=event.seq)


def _round(
    incident: Incident,
    timeline: Timeline,
    now: datetime,
    rule: Escalation,
    policy: SlaPolicy,
    channels: tuple[Channel, ...] | None = None,
) -> None:
    """One escalation round, or none when the priority's rounds are spent."""
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
    timeline.add(
        now,
        "escalated",
        f"Escalation {incident.escalations} of {rule.rounds}: {paged}; {then}",
        round=incident.escalations,
        channels=list(channels),
    )
