"""The dead man's switch through the real app: Watchdog webhooks on loopback, the fake GitHub,
FakeSlack, a real SMTP server and the fake Twilio; the scheduler's heartbeat tick run with
``run_once`` on a fake clock (no sleeps).

``heartbeat: {alertname: Watchdog, timeout: 10m}``: the mark is written at most once a minute
(``timeout / 10``), so the switch pages once no Watchdog was recorded for 11 minutes — never
before a whole timeout without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import SCHEDULER
from bridge.clock import FakeClock
from bridge.heartbeat import heartbeat_identity
from bridge.identity import identity_key
from bridge.ingest import HEARTBEAT_MARK
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.slack import FakeSlack
from fakes.smtp import Mailbox, smtp_server
from fakes.twilio import FakeTwilio
from support import (
    REPO,
    SLACK_CHANNEL,
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

ALICE_PHONE = "+15550001111"
STALE = timedelta(minutes=11)  # timeout + timeout / 10
SECOND = timedelta(seconds=1)


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    with smtp_server() as mailbox:
        yield mailbox


def channels_config(slack: FakeSlack, smtp: Mailbox, twilio: FakeTwilio) -> str:
    return (
        slack_config(slack.base_url, SLACK_TOKEN, SLACK_CHANNEL)
        + email_config(smtp.port)
        + sms_config(twilio.base_url, TWILIO_SID, TWILIO_TOKEN)
        + "stakeholders:\n"
        f"  - {{name: Alice Ops, email: alice@example.com, phone: '{ALICE_PHONE}'}}\n"
        "heartbeat: {alertname: Watchdog, timeout: 10m}\n"
    )


@pytest.fixture
async def harness(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    slack: FakeSlack,
    smtp: Mailbox,
    twilio: FakeTwilio,
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(channels_config(slack, smtp, twilio)))
    await h.start()
    yield h
    await h.stop()


def watchdog(h: Harness, status: str = "firing") -> dict[str, Any]:
    """Alertmanager's Watchdog notification (fixture 11), as sent now."""
    body = payload("11_watchdog_heartbeat.json")
    body["status"] = status
    if status == "resolved":
        body["alerts"][0]["status"] = "resolved"
        body["alerts"][0]["endsAt"] = h.clock.now.isoformat().replace("+00:00", "Z")
    return body


async def tick(h: Harness) -> None:
    """One scheduler pass (timers and the heartbeat tick), then every effect due."""
    assert h.app is not None
    await h.app[SCHEDULER].run_once()
    await h.drain()


async def mark(h: Harness) -> Any:
    assert h.app is not None
    return await h.app[SERVICES].store.mark(HEARTBEAT_MARK)


def metric(h: Harness, name: str, **labels: str) -> float:
    assert h.app is not None
    value = h.app[SERVICES].metrics.registry.get_sample_value(name, labels)
    assert value is not None
    return value


async def test_watchdog_notifications_never_make_incidents_and_record_the_heartbeat(
    harness: Harness, slack: FakeSlack
) -> None:
    """Watchdogs for an hour: no incident, no issue, no message; the heartbeat is recorded."""
    for _ in range(12):
        status, answer = await harness.post(watchdog(harness))
        assert (status, answer["outcome"]) == (200, "heartbeat")
        await tick(harness)
        harness.clock.advance(timedelta(minutes=5))
    assert harness.issues() == []
    assert await harness.incidents() == []
    assert slack.messages(SLACK_CHANNEL) == []
    last = harness.clock.now - timedelta(minutes=5)
    assert await mark(harness) == last
    assert metric(harness, "incident_bridge_heartbeat_last_seen_timestamp_seconds") == (
        last.timestamp()
    )
    assert metric(harness, "incident_bridge_heartbeat_missing") == 0


async def test_the_mark_is_written_at_most_once_per_tenth_of_the_timeout(
    harness: Harness,
) -> None:
    """Watchdogs 30 s apart (an HA pair, a short repeat interval): the store's mark moves at
    most once a minute; a resolved Watchdog is no heartbeat at all."""
    start = harness.clock.now
    seen = []
    for _ in range(5):
        await harness.post(watchdog(harness))
        seen.append(await mark(harness))
        harness.clock.advance(30)
    assert seen == [
        start,
        start,
        start + 2 * 30 * SECOND,
        start + 2 * 30 * SECOND,
        start + 4 * 30 * SECOND,
    ]
    harness.clock.advance(timedelta(minutes=5))
    await harness.post(watchdog(harness, "resolved"))
    assert await mark(harness) == start + 4 * 30 * SECOND


