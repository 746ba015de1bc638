"""Tests for the fake GitHub server, driven through real PyGithub exactly as the product is.

PyGithub is synchronous, so every call goes through ``asyncio.to_thread`` while the fake
serves on the test's event loop. A few tests use raw aiohttp requests to pin down exact
headers (``Link``, ``ETag``, rate limit) and odd input.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import github
import pytest
from multidict import CIMultiDictProxy

from .github import FakeGitHub, iter_link_header

TOKEN = "t0ken"
REPO = "acme/incidents"
ISSUES = "/repos/acme/incidents/issues"


def make_client(base_url: str, token: str = TOKEN) -> github.Github:
    """A PyGithub client configured exactly like the product's."""
    return github.Github(
        auth=github.Auth.Token(token),
        base_url=base_url,
        timeout=5,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        lazy=True,
        per_page=100,
    )


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    """The fake's clock."""
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeGitHub]:
    """A running fake with one repository; fails the test if the fake itself crashed."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock) as server:
        yield server
    assert server.internal_errors == []


@pytest.fixture
def gh(fake: FakeGitHub) -> Iterator[github.Github]:
    """A product-configured PyGithub client pointed at the fake."""
    client = make_client(fake.base_url)
    yield client
    client.close()


async def raw(
    fake: FakeGitHub,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    json_body: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    """One raw HTTP request; returns status, headers and the decoded JSON body (or None)."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"token {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, fake.base_url + path, json=json_body, data=data, headers=all_headers
        ) as response,
    ):
        text = await response.text()
        return response.status, response.headers, (await response.json() if text else None)


# ------------------------------------------------------------------------------ issues


async def test_create_issue_with_labels_is_one_post(fake: FakeGitHub, gh: github.Github) -> None:
    """create_issue with labels is a single POST; missing labels are auto-created."""

    def create() -> github.Issue.Issue:
        return gh.get_repo(REPO).create_issue(
            title="Disk full on db-1", body="details", labels=["incident-bridge", "sev:critical"]
        )

    issue = await asyncio.to_thread(create)

    assert [(r.method, r.path, r.status) for r in fake.requests] == [("POST", ISSUES, 201)]
    assert fake.requests[0].json == {
        "title": "Disk full on db-1",
        "body": "details",
        "labels": ["incident-bridge", "sev:critical"],
    }
    # The response is complete: reading attributes makes no further request.
    assert issue.number == 1
    assert issue.title == "Disk full on db-1"
    assert issue.state == "open"
    assert [label.name for label in issue.labels] == ["incident-bridge", "sev:critical"]
    assert issue.html_url == "https://github.example/acme/incidents/issues/1"
    assert issue.user.login == "incident-bridge[bot]"
    assert issue.created_at == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert len(fake.requests) == 1

    assert fake.label_names(REPO, 1) == ["incident-bridge", "sev:critical"]
    assert [(lb.name, lb.color) for lb in fake.labels(REPO)] == [
        ("incident-bridge", "ededed"),
        ("sev:critical", "ededed"),
    ]
    second = await asyncio.to_thread(lambda: gh.get_repo(REPO).create_issue(title="again"))
    assert second.number == 2
    assert fake.count_writes() == 2


async def test_lazy_get_and_edit_is_a_single_patch(fake: FakeGitHub, gh: github.Github) -> None:
    """get_issue is lazy, so get_issue(n).edit(...) costs exactly one PATCH and no GET."""
    fake.human_create_issue(REPO, "Disk full", "old", labels=["incident-bridge"])
    fake.reset_log()

    def edit() -> github.Issue.Issue:
        issue = gh.get_repo(REPO).get_issue(1)
        issue.edit(
            title="Disk full (resolved)", body="new", state="closed", state_reason="completed"
        )
        return issue

    issue = await asyncio.to_thread(edit)

    assert [(r.method, r.path) for r in fake.requests] == [("PATCH", f"{ISSUES}/1")]
    assert fake.requests[0].json == {
        "title": "Disk full (resolved)",
        "body": "new",
        "state": "closed",
        "state_reason": "completed",
    }
    assert issue.state == "closed"
    assert issue.closed_at is not None
    assert len(fake.requests) == 1  # the PATCH response completed the object

    state = fake.issue(REPO, 1)
    assert (state.title, state.body, state.state, state.state_reason) == (
        "Disk full (resolved)",
        "new",
        "closed",
        "completed",
    )
    assert state.closed_by is not None
    assert state.closed_by.login == "incident-bridge[bot]"
    assert state.label_names == ["incident-bridge"]  # PATCH without labels keeps them


