"""Storm control through the real app: 200 P0 groups fire at once; SMS (the fake Twilio) and
email (a real SMTP server) are configured with their throttles, three stakeholders listen.

Within any window of ``per`` no person gets more than ``max`` texts or emails; everything held is
told in bundles (one SMS segment each); every incident reaches every stakeholder on each of their
channels exactly once, individually or in a bundle. Only the clock is fake.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from fakes.github import FakeGitHub
from fakes.smtp import Mailbox
from fakes.twilio import FakeTwilio, count_segments
from support import (
    TWILIO_SID,
    TWILIO_TOKEN,
    Harness,
    email_config,
    github_config,
    payload,
    sms_config,
)

ALICE_PHONE, CAROL_PHONE = "+15550001111", "+15550002222"
ALICE_MAIL, BOB_MAIL = "alice@example.com", "bob@example.com"
GROUPS = 200
SMS_MAX, EMAIL_MAX = 5, 20
WINDOW = timedelta(minutes=15)


def throttle_config(smtp_port: int, twilio_url: str) -> str:
    return (
        email_config(smtp_port, f"  throttle: {{max: {EMAIL_MAX}, per: 15m}}\n")
        + sms_config(
            twilio_url, TWILIO_SID, TWILIO_TOKEN, f"  throttle: {{max: {SMS_MAX}, per: 15m}}\n"
        )
        + "stakeholders:\n"
        f"  - {{name: Alice Ops, email: {ALICE_MAIL}, phone: '{ALICE_PHONE}'}}\n"
        f"  - {{name: Bob Lead, email: {BOB_MAIL}}}\n"
        f"  - {{name: Carol Pager, phone: '{CAROL_PHONE}'}}\n"
    )


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mailbox: Mailbox, twilio: FakeTwilio
) -> AsyncIterator[Harness]:
    config = github_config(throttle_config(mailbox.port, twilio.base_url))
    h = Harness(tmp_path, github, clock, config)
    await h.start()
    yield h
    await h.stop()


def group(index: int) -> dict[str, Any]:
    """A P0 group of its own: fixture 13 for service ``svc-NNN``."""
    body = payload("13_critical_list_service_unavailable.json")
    service = f"svc-{index:03d}"
    body["groupKey"] = f'{{}}:{{alertname="ServiceUnavailable", service="{service}"}}'
    body["groupLabels"]["service"] = service
    body["commonLabels"]["service"] = service
    [alert] = body["alerts"]
    alert["labels"]["service"] = service
    alert["fingerprint"] = f"{index:016x}"
    alert["annotations"]["summary"] = f"{service} unavailable for more than 1 minute"
    return body


def text_of(message: Message) -> str:
    for piece in message.walk():
        if piece.get_content_type() == "text/plain":
            data = piece.get_payload(decode=True)
            assert isinstance(data, bytes)
            return data.decode()
    return ""


def assert_bounded(times: list[datetime], most: int, who: str) -> None:
    """No ``WINDOW`` (any start) holds more than ``most`` of ``times``."""
    times = sorted(times)
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + WINDOW]
        assert len(inside) <= most, f"{who}: {len(inside)} messages from {start}"


IDS = re.compile(r"INC-\d{3}")
BUNDLE_SMS = re.compile(r"^(\d+) more incident updates?(?:: (.*?))?(?: \+(\d+) more)?(?: \S+)?$")


def told_by_sms(bodies: list[str]) -> tuple[list[str], int]:
    """The incidents named in a person's texts (each time named) and how many more the
    bundles counted without naming them; every bundle fits one GSM-7 segment."""
    named: list[str] = []
    unnamed = 0
    for body in bodies:
        if body.startswith("INC-"):
            assert " P0 OPENED: " in body
            named.append(body.split(" ", 1)[0])
            continue
        assert count_segments(body) == ("GSM-7", 1), body
        match = BUNDLE_SMS.match(body)
        assert match is not None, body
        listed = IDS.findall(match.group(2) or "")
        left = int(match.group(3) or 0)
        assert int(match.group(1)) == len(listed) + left, body
        named += listed
        unnamed += left
    return named, unnamed


async def test_200_p0_groups_at_once_keep_every_person_under_the_bound_and_tell_everything(
    harness: Harness, twilio: FakeTwilio, mailbox: Mailbox
) -> None:
    """200 P0 groups fire at once. Over the next hour of fake time, drained every 30 s: nobody
    gets more than 5 texts or 20 emails in any 15 minutes; the messages held beyond that are
    told in bundles (an SMS bundle in one segment, naming what fits and counting the rest);
    every incident reaches every stakeholder once on each of their channels, never twice, and
    nothing is left held."""
    clock = harness.clock
    answers = await asyncio.gather(*(harness.post(group(i)) for i in range(GROUPS)))
    assert all(status == 200 and body["priority"] == "P0" for status, body in answers)
    all_ids = {f"INC-{n:03d}" for n in range(1, GROUPS + 1)}

    emails: dict[str, list[tuple[datetime, Message]]] = defaultdict(list)
    seen = 0
    for _ in range(120):  # an hour, every 30 s
        await harness.drain()
        for rcpt, message in mailbox.received[seen:]:
            emails[rcpt].append((clock(), message))
        seen = len(mailbox.received)
        clock.advance(30)

    texts: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for sms in twilio.messages:
        texts[sms.to].append((sms.date_created, sms.body))
    assert set(texts) == {ALICE_PHONE, CAROL_PHONE}
    assert set(emails) == {ALICE_MAIL, BOB_MAIL}

    for phone, sent in texts.items():
        assert_bounded([at for at, _ in sent], SMS_MAX, phone)
        named, unnamed = told_by_sms([body for _, body in sent])
        assert len(named) == len(set(named)), f"{phone}: an incident texted twice"
        assert set(named) <= all_ids
        assert len(named) + unnamed == GROUPS, phone
        assert SMS_MAX < len(sent) < SMS_MAX + 3  # five at once, then bundles, not 200 texts

    for address, received in emails.items():
        assert_bounded([at for at, _ in received], EMAIL_MAX, address)
        named = []
        for _, message in received:
            subject = str(message["Subject"])
            if subject.startswith("[P0][INC-"):
                named.append(subject[5:12])
            else:
                assert re.match(r"^\[P0\] \d+ more incident updates: INC-", subject), subject
                named += re.findall(r"^(INC-\d{3}) P0: ", text_of(message), re.MULTILINE)
        assert len(named) == len(set(named)), f"{address}: an incident emailed twice"
        assert set(named) == all_ids, address
        assert EMAIL_MAX < len(received) < EMAIL_MAX + 3

    path = harness.config.store.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as conn:
        (held,) = conn.execute("SELECT COUNT(*) FROM notify_held").fetchone()
        states = conn.execute(
            "SELECT DISTINCT state FROM outbox WHERE lane IN ('email', 'sms')"
        ).fetchall()
    assert held == 0
    assert states == [("done",)]
