"""Test support: Alertmanager payloads, config files and the bridge harness.

The harness runs the real application (``create_app``) on 127.0.0.1 against the fake GitHub
through PyGithub, exactly as in production; only the clock is fake and the outbox is driven by
the test (``harness.drain()``) so that nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import NOTIFY_LANES, OUTBOX, create_app
from bridge.clock import FakeClock
from bridge.config import Config, load_config
from bridge.store.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue

# Captured byte-for-byte from Alertmanager 0.25 (a copy of shared/fixtures/alertmanager).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
REPO = "acme/incidents"
REVIEW_LABEL = "post-incident-review"
TOKEN = "ghp_test_token_0123456789"
# The fake Slack, Twilio credentials the shared fixtures (conftest.py) and the configs use.
SLACK_TOKEN = "xoxb-test-slack-token-0123"
SLACK_CHANNEL = "#incidents"
TWILIO_SID = "AC" + "5a" * 16
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"


def fixture_names() -> list[str]:
    """Every captured Alertmanager payload."""
    return sorted(p.name for p in FIXTURES.glob("*.json"))


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a captured payload (tests may change it)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return copy.deepcopy(data)


# The captured payloads' alerts started on 2026-11-26 around 21:20 UTC. A bridge on the real
# clock counts resolution deadlines from that startsAt, long passed: its SLA timer would comment
# and label. Sent as Alertmanager would send them now, they do not.
_CAPTURED_AT = datetime(2026, 11, 26, 21, 45, tzinfo=UTC)


def current_payload(name: str) -> dict[str, Any]:
    """The captured payload ``name`` with its alerts' times moved to today (one shift for all,
    so a resolution still matches its firing episode): for tests on the real clock."""
    body = payload(name)
    shift = datetime.now(UTC) - _CAPTURED_AT
    for alert in body["alerts"]:
        for key in ("startsAt", "endsAt"):
            moment = datetime.fromisoformat(alert[key])
            if moment.year > 1:  # 0001-01-01: not set
                alert[key] = (moment + shift).isoformat()
    return body


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
        for lane in self.app[NOTIFY_LANES]:  # after GitHub, so messages can link the issue
            await lane.drain()

    async def incidents(self) -> list[dict[str, Any]]:
        response = await self.http.get("/api/v1/incidents")
        assert response.status == 200
        data: list[dict[str, Any]] = await response.json()
        return data

    def issues(self) -> list[FakeIssue]:
        """The repository's issues but the post-incident reviews (``reviews()``): incidents,
        maintenance requests, storm roll-ups."""
        return [i for i in self.github.issues(REPO) if not i.has_label(REVIEW_LABEL)]

    def reviews(self) -> list[FakeIssue]:
        """The post-incident reviews the bridge opened (``[PIR] INC-NNN …``)."""
        return [i for i in self.github.issues(REPO) if i.has_label(REVIEW_LABEL)]


def github_config(extra: str = "", *, store_url: str = "sqlite:///state.db") -> str:
    return (
        "github:\n"
        "  api_url: ${GITHUB_URL}\n"
        f"  repository: {REPO}\n"
        f"  token: {TOKEN}\n"
        "  labels: [phase-09]\n"
        f"{extra}"
        "store:\n"
        f"  url: {store_url}\n"
    )


def slack_config(api_url: str, token: str, channel: str = "#incidents") -> str:
    """The ``slack`` section for the fake Slack at ``api_url``."""
    return f'slack:\n  api_url: {api_url}\n  token: {token}\n  channel: "{channel}"\n'


def email_config(smtp_port: int, extra: str = "") -> str:
    """The ``email`` section for the test SMTP server on 127.0.0.1 (``extra``: more keys of
    the section, each line indented by two spaces)."""
    return (
        "email:\n"
        "  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {smtp_port}\n"
        "  starttls: false\n"
        "  from: incident-bridge@example.com\n"
        f"{extra}"
    )


def sms_config(api_url: str, account_sid: str, auth_token: str, extra: str = "") -> str:
    """The ``sms`` section for the fake Twilio at ``api_url`` (``extra``: more keys of the
    section, e.g. ``throttle``, indented by two spaces)."""
    return (
        "sms:\n"
        "  twilio:\n"
        f"    api_url: {api_url}\n"
        f"    account_sid: {account_sid}\n"
        f"    auth_token: {auth_token}\n"
        '    from: "+15550009999"\n'
        f"{extra}"
    )


APP_ID = 424242
INSTALLATION_ID = 8675309


def github_app_config(key_file: str = "app.pem", extra: str = "") -> str:
    """Like ``github_config`` but authenticating as a GitHub App whose private key is in
    ``key_file`` (relative to the config file, so under the harness' ``tmp_path``)."""
    return (
        "github:\n"
        "  api_url: ${GITHUB_URL}\n"
        f"  repository: {REPO}\n"
        f"  app_id: {APP_ID}\n"
        f"  installation_id: {INSTALLATION_ID}\n"
        f"  private_key_file: {key_file}\n"
        "  labels: [phase-09]\n"
        f"{extra}"
        "store:\n"
        "  url: sqlite:///state.db\n"
    )


# -- PostgreSQL ---------------------------------------------------------------------------------
# The server CI starts (.ci/start-postgres): trust auth on loopback. Each test run creates its
# own database on it, so runs on one machine never share state. Unreachable → tests fail.

POSTGRES_ADMIN_URL = os.environ.get(
    "INCIDENT_BRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_postgres_database: str | None = None
T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end on a loop of its own, from sync code or inside a running
    loop alike (a fixture, a helper called by a test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def eventually(
    check: Callable[[], object], what: str, within: float = 20.0, every: float = 0.05
) -> float:
    """Poll ``check`` (sync or async) until its result is true; fail after ``within`` seconds.
    Returns the seconds it took. For what happens in other processes or threads on their own
    time (a child bridge, real Prometheus, the store's checkpointer), where no fake clock
    reaches."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:g} s waiting until {what}")
        await asyncio.sleep(every)


def _database_url(name: str) -> str:
    return urlunsplit(urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}"))


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        raise RuntimeError(
            f"PostgreSQL is not reachable ({error}); start it with .ci/start-postgres"
        ) from error
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_url() -> str:
    """This test run's own PostgreSQL database, created on first use (``ib_test_<pid>_<hex>``).
    Tests should take the ``postgres_db`` fixture, which empties it first."""
    global _postgres_database
    if _postgres_database is None:
        name = f"ib_test_{os.getpid()}_{secrets.token_hex(4)}"
        run_sync(_admin(f'CREATE DATABASE "{name}"'))
        _postgres_database = name
    return _database_url(_postgres_database)


def drop_postgres_database() -> None:
    """Drop this run's database, if one was made (the end of the session)."""
    global _postgres_database
    if _postgres_database is not None:
        name, _postgres_database = _postgres_database, None
        run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        # What a previous test left open (a store it failed to close) must not block us.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = {
            row[0]
            for row in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
        version = (
            await conn.fetchval("SELECT max(version) FROM schema_migrations")
            if "schema_migrations" in tables
            else None
        )
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND NOT t.tgisinternal"
        )
        data = sorted(tables - {"schema_migrations"})
        if version == len(POSTGRES_MIGRATIONS) and not triggers:
            if data:
                await conn.execute(f"TRUNCATE {', '.join(data)} RESTART IDENTITY CASCADE")
        else:  # an older or newer schema, a test's fault trigger: start from nothing
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


def reset_postgres(url: str) -> None:
    """Empty the database: its tables truncated (numbering restarts at 1), or the whole schema
    dropped when it is not the current one or a test left a trigger behind."""
    run_sync(_reset(url))


def drop_postgres_schema(url: str) -> None:
    """Leave the database with no tables at all (migration tests start from nothing)."""

    async def drop() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()

    run_sync(drop())