async def test_edit_unknown_issue_is_404(fake: FakeGitHub, gh: github.Github) -> None:
    """Unknown issues answer 404 {"message": "Not Found"} (UnknownObjectException)."""
    with pytest.raises(github.UnknownObjectException) as info:
        await asyncio.to_thread(lambda: gh.get_repo(REPO).get_issue(99).edit(body="x"))
    assert info.value.status == 404
    assert info.value.data["message"] == "Not Found"


async def test_title_and_body_validation(fake: FakeGitHub, gh: github.Github) -> None:
    """Titles over 256 characters, empty titles and bodies over 65536 characters are 422."""
    repo = gh.get_repo(REPO)

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_issue, title="x" * 257)
    assert info.value.status == 422
    assert info.value.data["message"] == "Validation Failed"
    assert info.value.data["errors"] == [
        {
            "resource": "Issue",
            "code": "custom",
            "field": "title",
            "message": "title is too long (maximum is 256 characters)",
        }
    ]
    assert "documentation_url" in info.value.data

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_issue, title="")
    assert info.value.data["errors"][0]["code"] == "missing_field"

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_issue, title="ok", body="b" * 65537)
    assert info.value.data["errors"][0]["field"] == "body"

    assert fake.issues(REPO) == []
    issue = await asyncio.to_thread(repo.create_issue, title="x" * 256, body="b" * 65536)
    assert issue.number == 1


# ------------------------------------------------------------------------------ labels


async def test_add_and_remove_labels(fake: FakeGitHub, gh: github.Github) -> None:
    """add_to_labels POSTs a bare JSON array; removing an absent label is a 404."""
    fake.human_create_issue(REPO, "t")
    issue = gh.get_repo(REPO).get_issue(1)
    fake.reset_log()

    await asyncio.to_thread(issue.add_to_labels, "ack", "needs triage")
    assert fake.requests[-1].method == "POST"
    assert fake.requests[-1].path == f"{ISSUES}/1/labels"
    assert fake.requests[-1].json == ["ack", "needs triage"]
    assert fake.label_names(REPO, 1) == ["ack", "needs triage"]

    await asyncio.to_thread(issue.remove_from_labels, "needs triage")
    assert fake.requests[-1].method == "DELETE"
    assert fake.requests[-1].path == f"{ISSUES}/1/labels/needs triage"
    assert fake.label_names(REPO, 1) == ["ack"]

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(issue.remove_from_labels, "needs triage")
    assert info.value.status == 404
    assert info.value.data["message"] == "Label does not exist"
    assert fake.requests[-1].status == 404

    # Label names are case-insensitive, as on GitHub.
    await asyncio.to_thread(issue.add_to_labels, "ACK")
    assert fake.label_names(REPO, 1) == ["ack"]
    assert fake.count_writes() == 4


async def test_repo_labels_list_and_create(fake: FakeGitHub, gh: github.Github) -> None:
    """get_labels/create_label work; creating an existing label is a 422 already_exists."""
    repo = gh.get_repo(REPO)
    label = await asyncio.to_thread(repo.create_label, "sev:critical", "b60205", "Page now")
    assert (label.name, label.color, label.description) == ("sev:critical", "b60205", "Page now")
    assert fake.requests[-1].json == {
        "name": "sev:critical",
        "color": "b60205",
        "description": "Page now",
    }

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_label, "SEV:CRITICAL", "000000")
    assert info.value.status == 422
    assert info.value.data["errors"] == [
        {"resource": "Label", "code": "already_exists", "field": "name"}
    ]
    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_label, "bad", "not-a-colour")
    assert info.value.data["errors"][0]["field"] == "color"

    fake.human_create_issue(REPO, "t", labels=["incident-bridge"])  # auto-created
    names = await asyncio.to_thread(lambda: [lb.name for lb in repo.get_labels()])
    assert names == ["sev:critical", "incident-bridge"]


