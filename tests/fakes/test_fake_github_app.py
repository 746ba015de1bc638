"""Tests for the fake GitHub's App mode and API path prefix (GitHub Enterprise Server).

App mode is checked through PyGithub's own ``AppInstallationAuth`` (so the answers have the
shapes PyGithub parses) and with raw requests for the JWT rules GitHub enforces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import github
import jwt
import pytest

from .github import AppKey, FakeGitHub, iter_link_header, make_app_key

REPO = "acme/incidents"
APP_ID = 1234
INSTALLATION_ID = 5678
MINT = f"/app/installations/{INSTALLATION_ID}/access_tokens"


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def key() -> AppKey:
    return make_app_key()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(key: AppKey, clock: ManualClock) -> AsyncIterator[FakeGitHub]:
    """A fake GitHub App installation that accepts installation tokens only."""
    async with FakeGitHub(
        token="",
        repos=[REPO],
        clock=clock,
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
    ) as server:
        yield server
    assert server.internal_errors == []


def app_jwt(key: AppKey, clock: ManualClock, **overrides: Any) -> str:
    now = int(clock().timestamp())
    claims: dict[str, Any] = {"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}
    claims.update(overrides)
    return jwt.encode(claims, key.private_pem, algorithm="RS256")


async def raw(
    fake: FakeGitHub, method: str, path: str, authorization: str | None
) -> tuple[int, Any]:
    """One raw request; returns the status and the decoded JSON body (or None)."""
    headers = {} if authorization is None else {"Authorization": authorization}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.base_url + path, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, (await response.json() if text else None)


async def mint(fake: FakeGitHub, key: AppKey, clock: ManualClock) -> str:
    status, body = await raw(fake, "POST", MINT, f"Bearer {app_jwt(key, clock)}")
    assert status == 201, body
    token: str = body["token"]
    return token


async def test_pygithub_app_installation_auth_works_against_the_fake(key: AppKey) -> None:
    """PyGithub's own App installation auth mints a token on the fake (wall clock) and uses it;
    the answers have the shapes PyGithub parses (expires_at included)."""
    async with FakeGitHub(
        token="",
        repos=[REPO],
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
    ) as server:
        server.human_create_issue(REPO, "Disk full")
        auth = github.Auth.AppAuth(APP_ID, key.private_pem).get_installation_auth(INSTALLATION_ID)
        client = github.Github(auth=auth, base_url=server.base_url, retry=None, lazy=True)

        def titles() -> list[str]:
            return [issue.title for issue in client.get_repo(REPO).get_issues()]

        try:
            assert await asyncio.to_thread(titles) == ["Disk full"]
            assert await asyncio.to_thread(titles) == ["Disk full"]
        finally:
            client.close()
        assert server.tokens_minted == 1
        assert [r.status for r in server.requests] == [201, 200, 200]  # mint, list, list
        assert server.internal_errors == []


async def test_installation_token_is_accepted_until_it_expires(
    fake: FakeGitHub, key: AppKey, clock: ManualClock
) -> None:
    """A minted token works on the REST API for its lifetime (an hour), then gets 401."""
    token = await mint(fake, key, clock)
    assert token.startswith("ghs_")
    assert len(token) == 40
    assert fake.installation_tokens[token] == clock() + timedelta(hours=1)
    status, _ = await raw(fake, "GET", f"/repos/{REPO}/issues", f"token {token}")
    assert status == 200
    clock.advance(3599)
    status, _ = await raw(fake, "GET", f"/repos/{REPO}/issues", f"token {token}")
    assert status == 200
    clock.advance(1)
    status, body = await raw(fake, "GET", f"/repos/{REPO}/issues", f"token {token}")
    assert (status, body["message"]) == (401, "Bad credentials")


async def test_token_lifetime_and_expiry_can_be_set(key: AppKey, clock: ManualClock) -> None:
    """``token_lifetime`` sets how long new tokens last; ``expire_installation_tokens`` ends
    every token minted so far (a revocation)."""
    async with FakeGitHub(
        token="",
        repos=[REPO],
        clock=clock,
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
        token_lifetime=120,
    ) as server:
        token = await mint(server, key, clock)
        assert server.installation_tokens[token] == clock() + timedelta(seconds=120)
        server.expire_installation_tokens()
        assert not server.installation_token_live(token)
        status, _ = await raw(server, "GET", f"/repos/{REPO}", f"token {token}")
        assert status == 401
        assert server.installation_token_live(await mint(server, key, clock))
        assert server.tokens_minted == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": -1}, "'Expiration time' claim ('exp') must be a numeric value"),
        ({"iat": 0, "exp": 601}, "'Expiration time' claim ('exp') is too far in the future"),
        ({"exp": 900}, "'Expiration time' claim ('exp') is too far in the future"),
        ({"iat": 120}, "'Issued at' claim ('iat') must be an Integer"),
        ({"iss": "999"}, "'Issuer' claim ('iss') must be the App's id"),
    ],
)
async def test_jwt_claims_are_checked_like_github(
    fake: FakeGitHub,
    key: AppKey,
    clock: ManualClock,
    overrides: dict[str, Any],
    message: str,
) -> None:
    """An expired JWT, one living over 10 minutes, one issued in the future, or one from
    another App gets 401 and no token (times relative to the fake's clock)."""
    now = int(clock().timestamp())
    claims = {k: (now + v if k in ("iat", "exp") else v) for k, v in overrides.items()}
    status, body = await raw(fake, "POST", MINT, f"Bearer {app_jwt(key, clock, **claims)}")
    assert status == 401
    assert body["message"].startswith(message)
    assert fake.tokens_minted == 0


async def test_only_the_apps_own_jwt_buys_a_token(
    fake: FakeGitHub, key: AppKey, clock: ManualClock
) -> None:
    """No credentials, a JWT signed with another key, or an installation token: 401. A JWT
    for an installation that is not this one: 404."""
    undecodable = "A JSON web token could not be decoded"
    other = make_app_key()
    token = await mint(fake, key, clock)
    for authorization in (
        None,
        "Bearer not-a-jwt",
        f"Bearer {app_jwt(other, clock)}",
        f"token {token}",
        f"Bearer {token}",
    ):
        status, body = await raw(fake, "POST", MINT, authorization)
        assert (status, body["message"]) == (401, undecodable), authorization
    status, _ = await raw(
        fake, "POST", "/app/installations/1/access_tokens", f"Bearer {app_jwt(key, clock)}"
    )
    assert status == 404
    assert fake.tokens_minted == 1


async def test_installation_is_readable_with_the_jwt(
    fake: FakeGitHub, key: AppKey, clock: ManualClock
) -> None:
    """``GET /app/installations/{id}`` answers the installation, with its token URL."""
    status, body = await raw(
        fake, "GET", f"/app/installations/{INSTALLATION_ID}", f"Bearer {app_jwt(key, clock)}"
    )
    assert status == 200
    assert (body["id"], body["app_id"]) == (INSTALLATION_ID, APP_ID)
    assert body["access_tokens_url"] == fake.base_url + MINT


async def test_static_token_and_app_tokens_together(key: AppKey) -> None:
    """With a ``token`` as well, the fake accepts both; a JWT is no REST credential."""
    async with FakeGitHub(
        token="t0ken",
        repos=[REPO],
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
    ) as server:
        now = int(datetime.now(UTC).timestamp())
        claims = {"iat": now - 60, "exp": now + 300, "iss": str(APP_ID)}
        bearer = jwt.encode(claims, key.private_pem, algorithm="RS256")
        status, body = await raw(server, "POST", MINT, f"Bearer {bearer}")
        assert status == 201
        for authorization, expected in (
            ("token t0ken", 200),
            (f"token {body['token']}", 200),
            (f"Bearer {bearer}", 401),
            ("token ", 401),
        ):
            status, _ = await raw(server, "GET", f"/repos/{REPO}", authorization)
            assert status == expected, authorization


def test_app_settings_go_together(key: AppKey) -> None:
    """An App id without its key and installation is a mistake in the test, said at once."""
    with pytest.raises(ValueError, match="go together"):
        FakeGitHub(app_id=APP_ID)
    with pytest.raises(ValueError, match="go together"):
        FakeGitHub(app_public_key_pem=key.public_pem, installation_id=INSTALLATION_ID)


async def test_enterprise_prefix_serves_the_api_under_its_path() -> None:
    """``prefix="/api/v3"``: base_url ends with it, PyGithub follows Link headers that keep it,
    URLs in answers carry it, and the bare paths are not served."""
    async with FakeGitHub(token="t0ken", repos=[REPO], prefix="api/v3/") as server:
        assert server.prefix == "/api/v3"
        assert server.base_url.endswith("/api/v3")
        for n in range(150):
            server.human_create_issue(REPO, f"issue {n}")
        client = github.Github(
            auth=github.Auth.Token("t0ken"), base_url=server.base_url, retry=None, lazy=True
        )

        def numbers() -> list[int]:
            return [i.number for i in client.get_repo(REPO).get_issues(state="all")]

        try:
            assert sorted(await asyncio.to_thread(numbers)) == list(range(1, 151))
        finally:
            client.close()
        assert all(r.path.startswith("/api/v3/") for r in server.requests)

        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{server.base_url}/repos/{REPO}/issues",
                params={"per_page": "100"},
                headers={"Authorization": "token t0ken"},
            ) as response,
        ):
            body = await response.json()
            links = dict(iter_link_header(response.headers["Link"]))
        assert body[0]["url"].startswith(f"{server.base_url}/repos/{REPO}/issues/")
        assert links["next"].startswith(f"{server.base_url}/repositories/")

        bare = server.base_url.removesuffix("/api/v3") + f"/repos/{REPO}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(bare, headers={"Authorization": "token t0ken"}) as response,
        ):
            assert response.status == 404
