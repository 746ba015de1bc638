"""Who is told what, when: the stakeholder rules as a pure function of a decision.

- **Slack** (the responders): every incident, every update — opened, alerts firing or resolved,
  priority raised, resolved, reopened — one message each (threaded under the incident's root
  message by the adapter); the alerts an incident opens with are part of its root message.
- **Stakeholders**, by the priority's ``stakeholders`` channels in ``rules/priorities.yaml``
  (bundled: P0 email + SMS, P1 email, P2/P3 the status page only): told when the incident opens
  or reopens (by email only when the same episode resumes: its alerts, resolved by absence,
  fire again with their ``startsAt``), and by email again when it resolves. A priority rise
  tells them what the new priority requires that the old one did not (P2 → P1: the email;
  P1 → P0: the SMS).

Each message is its own effect, keyed by (incident, event, channel, recipient): the event's
``seq`` and the recipient are in the effect, so a retry or another replica never sends it twice.
Each also carries its ``deadline``: the incident's response deadline, or for an event after it,
the priority's response time counted from the event. A message still failing then is retried
and, once, its person told on their next channel (``bridge/outbox.py``, ``fallback.py``).
Maintenance requests are planned work: nobody is notified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bridge.engine import Decision
from bridge.model import EffectSpec, Incident, Priority, TimelineEvent

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
    # The response deadline of a priority counted from a moment (the engine's ``respond_by``):
    # the deadline of a message about an event after the incident's own deadline.
    respond_by: Callable[[Priority, datetime], datetime] | None = None


def _stakeholder_channels(event: TimelineEvent, priority: Priority, audience: Audience) -> set[str]:
    wanted = set(audience.channels[priority])
    if event.kind == "reopened" and event.data.get("episode") == "same":
        # The same episode resumed (alerts resolved by absence fire again): not news as of an
        # opening. Those sent the all-clear by email hear by email that it is not over — and
        # if it resumed at a higher priority, what that priority adds (P2 → P0: the SMS).
        told = wanted & {"email"}
        raised_from = event.data.get("raised_from")
        if isinstance(raised_from, str):
            told |= wanted - audience.channels[Priority(raised_from)]
        return told
    if event.kind in ("opened", "reopened", "reopened_manually", "reported"):
        return wanted
    if event.kind == "priority_raised":
        before = audience.channels[Priority(event.data["old"])]
        return wanted - before
    if event.kind in ("resolved", "closed_manually", "reconciled"):
        return wanted & {"email"}  # the all-clear by email; nobody is texted it
    return set()


def deadline(incident: Incident, event: TimelineEvent, audience: Audience) -> datetime | None:
    """When a message about ``event`` is late: the incident's response deadline, and for an
    event after it, the priority's response time counted from the event (a resolution email
    two hours in is not late at once). None when the incident has no response deadline."""
    if incident.respond_by is None:
        return None
    if audience.respond_by is None:
        return incident.respond_by
    return max(incident.respond_by, audience.respond_by(incident.priority, event.at))


def _message(
    kind: str,
    person: Recipient,
    channel: str,
    event: TimelineEvent,
    due: datetime | None,
    also: str | None = None,
) -> EffectSpec:
    """One message; ``also``: the person's other channel, told of the same event too (so a
    failure here does not fall back to telling them there twice, ``bridge/notify/fallback``)."""
    to = person.email if channel == "email" else person.phone
    payload = _with_deadline({"to": to, "name": person.name, "event": event.kind}, due)
    if also is not None:
        payload["also"] = also
    return EffectSpec(
        kind,  # type: ignore[arg-type]  # notify.email | notify.sms, from the caller
        payload,
        event_seq=event.seq,
    )


def _with_deadline(payload: dict[str, str | None], due: datetime | None) -> dict[str, str | None]:
    if due is not None:
        payload["deadline"] = due.isoformat()
    return payload


def notifications(decision: Decision, audience: Audience) -> list[EffectSpec]:
    """The notification effects ``decision`` calls for, in a stable order."""
    incident = decision.incident
    if incident is None or incident.kind != "incident" or not decision.changed:
        return []
    if not (audience.slack or audience.email or audience.sms):
        return []  # no channel configured: nobody to tell (and no deadline to work out)
    effects: list[EffectSpec] = []
    # The alerts an incident opens with are in its root Slack message; they come before the
    # "opened" event in the timeline, so as replies they would precede the root they belong to.
    opening = any(event.kind == "opened" for event in decision.events)
    for event in decision.events:
        due = deadline(incident, event, audience)
        if audience.slack and event.kind in SLACK_EVENTS:
            if opening and event.kind == "alert_firing":
                continue
            if incident.flapping and event.kind in DAMPED_WHEN_FLAPPING:
                continue
            slack = _with_deadline({"event": event.kind}, due)
            effects.append(EffectSpec("notify.slack", slack, event_seq=event.seq))
        wanted = _stakeholder_channels(event, incident.priority, audience)
        for person in audience.stakeholders:
            by_email = "email" in wanted and audience.email and bool(person.email)
            by_sms = "sms" in wanted and audience.sms and bool(person.phone)
            if by_email:
                also = "sms" if by_sms else None
                effects.append(_message("notify.email", person, "email", event, due, also))
            if by_sms:
                also = "email" if by_email else None
                effects.append(_message("notify.sms", person, "sms", event, due, also))
        if event.kind == "escalated":
            # The timer decided the channels (SMS for P0 at any hour, for P1 in business hours,
            # email otherwise: bridge/sla.py); a channel not configured falls to the other.
            paged = tuple(event.data.get("channels", ()))
            for person in audience.escalation:
                ways = paged_by(
                    paged,
                    email=audience.email and bool(person.email),
                    sms=audience.sms and bool(person.phone),
                )
                for way in ways:
                    also = next((other for other in ways if other != way), None)
                    effects.append(_message(f"notify.{way}", person, way, event, due, also))
    return effects


PageWay = Literal["sms", "email"]


def paged_by(paged: Sequence[str], *, email: bool, sms: bool) -> list[PageWay]:
    """The channels an escalation round asking for ``paged`` reaches a contact on, given
    whether they can be reached by ``email`` / ``sms`` (an address or number, and the channel
    configured): SMS when asked for and possible; email when asked for, or instead of an SMS
    that is not possible. The breach comment names the same (``bridge/sla.py``)."""
    by_sms = "sms" in paged and sms
    by_email = email and ("email" in paged or not by_sms)
    ways: list[PageWay] = []
    if by_sms:
        ways.append("sms")
    if by_email:
        ways.append("email")
    return ways