# ------------------------------------------------------------------------------ comments


async def test_comments_create_list_since_and_paginate(
    fake: FakeGitHub, gh: github.Github, clock: ManualClock
) -> None:
    """Comments can be created and listed; listing honours since and paginates past 100."""
    fake.human_create_issue(REPO, "t")
    issue = gh.get_repo(REPO).get_issue(1)

    comment = await asyncio.to_thread(issue.create_comment, "first, by the bridge")
    assert comment.user.login == "incident-bridge[bot]"
    assert comment.html_url == (
        f"https://github.example/acme/incidents/issues/1#issuecomment-{comment.id}"
    )
    assert fake.requests[-1].json == {"body": "first, by the bridge"}

    clock.advance(60)
    cutoff = clock.now
    for n in range(104):
        fake.human_comment(REPO, 1, f"human {n}")
    fake.reset_log()

    bodies = await asyncio.to_thread(lambda: [c.body for c in issue.get_comments()])
    assert len(bodies) == 105
    assert bodies[0] == "first, by the bridge"
    assert bodies[-1] == "human 103"
    assert len(fake.calls("GET", "/comments")) == 2

    recent = await asyncio.to_thread(lambda: list(issue.get_comments(since=cutoff)))
    assert len(recent) == 104
    assert recent[0].user.login == "alice"
    assert fake.calls("GET")[-1].query["since"] == "2024-05-01T12:01:00Z"

    status, _, data = await raw(fake, "POST", f"{ISSUES}/1/comments", json_body={"body": ""})
    assert status == 422
    assert data["errors"][0]["field"] == "body"
    assert len(fake.comments(REPO, 1)) == 105


# ------------------------------------------------------------------------------ listing


async def test_list_issues_follows_link_headers(
    fake: FakeGitHub, gh: github.Github, clock: ManualClock
) -> None:
    """get_issues walks >100 results by following the Link header, filters preserved."""
    for n in range(1, 301):
        fake.human_create_issue(
            REPO, f"i{n}", labels=["other"] if n % 6 == 0 else ["incident-bridge"]
        )
        clock.advance(1)
    fake.human_close(REPO, 5)
    fake.reset_log()

    def listing() -> list[int]:
        issues = gh.get_repo(REPO).get_issues(
            state="all", labels=["incident-bridge"], sort="created", direction="desc"
        )
        return [issue.number for issue in issues]

    numbers = await asyncio.to_thread(listing)

    assert numbers == [n for n in range(300, 0, -1) if n % 6 != 0]
    gets = fake.calls("GET")
    assert len(gets) == 3
    assert gets[0].path == ISSUES
    assert gets[0].query == {
        "direction": "desc",
        "labels": "incident-bridge",
        "per_page": "100",
        "sort": "created",
        "state": "all",
    }
    # Like GitHub, the next links use the /repositories/{id} form.
    repo_id = fake.repo(REPO).id
    assert [g.path for g in gets[1:]] == [f"/repositories/{repo_id}/issues"] * 2
    assert [g.query["page"] for g in gets[1:]] == ["2", "3"]
    assert all(g.query["labels"] == "incident-bridge" for g in gets)


async def test_link_header_format(fake: FakeGitHub, clock: ManualClock) -> None:
    """The Link header is formatted like GitHub's: prev, next, last, first; absolute URLs."""
    for n in range(250):
        fake.human_create_issue(REPO, f"i{n}")
    base = f"{fake.base_url}/repositories/{fake.repo(REPO).id}/issues"

    status, headers, data = await raw(fake, "GET", f"{ISSUES}?state=all&per_page=100&page=2")
    assert status == 200
    assert len(data) == 100
    assert headers["Link"] == (
        f'<{base}?state=all&per_page=100&page=1>; rel="prev", '
        f'<{base}?state=all&per_page=100&page=3>; rel="next", '
        f'<{base}?state=all&per_page=100&page=3>; rel="last", '
        f'<{base}?state=all&per_page=100&page=1>; rel="first"'
    )

    _, headers, _ = await raw(fake, "GET", f"{ISSUES}?per_page=100")
    assert [rel for rel, _ in iter_link_header(headers["Link"])] == ["next", "last"]
    _, headers, data = await raw(fake, "GET", f"{ISSUES}?per_page=100&page=3")
    assert len(data) == 50
    assert [rel for rel, _ in iter_link_header(headers["Link"])] == ["prev", "first"]
    _, headers, data = await raw(fake, "GET", ISSUES)  # default per_page is 30
    assert len(data) == 30
    assert dict(iter_link_header(headers["Link"]))["last"].endswith("page=9")
    _, headers, data = await raw(fake, "GET", f"{ISSUES}?per_page=1000")  # capped at 100
    assert len(data) == 100
    _, headers, _ = await raw(fake, "GET", f"{ISSUES}?labels=nothing-has-this")
    assert "Link" not in headers


