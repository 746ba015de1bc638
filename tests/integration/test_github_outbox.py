"""The outbox against GitHub: retries from durable state, permanent failures, start-up labels."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bridge.app import create_app
from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from support import REPO, Harness, github_config, payload, write_config


async def test_missing_labels_are_created_at_start_up(harness: Harness) -> None:
    """Every label the bridge may use exists in the repository once it has started."""
    names = {label.name for label in harness.github.labels(REPO)}
    assert {
        "incident-bridge",
        "incident",
        "priority-critical",
        "priority-high",
        "priority-medium",
        "priority-low",
        "maintenance-corrective",
        "resolved",
        "phase-09",
    } <= names


async def test_github_5xx_is_retried_later_and_the_issue_made_once(harness: Harness) -> None:
    """A 502 leaves the effect pending with a backoff; when it is due again the issue is made."""
    harness.github.inject("POST", r"/issues$", 502, times=1)
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    assert harness.issues() == []

    harness.clock.advance(timedelta(seconds=3))  # past the first backoff (1 s ± 20 %)
    await harness.drain()
    assert len(harness.issues()) == 1
    assert len(harness.github.calls("POST", "/issues")) == 2


async def test_retry_after_is_honoured(harness: Harness) -> None:
    """A 403 secondary rate limit with Retry-After: 120 is not retried before 120 s have passed."""
    harness.github.inject(
        "POST",
        r"/issues$",
        403,
        body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
        headers={"Retry-After": "120"},
    )
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.clock.advance(timedelta(seconds=110))
    await harness.drain()
    assert len(harness.github.calls("POST", "/issues")) == 1
    harness.clock.advance(timedelta(seconds=12))
    await harness.drain()
    assert len(harness.issues()) == 1


async def test_permanent_failure_is_recorded_and_never_blocks_the_queue(harness: Harness) -> None:
    """A 422 fails the effect for good: counted, in the timeline, and the next effect still runs."""
    harness.github.inject("POST", r"/issues$", 422, body={"message": "Validation Failed"})
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    assert harness.issues() == []

    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    # The resolution's comment needs the issue: it is made then, so nothing is lost.
    [issue] = harness.issues()
    assert issue.state == "closed"
    assert "failed permanently" in (issue.body or "")
    metrics = await (await harness.http.get("/metrics")).text()
    assert 'incident_bridge_effects_total{kind="github.sync",result="failed"} 1.0' in metrics


async def test_github_unreachable_keeps_the_work(tmp_path: Path, clock: FakeClock) -> None:
    """GitHub down (connection refused): webhooks still get 200 and the issue appears later."""
    github = FakeGitHub(token="ghp_test_token_0123456789", repos=[REPO])
    await github.start()
    url = github.base_url
    h = Harness(tmp_path, github, clock, github_config())
    await h.start()
    await github.close()  # now nothing listens on that port
    try:
        status, _ = await h.post(payload("01_firing_single.json"))
        assert status == 200
        await h.drain()
        assert h.github.issues(REPO) == []
        port = int(url.rsplit(":", 1)[1])
        await github.start(port)
        clock.advance(timedelta(seconds=5))
        await h.drain()
        assert len(h.github.issues(REPO)) == 1
    finally:
        await h.stop()
        await github.close()


async def test_served_outbox_runs_without_being_driven(tmp_path: Path, github: FakeGitHub) -> None:
    """In production the outbox runs by itself on the real clock: a webhook is an issue moments
    later, with nobody driving it."""
    config = write_config(tmp_path, github_config(), {"GITHUB_URL": github.base_url})
    app = create_app(config)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        body = payload("13_critical_list_service_unavailable.json")
        response = await client.post("/api/v1/alerts", json=body)
        assert response.status == 200
        deadline = time.monotonic() + 10
        # Polls the fake's state, which offers no event to wait on; bounded by the deadline.
        while not github.issues(REPO) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        [issue] = github.issues(REPO)
        assert "priority-critical" in issue.label_names
    finally:
        await client.close()


async def test_labels_are_created_once_github_answers_after_a_bad_start(
    tmp_path: Path, github: FakeGitHub
) -> None:
    """GitHub failing at start-up does not stop the bridge; the labels come when it recovers."""
    github.down = True
    config = write_config(tmp_path, github_config(), {"GITHUB_URL": github.base_url})
    app = create_app(config, run_outbox=False)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/readyz")).status == 200
        github.down = False
        await asyncio.wait_for(app[SERVICES].labels_ready.wait(), timeout=10)
        assert "priority-critical" in {label.name for label in github.labels(REPO)}
    finally:
        await client.close()
