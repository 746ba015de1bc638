"""Tests for the fake GitHub's enforced rate limits (``FakeGitHub.enforce_limits``).

GitHub's documented behaviour, which the fake reproduces by its own clock so no test sleeps:
no more than 80 content-generating requests a minute and 500 an hour (secondary limit: 403,
``Retry-After``, the request is not applied), no more than 100 requests in flight (secondary),
and 5,000 requests an hour (primary: ``x-ratelimit-*`` on every answer, 403 with
``x-ratelimit-remaining: 0`` once spent). Driven through PyGithub's requester, exactly as the
product is, and with raw aiohttp requests for exact headers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import github
import jwt
import pytest
from multidict import CIMultiDictProxy

from .github import FakeGitHub, RateLimits, make_app_key

TOKEN = "t0ken"
REPO = "acme/incidents"
ISSUES = "/repos/acme/incidents/issues"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
SECONDARY_BODY = {
    "message": SECONDARY_MESSAGE,
    "documentation_url": (
        "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
        "#about-secondary-rate-limits"
    ),
}

Headers = CIMultiDictProxy[str]


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)

    def epoch(self) -> int:
        """Now, in whole epoch seconds."""
        return int(self.now.timestamp())


class Raw:
    """Raw HTTP requests to the fake over one session."""

    def __init__(self, fake: FakeGitHub, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        token: str = TOKEN,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Headers, Any]:
        """One request; returns status, headers and the decoded JSON body (or None)."""
        all_headers = {"Authorization": f"token {token}", **(headers or {})}
        async with self.session.request(
            method, self.fake.base_url + path, json=json_body, headers=all_headers
        ) as response:
            text = await response.text()
            data = await response.json() if text else None
            return response.status, response.headers, data

    async def create_issue(self, title: str) -> tuple[int, Headers, Any]:
        """POST an issue."""
        return await self("POST", ISSUES, json_body={"title": title})


def make_client(base_url: str) -> github.Github:
    """A PyGithub client configured like the product's (no retries, no throttling)."""
    return github.Github(
        auth=github.Auth.Token(TOKEN),
        base_url=base_url,
        timeout=5,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,
        per_page=100,
    )


