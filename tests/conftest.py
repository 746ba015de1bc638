"""Fixtures shared by every test: a fake clock, the fake GitHub and a bridge harness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from fakes.github import FakeGitHub
from fakes.slack import FakeSlack
from fakes.smtp import Mailbox, smtp_server
from fakes.twilio import FakeTwilio
from support import (
    REPO,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    TOKEN,
    TWILIO_SID,
    TWILIO_TOKEN,
    Harness,
    drop_postgres_database,
    github_config,
    postgres_url,
    reset_postgres,
)


@pytest.fixture
def clock() -> FakeClock:
    """Just after the captured payloads were sent (they start between 21:21 and 21:41 UTC)."""
    return FakeClock(datetime(2026, 11, 26, 21, 45, tzinfo=UTC))


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(token=TOKEN, repos=[REPO]) as fake:
        yield fake


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on loopback."""
    with smtp_server() as box:
        yield box


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API on the harness' clock; fails the test if the fake crashed."""
    async with FakeSlack(token=SLACK_TOKEN, channels=[SLACK_CHANNEL], clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def twilio(clock: FakeClock) -> AsyncIterator[FakeTwilio]:
    """The fake Twilio Messages API on the harness' clock; fails the test if it crashed."""
    async with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
def store_url() -> str:
    """The harness' store; a module overrides this fixture to run on PostgreSQL too."""
    return "sqlite:///state.db"


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(store_url=store_url))
    await h.start()
    yield h
    await h.stop()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's own PostgreSQL database (``ib_test_<pid>_<hex>``), dropped at the end.
    PostgreSQL not running is a failure, not a skip: CI starts it (.ci/start-postgres)."""
    url = postgres_url()
    yield url
    drop_postgres_database()


@pytest.fixture
def postgres_db(postgres_database: str) -> str:
    """The run's database, emptied for this test: the URL to give a store."""
    reset_postgres(postgres_database)
    return postgres_database
