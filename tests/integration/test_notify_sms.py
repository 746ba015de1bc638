"""Stakeholder SMS through Twilio's Messages API (the fake Twilio on loopback), per the guide:
P0 texts every stakeholder with a phone at once; nothing else is texted.

The bridge runs for real (``create_app`` behind the harness, the fake GitHub); only the clock is
fake, shared by the bridge and the fake Twilio, and the outbox is drained by the test.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.effects import retry_after_seconds
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.twilio import FakeTwilio, count_segments
from support import REPO, TWILIO_SID, TWILIO_TOKEN, Harness, github_config, payload

FROM = "+15550009999"
ALICE, CAROL, DAVE = "+15550001111", "+15550002222", "+447700900123"
MESSAGES = r"/Messages\.json$"


def sms_config(base_url: str, token: str = TWILIO_TOKEN) -> str:
    return (
        "sms:\n"
        "  twilio:\n"
        f"    api_url: {base_url}\n"
        f"    account_sid: {TWILIO_SID}\n"
        f"    auth_token: {token}\n"
        f'    from: "{FROM}"\n'
        "stakeholders:\n"
        f"  - {{name: Alice Ops, email: alice@example.com, phone: '{ALICE}'}}\n"
        "  - {name: Bob Lead, email: bob@example.com}\n"
        f"  - {{name: Carol Pager, phone: '{CAROL}'}}\n"
        f"  - {{name: Dave Abroad, phone: '{DAVE}'}}\n"
    )


async def start(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, twilio: FakeTwilio, token: str
) -> Harness:
    h = Harness(tmp_path, github, clock, github_config(sms_config(twilio.base_url, token)))
    await h.start()
    return h


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, twilio: FakeTwilio
) -> AsyncIterator[Harness]:
    h = await start(tmp_path, github, clock, twilio, TWILIO_TOKEN)
    yield h
    await h.stop()


def p0_resolved() -> dict[str, Any]:
    """The P0 of fixture 13, its one alert resolved five minutes after it started."""
    body = payload("13_critical_list_service_unavailable.json")
    body["status"] = "resolved"
    [alert] = body["alerts"]
    alert["status"] = "resolved"
    alert["endsAt"] = "2026-11-26T21:44:53.511779Z"
    return body


def sms_effects(harness: Harness) -> list[tuple[str, int, int, str | None]]:
    """The SMS effects' outbox rows: (state, attempts, outcome_unknown, last_error)."""
    path = harness.config.store.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT state, attempts, outcome_unknown, last_error FROM outbox"
            " WHERE kind = 'notify.sms' ORDER BY id"
        ).fetchall()
    return [(str(s), int(a), int(u), e) for s, a, u, e in rows]


async def timeline(harness: Harness) -> list[tuple[str, str]]:
    """The one incident's timeline: (kind, text)."""
    assert harness.app is not None
    store = harness.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    return [(e.kind, e.text) for e in await store.load_events(row.incident.id, 100)]