@pytest.fixture
def clock() -> ManualClock:
    """The fake's clock."""
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeGitHub]:
    """A running fake (limits not enforced yet); fails the test if the fake itself crashed."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock) as server:
        yield server
    assert server.internal_errors == []


@pytest.fixture
async def raw(fake: FakeGitHub) -> AsyncIterator[Raw]:
    """Raw requests to the fake."""
    async with aiohttp.ClientSession() as session:
        yield Raw(fake, session)


@pytest.fixture
def gh(fake: FakeGitHub) -> Iterator[github.Github]:
    """A product-configured PyGithub client pointed at the fake."""
    client = make_client(fake.base_url)
    yield client
    client.close()


# ------------------------------------------------------------------------------ secondary


async def test_81st_write_in_a_minute_is_refused_until_retry_after(
    fake: FakeGitHub, raw: Raw, gh: github.Github, clock: ManualClock
) -> None:
    """GitHub's numbers: 80 writes in a minute pass, the 81st is a 403 with Retry-After and is
    not applied; after Retry-After seconds it goes through."""
    limits = fake.enforce_limits()
    assert limits == RateLimits(80, 500, 5000, 100, count_human_actions=False)
    for n in range(80):
        status, _, _ = await raw.create_issue(f"storm {n}")
        assert status == 201
        clock.advance(0.5)  # 80 writes over 40 s; the first was at 12:00:00
    assert len(fake.issues(REPO)) == 80

    request = gh.requester.requestJsonAndCheck
    with pytest.raises(github.RateLimitExceededException) as info:
        await asyncio.to_thread(request, "POST", ISSUES, input={"title": "one too many"})
    assert info.value.status == 403
    assert info.value.data == SECONDARY_BODY
    assert info.value.headers is not None
    # 40 s after the first write: it leaves the minute window in 20 s.
    assert info.value.headers["retry-after"] == "20"
    assert int(info.value.headers["x-ratelimit-remaining"]) > 0  # not the primary limit
    assert len(fake.issues(REPO)) == 80  # not applied
    assert fake.secondary_limit_hits == 1
    assert fake.primary_limit_hits == 0
    refused = fake.limited_calls()
    assert [(r.method, r.path, r.status, r.rate_limited) for r in refused] == [
        ("POST", ISSUES, 403, "secondary")
    ]
    assert refused == fake.limited_calls("secondary")
    assert [r for r in fake.requests if r.status == 403] == refused

    clock.advance(19)  # a second short: still refused, and told the rest
    status, headers, data = await raw.create_issue("one too many")
    assert (status, data, headers["Retry-After"]) == (403, SECONDARY_BODY, "1")

    clock.advance(1)
    _, data = await asyncio.to_thread(request, "POST", ISSUES, input={"title": "one too many"})
    assert data["number"] == 81
    assert [i.title for i in fake.issues(REPO)].count("one too many") == 1
    assert fake.secondary_limit_hits == 2


async def test_every_kind_of_content_write_counts(
    fake: FakeGitHub, raw: Raw, clock: ManualClock
) -> None:
    """Issues, comments and labels, POST/PATCH/PUT/DELETE all count; refused ones change
    nothing; a write that fails (404, 422) still counts."""
    fake.human_create_issue(REPO, "t", "body")
    fake.enforce_limits(content_per_minute=7)
    comment = fake.human_comment(REPO, 1, "c")
    writes = [
        ("PATCH", f"{ISSUES}/1", {"body": "edited"}),
        ("POST", f"{ISSUES}/1/comments", {"body": "hello"}),
        ("PATCH", f"{ISSUES}/comments/{comment.id}", {"body": "c2"}),
        ("PUT", f"{ISSUES}/1/labels", {"labels": ["a"]}),
        ("POST", "/repos/acme/incidents/labels", {"name": "b"}),
        ("POST", f"{ISSUES}/99/comments", {"body": "no such issue"}),  # 404, still counts
        ("DELETE", f"{ISSUES}/1/labels/a", None),
    ]
    statuses = [(await raw(m, p, json_body=b))[0] for m, p, b in writes]
    assert statuses == [200, 201, 200, 200, 201, 404, 200]
    assert len(fake.content_writes) == 7

    before = (fake.issue(REPO, 1).body, fake.label_names(REPO, 1), len(fake.comments(REPO, 1)))
    refused = [
        ("PATCH", f"{ISSUES}/1", {"body": "refused"}),
        ("POST", f"{ISSUES}/1/comments", {"body": "refused"}),
        ("POST", f"{ISSUES}/1/labels", {"labels": ["refused"]}),
        ("DELETE", f"{ISSUES}/comments/{comment.id}", None),
        ("POST", ISSUES, {"title": "refused"}),
    ]
    for method, path, body in refused:
        status, headers, data = await raw(method, path, json_body=body)
        assert (status, data, headers["Retry-After"]) == (403, SECONDARY_BODY, "60")
    after = (fake.issue(REPO, 1).body, fake.label_names(REPO, 1), len(fake.comments(REPO, 1)))
    assert after == before
    assert fake.repo(REPO).find_label("refused") is None
    assert len(fake.issues(REPO)) == 1
    assert fake.secondary_limit_hits == 5
    assert len(fake.content_writes) == 7  # refusals are not charged


async def test_reads_do_not_count(
    fake: FakeGitHub, raw: Raw, gh: github.Github, clock: ManualClock
) -> None:
    """GETs never touch the content windows, even when the minute's writes are spent."""
    fake.enforce_limits(content_per_minute=2)
    for title in ("a", "b"):
        assert (await raw.create_issue(title))[0] == 201

    def read_everything() -> int:
        repo = gh.get_repo(REPO)
        issues = list(repo.get_issues(state="all"))
        for issue in issues:
            list(issue.get_comments())
            list(issue.get_labels())
        return len(issues)

    for _ in range(20):
        assert await asyncio.to_thread(read_everything) == 2
    assert (await raw("GET", "/user"))[0] == 200
    assert fake.secondary_limit_hits == 0
    assert len(fake.content_writes) == 2

    status, headers, _ = await raw.create_issue("c")
    assert (status, headers["Retry-After"]) == (403, "60")
    clock.advance(60)
    assert (await raw.create_issue("c"))[0] == 201


