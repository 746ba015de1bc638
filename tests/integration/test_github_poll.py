"""Without ``github.webhook_secret`` the bridge polls: every open incident issue is read with a
conditional request (a 304 costs no rate limit), P0/P1 every ``github.poll.urgent`` (1 min),
the others every ``github.poll.other`` (5 min), and what people did is applied as the webhook
would. The real app on loopback, the fake GitHub on the bridge's fake clock; each test drives
the poller's rounds with ``run_once()`` and moves the clock — no sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import POLLER
from bridge.clock import FakeClock
from bridge.github.poller import Poller
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue, RecordedRequest
from support import REPO, TOKEN, Harness, github_config, payload

BOT = "incident-bridge[bot]"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    """The fake GitHub on the bridge's clock: its events and comments carry the same times."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


def poller(h: Harness) -> Poller:
    assert h.app is not None
    return h.app[POLLER]


def issue_reads(h: Harness) -> list[RecordedRequest]:
    """The single-issue reads made since the log was last reset."""
    return [
        r
        for r in h.github.calls("GET")
        if r.path.startswith(f"/repos/{REPO}/issues/") and r.path.count("/") == 5
    ]


async def opened(h: Harness, name: str = "01_firing_single.json") -> FakeIssue:
    """An incident opened by Alertmanager, its issue created, and one round that reads it."""
    status, _ = await h.post(payload(name))
    assert status == 200
    await h.drain()
    issue = h.issues()[-1]
    await poller(h).run_once()
    return issue


async def row(h: Harness, issue: FakeIssue) -> dict[str, Any]:
    [found] = [r for r in await h.incidents() if r["issue_number"] == issue.number]
    return found


async def turn(h: Harness, minutes: float = 1) -> int:
    """Let the clock move to the next urgent turn and run one round."""
    h.clock.advance(timedelta(minutes=minutes))
    return await poller(h).run_once()


async def metric(h: Harness, result: str) -> float:
    text = await (await h.http.get("/metrics")).text()
    wanted = f'incident_bridge_github_polls_total{{result="{result}"}} '
    [line] = [line for line in text.splitlines() if line.startswith(wanted)]
    return float(line.rsplit(" ", 1)[1])


async def test_an_assignment_is_seen_by_a_conditional_read(harness: Harness) -> None:
    """The issue is read with the ETag of the last read; once someone is assigned it answers
    200 and the incident is acknowledged by the assignee, at the assignment's time."""
    issue = await opened(harness)
    harness.clock.advance(timedelta(seconds=20))
    assigned_at = harness.clock()
    harness.github.human_assign(REPO, issue.number, "bob", login="lead")
    harness.github.reset_log()

    await turn(harness)

    [read] = issue_reads(harness)
    assert read.headers["If-None-Match"]
    assert read.status == 200
    found = await row(harness, issue)
    assert found["acknowledged_by"] == "bob"
    assert found["acknowledged_at"] == assigned_at.isoformat()
    await harness.drain()
    assert "acknowledged" in harness.github.label_names(REPO, issue.number)


async def test_the_first_assignment_between_two_polls_acknowledges(harness: Harness) -> None:
    """Alice assigns herself, then Bob is assigned as well, both before the next round: the
    first acknowledgement wins — Alice's, at her assignment's time, not the latest one."""
    issue = await opened(harness)
    harness.clock.advance(timedelta(seconds=10))
    first = harness.clock()
    harness.github.human_assign(REPO, issue.number, "alice", login="alice")
    harness.clock.advance(timedelta(seconds=40))
    harness.github.human_assign(REPO, issue.number, "bob", login="lead")

    await turn(harness)

    found = await row(harness, issue)
    assert (found["acknowledged_by"], found["acknowledged_at"]) == ("alice", first.isoformat())


async def test_unchanged_issues_answer_304_and_cost_no_rate_limit(harness: Harness) -> None:
    """Rounds over unchanged issues are 304s: GitHub's rate limit is not charged for them."""
    await opened(harness)
    await opened(harness, "04_group_of_3_firing.json")
    await turn(harness, 5)  # both read again after the second one's creation changed nothing
    harness.github.reset_log()
    remaining = harness.github.rate_limit_remaining

    for _ in range(5):
        await turn(harness, 5)

    reads = issue_reads(harness)
    assert len(reads) == 10
    assert {r.status for r in reads} == {304}
    assert harness.github.rate_limit_remaining == remaining
    assert await metric(harness, "unchanged") >= 10


