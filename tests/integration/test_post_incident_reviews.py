"""Post-incident reviews through the real bridge: a P0/P1 resolving opens one ``[PIR]`` issue,
linked both ways; a re-fire within the reopen window updates the same review, keeping what
people wrote; 48 hours on, one reminder unless people closed it; GitHub losing the answer to
the create still makes one review.

``create_app`` runs behind the harness with the fake GitHub (through PyGithub) and a real SMTP
server on loopback for the stakeholder's email. The clock is fake and fast-forwarded; the
scheduler's passes (``app[SCHEDULER].run_once()``) and the outboxes are driven by the test.
The P0 is the captured ``ServiceUnavailable`` on checkout (started 21:39:53); the clock starts
at 21:45.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import SCHEDULER
from bridge.clock import FakeClock
from bridge.github.render import END, region_of
from fakes.github import FakeGitHub, FakeIssue
from fakes.smtp import Mailbox
from support import REPO, TOKEN, Harness, github_config, payload

P0 = "13_critical_list_service_unavailable.json"  # ServiceUnavailable on checkout, 21:39:53
P2 = "10_threshold_warning_latency.json"  # HighLatencyP95 on search (warning band)
ENDED = datetime(2026, 11, 26, 22, 24, 54, tzinfo=UTC)  # 45 minutes after it started
REVIEW_DUE = timedelta(hours=48)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    """The fake GitHub on the test's clock: a comment's time is comparable with the bridge's."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock) as fake:
        yield fake


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, mailbox: Mailbox, store_url: str
) -> AsyncIterator[Harness]:
    """The bridge with one stakeholder by email, and traceability for checkout."""
    extra = (
        "email:\n"
        "  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {mailbox.port}\n"
        "  starttls: false\n"
        "  from: incident-bridge@example.com\n"
        "stakeholders:\n"
        "  - {name: Ops lead, email: ops-lead@example.com}\n"
        "traceability:\n"
        '  checkout: {requirement: "#46 REQ-NF-PERF-001", component: "#79 ARC-C-AUTH"}\n'
    )
    h = Harness(tmp_path, github, clock, github_config(store_url=store_url) + extra)
    await h.start()
    yield h
    await h.stop()


