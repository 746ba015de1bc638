"""When a channel cannot reach someone: tell them on their next channel. Pure.

A stakeholder's email that fails permanently (a refused address), or is still failing at the
response deadline (the SMTP server down), goes out as an SMS to their phone instead, and a failed
SMS as an email; when Slack fails (a revoked token, a missing channel, or down at the deadline)
the escalation contacts are emailed (texted when email is not configured). A fallback never
falls back again, so two broken channels cannot ping-pong, and a message already told on the
next channel at its deadline is not told there again when it later fails for good. A storm
control bundle that fails for good is taken over by the person's bundle on their next channel
(one message, whatever it held). The failure and who is told instead go into the issue timeline
(by name only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.model import EffectKind, EffectSpec
from bridge.notify.policy import Recipient
from bridge.store.base import LATE, bundle_payload


@dataclass(frozen=True, slots=True)
class Contacts:
    email: bool  # the channels that are configured
    sms: bool
    stakeholders: tuple[Recipient, ...]
    escalation: tuple[Recipient, ...]


def _spec(kind: EffectKind, to: str, person: Recipient, payload: dict[str, Any]) -> EffectSpec:
    event_seq = payload.get("event_seq")
    return EffectSpec(
        kind,
        {
            "to": to,
            "name": person.name,
            "event": payload.get("event", ""),
            "fallback_for": str(payload.get("to") or "slack"),
        },
        event_seq=int(event_seq) if event_seq is not None else None,
    )


def _next_channel(
    kind: str, address: str, name: str, contacts: Contacts
) -> tuple[EffectKind, str, Recipient]:
    """The stakeholder or escalation contact reached at ``address`` on ``kind``'s channel, on
    their other one (an on-call's page by SMS that fails is sent by email). People can share
    an address (a team mailbox): the one the message named is taken first."""
    people = (*contacts.stakeholders, *contacts.escalation)
    for person in sorted(people, key=lambda p: p.name != name):  # stable: the named first
        if kind == "notify.email" and person.email == address and person.phone and contacts.sms:
            return "notify.sms", person.phone, person
        if kind == "notify.sms" and person.phone == address and person.email and contacts.email:
            return "notify.email", person.email, person
    raise LookupError(address)


def fallback_for(kind: str, payload: dict[str, Any], contacts: Contacts) -> list[EffectSpec]:
    """The effects that tell, on another channel, whoever ``kind``/``payload`` failed to reach."""
    if "fallback_for" in payload or payload.get(LATE):
        # A fallback never falls back; a message told on the next channel at its deadline is
        # not told there twice.
        return []
    if kind == "notify.slack":
        if payload.get("event") == "escalated":
            return []  # the escalation contacts are paged for this very event already
        told: list[EffectSpec] = []
        for person in contacts.escalation:
            if contacts.email and person.email:
                told.append(_spec("notify.email", person.email, person, payload))
            elif contacts.sms and person.phone:
                told.append(_spec("notify.sms", person.phone, person, payload))
        return told
    address = str(payload.get("to", ""))
    try:
        other, to, person = _next_channel(kind, address, str(payload.get("name", "")), contacts)
    except LookupError:
        return []
    if payload.get("also") == other.removeprefix("notify."):
        return []  # told of this event on that channel already: not twice
    if payload.get("bundle"):
        # Storm control's summary: the person's bundle on the other channel takes over what it
        # held — one more message (in that channel's window), not one per held message.
        return [EffectSpec(other, {**bundle_payload(to, person.name), "fallback_for": address})]
    return [_spec(other, to, person, payload)]