async def test_p0_and_p1_issues_are_polled_more_often(harness: Harness) -> None:
    """A P1 issue is read every minute, a P2 one every five minutes."""
    p1 = await opened(harness)  # HighCPU: P1
    p2 = await opened(harness, "04_group_of_3_firing.json")  # DiskFull: P2
    assert [(await row(harness, i))["priority"] for i in (p1, p2)] == ["P1", "P2"]
    await turn(harness, 5)
    harness.github.reset_log()

    for _ in range(10):
        await turn(harness, 1)

    read = [int(r.path.rsplit("/", 1)[1]) for r in issue_reads(harness)]
    assert read.count(p1.number) == 10
    assert read.count(p2.number) == 2


@pytest.mark.parametrize(
    ("act", "who", "via"),
    [
        (lambda g, n: g.human_add_label(REPO, n, "acknowledged", login="carol"), "carol", "label"),
        (lambda g, n: g.human_comment(REPO, n, "Looking into it", login="erin"), "erin", "comment"),
    ],
)
async def test_labels_and_comments_acknowledge_when_polled(
    harness: Harness, act: Any, who: str, via: str
) -> None:
    """Labelled ``acknowledged`` (who: the issue's ``labeled`` event) or commented on by a human
    (who: the comment's author): acknowledged at the next turn."""
    issue = await opened(harness)
    act(harness.github, issue.number)

    await turn(harness)

    assert (await row(harness, issue))["acknowledged_by"] == who


async def test_the_identified_label_is_seen_when_polled(harness: Harness) -> None:
    """Labelled ``identified``: acknowledged and Identified on the status page, once."""
    issue = await opened(harness)
    harness.clock.advance(timedelta(seconds=30))
    harness.github.human_add_label(REPO, issue.number, "identified", login="carol")

    await turn(harness)
    await harness.drain()
    await turn(harness)  # the bridge's own edit changed the issue: read again, nothing new

    assert (await row(harness, issue))["acknowledged_by"] == "carol"
    page = await (await harness.http.get("/status.json")).json()
    [shown] = page["incidents"]
    assert shown["status"] == "Identified"
    assert harness.app is not None
    store = harness.app[SERVICES].store
    incident = await store.incident_by_issue(REPO, issue.number)
    assert incident is not None
    assert incident.id is not None
    kinds = [e.kind for e in await store.load_events(incident.id, 50)]
    assert kinds.count("identified") == 1


async def test_what_the_bridge_itself_does_is_not_an_acknowledgement(harness: Harness) -> None:
    """The bridge's own account labelling or commenting acknowledges nothing."""
    issue = await opened(harness)
    harness.github.human_add_label(REPO, issue.number, "acknowledged", login=BOT)
    harness.github.human_comment(REPO, issue.number, "status update", login=BOT)

    await turn(harness)

    assert (await row(harness, issue))["acknowledged_at"] is None


async def test_closed_and_reopened_by_people_when_polled(harness: Harness) -> None:
    """Closed by someone while the alert fires: resolved manually with the comment saying so;
    reopened by someone: open again."""
    issue = await opened(harness)
    harness.github.human_close(REPO, issue.number, login="dave")

    await turn(harness)
    await harness.drain()

    closed = await row(harness, issue)
    assert (closed["state"], closed["resolution"]) == ("resolved", "manual")
    [comment] = harness.github.comments(REPO, issue.number)
    assert "still firing" in comment.body
    assert harness.github.issue(REPO, issue.number).state == "closed"

    harness.github.human_reopen(REPO, issue.number, login="dave")
    await turn(harness, 5)  # a resolved incident's issue is watched at the slower pace
    await harness.drain()

    assert (await row(harness, issue))["state"] == "open"
    assert harness.github.issue(REPO, issue.number).state == "open"


async def test_the_bridges_own_close_and_reopen_are_not_peoples(harness: Harness) -> None:
    """The alerts resolve and come back: the bridge closes and reopens the issue itself; the
    polls in between see nothing done by people."""
    issue = await opened(harness)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    await turn(harness)
    refire = payload("01_firing_single.json")
    refire["alerts"][0]["startsAt"] = "2026-11-26T21:50:00Z"
    await harness.post(refire)
    await harness.drain()
    await turn(harness, 5)

    found = await row(harness, issue)
    assert (found["state"], found["resolution"], found["acknowledged_at"]) == ("open", None, None)


