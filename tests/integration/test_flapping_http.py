"""A flapping alert group through the real app: webhooks on loopback, the fake GitHub, FakeSlack,
the scheduler's timers fired with ``run_once`` on a fake clock (no sleeps).

Defaults: more than 3 flips (firing ↔ resolved) within 1h is flapping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import SCHEDULER
from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.slack import FakeSlack, SlackMessage
from support import REPO, SLACK_CHANNEL, SLACK_TOKEN, Harness, github_config, payload, slack_config

STEP = timedelta(minutes=5)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Both stores: the quiet period is a timer kept in the store's due_at."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, slack: FakeSlack, store_url: str
) -> AsyncIterator[Harness]:
    extra = slack_config(slack.base_url, SLACK_TOKEN) + "flapping: {max_flips: 3, window: 1h}\n"
    h = Harness(tmp_path, github, clock, github_config(extra, store_url=store_url))
    await h.start()
    yield h
    await h.stop()


def iso(h: Harness) -> str:
    return h.clock.now.isoformat().replace("+00:00", "Z")


def fire(h: Harness) -> dict[str, Any]:
    """The group's one alert starting a new episode now."""
    body = payload("01_firing_single.json")
    body["alerts"][0]["startsAt"] = iso(h)
    return body


def resolve(h: Harness, starts: str) -> dict[str, Any]:
    """The episode that started at ``starts`` ending now."""
    body = payload("03_resolved_single.json")
    body["alerts"][0]["startsAt"] = starts
    body["alerts"][0]["endsAt"] = iso(h)
    return body


async def cycle(h: Harness) -> list[str]:
    """Fire, then resolve five minutes later; advance five more. Returns both outcomes."""
    starts = iso(h)
    _, fired = await h.post(fire(h))
    await h.drain()
    h.clock.advance(STEP)
    _, resolved = await h.post(resolve(h, starts))
    await h.drain()
    h.clock.advance(STEP)
    return [fired["outcome"], resolved["outcome"]]


def replies(slack: FakeSlack) -> list[SlackMessage]:
    [root] = slack.messages(SLACK_CHANNEL)
    return slack.thread(SLACK_CHANNEL, root.ts)


def said(h: Harness, number: int) -> list[str]:
    """The resolution and reopening comments on the issue, by their first word."""
    bodies = [c.body for c in h.github.comments(REPO, number)]
    return [w for b in bodies for w in ("Resolved", "Reopened") if w in b.split("\n")[0]]


def label_adds(github: FakeGitHub, name: str) -> int:
    return sum(
        1
        for r in github.requests
        if r.method == "POST"
        and "/issues/" in r.path
        and r.path.endswith("/labels")
        and name in str(r.json)
    )


async def test_a_group_flapping_five_times_is_labelled_once_damped_and_closed_when_quiet(
    harness: Harness, slack: FakeSlack
) -> None:
    """Five fire/resolve cycles in 50 minutes: the fourth flip (the second reopening) makes the
    incident flapping — the label once, one Slack summary — and from then on its alerts are not
    told one by one and it is not closed; an hour after the last resolution the scheduler closes
    it once, with the resolution comment, and the label goes."""
    outcomes = [await cycle(harness) for _ in range(5)]
    assert outcomes == [
        ["opened", "resolved"],
        ["reopened", "resolved"],
        ["reopened", "updated"],  # flapping from the reopening on: the close is deferred
        ["updated", "updated"],
        ["updated", "updated"],
    ]
    [issue] = harness.issues()
    assert issue.state == "open"
    assert "flapping" in issue.label_names
    assert label_adds(harness.github, "flapping") == 1
    status = next(line for line in (issue.body or "").splitlines() if "**Status**" in line)
    assert "flapping: alerts fire and resolve repeatedly, notifications damped" in status
    assert "closes at " in status  # every alert resolved: the close waits for quiet
    texts = [m.text for m in replies(slack)]
    summaries = [t for t in texts if "Flapping: fired and resolved 4 times in 1h" in t]
    assert len(summaries) == 1
    # Nothing after the summary: the alerts of cycles 3 to 5 coming and going are damped.
    assert texts[-1] == summaries[0]
    assert said(harness, issue.number) == ["Resolved", "Reopened", "Resolved", "Reopened"]

    # The last resolution was 5 minutes ago; the quiet period is one hour from it. (The P1's
    # response deadline passed meanwhile: the scheduler fires that timer too.)
    assert harness.app is not None
    scheduler = harness.app[SCHEDULER]
    harness.clock.advance(timedelta(minutes=54))
    await scheduler.run_once()
    await harness.drain()
    assert harness.github.issue(REPO, issue.number).state == "open"
    assert said(harness, issue.number)[-1] == "Reopened"

    harness.clock.advance(timedelta(minutes=1))
    await scheduler.run_once()
    await harness.drain()
    closed = harness.github.issue(REPO, issue.number)
    assert closed.state == "closed"
    assert "flapping" not in closed.label_names
    assert said(harness, issue.number)[4:] == ["Resolved"]
    [row] = await harness.incidents()
    assert row["state"] == "resolved"
    # MTTR ends when the last alert ended, not when the quiet period did.
    assert row["resolved_at"] == (harness.clock.now - timedelta(hours=1)).isoformat()
    assert "resolved" in replies(slack)[-1].text.lower()
    harness.clock.advance(timedelta(hours=2))
    await scheduler.run_once()  # closed once
    await harness.drain()
    assert said(harness, issue.number)[4:] == ["Resolved"]


async def test_a_refire_during_the_quiet_period_keeps_it_open(
    harness: Harness, slack: FakeSlack
) -> None:
    """Flapping and quiet for 50 minutes, then firing again: the pending close is off, the
    re-fire is recorded (not told on Slack), and the scheduler's old deadline closes nothing."""
    for _ in range(3):
        await cycle(harness)
    told = len(replies(slack))
    harness.clock.advance(timedelta(minutes=45))
    _, answer = await harness.post(fire(harness))
    await harness.drain()
    assert (answer["outcome"], answer["incident"]) == ("updated", "INC-001")
    assert len(replies(slack)) == told
    assert harness.app is not None
    harness.clock.advance(timedelta(minutes=30))  # past the old quiet_until
    await harness.app[SCHEDULER].run_once()
    await harness.drain()
    [issue] = harness.issues()
    assert issue.state == "open"
    assert "flapping" in issue.label_names
    store = harness.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    events = [e.kind for e in await store.load_events(row.incident.id, 100)]
    since = events[events.index("flapping") + 1 :]
    assert since[:2] == ["alert_resolved", "alert_firing"]  # in the timeline, not on Slack
    assert "resolved" not in since