def resolved(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The same notification, every alert resolved at ``at``."""
    done = copy.deepcopy(body)
    done["status"] = "resolved"
    for alert in done["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = at.isoformat()
    return done


def refired(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The same group firing anew (a new ``startsAt``)."""
    again = copy.deepcopy(body)
    for alert in again["alerts"]:
        alert["startsAt"] = at.isoformat()
    return again


async def tick(h: Harness, delta: timedelta) -> None:
    """Fast-forward the clock, fire what is due, run the effects."""
    assert h.app is not None
    h.clock.advance(delta)
    await h.app[SCHEDULER].run_once()
    await h.drain()


async def settle(h: Harness, seconds: float = 400, step: float = 10) -> None:
    """Let the outbox run while the clock moves on (backoffs of up to 5 minutes)."""
    for _ in range(int(seconds / step)):
        await h.drain()
        h.clock.advance(timedelta(seconds=step))
    await h.drain()


def writes(h: Harness) -> list[str]:
    return [f"{r.method} {r.path}" for r in h.github.requests if r.is_write]


async def a_p0_resolves(h: Harness) -> tuple[FakeIssue, FakeIssue]:
    """The P0 opens at 21:45 and every alert resolves at 22:24:54: its issue and its review."""
    assert (await h.post(payload(P0)))[0] == 200
    await h.drain()
    h.clock.advance(timedelta(minutes=40))
    assert (await h.post(resolved(payload(P0), ENDED)))[1]["outcome"] == "resolved"
    await h.drain()
    [issue] = h.issues()
    [review] = h.reviews()
    return issue, review


async def test_a_resolved_p0_gets_one_review_linked_both_ways(harness: Harness) -> None:
    """One ``[PIR] INC-001 <summary>`` issue labelled ``post-incident-review`` with the pir
    marker, pre-filled with the guide's template, linking the incident's issue; the incident
    issue's closing edit links the review back. The review costs one write of its own."""
    assert (await harness.post(payload(P0)))[0] == 200
    await harness.drain()
    harness.github.reset_log()
    harness.clock.advance(timedelta(minutes=40))
    await harness.post(resolved(payload(P0), ENDED))
    await harness.drain()

    [issue] = harness.issues()
    [review] = harness.reviews()
    assert writes(harness) == [
        f"POST /repos/{REPO}/issues/{issue.number}/comments",  # resolved
        f"POST /repos/{REPO}/issues",  # the review
        f"PATCH /repos/{REPO}/issues/{issue.number}",  # closed, and the review linked
    ]
    assert review.title == "[PIR] INC-001 Checkout service unavailable for more than 1 minute"
    assert set(review.label_names) == {"incident-bridge", "post-incident-review"}
    assert review.state == "open"
    body = review.body or ""
    assert body.endswith(">")
    assert "<!-- incident-bridge:v1 kind=pir id=INC-001 key=" in body.splitlines()[-1]
    region = region_of(body)
    for line in (
        f"**Incident**: #{issue.number} (INC-001)",
        "**Date**: 2026-11-26",
        "**Severity**: Critical (P0)",
        "**Duration**: 45m (first alert 2026-11-26 21:39:53 UTC, resolved 2026-11-26 22:24:54 UTC)",
        "**Impact**: service checkout; instances checkout-7d9f:8080; 1 alert",
        "**Detection and response**: detected 5m 6s after the first alert; never acknowledged",
        "**Review due**: 2026-11-28 22:24:54 UTC (within 48 h of the resolution)",
        "- 2026-11-26 21:39:53 UTC — Alert fired: ServiceUnavailable on checkout-7d9f:8080",
        "- 2026-11-26 21:45:00 UTC — Detected: Incident opened as P0",
        "- 2026-11-26 21:45:00 UTC — Notified: email to Ops lead\n",  # delivered
        "- 2026-11-26 22:24:54 UTC — Resolved: every alert resolved after 45m",
        "- 2026-11-26 22:24:54 UTC — Notified: email to Ops lead \\(sending\\)",
        "- **Original Requirement**: #46 REQ-NF-PERF-001",
        "- **Architecture**: #79 ARC-C-AUTH",
    ):
        assert line in region, line
    people = body.split(END)[1]
    for section in ("What Went Well", "What Went Wrong", "Action Items", "Prevention"):
        assert f"## {section}" in people
    incident_body = issue.body or ""
    assert issue.state == "closed"
    assert f"**Post-incident review**: #{review.number}" in region_of(incident_body)
    assert "- **Original Requirement**: #46 REQ-NF-PERF-001" in incident_body


async def test_a_resolved_p2_gets_no_review(harness: Harness) -> None:
    """P2 (and P3): the guide asks for no review, and none is made."""
    _, answer = await harness.post(payload(P2))
    assert answer["priority"] == "P2"
    await harness.drain()
    harness.clock.advance(timedelta(minutes=10))
    await harness.post(resolved(payload(P2), harness.clock()))
    await harness.drain()
    await tick(harness, REVIEW_DUE + timedelta(hours=1))
    assert harness.reviews() == []
    [issue] = harness.issues()
    assert issue.state == "closed"
    assert "Post-incident review" not in (issue.body or "")


async def test_a_refire_within_the_window_updates_the_same_review_keeping_peoples_text(
    harness: Harness,
) -> None:
    """Reopened within the reopen window: the same review says the incident is open again;
    resolved again: it says so, its timeline has both episodes — and what people wrote in it
    meanwhile is kept."""
    issue, review = await a_p0_resolves(harness)
    body = (review.body or "").replace(
        "## What Went Well\n\n- ", "## What Went Well\n\n- The page reached the on-call at once"
    )
    harness.github.human_edit_body(REPO, review.number, body)

    harness.clock.advance(timedelta(hours=2))
    again = harness.clock()
    _, answer = await harness.post(refired(payload(P0), again))
    assert answer["outcome"] == "reopened"
    await harness.drain()
    reopened = harness.github.issue(REPO, review.number).body or ""
    assert "**Status**: 🔴 The incident is open again" in reopened
    assert "- The page reached the on-call at once" in reopened

    harness.clock.advance(timedelta(minutes=20))
    await harness.post(resolved(refired(payload(P0), again), harness.clock()))
    await harness.drain()
    assert [r.number for r in harness.reviews()] == [review.number]
    final = harness.github.issue(REPO, review.number)
    text = final.body or ""
    assert "- The page reached the on-call at once" in text
    assert "Reopened as P0" in region_of(text)
    assert text.count("Resolved: every alert resolved after") == 2
    assert "**Review due**: 2026-11-29 00:45:00 UTC" in text  # 48 h after the last resolution
    assert "reopened once" in text
    assert harness.github.issue(REPO, issue.number).state == "closed"


async def test_a_review_still_open_after_48_hours_gets_one_reminder(harness: Harness) -> None:
    """Nothing at 47 h; one comment with its marker at 48 h; none after."""
    _, review = await a_p0_resolves(harness)
    await tick(harness, REVIEW_DUE - timedelta(hours=1, minutes=1))
    assert harness.github.comments(REPO, review.number) == []
    await tick(harness, timedelta(hours=1, minutes=1))
    [reminder] = harness.github.comments(REPO, review.number)
    assert reminder.body.startswith("⏰ **Post-incident review due** at 2026-11-28 22:24:54 UTC")
    assert "<!-- incident-bridge:event=INC-001.review-due -->" in reminder.body
    for _ in range(3):
        await tick(harness, timedelta(hours=12))
    assert len(harness.github.comments(REPO, review.number)) == 1


async def test_a_review_people_closed_gets_no_reminder(harness: Harness) -> None:
    """Closed by people within 48 h: its state is read when the reminder is due, and no
    comment is posted — ever."""
    _, review = await a_p0_resolves(harness)
    await tick(harness, timedelta(hours=20))
    harness.github.human_close(REPO, review.number, login="alice")
    harness.github.reset_log()
    await tick(harness, REVIEW_DUE)
    assert harness.github.calls("GET", f"/issues/{review.number}")  # it looked
    await tick(harness, timedelta(days=3))
    assert harness.github.comments(REPO, review.number) == []
    assert harness.github.issue(REPO, review.number).state == "closed"


async def test_a_review_is_reminded_of_after_a_newer_incident_took_its_group(
    harness: Harness,
) -> None:
    """Past the reopen window (24 h) but before the review is due, the group fires again: a
    new incident. The old incident's review is still owed its reminder."""
    _, review = await a_p0_resolves(harness)
    harness.clock.advance(timedelta(hours=30))
    _, answer = await harness.post(refired(payload(P0), harness.clock()))
    assert (answer["outcome"], answer["incident"]) == ("opened", "INC-002")
    await harness.drain()
    await tick(harness, timedelta(hours=19))
    [reminder] = harness.github.comments(REPO, review.number)
    assert "INC-001" in reminder.body


async def test_a_create_whose_answer_is_lost_still_makes_one_review(harness: Harness) -> None:
    """GitHub made the review, then the connection dropped: the retry finds it by its marker
    and adopts it; the incident issue links it."""
    assert (await harness.post(payload(P0)))[0] == 200
    await harness.drain()
    harness.github.inject("POST", r"/issues$", 0, apply_first=True, drop=True)
    harness.clock.advance(timedelta(minutes=40))
    await harness.post(resolved(payload(P0), harness.clock()))
    await settle(harness)

    [review] = harness.reviews()
    creates = [r for r in harness.github.calls("POST") if r.path == f"/repos/{REPO}/issues"]
    assert len(creates) == 2  # the incident's issue, the review: made once, answered never
    [issue] = harness.issues()
    assert f"**Post-incident review**: #{review.number}" in (issue.body or "")
    await tick(harness, REVIEW_DUE)
    assert len(harness.github.comments(REPO, review.number)) == 1  # still reminded, once


async def test_a_reminder_whose_answer_is_lost_is_posted_once(harness: Harness) -> None:
    """The reminder reached GitHub but its answer did not: the retry finds its marker."""
    _, review = await a_p0_resolves(harness)
    harness.github.inject(
        "POST", rf"/issues/{review.number}/comments$", 0, apply_first=True, drop=True
    )
    await tick(harness, REVIEW_DUE)
    await settle(harness)
    assert len(harness.github.comments(REPO, review.number)) == 1