async def test_an_assignment_before_a_reopening_does_not_acknowledge_the_new_episode(
    harness: Harness,
) -> None:
    """Acknowledged by an assignment, resolved, reopened by its alerts: the assignee still on
    the issue is from the episode that ended, so the new one waits for a new acknowledgement."""
    issue = await opened(harness)
    harness.github.human_assign(REPO, issue.number, "bob")
    await turn(harness)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    harness.clock.advance(timedelta(minutes=10))
    refire = payload("01_firing_single.json")
    refire["alerts"][0]["startsAt"] = "2026-11-26T22:00:00Z"
    await harness.post(refire)
    await harness.drain()

    await turn(harness, 5)

    assert (await row(harness, issue))["acknowledged_at"] is None


async def test_a_reported_issue_is_adopted_when_polled(harness: Harness) -> None:
    """The open issues labelled ``incident`` are listed (conditionally): one people opened is
    adopted once, in place."""
    await poller(harness).run_once()
    issue = harness.github.human_create_issue(
        REPO, "Login page is blank", "Since 21:30, for everyone.", ["incident"], login="alice"
    )

    await turn(harness)
    await harness.drain()
    await turn(harness)
    await harness.drain()

    [found] = await harness.incidents()
    assert (found["id"], found["priority"], found["issue_number"]) == ("INC-001", "P2", 1)
    adopted = harness.github.issue(REPO, issue.number)
    assert adopted.title == "[INC-001] Login page is blank"
    assert (adopted.body or "").startswith("Since 21:30, for everyone.\n\n")
    assert len(harness.issues()) == 1
    lists = [r for r in harness.github.calls("GET") if r.path == f"/repos/{REPO}/issues"]
    assert lists[-1].query["labels"] == "incident"
    assert lists[-1].headers.get("If-None-Match")


async def test_an_assignment_made_as_the_issue_was_opened_acknowledges_when_polled(
    harness: Harness,
) -> None:
    """People assign someone as they open the issue, before a poll adopts it: that belongs to
    the reported incident's first episode, which began with its issue — acknowledged (at the
    adoption, not before the incident existed), so no deadline is missed and nobody paged."""
    await poller(harness).run_once()
    issue = harness.github.human_create_issue(
        REPO, "Login page is blank", "Since 21:30.", ["incident"], login="alice"
    )
    harness.github.human_assign(REPO, issue.number, "bob", login="alice")
    for _ in range(3):
        await turn(harness)
        await harness.drain()

    [found] = await harness.incidents()
    assert found["acknowledged_by"] == "bob"
    assert found["acknowledged_at"] == found["opened_at"]


async def test_a_failed_poll_is_retried_at_the_issues_next_turn(harness: Harness) -> None:
    """GitHub down: the round logs and counts the failure and goes on; the next turn reads the
    issue and applies what happened meanwhile."""
    issue = await opened(harness)
    harness.github.human_assign(REPO, issue.number, "bob")
    harness.github.down = True

    await turn(harness)
    assert await metric(harness, "error") >= 1
    assert (await row(harness, issue))["acknowledged_at"] is None

    harness.github.down = False
    await turn(harness)
    assert (await row(harness, issue))["acknowledged_by"] == "bob"


async def test_an_unreadable_answer_does_not_stop_the_round(harness: Harness) -> None:
    """One issue's answer cannot be read (a 200 without an issue in it): counted as an error,
    and the other issues of the round are still read."""
    first = await opened(harness)
    second = await opened(harness, "04_group_of_3_firing.json")
    harness.github.human_assign(REPO, second.number, "bob")
    harness.github.inject("GET", rf"/issues/{first.number}$", 200, body={})
    harness.clock.advance(timedelta(minutes=5))
    errors = await metric(harness, "error")

    await poller(harness).run_once()

    assert await metric(harness, "error") == errors + 1
    assert (await row(harness, second))["acknowledged_by"] == "bob"