async def test_hourly_limit(fake: FakeGitHub, raw: Raw, clock: ManualClock) -> None:
    """Within every minute's limit, the hour's total still runs out; Retry-After is when the
    oldest write of the hour leaves it."""
    fake.enforce_limits(content_per_minute=5, content_per_hour=12)
    for minute in range(3):
        for n in range(4):
            assert (await raw.create_issue(f"{minute}.{n}"))[0] == 201
            clock.advance(1)
        clock.advance(60)
    # 12 writes, the first at 12:00:00; now 12:03:12, nothing in the last minute.
    status, headers, data = await raw.create_issue("hour is full")
    assert (status, data) == (403, SECONDARY_BODY)
    assert headers["Retry-After"] == str(3600 - 192)
    assert len(fake.issues(REPO)) == 12

    clock.advance(3600 - 192 - 1)
    assert (await raw.create_issue("hour is full"))[0] == 403
    clock.advance(1)  # the first write (12:00:00) has left the hour
    assert (await raw.create_issue("hour is full"))[0] == 201
    status, headers, _ = await raw.create_issue("and the next")
    assert (status, headers["Retry-After"]) == (403, "1")  # the second write was at 12:00:01
    assert fake.secondary_limit_hits == 3


async def test_retry_after_covers_both_windows(
    fake: FakeGitHub, raw: Raw, clock: ManualClock
) -> None:
    """When the minute and the hour are both full, Retry-After is the later of the two."""
    fake.enforce_limits(content_per_minute=3, content_per_hour=3)
    for title in ("a", "b", "c"):
        assert (await raw.create_issue(title))[0] == 201
    status, headers, _ = await raw.create_issue("d")
    assert (status, headers["Retry-After"]) == (403, "3600")


async def test_human_actions_count_when_enabled(
    fake: FakeGitHub, raw: Raw, clock: ManualClock
) -> None:
    """With count_human_actions, people's writes in the web UI share the content budget (and
    are never refused themselves); without it they are free."""
    fake.enforce_limits(content_per_minute=4)
    fake.human_create_issue(REPO, "by a person")
    fake.human_comment(REPO, 1, "looking")
    assert list(fake.content_writes) == []  # not charged
    for n in range(4):
        assert (await raw("POST", f"{ISSUES}/1/comments", json_body={"body": f"b{n}"}))[0] == 201

    fake.enforce_limits(content_per_minute=4, count_human_actions=True)
    assert len(fake.content_writes) == 0  # enforcing afresh empties the windows
    start = clock.now.timestamp()
    fake.human_create_issue(REPO, "another")
    fake.human_edit_body(REPO, 2, "b")
    fake.human_edit_title(REPO, 2, "t")
    fake.human_add_label(REPO, 2, "ack")
    # Four human writes: the API's next write is refused...
    status, headers, _ = await raw("POST", f"{ISSUES}/1/comments", json_body={"body": "bot"})
    assert (status, headers["Retry-After"]) == (403, "60")
    assert [c.body for c in fake.comments(REPO, 1)][-1] == "b3"
    # ...while people carry on, and are charged.
    clock.advance(30)
    fake.human_remove_label(REPO, 2, "ack")
    fake.human_comment(REPO, 2, "c")
    fake.human_close(REPO, 2)
    fake.human_reopen(REPO, 2)
    assert list(fake.content_writes) == [start] * 4 + [start + 30] * 4
    clock.advance(30)
    status, headers, _ = await raw("POST", f"{ISSUES}/1/comments", json_body={"body": "bot"})
    assert (status, headers["Retry-After"]) == (403, "30")
    clock.advance(30)
    assert (await raw("POST", f"{ISSUES}/1/comments", json_body={"body": "bot"}))[0] == 201
    assert fake.secondary_limit_hits == 2


async def test_concurrency_limit(fake: FakeGitHub, raw: Raw) -> None:
    """A request arriving while ``concurrent`` are in flight is a secondary 403 without
    Retry-After; reads count too."""
    fake.enforce_limits(concurrent=2)
    fake.inject("GET", r"/user$", 0, delay=0.3, times=2)  # two slow answers keep the slots

    async def late() -> tuple[int, Headers, Any]:
        await asyncio.sleep(0.1)
        return await raw("GET", "/user")

    (s1, _, _), (s2, _, _), (s3, headers, data) = await asyncio.gather(
        raw("GET", "/user"), raw("GET", "/user"), late()
    )
    assert (s1, s2, s3) == (200, 200, 403)
    assert data == SECONDARY_BODY
    assert "Retry-After" not in headers
    assert fake.secondary_limit_hits == 1
    assert fake.in_flight == 0
    assert (await raw("GET", "/user"))[0] == 200


