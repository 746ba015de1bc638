"""A channel still failing at the response deadline, end to end: the person is told on their
next channel once — across retries and restarts — the issue timeline says so, and the original
message keeps being retried until it goes (a real SMTP server, the fake Slack and Twilio on
loopback, a fake clock).
"""

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

ALICE_MAIL, ALICE_PHONE, BOB_MAIL, ERIN_MAIL = (
    "alice@example.com",
    "+15550001111",
    "bob@example.com",
    "erin@example.com",
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
        f"  - {{name: Alice Ops, email: {ALICE_MAIL}, phone: '{ALICE_PHONE}'}}\n"
        f"  - {{name: Bob Lead, email: {BOB_MAIL}}}\n"
        "escalation:\n"
        f"  - {{name: Erin Oncall, email: {ERIN_MAIL}}}\n"
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


async def late_lines(h: Harness) -> list[str]:
    return [line for line in await timeline(h) if "at the response deadline" in line]


async def test_smtp_down_past_a_p1_deadline_texts_the_stakeholder_once(
    harness: Harness, mailbox: Mailbox, twilio: FakeTwilio
) -> None:
    """P1 (email only, respond within 15 min) while the SMTP server answers 451. Until the
    deadline only the email is retried; at it Alice, who has a phone, is texted instead and
    Bob, who has none, is named as unreachable — one line each in the timeline, by name only.
    More failing retries and a restart text nobody again; when the server takes mail again
    each email goes out once."""
    mailbox.data_answer = "451 4.3.0 try again later"
    status, answer = await harness.post(payload("01_firing_single.json"))
    assert (status, answer["priority"]) == (200, "P1")
    await harness.drain()
    for _ in range(14):  # 14 minutes of a failing server, drained every minute
        harness.clock.advance(60)
        await harness.drain()
    assert twilio.messages == []
    assert await late_lines(harness) == []

    harness.clock.advance(61)  # past the deadline, 15 minutes after the incident opened
    await harness.drain()
    [text] = twilio.sent_to(ALICE_PHONE)
    assert text.body.startswith("INC-001 P1 OPENED: ")
    lines = await late_lines(harness)
    assert sorted(lines) == [
        "notify.email still failing at the response deadline, retrying:"
        " SMTP 451: 4.3.0 try again later; nobody else to tell",
        "notify.email still failing at the response deadline, retrying:"
        " SMTP 451: 4.3.0 try again later; told instead: sms to Alice Ops",
    ]
    assert not any(secret in line for line in lines for secret in ("@", "+1555"))

    for _ in range(10):
        harness.clock.advance(120)
        await harness.drain()
    await harness.restart()
    harness.clock.advance(600)
    await harness.drain()
    assert len(twilio.messages) == 1
    assert len(await late_lines(harness)) == 2

    mailbox.data_answer = None
    harness.clock.advance(600)
    await harness.drain()
    assert sorted(rcpt for rcpt, _ in mailbox.received) == [ALICE_MAIL, BOB_MAIL]
    assert len(twilio.messages) == 1


async def test_slack_down_past_a_p0_deadline_emails_the_escalation_contacts_once(
    harness: Harness, mailbox: Mailbox, slack: FakeSlack
) -> None:
    """Slack answers 503 for a P0 (respond within 5 min): at the deadline the escalation
    contact is emailed once, the timeline says so, and the Slack message still goes out,
    once, when Slack is back."""
    slack.down = True
    status, answer = await harness.post(payload("13_critical_list_service_unavailable.json"))
    assert (status, answer["priority"]) == (200, "P0")
    await harness.drain()
    assert sorted(rcpt for rcpt, _ in mailbox.received) == [ALICE_MAIL, BOB_MAIL]
    harness.clock.advance(240)
    await harness.drain()
    assert mailbox.to(ERIN_MAIL) == []

    harness.clock.advance(61)
    await harness.drain()
    await harness.drain()  # the email lane runs before the Slack lane queues the fallback
    [page] = mailbox.to(ERIN_MAIL)
    assert str(page["Subject"]).startswith("[P0][INC-001] ")
    [line] = await late_lines(harness)
    assert line.startswith("notify.slack still failing at the response deadline, retrying: ")
    assert line.endswith("; told instead: email to Erin Oncall")

    for _ in range(5):
        harness.clock.advance(300)
        await harness.drain()
    assert len(mailbox.to(ERIN_MAIL)) == 1
    slack.down = False
    harness.clock.advance(300)
    await harness.drain()
    assert len(slack.messages("#incidents")) == 1
    assert len(mailbox.to(ERIN_MAIL)) == 1


async def test_a_message_about_a_later_event_has_the_response_time_from_that_event(
    harness: Harness, mailbox: Mailbox, twilio: FakeTwilio
) -> None:
    """The P1 resolves an hour in, long past its response deadline, while the SMTP server
    answers 451: the all-clear email is not late at once — it has the priority's 15 minutes
    from the resolution — and only then is Alice texted instead."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    assert len(mailbox.received) == 2
    harness.clock.advance(3600)
    mailbox.data_answer = "451 4.3.0 try again later"
    resolved = payload("03_resolved_single.json")
    [alert] = resolved["alerts"]
    alert["endsAt"] = harness.clock().isoformat()
    assert (await harness.post(resolved))[0] == 200
    await harness.drain()
    for _ in range(14):
        harness.clock.advance(60)
        await harness.drain()
    assert twilio.messages == []
    harness.clock.advance(61)
    await harness.drain()
    [text] = twilio.sent_to(ALICE_PHONE)
    assert text.body.startswith("INC-001 P1 RESOLVED: ")