async def test_list_filters(fake: FakeGitHub, gh: github.Github, clock: ManualClock) -> None:
    """state (default open), labels (all must match, case-insensitive), since, sort."""
    fake.human_create_issue(REPO, "one", labels=["incident-bridge", "sev:1"])
    clock.advance(10)
    fake.human_create_issue(REPO, "two", labels=["incident-bridge"])
    clock.advance(10)
    fake.human_create_issue(REPO, "three", labels=["sev:1"])
    clock.advance(10)
    fake.human_create_issue(REPO, "four")
    clock.advance(10)
    fake.human_close(REPO, 2)
    clock.advance(10)
    fake.human_comment(REPO, 1, "bump")  # makes #1 the most recently updated
    repo = gh.get_repo(REPO)

    def numbers(**kwargs: Any) -> list[int]:
        return [issue.number for issue in repo.get_issues(**kwargs)]

    assert await asyncio.to_thread(numbers) == [4, 3, 1]
    assert await asyncio.to_thread(numbers, labels=["incident-bridge", "sev:1"]) == [1]
    assert await asyncio.to_thread(numbers, state="closed") == [2]
    assert await asyncio.to_thread(numbers, state="all", labels=["Incident-Bridge"]) == [2, 1]
    assert await asyncio.to_thread(numbers, state="all", direction="asc") == [1, 2, 3, 4]
    assert await asyncio.to_thread(numbers, state="all", sort="updated") == [1, 2, 4, 3]
    since = datetime(2024, 5, 1, 12, 0, 40, tzinfo=UTC)
    assert await asyncio.to_thread(numbers, state="all", since=since) == [2, 1]


# ------------------------------------------------------------------------------ ETag / 304


async def test_conditional_get_304_then_200_after_human_edit(
    fake: FakeGitHub, gh: github.Github, clock: ManualClock
) -> None:
    """If-None-Match with the current ETag is a free 304; a human edit changes the ETag."""
    fake.human_create_issue(REPO, "t", "body", labels=["incident-bridge"])
    request = gh.requester.requestJsonAndCheck
    url = f"{ISSUES}/1"

    headers, data = await asyncio.to_thread(request, "GET", url)
    etag = headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert data["body"] == "body"
    remaining = int(headers["x-ratelimit-remaining"])

    headers, data = await asyncio.to_thread(request, "GET", url, headers={"If-None-Match": etag})
    assert data is None  # PyGithub turns the empty 304 body into None, no exception
    assert fake.requests[-1].status == 304
    assert fake.requests[-1].headers["If-None-Match"] == etag
    assert int(headers["x-ratelimit-remaining"]) == remaining  # 304s are free

    clock.advance(30)
    fake.human_edit_body(REPO, 1, "edited by a human")
    headers, data = await asyncio.to_thread(request, "GET", url, headers={"If-None-Match": etag})
    assert fake.requests[-1].status == 200
    assert data["body"] == "edited by a human"
    assert data["updated_at"] == "2024-05-01T12:00:30Z"
    assert headers["etag"] != etag
    assert int(headers["x-ratelimit-remaining"]) == remaining - 1

    etag = headers["etag"]
    fake.human_add_label(REPO, 1, "ack")  # same second, but the labels changed
    _, data = await asyncio.to_thread(request, "GET", url, headers={"If-None-Match": etag})
    assert fake.requests[-1].status == 200
    assert [label["name"] for label in data["labels"]] == ["incident-bridge", "ack"]

    # List responses carry ETags too.
    status, list_headers, _ = await raw(fake, "GET", ISSUES)
    status, _, body = await raw(
        fake, "GET", ISSUES, headers={"If-None-Match": list_headers["ETag"]}
    )
    assert (status, body) == (304, None)


