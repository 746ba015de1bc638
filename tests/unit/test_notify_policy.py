"""Who is told what: the stakeholder rules as a table of decisions and the messages they cause."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bridge.engine import Decision
from bridge.model import Incident, Priority, TimelineEvent
from bridge.notify.policy import Audience, Recipient, notifications

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
BUNDLED = {
    Priority.P0: frozenset({"email", "sms"}),
    Priority.P1: frozenset({"email"}),
    Priority.P2: frozenset({"status_page"}),
    Priority.P3: frozenset({"status_page"}),
}
PEOPLE = (
    Recipient("Alice", "alice@example.com", "+15550001111"),
    Recipient("Bob", "bob@example.com", None),
    Recipient("Carol", None, "+15550002222"),
)
EVERYTHING = Audience(slack=True, email=True, sms=True, stakeholders=PEOPLE, channels=BUNDLED)


def incident(priority: Priority, kind: str = "incident") -> Incident:
    return Incident(
        key="k" * 64,
        identity="id",
        kind=kind,  # type: ignore[arg-type]  # tests pass only valid kinds
        receiver="r",
        group_key="g",
        group_labels={},
        state="open",
        priority=priority,
        priority_rule="test",
        summary="disk full",
        opened_at=T0,
        earliest_starts_at=T0,
        respond_by=None,
        resolve_by=None,
        number=1,
    )


def decided(
    priority: Priority, *events: tuple[str, dict[str, str]], kind: str = "incident"
) -> Decision:
    return Decision(
        outcome="updated",
        incident=incident(priority, kind),
        changed=True,
        events=[
            TimelineEvent(seq=n, at=T0, kind=event, text=event, data=data)  # type: ignore[arg-type]  # valid kinds
            for n, (event, data) in enumerate(events, start=1)
        ],
    )


def sent(decision: Decision, audience: Audience = EVERYTHING) -> list[tuple[str, str, int | None]]:
    return [
        (e.kind, str(e.payload.get("to", "")), e.event_seq)
        for e in notifications(decision, audience)
    ]


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (
            Priority.P0,
            [
                ("notify.slack", "", 1),
                ("notify.email", "alice@example.com", 1),
                ("notify.sms", "+15550001111", 1),
                ("notify.email", "bob@example.com", 1),
                ("notify.sms", "+15550002222", 1),
            ],
        ),
        (
            Priority.P1,
            [
                ("notify.slack", "", 1),
                ("notify.email", "alice@example.com", 1),
                ("notify.email", "bob@example.com", 1),
            ],
        ),
        (Priority.P2, [("notify.slack", "", 1)]),
        (Priority.P3, [("notify.slack", "", 1)]),
    ],
)
def test_an_opening_tells_what_its_priority_requires(
    priority: Priority, expected: list[tuple[str, str, int | None]]
) -> None:
    """P0: email + SMS to every stakeholder who has one; P1: email; P2/P3: the status page
    only. Slack hears every incident."""
    assert sent(decided(priority, ("opened", {}))) == expected


def test_each_message_names_the_persons_other_channel_told_of_the_same_event() -> None:
    """A P0 opening reaches Alice by email and SMS: each message says so (``also``), so a
    failure of one does not fall back to the other and tell her twice; a P1's email alone
    names nothing."""
    p0 = {
        (e.kind, e.payload.get("to")): e.payload.get("also")
        for e in notifications(decided(Priority.P0, ("opened", {})), EVERYTHING)
    }
    assert p0[("notify.email", "alice@example.com")] == "sms"
    assert p0[("notify.sms", "+15550001111")] == "email"
    p1 = notifications(decided(Priority.P1, ("opened", {})), EVERYTHING)
    assert all("also" not in e.payload for e in p1)


@pytest.mark.parametrize(
    ("old", "new", "channels"),
    [
        ("P2", Priority.P1, {"notify.slack", "notify.email"}),
        ("P1", Priority.P0, {"notify.slack", "notify.sms"}),  # the email went out at P1
        ("P3", Priority.P2, {"notify.slack"}),
        ("P2", Priority.P0, {"notify.slack", "notify.email", "notify.sms"}),
    ],
)
def test_a_priority_rise_sends_only_what_the_new_priority_adds(
    old: str, new: Priority, channels: set[str]
) -> None:
    """A rise tells stakeholders what the new priority requires and the old one did not."""
    kinds = {kind for kind, _, _ in sent(decided(new, ("priority_raised", {"old": old})))}
    assert kinds == channels


def test_a_resolution_is_an_email_never_a_text() -> None:
    """The all-clear goes by email to those a P0/P1 told; nobody is texted it."""
    kinds = [kind for kind, _, _ in sent(decided(Priority.P0, ("resolved", {})))]
    assert kinds == ["notify.slack", "notify.email", "notify.email"]
    assert [k for k, _, _ in sent(decided(Priority.P2, ("resolved", {})))] == ["notify.slack"]


def test_the_same_episode_resumed_is_told_by_email_never_texted() -> None:
    """Alerts of the same episode firing again (``episode: same``) are not news as of an
    opening: Slack hears it, stakeholders get the email that it is not over after all (the
    counterpart of the all-clear), and nobody is texted; a new episode tells all a P0 does."""
    same = decided(Priority.P0, ("reopened", {"episode": "same"}))
    assert [kind for kind, _, _ in sent(same)] == ["notify.slack", "notify.email", "notify.email"]
    anew = decided(Priority.P0, ("reopened", {}))
    assert {kind for kind, _, _ in sent(anew)} == {"notify.slack", "notify.email", "notify.sms"}


@pytest.mark.parametrize(
    ("raised_from", "channels"),
    [
        ("P2", {"notify.slack", "notify.email", "notify.sms"}),  # a P0 is texted at once
        ("P1", {"notify.slack", "notify.email", "notify.sms"}),
        ("P0", {"notify.slack", "notify.email"}),  # not raised: the email only
    ],
)
def test_the_same_episode_resumed_at_a_higher_priority_tells_what_it_adds(
    raised_from: str, channels: set[str]
) -> None:
    """The episode resumes as P0 (its alert classifies higher now): besides the email that it
    is not over, stakeholders get what P0 requires and the old priority did not — the SMS."""
    data = {"episode": "same"} | ({"raised_from": raised_from} if raised_from != "P0" else {})
    kinds = {kind for kind, _, _ in sent(decided(Priority.P0, ("reopened", data)))}
    assert kinds == channels


def test_alert_updates_reach_slack_only() -> None:
    """An alert firing or resolving inside an open incident is a Slack thread reply only."""
    decision = decided(Priority.P0, ("alert_firing", {}), ("alert_resolved", {}))
    assert sent(decision) == [("notify.slack", "", 1), ("notify.slack", "", 2)]


def test_the_alerts_an_incident_opens_with_are_in_its_root_message() -> None:
    """Opening: Slack gets the one root message; the opening alerts (before it in the
    timeline) are not replies of their own, while a reopen's alerts still are."""
    opening = decided(Priority.P2, ("alert_firing", {}), ("alert_firing", {}), ("opened", {}))
    assert sent(opening) == [("notify.slack", "", 3)]
    reopening = decided(Priority.P2, ("alert_firing", {}), ("reopened", {}))
    assert sent(reopening) == [("notify.slack", "", 1), ("notify.slack", "", 2)]


def test_unconfigured_channels_and_maintenance_tell_nobody() -> None:
    """No Slack, email or SMS configured: no effects; a maintenance request tells nobody."""
    nothing = Audience(slack=False, email=False, sms=False, stakeholders=PEOPLE, channels=BUNDLED)
    assert sent(decided(Priority.P0, ("opened", {})), nothing) == []
    assert sent(decided(Priority.P0, ("opened", {}), kind="maint")) == []


def test_an_unchanged_decision_tells_nobody() -> None:
    """A repeat (nothing changed) sends nothing, whatever it carries."""
    decision = decided(Priority.P0, ("opened", {}))
    decision.changed = False
    assert sent(decision) == []
