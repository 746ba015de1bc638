"""GitHub misbehaving: nothing accepted is lost, nothing is done twice on GitHub.

Every fault here is made by the fake GitHub on loopback (errors, latency, a dropped connection
after the change was applied); time moves by the fake clock, so backoffs cost no real waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from fakes.github import FakeGitHub
from support import REPO, Harness, github_config, payload


def group(n: int) -> dict[str, Any]:
    """A distinct alert group per n."""
    body = payload("01_firing_single.json")
    body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="svc-{n}"}}'
    body["groupLabels"]["service"] = f"svc-{n}"
    body["alerts"][0]["fingerprint"] = f"{n:016x}"
    body["alerts"][0]["labels"]["service"] = f"svc-{n}"
    return body


async def settle(h: Harness, seconds: float = 400, step: float = 10) -> None:
    """Let the outbox run while the fake clock moves on (backoffs of up to 5 minutes)."""
    for _ in range(int(seconds / step)):
        await h.drain()
        h.clock.advance(timedelta(seconds=step))
    await h.drain()


async def test_create_applied_but_answered_502_makes_one_issue(harness: Harness) -> None:
    """GitHub made the issue and then answered 502: the retry finds the marker, no duplicate."""
    harness.github.inject("POST", r"/issues$", 502, apply_first=True)
    await harness.post(payload("01_firing_single.json"))
    await settle(harness)

    assert len(harness.issues()) == 1
    assert len(harness.github.calls("POST", "/issues")) == 1
    assert harness.github.calls("GET", "/issues")  # it looked before repeating
    [row] = await harness.incidents()
    assert row["issue_number"] == 1


async def test_create_applied_then_connection_dropped_makes_one_issue(harness: Harness) -> None:
    """The connection dropped after GitHub applied the create: adopted by its marker."""
    harness.github.inject("POST", r"/issues$", 0, apply_first=True, drop=True)
    await harness.post(payload("04_group_of_3_firing.json"))
    await settle(harness)
    await harness.post(payload("05_group_mixed_one_resolved.json"))
    await settle(harness)

    [issue] = harness.issues()
    assert "**Alerts firing**: 2 of 3" in (issue.body or "")  # the adopted issue is kept current


async def test_comment_applied_but_response_lost_posts_one_comment(harness: Harness) -> None:
    """The resolution comment reached GitHub but its answer did not: exactly one comment."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.github.inject("POST", r"/comments$", 0, apply_first=True, drop=True)
    await harness.post(payload("03_resolved_single.json"))
    await settle(harness)

    assert len(harness.github.comments(REPO, 1)) == 1
    assert harness.issues()[0].state == "closed"


