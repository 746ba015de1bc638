"""kill -9 at the worst moment: the bridge as a real process, GitHub as the fake on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fakes.github import FakeGitHub
from fakes.slack import FakeSlack
from support import REPO, SLACK_TOKEN, TOKEN, current_payload, eventually, slack_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BridgeProcess:
    """``incident-bridge serve`` in a child process, restartable on the same store."""

    def __init__(self, tmp_path: Path, github: FakeGitHub, extra: str = "") -> None:
        self.port = free_port()
        self.config = tmp_path / "bridge.yaml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            "store:\n  url: sqlite:///state.db\n"
            "github:\n"
            f"  api_url: {github.base_url}\n"
            f"  repository: {REPO}\n"
            f"  token: {TOKEN}\n"
            "  timeout: 5s\n" + extra
        )
        self.log = tmp_path / "bridge.log"
        self.process: asyncio.subprocess.Process | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bridge", "serve", "--config", str(self.config)),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ},
            )
        await eventually(self._healthy, "bridge answers /healthz")

    async def _healthy(self) -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{self.base}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)

    async def sigterm(self, wait: float) -> float:
        """SIGTERM, and the seconds until the process exited 0 (waiting at most ``wait``)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.process.wait(), wait)
        assert self.process.returncode == 0
        return time.monotonic() - started

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def post(self, body: dict[str, Any]) -> int:
        url = f"{self.base}/api/v1/alerts"
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
            return r.status

    async def incidents(self) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/incidents"
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            data: list[dict[str, Any]] = await r.json()
            return data


@pytest.fixture
async def bridge(tmp_path: Path, github: FakeGitHub) -> AsyncIterator[BridgeProcess]:
    process = BridgeProcess(tmp_path, github)
    yield process
    await process.stop()


async def test_sigkill_between_create_and_commit_makes_one_issue(
    bridge: BridgeProcess, github: FakeGitHub
) -> None:
    """GitHub has created the issue but the bridge dies before recording it: after restart the
    bridge finds the issue by its marker and adopts it instead of creating a second one."""
    github.inject("POST", r"/issues$", 0, apply_first=True, delay=30)
    await bridge.start()
    assert await bridge.post(current_payload("01_firing_single.json")) == 200
    await eventually(lambda: github.issues(REPO), "GitHub has applied the create")
    await bridge.kill()

    github.clear_faults()
    await bridge.start()

    async def adopted() -> bool:
        rows = await bridge.incidents()
        return bool(rows) and rows[0]["issue_number"] == 1

    await eventually(adopted, "the restarted bridge adopted the issue")
    assert len(github.issues(REPO)) == 1
    assert len(github.calls("POST", "/issues")) == 1

    assert await bridge.post(current_payload("03_resolved_single.json")) == 200
    await eventually(lambda: github.issue(REPO, 1).state == "closed", "the issue is closed")
    # The one incident issue, and the resolved P1's post-incident review.
    assert [i.title.split()[0] for i in github.issues(REPO)] == ["[INC-001]", "[PIR]"]
    assert len(github.comments(REPO, 1)) == 1


async def test_sigkill_after_the_200_loses_nothing(
    bridge: BridgeProcess, github: FakeGitHub
) -> None:
    """A 200 is a promise: the bridge killed before it could tell GitHub still tells it later."""
    github.down = True
    await bridge.start()
    for body in (
        current_payload("01_firing_single.json"),
        current_payload("04_group_of_3_firing.json"),
    ):
        assert await bridge.post(body) == 200
    await bridge.kill()
    github.down = False
    await bridge.start()
    await eventually(lambda: len(github.issues(REPO)) == 2, "both issues exist")
    created = [c for c in github.calls("POST", "/issues") if c.status == 201]
    assert len(created) == 2


async def test_sigterm_with_github_slow_exits_within_10_seconds(
    bridge: BridgeProcess, github: FakeGitHub
) -> None:
    """SIGTERM while a GitHub call hangs: /readyz-first shutdown, exit 0 within 10 s, and the
    unfinished effect is done after the next start (once, thanks to the marker)."""
    github.inject("POST", r"/issues$", 0, apply_first=True, delay=30)
    await bridge.start()
    assert await bridge.post(current_payload("13_critical_list_service_unavailable.json")) == 200
    await eventually(lambda: github.issues(REPO), "the create is in flight")
    assert await bridge.sigterm(15) < 10
    github.clear_faults()
    await bridge.start()

    async def recorded() -> bool:
        rows = await bridge.incidents()
        return bool(rows) and rows[0]["issue_number"] == 1

    await eventually(recorded, "the issue is recorded after the restart")
    assert len(github.issues(REPO)) == 1


async def test_sigterm_with_github_and_slack_slow_exits_within_10_seconds(
    tmp_path: Path, github: FakeGitHub, slack: FakeSlack
) -> None:
    """GitHub and Slack both hang (each request answered after 30 s, the bridge gives up after
    5): every worker is told to stop when SIGTERM comes, so the GitHub outbox starts nothing
    new while the Slack lane drains, and the drains overlap — exit 0 within 10 s."""
    slow_github = github.inject("*", r".*", 0, delay=30, times=100)
    slow_slack = slack.inject("POST", r"chat\.postMessage", 0, delay=30, times=100)
    bridge = BridgeProcess(tmp_path, github, slack_config(slack.base_url, SLACK_TOKEN))
    try:
        await bridge.start()
        for name in ("13_critical_list_service_unavailable.json", "01_firing_single.json"):
            assert await bridge.post(current_payload(name)) == 200
        await eventually(lambda: slow_github.hits and slow_slack.hits, "both calls in flight")
        assert await bridge.sigterm(20) < 10
    finally:
        await bridge.stop()
