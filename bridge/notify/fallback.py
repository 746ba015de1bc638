"""When a channel cannot reach someone: tell them on their next channel. Pure.

A stakeholder's email that fails permanently (a refused address) goes out as an SMS to their
phone instead, and a failed SMS (an unreachable number) as an email; when Slack fails permanently
(a revoked token, a missing channel) the escalation contacts are emailed (texted when email is not
configured). A fallback never falls back again, so two broken channels cannot ping-pong. The
failure and who is told instead go into the issue timeline (by name only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.model import EffectKind, EffectSpec
from bridge.notify.policy import Recipient


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


def fallback_for(kind: str, payload: dict[str, Any], contacts: Contacts) -> list[EffectSpec]:
    """The effects that tell, on another channel, whoever ``kind``/``payload`` failed to reach."""
    if "fallback_for" in payload or payload.get("bundle"):
        # A fallback never falls back; a bundle (storm control's summary) is not repeated on
        # the other channel, which had its own messages about the same incidents.
        return []
    if kind == "notify.slack":
        told: list[EffectSpec] = []
        for person in contacts.escalation:
            if contacts.email and person.email:
                told.append(_spec("notify.email", person.email, person, payload))
            elif contacts.sms and person.phone:
                told.append(_spec("notify.sms", person.phone, person, payload))
        return told
    address = str(payload.get("to", ""))
    for person in contacts.stakeholders:
        if kind == "notify.email" and person.email == address and person.phone and contacts.sms:
            return [_spec("notify.sms", person.phone, person, payload)]
        if kind == "notify.sms" and person.phone == address and person.email and contacts.email:
            return [_spec("notify.email", person.email, person, payload)]
    return []