# ------------------------------------------------------------------------------ auth / errors


async def test_bad_token_is_401(fake: FakeGitHub) -> None:
    """A wrong token is 401 Bad credentials; Bearer works; no header is 401 too."""
    bad = make_client(fake.base_url, token="wrong")
    try:
        with pytest.raises(github.BadCredentialsException) as info:
            await asyncio.to_thread(lambda: bad.get_user().login)
    finally:
        bad.close()
    assert info.value.status == 401
    assert info.value.data["message"] == "Bad credentials"

    status, _, data = await raw(fake, "GET", "/user", token=None)
    assert status == 401
    assert data["message"] == "Requires authentication"
    status, _, data = await raw(
        fake, "GET", "/user", token=None, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200
    assert fake.calls("GET", "/user")[-1].status == 200


async def test_get_user_is_the_bot(fake: FakeGitHub, gh: github.Github) -> None:
    """GET /user returns the configured bot login with type Bot."""
    user = gh.get_user()
    assert await asyncio.to_thread(lambda: user.login) == "incident-bridge[bot]"
    assert user.type == "Bot"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/user")]


async def test_rate_limit_headers_on_every_response(fake: FakeGitHub) -> None:
    """Every response, errors included, carries the x-ratelimit-* headers."""
    _, first, _ = await raw(fake, "GET", "/user")
    status, second, _ = await raw(fake, "GET", "/nope")
    assert status == 404
    for headers in (first, second):
        assert headers["x-ratelimit-limit"] == "5000"
        assert headers["x-ratelimit-resource"] == "core"
        assert int(headers["x-ratelimit-reset"]) > 0
    assert (first["x-ratelimit-remaining"], first["x-ratelimit-used"]) == ("4999", "1")
    assert (second["x-ratelimit-remaining"], second["x-ratelimit-used"]) == ("4998", "2")

    fake.rate_limit_remaining = 0
    status, _, data = await raw(fake, "GET", "/user")
    assert status == 403
    assert data["message"].startswith("API rate limit exceeded")


async def test_odd_input_never_crashes(fake: FakeGitHub) -> None:
    """Unknown routes/repos 404, bad JSON 400, wrong shapes 422 — all as GitHub JSON."""
    status, _, data = await raw(fake, "GET", "/definitely/not/a/route")
    assert (status, data["message"]) == (404, "Not Found")
    status, _, data = await raw(fake, "GET", "/repos/acme/other/issues")
    assert (status, data["message"]) == (404, "Not Found")
    status, _, data = await raw(fake, "GET", f"{ISSUES}/abc")
    assert status == 404
    status, _, data = await raw(fake, "PUT", ISSUES)  # method not supported
    assert status == 404
    status, _, data = await raw(
        fake, "POST", ISSUES, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (status, data["message"]) == (400, "Problems parsing JSON")
    status, _, data = await raw(fake, "POST", ISSUES, json_body=["a", "list"])
    assert status == 422
    status, _, data = await raw(fake, "POST", ISSUES, json_body={"title": "t", "labels": "x"})
    assert status == 422
    status, _, data = await raw(fake, "POST", ISSUES, json_body={"title": "t", "body": 5})
    assert status == 422
    status, _, data = await raw(fake, "GET", f"{ISSUES}?state=weird")
    assert status == 422
    status, _, data = await raw(fake, "GET", f"{ISSUES}?since=yesterday")
    assert status == 422
    status, _, data = await raw(fake, "GET", f"{ISSUES}?per_page=abc&page=-3")
    assert (status, data) == (200, [])
    assert fake.issues(REPO) == []
    assert fake.count_writes() == 5  # the PUT and four POSTs, whatever they were answered


# ------------------------------------------------------------------------------ faults


async def test_inject_apply_first(fake: FakeGitHub, gh: github.Github) -> None:
    """apply_first applies the change and then fails; plain inject fails without applying."""
    repo = gh.get_repo(REPO)
    fault = fake.inject("POST", r"/issues$", 502, apply_first=True)

    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_issue, title="lost response")
    assert info.value.status == 502
    assert [i.title for i in fake.issues(REPO)] == ["lost response"]  # GitHub applied it
    assert fault.hits == 1
    assert fake.faults == []

    fake.inject("POST", r"/issues$", 500, body={"message": "boom"}, headers={"Retry-After": "7"})
    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(repo.create_issue, title="never applied")
    assert info.value.status == 500
    assert info.value.data == {"message": "boom"}
    assert info.value.headers is not None
    assert info.value.headers["retry-after"] == "7"
    assert len(fake.issues(REPO)) == 1

    fake.inject("PATCH", r"/issues/1$", 503, times=2)
    issue = repo.get_issue(1)
    for _ in range(2):
        with pytest.raises(github.GithubException):
            await asyncio.to_thread(issue.edit, body="x")
    await asyncio.to_thread(issue.edit, body="third time lucky")
    assert fake.issue(REPO, 1).body == "third time lucky"

    created = await asyncio.to_thread(repo.create_issue, title="normal again")
    assert created.number == 2
    assert [r.status for r in fake.calls("POST")] == [502, 500, 201]


async def test_down_answers_503(fake: FakeGitHub, gh: github.Github) -> None:
    """With fake.down every request is 503 (auth is not even checked)."""
    fake.down = True
    with pytest.raises(github.GithubException) as info:
        await asyncio.to_thread(gh.get_repo(REPO).create_issue, title="t")
    assert info.value.status == 503
    status, _, _ = await raw(fake, "GET", "/user", token="wrong")
    assert status == 503
    fake.down = False
    assert (await raw(fake, "GET", "/user"))[0] == 200
    assert fake.issues(REPO) == []


# ------------------------------------------------------------------------------ human actions


async def test_human_helpers(fake: FakeGitHub, gh: github.Github, clock: ManualClock) -> None:
    """Human actions change state, bump updated_at, and are visible through the API."""
    issue = fake.human_create_issue(REPO, "t", "body", labels=["incident-bridge"])
    created = issue.updated_at

    clock.advance(10)
    fake.human_edit_body(REPO, 1, "body")  # no change: no bump
    assert issue.updated_at == created
    fake.human_edit_body(REPO, 1, "new body")
    assert issue.updated_at == clock.now

    clock.advance(10)
    fake.human_add_label(REPO, 1, "ack")
    assert fake.label_names(REPO, 1) == ["incident-bridge", "ack"]
    assert issue.updated_at == clock.now
    fake.human_remove_label(REPO, 1, "incident-bridge")
    assert fake.label_names(REPO, 1) == ["ack"]
    with pytest.raises(KeyError):
        fake.human_remove_label(REPO, 1, "incident-bridge")

    clock.advance(10)
    comment = fake.human_comment(REPO, 1, "looking", login="bob")
    assert issue.updated_at == clock.now
    assert [c.body for c in fake.comments(REPO, 1)] == ["looking"]

    clock.advance(10)
    fake.human_close(REPO, 1, state_reason="not_planned")
    assert (issue.state, issue.state_reason, issue.closed_at) == (
        "closed",
        "not_planned",
        clock.now,
    )
    assert issue.closed_by is not None
    assert issue.closed_by.login == "alice"

    def read() -> tuple[str, str | None, list[str], str]:
        api_issue = gh.get_repo(REPO).get_issue(1)
        first = next(iter(api_issue.get_comments()))
        return (
            api_issue.state,
            api_issue.body,
            [label.name for label in api_issue.labels],
            first.user.login,
        )

    assert await asyncio.to_thread(read) == ("closed", "new body", ["ack"], "bob")
    assert comment.user.type == "User"

    clock.advance(10)
    fake.human_reopen(REPO, 1)
    assert (issue.state, issue.state_reason, issue.closed_at) == ("open", "reopened", None)
    with pytest.raises(KeyError):
        fake.issue(REPO, 2)
