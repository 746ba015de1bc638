"""GitHub App authentication and a GitHub Enterprise ``api_url``, against the fake GitHub.

The bridge signs the App's JWT with the key in ``private_key_file``, buys an installation token
at the configured ``api_url`` and renews it ahead of its expiry. The fake GitHub checks the JWT
with the App's public key and the installation tokens' lifetimes by the same fake clock the
bridge runs on, so hours pass without waiting.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import create_app
from bridge.clock import FakeClock
from bridge.config import load_config
from bridge.web.services import SERVICES
from fakes.github import AppKey, FakeGitHub, RecordedRequest, make_app_key
from support import (
    APP_ID,
    INSTALLATION_ID,
    REPO,
    TOKEN,
    Harness,
    github_app_config,
    github_config,
    payload,
)

MINT_PATH = f"/app/installations/{INSTALLATION_ID}/access_tokens"


def group(n: int) -> dict[str, Any]:
    """A distinct alert group (so a new incident and issue) per n."""
    body = payload("01_firing_single.json")
    body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="svc-{n}"}}'
    body["groupLabels"]["service"] = f"svc-{n}"
    body["alerts"][0]["fingerprint"] = f"{n:016x}"
    body["alerts"][0]["labels"]["service"] = f"svc-{n}"
    return body


async def settle(h: Harness, seconds: float, step: float = 10) -> None:
    """Let the outbox run while the fake clock moves on."""
    for _ in range(int(seconds / step)):
        await h.drain()
        h.clock.advance(timedelta(seconds=step))
    await h.drain()


def app_fake(clock: FakeClock, key: AppKey, prefix: str = "") -> FakeGitHub:
    """A fake GitHub where only the App's installation tokens are accepted."""
    return FakeGitHub(
        token="",
        repos=[REPO],
        clock=clock,
        prefix=prefix,
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
    )


def refused(fake: FakeGitHub) -> list[RecordedRequest]:
    return [r for r in fake.requests if r.status >= 400]


def token_of(request: RecordedRequest) -> str:
    scheme, _, credential = request.headers["Authorization"].partition(" ")
    assert scheme == "token"
    return credential


@pytest.fixture(scope="module")
def app_key() -> AppKey:
    return make_app_key()


@pytest.fixture
async def app_github(clock: FakeClock, app_key: AppKey) -> AsyncIterator[FakeGitHub]:
    async with app_fake(clock, app_key) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def app_harness(
    tmp_path: Path, app_github: FakeGitHub, clock: FakeClock, app_key: AppKey
) -> AsyncIterator[Harness]:
    (tmp_path / "app.pem").write_text(app_key.private_pem)
    h = Harness(tmp_path, app_github, clock, github_app_config())
    await h.start()
    yield h
    await h.stop()


async def serve_without_waiting_for_labels(h: Harness) -> None:
    """Start the bridge like ``Harness.start`` but without waiting for the start-up labels
    (which never come while GitHub refuses the bridge)."""
    app = h.app = create_app(h.config, clock=h.clock, run_outbox=False)
    h.client = TestClient(TestServer(app, host="127.0.0.1"))
    await h.client.start_server()


