"""Stakeholder email through a real SMTP server (aiosmtpd on loopback), per the guide's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.smtp import Mailbox, smtp_server
from support import REPO, Harness, github_config, payload


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as mailbox:
        yield mailbox, mailbox.port


def email_config(port: int) -> str:
    return (
        "email:\n"
        "  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {port}\n"
        "  starttls: false\n"
        "  from: incident-bridge@example.com\n"
        "stakeholders:\n"
        "  - {name: Alice Ops, email: alice@example.com, phone: '+15550001111'}\n"
        "  - {name: Bob Lead, email: bob@example.com}\n"
        "  - {name: Carol Pager, phone: '+15550002222'}\n"
    )


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, smtp: tuple[Mailbox, int]
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(email_config(smtp[1])))
    await h.start()
    yield h
    await h.stop()


def text_of(message: Message) -> str:
    part = message.get_body(("plain",)) if hasattr(message, "get_body") else None
    source = part if part is not None else message
    for piece in source.walk():
        if piece.get_content_type() == "text/plain":
            data = piece.get_payload(decode=True)
            assert isinstance(data, bytes)
            return data.decode()
    return ""


async def test_a_p0_emails_every_stakeholder_with_an_email_address_at_once(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """P0: one email per stakeholder who has an address, subject ``[P0][INC-001] <summary>``,
    a plain-text and an HTML part, and the link to the incident's issue."""
    mailbox, _ = smtp
    status, answer = await harness.post(payload("13_critical_list_service_unavailable.json"))
    assert status == 200
    assert answer["priority"] == "P0"
    await harness.drain()
    assert sorted(rcpt for rcpt, _ in mailbox.received) == ["alice@example.com", "bob@example.com"]
    [message] = mailbox.to("alice@example.com")
    assert message["Subject"].startswith("[P0][INC-001] ")
    assert message["From"] == "incident-bridge@example.com"
    assert message.is_multipart()
    types = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html"} <= types
    [issue] = harness.issues()
    assert f"{harness.github.html_base}/{REPO}/issues/{issue.number}" in text_of(message)


async def test_a_p2_tells_no_stakeholder_and_a_repeat_resends_nothing(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """P2/P3 go to the status page only; an unchanged repeat of a P0 sends nothing again."""
    mailbox, _ = smtp
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    assert mailbox.received == []
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(mailbox.received) == 2


async def test_a_p1_emails_on_opening_and_on_resolution(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """P1: email at once; the all-clear by email when it resolves."""
    mailbox, _ = smtp
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.clock.advance(600)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    subjects = [m["Subject"] for m in mailbox.to("bob@example.com")]
    assert len(subjects) == 2
    assert subjects[0].startswith("[P1][INC-001] ")
    assert subjects[1].endswith("(resolved)")


async def test_a_priority_rise_sends_what_the_new_priority_requires(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """P2 → P1: the stakeholders now get the email they did not get at P2."""
    mailbox, _ = smtp
    body = payload("04_group_of_3_firing.json")
    await harness.post(body)
    await harness.drain()
    assert mailbox.received == []
    body["alerts"][0]["labels"]["priority"] = "P1"
    harness.clock.advance(60)
    assert (await harness.post(body))[1]["priority"] == "P1"
    await harness.drain()
    assert len(mailbox.to("alice@example.com")) == 1
    assert "(raised)" in mailbox.to("alice@example.com")[0]["Subject"]


async def test_smtp_down_delays_only_email_and_nothing_is_lost(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """The SMTP server answers 451 (try later): the issue is made regardless, the emails wait
    in their own lane and go out once when the server takes them."""
    mailbox, _ = smtp
    mailbox.data_answer = "451 4.3.0 try again later"
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(harness.issues()) == 1
    assert mailbox.received == []
    mailbox.data_answer = None
    harness.clock.advance(600)
    await harness.drain()
    assert sorted(rcpt for rcpt, _ in mailbox.received) == ["alice@example.com", "bob@example.com"]


async def test_a_refused_address_fails_alone_and_shows_in_the_timeline(
    harness: Harness, smtp: tuple[Mailbox, int]
) -> None:
    """550 for one address: that email fails permanently (timeline, not retried); the other
    stakeholder is told."""
    mailbox, _ = smtp
    mailbox.refuse_rcpt["bob@example.com"] = "550 5.1.1 no such user"
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert [rcpt for rcpt, _ in mailbox.received] == ["alice@example.com"]
    assert harness.app is not None
    store = harness.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    events = await store.load_events(row.incident.id, 50)
    assert any(e.kind == "effect_failed" and "notify.email" in e.text for e in events)
    harness.clock.advance(3600)
    await harness.drain()
    assert len(mailbox.received) == 1