async def test_an_issue_whose_record_went_during_its_read_is_left_alone(
    harness: Harness,
) -> None:
    """The round picked the issue, and its record was gone by the time GitHub answered (a
    rebuild or a retention pass in between): what the answer shows is not applied, the round
    ends normally (no error counted), and the issue is not read again."""
    issue = await opened(harness)
    harness.github.human_assign(REPO, issue.number, "bob")
    # GitHub answers this read slowly; the record goes while the request is at GitHub.
    slow = harness.github.inject("GET", rf"/issues/{issue.number}$", 0, delay=0.5)
    harness.clock.advance(timedelta(minutes=5))
    incident = (await row(harness, issue))["id"]
    errors = await metric(harness, "error")
    harness.github.reset_log()
    polling = asyncio.create_task(poller(harness).run_once())

    async def arrived() -> None:
        while slow.hits == 0:  # noqa: ASYNC110 -- the fake counts hits, it has no event
            await asyncio.sleep(0)

    await asyncio.wait_for(arrived(), 5)  # the request is at the fake, answered in 0.5 s
    assert harness.app is not None
    store = harness.app[SERVICES].store
    assert isinstance(store, SqliteStore | PostgresStore)
    gone = f"DELETE FROM github_issues WHERE number = {issue.number:d}"  # noqa: S608 -- an int
    await store.execute_for_test(gone)

    await polling
    [read] = issue_reads(harness)
    assert read.status == 200  # the assignment is in the answer
    [found] = [r for r in await harness.incidents() if r["id"] == incident]
    assert found["acknowledged_at"] is None
    assert await metric(harness, "error") == errors  # not a failure: nothing left to apply
    harness.github.reset_log()
    await turn(harness, 5)
    assert issue_reads(harness) == []


async def test_only_the_github_writer_polls(harness: Harness) -> None:
    """Another replica holds the GitHub writer lease: it polls, this one asks GitHub nothing."""
    issue = await opened(harness)
    assert harness.app is not None
    store = harness.app[SERVICES].store
    harness.clock.advance(timedelta(minutes=2))  # this process' lease runs out ...
    assert await store.hold_lease(
        "github-writer", "other-replica", harness.clock(), timedelta(minutes=5)
    )
    harness.github.human_assign(REPO, issue.number, "bob")
    harness.github.reset_log()

    assert await poller(harness).run_once() == 0

    assert harness.github.requests == []
    assert (await row(harness, issue))["acknowledged_at"] is None


async def test_with_a_webhook_secret_nothing_polls(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    """A webhook secret means GitHub tells the bridge: no poller at all."""
    h = Harness(tmp_path, github, clock, github_config("  webhook_secret: s3cret\n"))
    await h.start()
    try:
        assert h.app is not None
        assert POLLER not in h.app
    finally:
        await h.stop()


async def test_a_bots_assignment_does_not_acknowledge_when_polled(harness: Harness) -> None:
    """A code owner assigned by an auto-assign workflow (the ``assigned`` event's actor is
    ``github-actions[bot]``) has not acknowledged; a person's assignment later still does."""
    issue = await opened(harness)
    harness.github.human_assign(REPO, issue.number, "bob", login="github-actions[bot]")

    await turn(harness)

    assert (await row(harness, issue))["acknowledged_at"] is None

    harness.github.human_assign(REPO, issue.number, "carol", login="lead")
    await turn(harness)

    assert (await row(harness, issue))["acknowledged_by"] == "carol"


async def test_bot_comments_and_labels_do_not_acknowledge_when_polled(harness: Harness) -> None:
    """A welcome bot's comment (a ``[bot]`` login, or GitHub's ``type: "Bot"`` on the author)
    and a bot's ``acknowledged`` label acknowledge nothing."""
    issue = await opened(harness)
    harness.github._user("greeter", "Bot")  # a bot account whose login does not say so
    harness.github.human_comment(REPO, issue.number, "Thanks for the report!", login="welcome[bot]")
    harness.github.human_comment(REPO, issue.number, "Thanks for the report!", login="greeter")
    harness.github.human_add_label(REPO, issue.number, "acknowledged", login="labeler[bot]")

    await turn(harness)

    assert (await row(harness, issue))["acknowledged_at"] is None


async def test_a_bots_close_or_reopening_changes_nothing_when_polled(harness: Harness) -> None:
    """A stale-issue bot closing the issue does not resolve the incident; a bot reopening an
    issue a person closed does not reopen it."""
    issue = await opened(harness)
    harness.github.human_close(REPO, issue.number, login="stale[bot]")

    await turn(harness)

    assert (await row(harness, issue))["state"] == "open"

    harness.github.human_reopen(REPO, issue.number, login="dave")
    await turn(harness)
    harness.github.human_close(REPO, issue.number, login="dave")
    await turn(harness)
    await harness.drain()
    assert (await row(harness, issue))["resolution"] == "manual"
    harness.github.human_reopen(REPO, issue.number, login="reopener[bot]")

    await turn(harness, 5)

    found = await row(harness, issue)
    assert (found["state"], found["resolution"]) == ("resolved", "manual")