async def test_comment_failing_before_github_applied_it_is_posted_once(harness: Harness) -> None:
    """A 502 without the change applied: the marker is not found, so the comment is posted."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.github.inject("POST", r"/comments$", 502)
    await harness.post(payload("03_resolved_single.json"))
    await settle(harness)

    assert len(harness.github.comments(REPO, 1)) == 1


async def test_issue_made_by_a_comment_whose_answer_was_lost_is_made_once(
    harness: Harness,
) -> None:
    """The issue's create failed for good (422), so the resolution comment has to make the
    issue first — and that create reached GitHub while its answer did not: the comment's retry
    finds the issue by its marker instead of making a second one."""
    harness.github.inject("POST", r"/issues$", 422)
    await harness.post(payload("01_firing_single.json"))
    await settle(harness)
    assert harness.issues() == []
    harness.github.inject("POST", r"/issues$", 0, apply_first=True, drop=True)
    await harness.post(payload("03_resolved_single.json"))
    await settle(harness)

    [issue] = harness.issues()
    creates = [
        r
        for r in harness.github.calls("POST")
        if r.path.endswith("/issues") and "incident" in r.json["labels"]
    ]
    assert [r.status for r in creates] == [422, 0]  # 0: dropped; no third, the marker was found
    assert len(harness.github.comments(REPO, issue.number)) == 1
    assert issue.state == "closed"


async def test_github_down_for_a_minute_then_back(harness: Harness) -> None:
    """GitHub down for a minute: webhooks keep getting 200; afterwards every incident has
    exactly one issue and no request was made twice that should not be."""
    harness.github.down = True
    for n in range(5):
        status, _ = await harness.post(group(n))
        assert status == 200
    for _ in range(6):
        await harness.drain()
        harness.clock.advance(timedelta(seconds=10))
    assert harness.issues() == []
    harness.github.down = False
    await settle(harness)

    issues = harness.issues()
    assert sorted(i.title for i in issues) == sorted(
        f"[INC-00{n + 1}] HighCPU on api-1:9100" for n in range(5)
    )
    metrics = await (await harness.http.get("/metrics")).text()
    assert "incident_bridge_outbox_pending 0.0" in metrics


async def test_no_request_inside_a_retry_after_window(harness: Harness) -> None:
    """A 429 with Retry-After: 60 stops every request on the token for 60 s, not just the one
    effect; after the window all the work is done."""
    harness.github.inject(
        "POST",
        r"/issues$",
        429,
        body={"message": "Too many requests"},
        headers={"Retry-After": "60"},
    )
    harness.github.reset_log()
    for n in range(3):
        await harness.post(group(n))
    await harness.drain()
    assert len(harness.github.requests) == 1
    for _ in range(5):
        harness.clock.advance(timedelta(seconds=10))
        await harness.drain()
    assert len(harness.github.requests) == 1  # 50 s later: still nothing sent
    await settle(harness)
    assert len(harness.issues()) == 3


async def test_a_retry_after_window_starts_when_the_answer_comes(harness: Harness) -> None:
    """Retry-After counts from GitHub's answer, not from when the request went out: a 429 with
    Retry-After: 60 that took 30 s to come keeps every request away for 60 s after it came."""
    slow = harness.github.inject(
        "POST",
        r"/issues$",
        429,
        body={"message": "Too many requests"},
        headers={"Retry-After": "60"},
        delay=0.5,
    )
    harness.github.reset_log()
    for n in range(3):
        await harness.post(group(n))
    draining = asyncio.create_task(harness.drain())

    async def arrived() -> None:
        while slow.hits == 0:  # noqa: ASYNC110 -- the fake counts hits, it has no event
            await asyncio.sleep(0)

    await asyncio.wait_for(arrived(), 5)
    harness.clock.advance(timedelta(seconds=30))  # the answer takes 30 s on the bridge's clock
    await draining
    assert len(harness.github.requests) == 1
    for _ in range(5):
        harness.clock.advance(timedelta(seconds=10))
        await harness.drain()
    assert len(harness.github.requests) == 1  # 80 s after sending, 50 s after the answer
    await settle(harness)
    assert len(harness.issues()) == 3


async def test_primary_rate_limit_exhausted_waits_for_the_reset(harness: Harness) -> None:
    """x-ratelimit-remaining: 0 means no call until x-ratelimit-reset."""
    reset = int(harness.clock().timestamp()) + 120
    harness.github.inject(
        "POST",
        r"/issues$",
        403,
        body={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    harness.github.reset_log()
    await harness.post(payload("01_firing_single.json"))
    await harness.post(group(7))
    await harness.drain()
    harness.clock.advance(timedelta(seconds=100))
    await harness.drain()
    assert len(harness.github.calls("POST")) == 1
    await settle(harness)
    assert len(harness.issues()) == 2


@pytest.fixture
async def impatient(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config("  timeout: 1s\n"))
    await h.start()
    yield h
    await h.stop()


async def test_response_slower_than_our_timeout_is_not_repeated_blindly(impatient: Harness) -> None:
    """GitHub applies the create but answers after our 1 s timeout: one issue, found by marker."""
    impatient.github.inject("POST", r"/issues$", 0, apply_first=True, delay=2.0)
    await impatient.post(payload("01_firing_single.json"))
    await settle(impatient)
    assert len(impatient.issues()) == 1
    assert len(impatient.github.calls("POST", "/issues")) == 1


async def test_5xx_bursts_are_absorbed(harness: Harness) -> None:
    """Three 503s in a row on every kind of write: the incident's issue still ends right."""
    harness.github.inject("*", r".*", 503, times=3)
    await harness.post(payload("04_group_of_3_firing.json"))
    await settle(harness)
    harness.github.inject("PATCH", r".*", 500, times=3)
    await harness.post(payload("05_group_mixed_one_resolved.json"))
    await settle(harness)
    [issue] = harness.issues()
    assert "**Alerts firing**: 2 of 3" in (issue.body or "")