async def test_an_app_opens_an_issue_with_one_installation_token(
    app_harness: Harness, app_key: AppKey
) -> None:
    """Configured with app_id, installation_id and private_key_file, the bridge buys one
    installation token with a valid App JWT and uses it for every request, start-up labels
    included; GitHub refuses nothing."""
    h, fake = app_harness, app_harness.github
    await h.post(payload("01_firing_single.json"))
    await h.drain()
    await h.post(payload("03_resolved_single.json"))
    await h.drain()

    [issue] = h.issues()
    assert issue.state == "closed"
    assert fake.tokens_minted == 1
    [mint] = fake.calls("POST", "/access_tokens")
    assert mint.path == MINT_PATH
    assert mint.status == 201
    scheme, _, app_jwt = mint.headers["Authorization"].partition(" ")
    assert scheme == "Bearer"
    claims = jwt.decode(
        app_jwt, app_key.public_pem, algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims["iss"] == str(APP_ID)
    assert claims["exp"] - claims["iat"] <= 600
    [token] = fake.installation_tokens
    assert token.startswith("ghs_")
    rest = [r for r in fake.requests if r is not mint]
    assert len(rest) > 3
    assert {token_of(r) for r in rest} == {token}
    assert refused(fake) == []
    metrics = await (await h.http.get("/metrics")).text()
    assert (
        'incident_bridge_github_requests_total{operation="mint_token",status="201"} 1.0' in metrics
    )


async def test_the_token_is_renewed_ahead_of_its_expiry(app_harness: Harness) -> None:
    """An installation token is reused for most of its hour, then replaced while it is still
    valid: the request that finds it near its end carries the new one."""
    h, fake = app_harness, app_harness.github
    await h.post(group(0))
    await h.drain()
    [first] = fake.installation_tokens
    h.clock.advance(timedelta(minutes=50))
    await h.post(group(1))
    await h.drain()
    assert fake.tokens_minted == 1

    h.clock.advance(timedelta(minutes=6))  # 56 minutes in: 4 minutes left on the first token
    assert fake.installation_token_live(first)
    fake.reset_log()
    await h.post(group(2))
    await h.drain()

    assert fake.tokens_minted == 2
    assert fake.requests[0].path == MINT_PATH  # minted before anything else was sent
    [second] = [t for t in fake.installation_tokens if t != first]
    assert {token_of(r) for r in fake.requests[1:]} == {second}
    assert len(h.issues()) == 3
    assert refused(fake) == []


async def test_hours_of_work_never_meet_an_expired_token(app_harness: Harness) -> None:
    """Three hours of a bridge at work, a new incident every 10 minutes: one installation
    token an hour, each bought before the last expired; GitHub never refuses a request."""
    h, fake = app_harness, app_harness.github
    for n in range(18):
        status, _ = await h.post(group(n))
        assert status == 200
        await h.drain()
        h.clock.advance(timedelta(minutes=10))

    assert len(h.issues()) == 18
    assert refused(fake) == []
    assert fake.tokens_minted == 3  # at 0, 60 and 120 minutes
    used = [token_of(r) for r in fake.requests if r.path != MINT_PATH]
    assert len(set(used)) == 3


async def test_a_token_github_stops_accepting_is_replaced(app_harness: Harness) -> None:
    """A token GitHub refuses before its time (revoked): that one attempt fails as retryable,
    the retry buys a new token, and the work is done once."""
    h, fake = app_harness, app_harness.github
    await h.post(payload("01_firing_single.json"))
    await h.drain()
    fake.expire_installation_tokens()
    await h.post(payload("03_resolved_single.json"))
    await settle(h, 60)

    [issue] = h.issues()
    assert issue.state == "closed"
    assert len(fake.comments(REPO, issue.number)) == 1
    assert fake.tokens_minted == 2
    assert [r.status for r in refused(fake)] == [401]


async def test_a_failed_renewal_goes_on_with_the_current_token(
    app_harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """GitHub failing (503) to issue the next token while the current one has minutes left is
    no reason to hold work: the current token is used, and the renewal is tried again shortly
    after."""
    h, fake = app_harness, app_harness.github
    [first] = fake.installation_tokens
    h.clock.advance(timedelta(minutes=56))
    fake.inject("POST", r"/access_tokens$", 503)
    await h.post(payload("01_firing_single.json"))
    await h.drain()
    assert len(h.issues()) == 1
    assert fake.tokens_minted == 1
    assert token_of(fake.calls("POST", "/issues")[0]) == first

    h.clock.advance(timedelta(seconds=10))  # past the 5 s pause after a failed renewal
    await h.post(payload("03_resolved_single.json"))
    await h.drain()
    assert h.issues()[0].state == "closed"
    assert fake.tokens_minted == 2
    assert [r.status for r in refused(fake)] == [503]
    logs = capsys.readouterr().out
    assert "github_app_token_not_issued" in logs
    assert "github_app_token_failed" not in logs  # GitHub's trouble, not the operator's


async def test_an_uninstalled_app_holds_the_work_until_it_is_reinstalled(
    app_harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Uninstalling the App revokes its tokens and GitHub no longer issues any (404): the
    effects wait, with the operator told what to check, and run once the App is back. The
    writes that never went out for want of a token are not charged to GitHub's budget (a
    long outage must not spend what new incidents need afterwards)."""
    h, fake = app_harness, app_harness.github
    store = h.app[SERVICES].store if h.app is not None else None
    assert store is not None
    charged = await store.writes_since(h.clock() - timedelta(hours=1))  # the start-up labels
    fake.installation_id = None  # uninstalled ...
    fake.expire_installation_tokens()  # ... which revokes its tokens
    fake.reset_log()
    await h.post(payload("01_firing_single.json"))
    await settle(h, 120)
    assert h.issues() == []
    mints = fake.calls("POST", "/access_tokens")
    assert len(mints) > 1
    assert {r.status for r in mints} == {404}
    sent_writes = [
        r for r in fake.requests if r.method != "GET" and not r.path.endswith("/access_tokens")
    ]
    assert len(sent_writes) < len(mints)  # most attempts never had a token to send with
    now_charged = await store.writes_since(h.clock() - timedelta(hours=2))
    assert len(now_charged) - len(charged) == len(sent_writes)

    fake.installation_id = INSTALLATION_ID
    await settle(h, 400)
    assert len(h.issues()) == 1
    failures = [
        line for line in capsys.readouterr().out.splitlines() if "github_app_token_failed" in line
    ]
    assert failures
    assert "GitHub 404" in failures[0]
    assert "is installed on the repository's owner" in failures[0]


async def test_a_wrong_private_key_keeps_the_work_until_it_is_fixed(
    tmp_path: Path, clock: FakeClock, app_key: AppKey, capsys: pytest.CaptureFixture[str]
) -> None:
    """A private key that is not the App's: every mint is refused with 401, no other request
    is sent, webhooks still get 200 and the effects stay pending through minutes of retries
    (at a slowing pace), with a clear log line that shows no key material. With the right key
    and a restart the issue is made, once."""
    wrong = make_app_key()
    key_file = tmp_path / "app.pem"
    key_file.write_text(wrong.private_pem)
    async with app_fake(clock, app_key) as fake:
        h = Harness(tmp_path, fake, clock, github_app_config())
        await serve_without_waiting_for_labels(h)
        try:
            status, _ = await h.post(payload("01_firing_single.json"))
            assert status == 200
            await settle(h, 600)

            assert h.issues() == []
            assert fake.tokens_minted == 0
            mints = fake.calls("POST", "/access_tokens")
            assert 3 <= len(mints) <= 20  # retried, but backing off
            assert {r.status for r in mints} == {401}
            assert {r.path for r in fake.requests} == {MINT_PATH}  # nothing sent without a token
            metrics = await (await h.http.get("/metrics")).text()
            pending = re.search(r"^incident_bridge_outbox_pending (\S+)$", metrics, re.M)
            assert pending is not None
            assert float(pending.group(1)) >= 1

            key_file.write_text(app_key.private_pem)  # the operator puts the right key in place
            h.config = load_config(tmp_path / "bridge.yaml", env={"GITHUB_URL": fake.base_url})
            await h.restart()
            await settle(h, 400)  # the effect's retry was scheduled up to 5 minutes out
            [issue] = h.issues()
            assert issue.title.startswith("[INC-001]")
            assert fake.tokens_minted == 1
        finally:
            await h.stop()
        assert fake.internal_errors == []

    logs = capsys.readouterr().out
    failures = [line for line in logs.splitlines() if "github_app_token_failed" in line]
    assert failures
    assert "401" in failures[0]
    assert "not issued: GitHub 401: A JSON web token could not be decoded" in failures[0]
    assert "installation_id" in failures[0]
    assert "result=failed" not in logs  # retried, never given up
    assert "PRIVATE KEY" not in logs
    for key in (wrong, app_key):
        for line in key.private_pem.splitlines()[1:-1]:
            assert line not in logs
    for mint in mints:
        assert mint.headers["Authorization"].partition(" ")[2] not in logs


async def test_enterprise_api_url_with_a_token(tmp_path: Path, clock: FakeClock) -> None:
    """``api_url: https://ghe.example.com/api/v3``: every request goes under the API path, and
    the incident's issue is opened, commented and closed there."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock, prefix="/api/v3") as fake:
        assert fake.base_url.endswith("/api/v3")
        h = Harness(tmp_path, fake, clock, github_config())
        await h.start()
        try:
            await h.post(payload("01_firing_single.json"))
            await h.drain()
            await h.post(payload("03_resolved_single.json"))
            await h.drain()
        finally:
            await h.stop()
        [issue, review] = fake.issues(REPO)  # a P1: its post-incident review too
        assert issue.state == "closed"
        assert len(fake.comments(REPO, issue.number)) == 1
        assert review.title.startswith("[PIR] INC-001 ")
        assert fake.requests
        assert all(r.path.startswith("/api/v3/repos/") for r in fake.requests)
        assert refused(fake) == []


async def test_enterprise_api_url_with_an_app(
    tmp_path: Path, clock: FakeClock, app_key: AppKey
) -> None:
    """A GitHub App on GitHub Enterprise: the installation token is bought under the
    configured API path too, not from api.github.com, and then used there."""
    (tmp_path / "app.pem").write_text(app_key.private_pem)
    async with app_fake(clock, app_key, prefix="/api/v3") as fake:
        h = Harness(tmp_path, fake, clock, github_app_config())
        await h.start()
        try:
            await h.post(payload("01_firing_single.json"))
            await h.drain()
        finally:
            await h.stop()
        assert len(fake.issues(REPO)) == 1
        assert fake.tokens_minted == 1
        [mint] = fake.calls("POST", "/access_tokens")
        assert mint.path == "/api/v3" + MINT_PATH
        assert all(r.path.startswith("/api/v3/") for r in fake.requests)
        assert refused(fake) == []