async def test_a_watchdog_inside_another_group_still_counts(harness: Harness) -> None:
    """Grouped with a real alert (a route not grouping by alertname), the Watchdog is still the
    heartbeat, and the real alert is still an incident of its own."""
    body = payload("01_firing_single.json")
    body["alerts"].append(payload("11_watchdog_heartbeat.json")["alerts"][0])
    _, answer = await harness.post(body)
    assert answer["outcome"] == "opened"
    assert await mark(harness) == harness.clock.now


async def test_never_seen_never_pages(
    harness: Harness, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A setup without a Watchdog: the switch is not armed, whatever the time, and says so
    once in the log; the first Watchdog arms it."""
    for _ in range(3):
        harness.clock.advance(timedelta(days=1))
        await tick(harness)
    assert harness.issues() == []
    assert await harness.incidents() == []
    assert slack.messages(SLACK_CHANNEL) == []
    assert metric(harness, "incident_bridge_heartbeat_last_seen_timestamp_seconds") == 0
    await harness.post(watchdog(harness))
    await tick(harness)
    logs = capsys.readouterr().out
    assert logs.count("heartbeat_not_armed") == 1
    assert "armed on the first Watchdog" in logs
    assert logs.count("heartbeat_armed") == 1


async def test_a_missing_heartbeat_pages_once_and_resolves_when_it_returns(
    harness: Harness, slack: FakeSlack, smtp: Mailbox, twilio: FakeTwilio
) -> None:
    """The Watchdog stops: not a page before 11 minutes, then one P0 "Alerting pipeline is
    down" issue, told on Slack and to the stakeholder by email and SMS — once, however many
    passes follow. The Watchdog returns: resolved as of its return, the issue closed with a
    comment, the all-clear emailed (not texted)."""
    await harness.post(watchdog(harness))
    last = harness.clock.now
    harness.clock.advance(STALE)
    await tick(harness)
    assert harness.issues() == []  # exactly 11 minutes: not yet

    harness.clock.advance(SECOND)
    await tick(harness)
    [issue] = harness.issues()
    assert issue.title == "[INC-001] Alerting pipeline is down: no Watchdog for 10m"
    assert "priority-critical" in issue.label_names
    body = issue.body or ""
    assert "**Severity**: Critical (P0)" in body
    assert "No Watchdog alert has reached incident-bridge since" in body
    assert "Incident opened as P0 \\(heartbeat\\): no Watchdog since" in body
    [root] = slack.messages(SLACK_CHANNEL)
    assert "Alerting pipeline is down" in root.text
    assert root.text.startswith("🔴 P0")
    [mail] = smtp.to("alice@example.com")
    assert "[P0][INC-001] Alerting pipeline is down" in mail["Subject"]
    [text] = twilio.sent_to(ALICE_PHONE)
    assert text.body.startswith("INC-001 P0 OPENED: Alerting pipeline is down")
    [row] = await harness.incidents()
    assert (row["priority"], row["state"]) == ("P0", "open")
    assert metric(harness, "incident_bridge_heartbeat_missing") == 1
    assert metric(harness, "incident_bridge_incidents_opened_total", priority="P0") == 1

    for _ in range(3):  # later passes, minutes apart: still one page
        harness.clock.advance(timedelta(minutes=3))
        await tick(harness)
    assert len(harness.issues()) == 1
    assert len(slack.messages(SLACK_CHANNEL)) == 1
    assert len(twilio.messages) == 1
    assert len(smtp.received) == 1

    harness.clock.advance(timedelta(minutes=2))
    returned = harness.clock.now
    _, answer = await harness.post(watchdog(harness))
    assert answer["outcome"] == "heartbeat"
    await tick(harness)
    closed = harness.github.issue(REPO, issue.number)
    assert closed.state == "closed"
    comment = harness.github.comments(REPO, issue.number)[-1]  # after the SLA breach's
    outage = returned - last
    assert outage == timedelta(minutes=22, seconds=1)
    assert "**Resolved** at " in comment.body
    assert ": Watchdog arrives again after 22m 1s without it." in comment.body
    assert "the heartbeat arrives again" in (closed.body or "")
    [row] = await harness.incidents()
    assert row["state"] == "resolved"
    assert row["resolved_at"] == returned.isoformat()
    assert len(smtp.to("alice@example.com")) == 2  # the all-clear
    assert len(twilio.messages) == 1  # nobody is texted it
    assert "resolved" in slack.thread(SLACK_CHANNEL, root.ts)[-1].text.lower()
    assert metric(harness, "incident_bridge_heartbeat_missing") == 0


async def test_a_second_outage_reopens_the_same_incident_within_the_reopen_window(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """Down, back, down again two hours later: the same issue is reopened (and paged again);
    after the reopen window a new outage is a new incident."""

    async def outage() -> None:
        await harness.post(watchdog(harness))
        harness.clock.advance(STALE + SECOND)
        await tick(harness)

    async def back() -> None:
        await harness.post(watchdog(harness))
        await tick(harness)

    await outage()
    await back()
    harness.clock.advance(timedelta(hours=2))
    await outage()
    [issue] = harness.issues()
    assert issue.state == "open"
    comments = harness.github.comments(REPO, issue.number)
    assert "**Reopened** at " in comments[-1].body
    assert ": no Watchdog since " in comments[-1].body
    assert len(twilio.messages) == 2
    [row] = await harness.incidents()
    assert (row["id"], row["state"]) == ("INC-001", "open")

    await back()
    harness.clock.advance(timedelta(days=2))
    await outage()
    assert [i.number for i in harness.issues()] == [1, 3]  # #2: INC-001's review (a P0)
    assert harness.github.issue(REPO, 1).state == "closed"
    assert harness.github.issue(REPO, 3).state == "open"


async def test_a_bridge_that_was_down_itself_waits_a_timeout_before_paging(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """The bridge was down for half an hour: no Watchdog could reach it, so after the restart
    it gives Alertmanager one timeout to deliver the next before paging."""
    await harness.post(watchdog(harness))
    await harness.stop()
    harness.clock.advance(timedelta(minutes=30))
    await harness.start()
    await tick(harness)
    harness.clock.advance(STALE)
    await tick(harness)
    assert harness.issues() == []
    harness.clock.advance(SECOND)
    await tick(harness)
    assert len(harness.issues()) == 1
    assert len(twilio.messages) == 1


async def test_an_outage_open_across_a_restart_stays_open_until_the_heartbeat_returns(
    harness: Harness, twilio: FakeTwilio
) -> None:
    """Restarted during an outage: the incident is neither resolved by the new process nor
    paged again; the Watchdog's return resolves it."""
    await harness.post(watchdog(harness))
    harness.clock.advance(STALE + SECOND)
    await tick(harness)
    harness.clock.advance(timedelta(minutes=30))
    await harness.restart()
    for _ in range(2):
        await tick(harness)
        harness.clock.advance(STALE)
    [issue] = harness.issues()
    assert issue.state == "open"
    assert len(twilio.messages) == 1
    await harness.post(watchdog(harness))
    await tick(harness)
    assert harness.github.issue(REPO, issue.number).state == "closed"


async def test_two_replicas_page_once(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    slack: FakeSlack,
    smtp: Mailbox,
    twilio: FakeTwilio,
    postgres_db: str,
) -> None:
    """Two replicas on one PostgreSQL database both see the heartbeat missing at the same
    moment: one incident, one issue, one text — the fixed identity's transaction decides."""
    text = github_config(channels_config(slack, smtp, twilio), store_url=postgres_db)
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replica = Harness(tmp_path / name, github, clock, text)
        await replica.start()
        replicas.append(replica)
    try:
        first, second = replicas
        await first.post(watchdog(first))
        await second.post(watchdog(second))
        clock.advance(STALE + SECOND)
        assert first.app is not None
        assert second.app is not None
        await asyncio.gather(first.app[SCHEDULER].run_once(), second.app[SCHEDULER].run_once())
        for replica in replicas:
            await replica.drain()
        assert len(github.issues(REPO)) == 1
        assert len(await first.incidents()) == 1
        assert len(twilio.messages) == 1
        # The Watchdog returns on one replica; the other's pass resolves nothing twice.
        await second.post(watchdog(second))
        await asyncio.gather(first.app[SCHEDULER].run_once(), second.app[SCHEDULER].run_once())
        for replica in replicas:
            await replica.drain()
        # One issue and, for the resolved P0, one post-incident review.
        [issue, review] = github.issues(REPO)
        assert issue.state == "closed"
        assert len(github.comments(REPO, issue.number)) == 1
        assert review.title.startswith("[PIR] INC-001 ")
    finally:
        for replica in replicas:
            await replica.stop()


def test_the_incident_has_a_fixed_identity() -> None:
    """The pipeline-down incident's key is the sha256 of ``heartbeat:<alertname>``: one per
    alertname, whichever replica opens it."""
    assert heartbeat_identity("Watchdog") == "heartbeat:Watchdog"
    assert len(identity_key(heartbeat_identity("Watchdog"))) == 64