# ------------------------------------------------------------------------------ primary


async def test_primary_headers_count_down_and_reset_at_the_window_end(
    fake: FakeGitHub, raw: Raw, gh: github.Github, clock: ManualClock
) -> None:
    """Every authenticated request spends one of the hour's budget (304s and 401s do not);
    once spent: 403 with remaining 0 and the reset time, no Retry-After, nothing applied;
    at x-ratelimit-reset a new hour starts."""
    fake.human_create_issue(REPO, "t")
    fake.enforce_limits(primary_per_hour=4)
    reset = clock.epoch() + 3600

    status, headers, _ = await raw("GET", f"{ISSUES}/1")
    assert status == 200
    assert headers["x-ratelimit-limit"] == "4"
    assert (headers["x-ratelimit-remaining"], headers["x-ratelimit-used"]) == ("3", "1")
    assert headers["x-ratelimit-reset"] == str(reset)
    assert headers["x-ratelimit-resource"] == "core"
    etag = headers["ETag"]

    clock.advance(10)
    status, headers, _ = await raw("GET", f"{ISSUES}/1", headers={"If-None-Match": etag})
    assert (status, headers["x-ratelimit-remaining"]) == (304, "3")  # 304s are free
    status, headers, _ = await raw("GET", "/user", token="wrong")
    assert (status, headers["x-ratelimit-remaining"]) == (401, "3")  # not this token's budget

    status, headers, _ = await raw("GET", "/nope")
    assert (status, headers["x-ratelimit-remaining"]) == (404, "2")  # answered: counted
    status, headers, _ = await raw.create_issue("second")
    assert (status, headers["x-ratelimit-remaining"]) == (201, "1")
    status, headers, _ = await raw("GET", "/user")
    assert (status, headers["x-ratelimit-remaining"], headers["x-ratelimit-used"]) == (
        200,
        "0",
        "4",
    )

    request = gh.requester.requestJsonAndCheck
    with pytest.raises(github.RateLimitExceededException) as info:
        await asyncio.to_thread(request, "POST", ISSUES, input={"title": "spent"})
    assert info.value.status == 403
    assert info.value.data["message"] == f"API rate limit exceeded for user ID {fake.bot.id}."
    assert info.value.headers is not None
    assert info.value.headers["x-ratelimit-remaining"] == "0"
    assert info.value.headers["x-ratelimit-reset"] == str(reset)
    assert "retry-after" not in info.value.headers
    assert [i.title for i in fake.issues(REPO)] == ["t", "second"]  # not applied
    status, headers, _ = await raw("GET", "/user")
    assert (status, headers["x-ratelimit-remaining"]) == (403, "0")
    assert fake.primary_limit_hits == 2
    assert fake.secondary_limit_hits == 0
    assert [r.rate_limited for r in fake.limited_calls()] == ["primary", "primary"]
    assert fake.limited_calls("secondary") == []

    clock.advance(3600 - 10 - 1)  # a second before the reset
    assert (await raw("GET", "/user"))[0] == 403
    clock.advance(1)
    status, headers, _ = await raw.create_issue("new hour")
    assert status == 201
    assert (headers["x-ratelimit-remaining"], headers["x-ratelimit-used"]) == ("3", "1")
    assert headers["x-ratelimit-reset"] == str(clock.epoch() + 3600)
    assert fake.primary_limit_hits == 3


async def test_primary_window_starts_with_the_first_request_after_the_last_one(
    fake: FakeGitHub, raw: Raw, clock: ManualClock
) -> None:
    """An hour with no requests: the next hour starts at the next request, full."""
    fake.enforce_limits(primary_per_hour=10)
    await raw("GET", "/user")
    clock.advance(5000)
    _, headers, _ = await raw("GET", "/user")
    assert headers["x-ratelimit-remaining"] == "9"
    assert headers["x-ratelimit-reset"] == str(clock.epoch() + 3600)


async def test_secondary_refusals_spend_the_primary_budget(fake: FakeGitHub, raw: Raw) -> None:
    """A refused write was still an authenticated request GitHub answered."""
    fake.enforce_limits(content_per_minute=1, primary_per_hour=10)
    _, headers, _ = await raw.create_issue("a")
    assert headers["x-ratelimit-remaining"] == "9"
    status, headers, _ = await raw.create_issue("b")
    assert (status, headers["x-ratelimit-remaining"]) == (403, "8")


