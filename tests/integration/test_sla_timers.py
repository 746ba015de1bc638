"""SLA timers through the real bridge: a missed response deadline comments, labels and pages
the on-call, again at the interval, until acknowledged or the rounds run out; a missed
resolution deadline is recorded; two replicas firing the same timer fire it once.

``create_app`` runs behind the harness with the fake GitHub, the fake Twilio and a real SMTP
server on loopback. The clock is fake and fast-forwarded; the scheduler's passes
(``app[SCHEDULER].run_once()``) and the outboxes are driven by the test: nothing sleeps.
Bundled rules: P0 respond 5m, resolve 1h, SMS at any hour every 5m, 3 rounds; P1 respond 15m,
SMS only in business hours (UTC Mon-Fri 09-17). The clock starts on a Thursday, 21:45 UTC.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path

import pytest

from bridge.app import SCHEDULER, timer_steps
from bridge.clock import FakeClock
from bridge.engine import Decision
from bridge.model import Incident
from bridge.rules import Rules
from bridge.scheduler import chain
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.smtp import Mailbox
from fakes.twilio import FakeTwilio
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

ON_CALL_PHONE = "+15551230009"
ON_CALL_EMAIL = "oncall@example.com"
P0 = "13_critical_list_service_unavailable.json"  # ServiceUnavailable, started 21:39:53
P1 = "01_firing_single.json"  # HighCPU on api-1:9100


def channels_config(twilio: FakeTwilio, mailbox: Mailbox) -> str:
    """SMS and email configured; one escalation contact (the on-call), no stakeholders, so
    every text and email here is a page."""
    return (
        email_config(mailbox.port)
        + sms_config(twilio.base_url, TWILIO_SID, TWILIO_TOKEN)
        + "escalation:\n"
        f"  - {{name: On-call, email: {ON_CALL_EMAIL}, phone: '{ON_CALL_PHONE}'}}\n"
    )


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, twilio: FakeTwilio, mailbox: Mailbox
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(channels_config(twilio, mailbox)))
    await h.start()
    yield h
    await h.stop()


async def tick(h: Harness, delta: timedelta) -> int:
    """Fast-forward the clock, fire what is due, run the effects; how many incidents fired."""
    assert h.app is not None
    h.clock.advance(delta)
    fired = await h.app[SCHEDULER].run_once()
    await h.drain()
    return fired


def texts(twilio: FakeTwilio) -> list[str]:
    return [m.to for m in twilio.messages]


def emails(mailbox: Mailbox) -> list[Message]:
    return mailbox.to(ON_CALL_EMAIL)


async def incident_row(h: Harness) -> dict[str, object]:
    [row] = await h.incidents()
    return row


async def open_p0(h: Harness) -> None:
    status, answer = await h.post(payload(P0))
    assert status == 200
    assert answer["priority"] == "P0"
    await h.drain()


async def test_an_unacknowledged_p0_is_commented_labelled_and_paged_until_the_max(
    harness: Harness, twilio: FakeTwilio, mailbox: Mailbox
) -> None:
    """P0 opened at 21:45 at night. Nobody acknowledges: at 21:50 one comment names the
    deadline and who is paged, the issue gets ``sla-breached``, the on-call gets a text; texts
    again at 21:55 and 22:00, then no more. Nothing by email, nothing before its time."""
    await open_p0(harness)
    assert texts(twilio) == []  # no stakeholders: the opening texts nobody
    assert await tick(harness, timedelta(minutes=4, seconds=59)) == 0

    assert await tick(harness, timedelta(seconds=1)) == 1
    [issue] = harness.issues()
    [comment] = harness.github.comments(REPO, issue.number)
    assert comment.body.startswith("⏰ **SLA breached** at 2026-11-26 21:50:00 UTC: ")
    assert "not acknowledged by 2026-11-26 21:50 UTC" in comment.body
    assert "paging On-call by SMS" in comment.body
    assert ON_CALL_PHONE not in comment.body
    assert "<!-- incident-bridge:event=INC-001." in comment.body
    assert "sla-breached" in harness.github.label_names(REPO, issue.number)
    assert "**Respond by**: 2026-11-26 21:50:00 UTC — ⏰ **missed**" in (
        harness.github.issue(REPO, issue.number).body or ""
    )
    [text] = twilio.messages
    assert text.to == ON_CALL_PHONE
    assert text.body.startswith("INC-001 P0 ESCALATED: NOBODY ACKNOWLEDGED: ")
    row = await incident_row(harness)
    assert row["sla"] == "breached"
    assert row["response_breached_at"] == "2026-11-26T21:50:00+00:00"
    assert row["escalations"] == 1
    assert row["next_escalation_at"] == "2026-11-26T21:55:00+00:00"

    assert await tick(harness, timedelta(minutes=4)) == 0
    assert await tick(harness, timedelta(minutes=1)) == 1  # 21:55
    assert await tick(harness, timedelta(minutes=5)) == 1  # 22:00, the third and last
    assert await tick(harness, timedelta(minutes=20)) == 0
    assert texts(twilio) == [ON_CALL_PHONE] * 3
    assert emails(mailbox) == []
    assert len(harness.github.comments(REPO, issue.number)) == 1  # rounds are in the timeline
    row = await incident_row(harness)
    assert (row["escalations"], row["next_escalation_at"]) == (3, None)
    body = harness.github.issue(REPO, issue.number).body or ""
    assert "Escalation 3 of 3: paged On-call by SMS; no further pages" in body


async def test_acknowledging_stops_the_paging(harness: Harness, twilio: FakeTwilio) -> None:
    """Paged once at 21:50; acknowledged at 21:52 (as the GitHub events do, through
    ``Ingestor.apply``): no page at 21:55 or after, the issue labelled ``acknowledged``, the
    API shows who acknowledged and how."""
    await open_p0(harness)
    assert await tick(harness, timedelta(minutes=5)) == 1
    assert len(twilio.messages) == 1

    harness.clock.advance(timedelta(minutes=2))
    assert harness.app is not None
    [row] = await harness.app[SERVICES].store.list_incidents(REPO)
    incident = row.incident
    assert incident.id is not None

    def acknowledge(current: Incident | None, now: datetime) -> Decision:
        assert current is not None
        acked = copy.copy(current)
        acked.acknowledged_at, acked.acknowledged_by, acked.acknowledged_via = now, "alice", "label"
        return Decision("acknowledged", acked, changed=True)

    await harness.app[SERVICES].ingestor.apply(
        incident.key, incident.identity, acknowledge, incident_id=incident.id
    )
    assert await tick(harness, timedelta(minutes=3)) == 0  # 21:55: no round 2
    assert await tick(harness, timedelta(minutes=30)) == 0
    assert len(twilio.messages) == 1
    api = await incident_row(harness)
    assert api["acknowledged_by"] == "alice"
    assert api["acknowledged_via"] == "label"
    assert api["acknowledged_at"] == "2026-11-26T21:52:00+00:00"
    assert (api["sla"], api["escalations"]) == ("breached", 1)


async def test_a_p1_at_night_pages_by_email(
    harness: Harness, twilio: FakeTwilio, mailbox: Mailbox
) -> None:
    """P1 out of business hours: the escalation goes by email, not SMS."""
    status, answer = await harness.post(payload(P1))
    assert (status, answer["priority"]) == (200, "P1")
    await harness.drain()
    assert await tick(harness, timedelta(minutes=15)) == 1
    assert twilio.messages == []
    [message] = emails(mailbox)
    assert "(ESCALATED: nobody acknowledged)" in message["Subject"]
    comment = harness.github.comments(REPO, 1)[0].body
    assert "paging On-call by email" in comment


async def test_a_missed_resolution_is_recorded_labelled_and_counted(harness: Harness) -> None:
    """Still open an hour after its alert started (resolve by 22:39:53): at 22:40, with the
    response deadline long missed too (the bridge was down), one pass records both, comments
    both and counts both in incident_bridge_sla_breaches_total; the API and the issue say so."""
    await open_p0(harness)
    assert await tick(harness, timedelta(minutes=55)) == 1

    comments = [c.body for c in harness.github.comments(REPO, 1)]
    assert len(comments) == 2
    assert "Response deadline missed" in comments[0]
    assert "Resolution deadline missed: still open at 2026-11-26 22:39 UTC" in comments[1]
    row = await incident_row(harness)
    assert row["resolution_breached_at"] == "2026-11-26T22:40:00+00:00"
    assert row["escalations"] == 1  # one round, not the three it missed
    assert row["sla"] == "breached"
    response = await harness.http.get("/metrics")
    text = await response.text()
    assert 'incident_bridge_sla_breaches_total{kind="resolution",priority="P0"} 1.0' in text
    assert 'incident_bridge_sla_breaches_total{kind="response",priority="P0"} 1.0' in text
    assert 'incident_bridge_sla_breaches_total{kind="response",priority="P3"} 0.0' in text
    body = harness.github.issue(REPO, 1).body or ""
    assert "**Resolve by**: 2026-11-26 22:39:53 UTC — ⏰ **missed**" in body


async def test_a_maintenance_request_has_no_timers(harness: Harness) -> None:
    """A maintenance request never breaches: nothing fires however long it stays open."""
    body = payload(P1)
    for alert in body["alerts"]:
        alert["labels"]["kind"] = "maintenance"
    body["commonLabels"]["kind"] = "maintenance"
    status, _ = await harness.post(body)
    assert status == 200
    await harness.drain()
    assert await tick(harness, timedelta(days=30)) == 0
    [row] = await harness.incidents()
    assert (row["kind"], row["sla"], row["respond_by"]) == ("maint", None, None)


# ---------------------------------------------------------------------------------------------
# Two replicas, one PostgreSQL database


async def test_two_replicas_fire_a_due_timer_once(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    twilio: FakeTwilio,
    mailbox: Mailbox,
    postgres_db: str,
) -> None:
    """Two bridges on one database both find the P0's deadline due and fire at the same time:
    one breach, one comment, one page — and the same for the next round."""
    config = github_config(channels_config(twilio, mailbox), store_url=postgres_db)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Harness(tmp_path / "a", github, clock, config)
    b = Harness(tmp_path / "b", github, clock, config)
    await a.start()
    await b.start()
    try:
        await open_p0(a)
        assert a.app is not None
        assert b.app is not None
        schedulers = (a.app[SCHEDULER], b.app[SCHEDULER])
        for round_ in (1, 2):
            a.clock.advance(timedelta(minutes=5))
            fired = await asyncio.gather(*(s.run_once() for s in schedulers))
            assert sorted(fired) == [0, 1]
            await asyncio.gather(a.drain(), b.drain())
            assert len(twilio.messages) == round_

        [comment] = github.comments(REPO, 1)
        assert "paging On-call by SMS" in comment.body
        [row] = await a.incidents()
        assert row["escalations"] == 2
        store = a.app[SERVICES].store
        [stored] = await store.list_incidents(REPO)
        assert stored.incident.id is not None
        events = await store.load_events(stored.incident.id, 100)
        assert [e.kind for e in events].count("sla_breached") == 1
        assert [e.kind for e in events].count("escalated") == 2

        # A replica that listed the incident as due just before the other fired it applies the
        # timer steps to what is stored now: nothing is due any more, nothing changes.
        late = await b.app[SERVICES].ingestor.apply(
            stored.incident.key,
            stored.incident.identity,
            chain(timer_steps(b.config, Rules.bundled())),
            incident_id=stored.incident.id,
        )
        assert not late.changed
    finally:
        await a.stop()
        await b.stop()
