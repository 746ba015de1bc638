"""A storm control bundle that fails for good, end to end: what it held is told in one text on
the person's other channel, nothing is left held, and the timeline names who is told instead (a
real SMTP server, the fake Twilio, a fake clock).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.smtp import Mailbox
from fakes.twilio import FakeTwilio, count_segments
from support import (
    REPO,
    TWILIO_SID,
    TWILIO_TOKEN,
    Harness,
    email_config,
    github_config,
    payload,
    sms_config,
)

ALICE_MAIL, ALICE_PHONE = "alice@example.com", "+15550001111"


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mailbox: Mailbox, twilio: FakeTwilio
) -> AsyncIterator[Harness]:
    extra = (
        email_config(mailbox.port, "  throttle: {max: 1, per: 15m}\n")
        + sms_config(twilio.base_url, TWILIO_SID, TWILIO_TOKEN)
        + "stakeholders:\n"
        f"  - {{name: Alice Ops, email: {ALICE_MAIL}, phone: '{ALICE_PHONE}'}}\n"
    )
    h = Harness(tmp_path, github, clock, github_config(extra))
    await h.start()
    yield h
    await h.stop()


def p1_group(index: int) -> dict[str, Any]:
    """A P1 group of its own (email only): fixture 01 for service ``svc-N``."""
    body = payload("01_firing_single.json")
    service = f"svc-{index}"
    body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="{service}"}}'
    body["groupLabels"]["service"] = service
    body["commonLabels"]["service"] = service
    [alert] = body["alerts"]
    alert["labels"]["service"] = service
    alert["fingerprint"] = f"{index:016x}"
    return body


def held_rows(h: Harness) -> int:
    path = h.config.store.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM notify_held").fetchone()
    return int(count)


async def test_a_bundle_refused_for_good_is_told_in_one_text_instead(
    harness: Harness, mailbox: Mailbox, twilio: FakeTwilio
) -> None:
    """One email per 15 minutes: INC-001 is emailed, INC-002 and INC-003 are held for Alice's
    bundle. When it is due her mailbox is gone (550): the bundle fails, and its content goes to
    her phone as one text naming both incidents; nothing stays held."""
    for index in (1, 2, 3):
        status, answer = await harness.post(p1_group(index))
        assert (status, answer["priority"]) == (200, "P1")
    await harness.drain()
    [first] = mailbox.to(ALICE_MAIL)
    assert str(first["Subject"]).startswith("[P1][INC-001] ")
    assert held_rows(harness) == 2

    mailbox.refuse_rcpt[ALICE_MAIL] = "550 5.1.1 mailbox gone"
    harness.clock.advance(15 * 60 + 1)
    await harness.drain()
    assert len(mailbox.received) == 1
    [text] = twilio.sent_to(ALICE_PHONE)
    assert text.body.startswith("2 more incident updates: INC-002 P1, INC-003 P1 ")
    assert count_segments(text.body) == ("GSM-7", 1)
    assert held_rows(harness) == 0

    assert harness.app is not None
    store = harness.app[SERVICES].store
    lines = []
    for row in await store.list_incidents(REPO):
        assert row.incident.id is not None
        lines += [
            e.text
            for e in await store.load_events(row.incident.id, 50)
            if e.kind == "effect_failed"
        ]
    assert lines == [
        "notify.email failed permanently: SMTP refused the recipient (550);"
        " told instead: sms summary to Alice Ops"
    ]
    harness.clock.advance(3600)
    await harness.drain()
    assert len(twilio.messages) == 1
