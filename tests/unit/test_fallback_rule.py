"""Who is told instead when a channel cannot reach someone: the fallback rule as a table."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.model import EffectSpec
from bridge.notify.fallback import Contacts, fallback_for
from bridge.notify.policy import Recipient
from bridge.store.base import failure_effects

ALICE = Recipient("Alice", "alice@example.com", "+15550001111")
BOB = Recipient("Bob", "bob@example.com", None)
ESCALATE = (
    Recipient("Erin", "erin@example.com", "+15550003333"),
    Recipient("Sam", None, "+15550004444"),
)
BOTH = Contacts(email=True, sms=True, stakeholders=(ALICE, BOB), escalation=ESCALATE)


def told(kind: str, payload: dict[str, Any], contacts: Contacts = BOTH) -> list[tuple[str, str]]:
    return [(s.kind, s.payload["to"]) for s in fallback_for(kind, payload, contacts)]


@pytest.mark.parametrize(
    ("kind", "to", "expected"),
    [
        ("notify.email", "alice@example.com", [("notify.sms", "+15550001111")]),
        ("notify.sms", "+15550001111", [("notify.email", "alice@example.com")]),
        ("notify.email", "bob@example.com", []),  # Bob has no phone: nobody else to try
        ("notify.email", "stranger@example.com", []),
        (
            "notify.slack",
            "",
            [("notify.email", "erin@example.com"), ("notify.sms", "+15550004444")],
        ),
    ],
)
def test_a_failed_channel_falls_back_to_the_persons_next(
    kind: str, to: str, expected: list[tuple[str, str]]
) -> None:
    """Email ↔ SMS for the same person; Slack down → the escalation contacts (email, else SMS)."""
    assert told(kind, {"to": to, "name": "x", "event": "opened", "event_seq": 3}) == expected


def test_a_person_told_of_the_event_on_the_other_channel_too_is_not_told_there_twice() -> None:
    """A P0 opening goes to Alice by email and SMS: her email failing adds no second SMS."""
    payload = {"to": "alice@example.com", "event": "opened", "event_seq": 3, "also": "sms"}
    assert told("notify.email", payload) == []


def test_an_on_call_page_that_fails_falls_back_to_their_other_channel() -> None:
    """The escalation contacts are people too: Erin's SMS page failing goes out by email."""
    payload = {"to": "+15550003333", "event": "escalated", "event_seq": 5}
    assert told("notify.sms", payload) == [("notify.email", "erin@example.com")]


def test_slack_failing_on_an_escalation_pages_nobody_again() -> None:
    """The escalation contacts are paged for an ``escalated`` event already: Slack missing it
    does not page them a second time."""
    assert told("notify.slack", {"event": "escalated", "event_seq": 5}) == []


def test_a_fallback_never_falls_back_again() -> None:
    """Two broken channels cannot ping-pong: a fallback message that fails is the end of it."""
    payload = {"to": "+15550001111", "event_seq": 3, "fallback_for": "alice@example.com"}
    assert told("notify.sms", payload) == []


def test_only_configured_channels_are_used() -> None:
    """Without SMS configured, a refused email has nowhere else to go."""
    no_sms = Contacts(email=True, sms=False, stakeholders=(ALICE,), escalation=())
    assert told("notify.email", {"to": "alice@example.com", "event_seq": 1}, no_sms) == []


def test_the_fallback_keeps_the_event_and_names_the_person() -> None:
    """Same event (so its message says the same thing), the person's name for the timeline."""
    [spec] = fallback_for(
        "notify.email", {"to": "alice@example.com", "event_seq": 7, "event": "opened"}, BOTH
    )
    assert spec.event_seq == 7
    assert spec.payload["name"] == "Alice"
    assert spec.payload["event"] == "opened"


def test_people_sharing_an_address_are_told_as_the_message_named_them() -> None:
    """The ops lead (a stakeholder) and the on-call (an escalation contact) share a team
    mailbox: the on-call's page refused by it goes to the on-call's pager, not the lead's phone;
    the lead's refused email goes to the lead's phone."""
    lead = Recipient("Ops lead", "ops@example.com", "+15550000001")
    oncall = Recipient("On-call", "ops@example.com", "+15550000009")
    shared = Contacts(email=True, sms=True, stakeholders=(lead,), escalation=(oncall,))
    page = {"to": "ops@example.com", "name": "On-call", "event": "escalated"}
    assert told("notify.email", page, shared) == [("notify.sms", "+15550000009")]
    mail = {"to": "ops@example.com", "name": "Ops lead", "event": "opened"}
    assert told("notify.email", mail, shared) == [("notify.sms", "+15550000001")]


@pytest.mark.parametrize(
    ("failed", "incident_kind", "expected"),
    [
        ("notify.email", "incident", ["notify.sms", "github.sync"]),
        ("notify.slack", "maint", ["notify.sms", "github.sync"]),
        ("github.comment", "incident", ["notify.sms", "github.sync"]),
        ("github.pir", "incident", ["notify.sms", "github.sync"]),
        ("github.sync", "incident", ["notify.sms"]),  # a sync after a failing sync fails again
        ("github.storm", "storm", ["notify.sms"]),  # the roll-up's own effect keeps it
        ("notify.email", "storm", ["notify.sms"]),
    ],
)
def test_a_failure_queues_a_sync_so_the_issue_shows_it(
    failed: str, incident_kind: str, expected: list[str]
) -> None:
    """What a permanent (or late) failure queues: the fallback messages (bundles take over
    apart), then a sync, so the issue's timeline shows the failure at once."""
    fallback = [
        EffectSpec("notify.sms", {"to": "+15550001111"}),
        EffectSpec("notify.email", {"to": "erin@example.com", "bundle": True}),
    ]
    assert [s.kind for s in failure_effects(failed, incident_kind, fallback)] == expected