async def test_a_p0_texts_every_stakeholder_with_a_phone_once_in_one_segment(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """P0: one text per stakeholder with a phone (none for the one with only an email), from
    the configured number, one segment, with the id, the priority and the issue's link; a
    repeated notification texts nobody again."""
    status, answer = await harness.post(payload("13_critical_list_service_unavailable.json"))
    assert status == 200
    assert answer["priority"] == "P0"
    await harness.drain()
    assert sorted(m.to for m in twilio.messages) == sorted([ALICE, CAROL, DAVE])
    [issue] = harness.issues()
    link = f"{harness.github.html_base}/{REPO}/issues/{issue.number}"
    for message in twilio.messages:
        assert message.from_ == FROM
        assert message.segments == 1
        assert count_segments(message.body) == ("GSM-7", 1)
        assert message.body.startswith("INC-001 P0 OPENED: Checkout service unavailable")
        assert message.body.endswith(" " + link)
    [request] = [r for r in twilio.calls("POST") if r.form["To"] == ALICE]
    assert request.headers["Authorization"].startswith("Basic ")
    assert [s for s, *_ in sms_effects(harness)] == ["done"] * 3

    harness.clock.advance(60)
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(twilio.messages) == 3


async def test_a_p1_and_a_resolution_text_nobody(harness: Harness, twilio: FakeTwilio) -> None:
    """P1 is email only, and the all-clear of a P0 goes by email, not SMS: no request at all
    reaches Twilio for either."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    assert twilio.requests == []
    harness.clock.advance(600)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    assert twilio.requests == []

    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(twilio.messages) == 3
    harness.clock.advance(300)
    status, _ = await harness.post(p0_resolved())
    assert status == 200
    await harness.drain()
    states = [i["state"] for i in await harness.incidents() if i["priority"] == "P0"]
    assert states == ["resolved"]
    assert len(twilio.requests) == 3  # the three opening texts, nothing for the resolution


async def test_twilio_429_waits_for_retry_after_and_does_not_delay_the_issue(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """429 with ``Retry-After: 120`` for Alice's text: the GitHub issue is made at once
    regardless; the window is the account's, not the message's, so no text — not the other
    stakeholders' either — is sent inside it, and after it each stakeholder has been texted
    exactly once."""
    twilio.inject("POST", MESSAGES, 429, headers={"Retry-After": "120"})
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(harness.issues()) == 1  # GitHub's lane is not held up by the SMS lane
    assert [r.status for r in twilio.requests] == [429]
    assert twilio.messages == []
    assert [(s, a, u) for s, a, u, _ in sms_effects(harness)] == [("pending", 1, 0)] * 3

    harness.clock.advance(110)
    await harness.drain()
    assert len(twilio.requests) == 1  # still inside the window: not a single request

    harness.clock.advance(20)
    await harness.drain()
    assert sorted(m.to for m in twilio.messages) == sorted([ALICE, CAROL, DAVE])
    assert [r.status for r in twilio.requests] == [429, 201, 201, 201]
    assert [s for s, *_ in sms_effects(harness)] == ["done"] * 3


async def test_bad_credentials_fail_permanently_in_the_timeline_without_retry(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    twilio: FakeTwilio,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A wrong auth token: Twilio answers 401 (20003); each text fails permanently, shows in
    the incident's timeline (without the token), and is never tried again."""
    wrong = "wrong-token-0123456789abcdef"
    harness = await start(tmp_path, github, clock, twilio, wrong)
    try:
        await harness.post(payload("13_critical_list_service_unavailable.json"))
        await harness.drain()
        assert len(harness.issues()) == 1
        assert [(r.status, r.code) for r in twilio.requests] == [(401, 20003)] * 3
        assert twilio.messages == []
        assert [(s, a) for s, a, *_ in sms_effects(harness)] == [("failed", 1)] * 3
        failed = [text for kind, text in await timeline(harness) if kind == "effect_failed"]
        assert len(failed) == 3
        assert all("notify.sms" in text and "401" in text for text in failed)
        for text in failed + [e for *_, e in sms_effects(harness) if e]:
            assert wrong not in text
            assert "Basic" not in text

        harness.clock.advance(3600)
        await harness.drain()
        assert len(twilio.requests) == 3
    finally:
        await harness.stop()
    printed = "".join(capsys.readouterr())
    assert "notify.sms" in printed  # the log lines are there, and carry no credential
    credential = base64.b64encode(f"{TWILIO_SID}:{wrong}".encode()).decode()
    assert wrong not in printed
    assert credential not in printed


async def test_an_invalid_number_fails_alone(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, twilio: FakeTwilio
) -> None:
    """Twilio refuses one number (400, 21211): that text fails permanently, the others go."""
    harness = Harness(
        tmp_path,
        github,
        clock,
        github_config(sms_config(twilio.base_url).replace(DAVE, "+4477")),
    )
    await harness.start()
    try:
        await harness.post(payload("13_critical_list_service_unavailable.json"))
        await harness.drain()
        assert sorted(m.to for m in twilio.messages) == sorted([ALICE, CAROL])
        assert [(r.status, r.code) for r in twilio.requests if r.form["To"] == "+4477"] == [
            (400, 21211)
        ]
        assert sorted(s for s, *_ in sms_effects(harness)) == ["done", "done", "failed"]
        failed = [text for kind, text in await timeline(harness) if kind == "effect_failed"]
        assert any("21211" in text for text in failed)
        # Twilio's message echoes the number; the timeline (shown in the issue) names people.
        assert not any("+4477" in text for text in failed)
        assert any("Invalid 'To' Phone Number: Dave" in text for text in failed)
        harness.clock.advance(3600)
        await harness.drain()
        assert len(twilio.requests) == 3
    finally:
        await harness.stop()


async def test_a_connection_dropped_after_twilio_took_it_is_repeated_at_least_once(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """Twilio creates the message, then the connection drops before the answer: the bridge
    cannot know, so the text is retried with its outcome unknown and goes out again. SMS is
    at least once, per the contract: never lost, here visibly duplicated."""
    twilio.inject("POST", MESSAGES, 0, apply_first=True, drop=True)
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    [applied] = twilio.sent_to(ALICE)  # applied, though the bridge never heard
    assert [r.dropped for r in twilio.requests] == [True, False, False]
    rows = sms_effects(harness)
    assert [(s, a, u) for s, a, u, _ in rows] == [
        ("pending", 1, 1),  # the others' texts do not wait for Alice's
        ("done", 1, 0),
        ("done", 1, 0),
    ]
    error = rows[0][3]
    assert error is not None
    assert "connection lost" in error
    assert TWILIO_TOKEN not in error

    harness.clock.advance(60)
    await harness.drain()
    first, second = twilio.sent_to(applied.to)
    assert first.body == second.body  # the documented duplicate
    assert sorted(m.to for m in twilio.messages) == sorted([ALICE, ALICE, CAROL, DAVE])
    assert [s for s, *_ in sms_effects(harness)] == ["done"] * 3


async def test_twilio_5xx_is_retried_with_the_outcome_unknown(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """A 503 may come after Twilio queued the message: retried, marked outcome unknown, and
    each stakeholder is texted once Twilio is back; nothing delays the issue."""
    twilio.down = True
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(harness.issues()) == 1
    assert [(s, a, u) for s, a, u, _ in sms_effects(harness)] == [("pending", 1, 1)] * 3
    twilio.down = False
    harness.clock.advance(60)
    await harness.drain()
    assert sorted(m.to for m in twilio.messages) == sorted([ALICE, CAROL, DAVE])
    assert [s for s, *_ in sms_effects(harness)] == ["done"] * 3


async def test_twilio_unreachable_is_retried_and_nothing_is_lost(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """Connection refused (Twilio not listening): nothing went out, so the retry is not an
    unknown outcome; the texts go once Twilio listens again on the same port."""
    port = int(twilio.base_url.rsplit(":", 1)[1])
    await twilio.close()
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    rows = sms_effects(harness)
    assert [(s, a, u) for s, a, u, _ in rows] == [("pending", 1, 0)] * 3
    error = rows[0][3]
    assert error is not None
    assert "unreachable" in error
    await twilio.start(port)
    harness.clock.advance(60)
    await harness.drain()
    assert sorted(m.to for m in twilio.messages) == sorted([ALICE, CAROL, DAVE])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 1970 00:02:00 GMT", 60.0),  # an HTTP date, 60 s after "now" (60)
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # already past
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, expected: float | None) -> None:
    """``Retry-After`` as delta-seconds or an HTTP date; nonsense means no advice (one reader
    for every adapter: GitHub, Slack and Twilio)."""
    assert retry_after_seconds(value, now=60.0) == expected
