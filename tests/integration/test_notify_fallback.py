"""A person a channel cannot reach is told on their next one, end to end (real SMTP server,
fake Twilio and Slack on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.slack import FakeSlack
from fakes.smtp import Mailbox
from fakes.twilio import FakeTwilio
from support import (
    REPO,
    SLACK_TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    Harness,
    email_config,
    github_config,
    payload,
    slack_config,
    sms_config,
)


@pytest.fixture
async def harness(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    mailbox: Mailbox,
    twilio: FakeTwilio,
    slack: FakeSlack,
) -> AsyncIterator[Harness]:
    extra = (
        slack_config(slack.base_url, SLACK_TOKEN)
        + email_config(mailbox.port)
        + sms_config(twilio.base_url, TWILIO_SID, TWILIO_TOKEN)
        + "stakeholders:\n"
        "  - {name: Alice Ops, email: alice@example.com, phone: '+15550001111'}\n"
        "escalation:\n"
        "  - {name: Erin Oncall, email: erin@example.com}\n"
    )
    h = Harness(tmp_path, github, clock, github_config(extra))
    await h.start()
    yield h
    await h.stop()


async def timeline(h: Harness) -> list[str]:
    assert h.app is not None
    store = h.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    return [e.text for e in await store.load_events(row.incident.id, 100)]


async def test_a_refused_email_is_sent_as_a_text_and_the_timeline_says_so(
    harness: Harness, mailbox: Mailbox, twilio: FakeTwilio
) -> None:
    """P1 (email only): Alice's address is refused for good, so she is texted instead, once;
    the issue timeline names her, never her address or number."""
    mailbox.refuse_rcpt["alice@example.com"] = "550 5.1.1 no such user"
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    await harness.drain()  # the fallback lane runs after the failure is recorded
    assert mailbox.received == []
    [text] = twilio.sent_to("+15550001111")
    assert "INC-001" in text.body
    lines = await timeline(harness)
    [failed] = [line for line in lines if "failed permanently" in line]
    assert "told instead: sms to Alice Ops" in failed
    assert "alice@example.com" not in failed
    assert "+1555" not in failed


async def test_a_failed_message_shows_in_the_issue_at_once(
    harness: Harness, mailbox: Mailbox
) -> None:
    """A message failing for good is in the issue's timeline as soon as it is recorded, not
    only at the incident's next change (the failure queues a sync), by name only."""
    mailbox.refuse_rcpt["alice@example.com"] = "550 5.1.1 no such user"
    await harness.post(payload("01_firing_single.json"))
    for _ in range(3):
        await harness.drain()  # the sync, the failing email, the sync it queued
    [issue] = harness.issues()
    body = issue.body or ""
    assert "notify.email failed permanently" in body
    assert "told instead: sms to Alice Ops" in body
    assert "alice@example.com" not in body


async def test_slack_refusing_for_good_emails_the_escalation_contacts(
    harness: Harness, mailbox: Mailbox, slack: FakeSlack
) -> None:
    """Slack revoked the token (invalid_auth): the responders cannot be reached there, so the
    escalation contacts are emailed."""
    slack.inject("POST", r"chat\.postMessage", 200, body={"ok": False, "error": "invalid_auth"})
    await harness.post(payload("04_group_of_3_firing.json"))  # P2: no stakeholder email
    await harness.drain()
    await harness.drain()
    assert [rcpt for rcpt, _ in mailbox.received] == ["erin@example.com"]
    assert any("told instead: email to Erin Oncall" in line for line in await timeline(harness))
