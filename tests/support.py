"""Test support: Alertmanager payloads, config files and the bridge harness.

The harness runs the real application (``create_app``) on 127.0.0.1 against the fake GitHub
through PyGithub, exactly as in production; only the clock is fake and the outbox is driven by
the test (``harness.drain()``) so that nothing depends on timing.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import OUTBOX, create_app
from bridge.clock import FakeClock
from bridge.config import Config, load_config
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue

# Captured byte-for-byte from Alertmanager 0.25 (a copy of shared/fixtures/alertmanager).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
REPO = "acme/incidents"
TOKEN = "ghp_test_token_0123456789"


def fixture_names() -> list[str]:
    """Every captured Alertmanager payload."""
    return sorted(p.name for p in FIXTURES.glob("*.json"))


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a captured payload (tests may change it)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return copy.deepcopy(data)


def write_config(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "bridge.yaml"
    path.write_text(text)
    return load_config(path, env=env or {})


class Harness:
    """The bridge served on loopback, with the fake GitHub behind it."""

    def __init__(
        self, tmp_path: Path, github: FakeGitHub, clock: FakeClock, config_text: str
    ) -> None:
        self.tmp_path = tmp_path
        self.github = github
        self.clock = clock
        self.config = write_config(tmp_path, config_text, {"GITHUB_URL": github.base_url})
        self.client: TestClient[Any, Any] | None = None
        self.app: web.Application | None = None

    async def start(self) -> None:
        app = self.app = create_app(self.config, clock=self.clock, run_outbox=False)
        self.client = TestClient(TestServer(app, host="127.0.0.1"))
        await self.client.start_server()
        await app[SERVICES].labels_ready.wait()  # start-up label creation is not under test here

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def http(self) -> TestClient[Any, Any]:
        assert self.client is not None
        return self.client

    async def post(self, body: dict[str, Any] | str, **headers: str) -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        response = await self.http.post(
            "/api/v1/alerts", data=data, headers={"Content-Type": "application/json", **headers}
        )
        try:
            answer = await response.json()
        except ValueError:
            answer = await response.text()
        return response.status, answer

    async def drain(self) -> None:
        """Run every effect that is due now."""
        assert self.app is not None
        await self.app[OUTBOX].drain()

    async def incidents(self) -> list[dict[str, Any]]:
        response = await self.http.get("/api/v1/incidents")
        assert response.status == 200
        data: list[dict[str, Any]] = await response.json()
        return data

    def issues(self) -> list[FakeIssue]:
        return self.github.issues(REPO)


def github_config(extra: str = "") -> str:
    return (
        "github:\n"
        "  api_url: ${GITHUB_URL}\n"
        f"  repository: {REPO}\n"
        f"  token: {TOKEN}\n"
        "  labels: [phase-09]\n"
        f"{extra}"
        "store:\n"
        "  url: sqlite:///state.db\n"
    )