async def test_primary_limit_of_an_installation(clock: ManualClock) -> None:
    """With an installation token GitHub names the installation; the App endpoints (App JWT)
    do not spend the installation's budget."""
    key = make_app_key()
    limits = RateLimits(primary_per_hour=2)
    async with (
        FakeGitHub(
            token="",
            repos=[REPO],
            clock=clock,
            app_id=1234,
            app_public_key_pem=key.public_pem,
            installation_id=5678,
            enforce_limits=limits,
        ) as fake,
        aiohttp.ClientSession() as session,
    ):
        now = clock.epoch()
        app_jwt = jwt.encode(
            {"iat": now - 60, "exp": now + 540, "iss": "1234"}, key.private_pem, algorithm="RS256"
        )
        async with session.post(
            f"{fake.base_url}/app/installations/5678/access_tokens",
            headers={"Authorization": f"Bearer {app_jwt}"},
        ) as response:
            assert response.status == 201
            assert response.headers["x-ratelimit-remaining"] == "2"
            token = (await response.json())["token"]
        raw = Raw(fake, session)
        assert (await raw("GET", "/user", token=token))[0] == 200
        assert (await raw("GET", "/user", token=token))[0] == 200
        status, headers, data = await raw("GET", "/user", token=token)
        assert (status, headers["x-ratelimit-remaining"]) == (403, "0")
        assert data["message"] == "API rate limit exceeded for installation ID 5678."
    assert fake.limits == RateLimits(primary_per_hour=2)
    assert fake.internal_errors == []


# ------------------------------------------------------------------------------ on / off


async def test_not_enforced_by_default(fake: FakeGitHub, raw: Raw) -> None:
    """Off (the default): a storm of writes in the same second all pass, the headers follow a
    wall-clock hour, as before."""
    assert fake.limits is None
    for n in range(120):
        assert (await raw.create_issue(f"storm {n}"))[0] == 201
    _, headers, _ = await raw("GET", "/user")
    assert headers["x-ratelimit-remaining"] == "4879"
    assert int(headers["x-ratelimit-reset"]) > time.time()
    assert "Retry-After" not in headers
    assert fake.secondary_limit_hits == fake.primary_limit_hits == 0
    assert fake.limited_calls() == []
    assert len(fake.content_writes) == 0


async def test_disable_limits(fake: FakeGitHub, raw: Raw, clock: ManualClock) -> None:
    """disable_limits goes back to the default; the hit counters stay."""
    fake.enforce_limits(content_per_minute=1)
    assert (await raw.create_issue("a"))[0] == 201
    assert (await raw.create_issue("b"))[0] == 403
    fake.enforce_limits(content_per_minute=1, primary_per_hour=7)
    assert (await raw.create_issue("b"))[0] == 201  # afresh: empty windows
    fake.enforce_limits(content_per_minute=1)
    _, headers, _ = await raw("GET", "/user")
    assert headers["x-ratelimit-limit"] == "5000"  # the constructor's, not the last one's
    fake.disable_limits()
    assert fake.limits is None
    for title in ("c", "d", "e"):
        assert (await raw.create_issue(title))[0] == 201
    _, headers, _ = await raw("GET", "/user")
    assert int(headers["x-ratelimit-reset"]) > time.time()
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("5000", "4996")
    assert fake.secondary_limit_hits == 1


async def test_constructor_option(clock: ManualClock) -> None:
    """enforce_limits=True takes GitHub's numbers (the primary one from rate_limit);
    a RateLimits sets them."""
    default = FakeGitHub(repos=[REPO], clock=clock, enforce_limits=True)
    assert default.limits == RateLimits(80, 500, 5000, 100, False)
    assert default.rate_limit_reset == clock.epoch() + 3600
    small = FakeGitHub(repos=[REPO], clock=clock, rate_limit=50, enforce_limits=True)
    assert small.limits is not None
    assert small.limits.primary_per_hour == 50
    custom = FakeGitHub(
        repos=[REPO], clock=clock, enforce_limits=RateLimits(content_per_minute=3, concurrent=5)
    )
    assert custom.limits == RateLimits(3, 500, 5000, 5, False)
    assert FakeGitHub(repos=[REPO]).limits is None
    with pytest.raises(ValueError, match="at least 1"):
        RateLimits(content_per_minute=0)
    with pytest.raises(ValueError, match="at least 1"):
        RateLimits(primary_per_hour=0)
