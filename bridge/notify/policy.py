"""Who is told what, when: the stakeholder rules as a pure function of a decision.

- **Slack** (the responders): every incident, every update — opened, alerts firing or resolved,
  priority raised, resolved, reopened — one message each (threaded under the incident's root
  message by the adapter); the alerts an incident opens with are part of its root message.
- **Stakeholders**, by the priority's ``stakeholders`` channels in ``rules/priorities.yaml``
  (bundled: P0 email + SMS, P1 email, P2/P3 the status page only): told when the incident opens
  or reopens, and by email again when it resolves. A priority rise tells them what the new
  priority requires that the old one did not (P2 → P1: the email; P1 → P0: the SMS).

Each message is its own effect, keyed by (incident, event, channel, recipient): the event's
``seq`` and the recipient are in the effect, so a retry or another replica never sends it twice.
Maintenance requests are planned work: nobody is notified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.engine import Decision
from bridge.model import EffectSpec, Priority, TimelineEvent

SLACK_EVENTS = frozenset(
    {
        "opened",
        "alert_firing",
        "alert_resolved",
        "priority_raised",
        "resolved",
        "reopened",
        "acknowledged",
        "identified",
        "closed_manually",
        "reopened_manually",
        "sla_breached",
        "escalated",
        "silenced",
        "unsilenced",
        "flapping",
        "reconciled",
        "reported",
    }
)
# A flapping incident's notifications are damped to one summary (its ``flapping`` event): the
# alerts coming and going are not told one by one.
DAMPED_WHEN_FLAPPING = frozenset({"alert_firing", "alert_resolved"})


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    email: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class Audience:
    """What is configured: the channels that exist and the stakeholders to tell."""

    slack: bool
    email: bool
    sms: bool
    stakeholders: tuple[Recipient, ...]
    channels: Mapping[Priority, frozenset[str]]  # per priority: email | sms | status_page
    # Who is paged when a response deadline is missed (``escalation`` in the config).
    escalation: tuple[Recipient, ...] = ()


def _stakeholder_channels(event: TimelineEvent, priority: Priority, audience: Audience) -> set[str]:
    wanted = set(audience.channels[priority])
    if event.kind in ("opened", "reopened", "reopened_manually", "reported"):
        return wanted
    if event.kind == "priority_raised":
        before = audience.channels[Priority(event.data["old"])]
        return wanted - before
    if event.kind in ("resolved", "closed_manually", "reconciled"):
        return wanted & {"email"}  # the all-clear by email; nobody is texted it
    return set()


def _message(kind: str, person: Recipient, channel: str, event: TimelineEvent) -> EffectSpec:
    to = person.email if channel == "email" else person.phone
    return EffectSpec(
        kind,  # type: ignore[arg-type]  # notify.email | notify.sms, from the caller
        {"to": to, "name": person.name, "event": event.kind},
        event_seq=event.seq,
    )


def notifications(decision: Decision, audience: Audience) -> list[EffectSpec]:
    """The notification effects ``decision`` calls for, in a stable order."""
    incident = decision.incident
    if incident is None or incident.kind != "incident" or not decision.changed:
        return []
    effects: list[EffectSpec] = []
    # The alerts an incident opens with are in its root Slack message; they come before the
    # "opened" event in the timeline, so as replies they would precede the root they belong to.
    opening = any(event.kind == "opened" for event in decision.events)
    for event in decision.events:
        if audience.slack and event.kind in SLACK_EVENTS:
            if opening and event.kind == "alert_firing":
                continue
            if incident.flapping and event.kind in DAMPED_WHEN_FLAPPING:
                continue
            effects.append(EffectSpec("notify.slack", {"event": event.kind}, event_seq=event.seq))
        wanted = _stakeholder_channels(event, incident.priority, audience)
        for person in audience.stakeholders:
            if "email" in wanted and audience.email and person.email:
                effects.append(_message("notify.email", person, "email", event))
            if "sms" in wanted and audience.sms and person.phone:
                effects.append(_message("notify.sms", person, "sms", event))
        if event.kind == "escalated":
            # The timer decided the channels (SMS for P0 at any hour, for P1 in business hours,
            # email otherwise: bridge/sla.py); a channel not configured falls to the other.
            paged = set(event.data.get("channels", ()))
            for person in audience.escalation:
                sms = "sms" in paged and audience.sms and person.phone
                email = audience.email and person.email and ("email" in paged or not sms)
                if sms:
                    effects.append(_message("notify.sms", person, "sms", event))
                if email:
                    effects.append(_message("notify.email", person, "email", event))
    return effects
