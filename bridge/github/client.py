"""GitHub access behind one small protocol: the real one (PyGithub) and the dry-run one.

PyGithub is synchronous; every call runs in a worker thread, one at a time per token (GitHub
asks integrators not to make concurrent requests with one token). PyGithub is built without
its own retries, pauses or eager fetches: the outbox owns retries, so the request counts in
CONTRACT.md hold. Errors come out as ``GitHubError`` classified retryable or permanent.

With a GitHub App the tracker mints the installation token itself, at the configured
``api_url``, and renews it ahead of its expiry (see :class:`GitHubAppAuth`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import github
import jwt
import requests
import structlog
from github.GithubException import GithubException

from bridge.clock import Clock
from bridge.effects import EffectError, retry_after_seconds
from bridge.metrics import Metrics

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


async def _off_loop(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``call`` on a daemon thread of its own: ``asyncio.to_thread``, except that the process
    does not wait for the thread at exit. requests' timeouts bound each phase of a request (the
    connect, each read), not the request: one GitHub (or a proxy) never finishes answering must
    not hold the shutdown past its deadline once the outbox has given up on it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():  # the caller gave up (cancelled)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = call(*args, **kwargs)
        except BaseException as raised:  # everything goes to the awaiting coroutine
            error = raised
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="github-request", daemon=True).start()
    return await future


DRY_RUN_REPOSITORY = "(dry-run)"


@dataclass(frozen=True, slots=True)
class LabelSpec:
    name: str
    color: str
    description: str


@dataclass(frozen=True, slots=True)
class CreatedIssue:
    number: int
    url: str
    etag: str | None


@dataclass(frozen=True, slots=True)
class RemoteIssue:
    number: int
    url: str
    title: str
    body: str
    state: str
    labels: frozenset[str]
    etag: str | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    author: str | None = None  # the login that opened it
    assignees: tuple[str, ...] = ()
    closed_by: str | None = None  # only the single-issue answer carries it
    comments: int = 0  # how many
    closed_by_type: str | None = None  # GitHub's ``type`` of ``closed_by`` ("User", "Bot", …)


@dataclass(frozen=True, slots=True)
class RemoteComment:
    """A comment on an issue, as the list API gives it."""

    id: int
    author: str
    body: str
    created_at: datetime | None
    author_type: str | None = None  # GitHub's ``type`` of the author ("User", "Bot", …)


@dataclass(frozen=True, slots=True)
class IssueEvent:
    """One of an issue's events (``GET …/issues/{n}/events``): who labelled, assigned, closed
    or reopened it, and when."""

    id: int
    event: str  # labeled | unlabeled | assigned | unassigned | closed | reopened | …
    actor: str | None
    created_at: datetime | None
    label: str | None = None
    assignee: str | None = None
    actor_type: str | None = None  # GitHub's ``type`` of the actor ("User", "Bot", …)


@dataclass(frozen=True, slots=True)
class ListedIssues:
    """One page of issues from a conditional list request, with the ETag to ask again with."""

    issues: list[RemoteIssue]
    etag: str | None


@dataclass(frozen=True, slots=True)
class IssuePage:
    issues: list[RemoteIssue]
    last: bool  # no page after this one


class GitHubError(EffectError):
    """A failed GitHub call, classified for the outbox. ``sent`` is False when the request
    certainly never reached GitHub (no connection could be made, or the tracker held it back
    inside a rate-limit window): it cost nothing of GitHub's limits."""

    def __init__(self, message: str, *, sent: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class AppTokenRefused(GitHubError):
    """GitHub would not issue a GitHub App installation token, or the key cannot sign for one:
    retryable (the work waits), but an operator's to fix."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        # No HTTP status: a refused mint must not pass for the answer to the request that
        # needed it (a 404 here is an unknown installation, not a missing issue or label).
        # Nor was that request sent: without a token there is none to send.
        super().__init__(message, retryable=True, retry_after=retry_after, sent=False)


class IssueTracker(Protocol):
    """What the sync needs from GitHub."""

    repository: str

    async def ensure_labels(self, labels: Iterable[LabelSpec]) -> None: ...

    async def create_issue(self, title: str, body: str, labels: list[str]) -> CreatedIssue: ...

    async def get_issue(self, number: int, etag: str | None) -> RemoteIssue | None:
        """The issue, or None when it is unchanged since ``etag`` (a free 304)."""

    async def edit_issue(self, number: int, fields: dict[str, str]) -> str | None:
        """PATCH the given fields; returns the new ETag when GitHub sends one."""

    async def add_label(self, number: int, label: str) -> None: ...

    async def remove_label(self, number: int, label: str) -> None:
        """Remove a label; a label that is already gone is not an error."""

    async def create_comment(self, number: int, body: str) -> None: ...

    async def find_issue(self, marker: str) -> RemoteIssue | None:
        """The recent bridge issue whose body carries ``marker`` (list API, never Search)."""

    async def find_comment(self, number: int, marker: str, since: datetime) -> bool:
        """Whether a comment carrying ``marker`` was posted on the issue since ``since``."""

    async def list_issues(self, page: int, *, oldest_first: bool = False) -> IssuePage:
        """One page (100, newest first, or oldest first) of the repository's
        ``incident-bridge`` issues, open and closed (list API; pull requests left out)."""

    async def whoami(self) -> str | None:
        """The login the bridge acts as on GitHub: the token's account (``GET /user``) or, for
        a GitHub App, its bot ``<slug>[bot]`` (``GET /app`` with the App's JWT). None in
        dry-run, where it acts as nobody."""

    async def list_comments(self, number: int, since: datetime) -> list[RemoteComment]:
        """The issue's comments updated at or after ``since``, oldest first (up to 300)."""

    async def issue_events(self, number: int) -> list[IssueEvent]:
        """The issue's events, oldest first (up to 300): who labelled, assigned, closed or
        reopened it."""

    async def open_incident_issues(self, etag: str | None) -> ListedIssues | None:
        """The open issues labelled ``incident``, most recently updated first (one page of
        100; pull requests left out); None when unchanged since ``etag`` (a free 304)."""


def _retry_after(headers: dict[str, Any], now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` or an exhausted ``x-ratelimit-*`` window."""
    seconds = retry_after_seconds(headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
        try:
            return max(1.0, float(headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


def classify_github_exception(error: GithubException, now: float) -> GitHubError:
    """Turn a PyGithub exception into a retryable or permanent GitHubError."""
    status = error.status
    headers = {k.lower(): v for k, v in (error.headers or {}).items()}
    message = ""
    if isinstance(error.data, dict):
        message = str(error.data.get("message", ""))[:200]
    wait = _retry_after(headers, now)
    text = f"GitHub {status}: {message}".strip()
    if status in (403, 429) and (wait is not None or "rate limit" in message.lower()):
        return GitHubError(text, retryable=True, status=status, retry_after=wait or 60.0)
    if status >= 500 or status in (401, 403, 408, 429):
        # 401/403 without a rate limit: credentials or permissions an operator can fix; keep the
        # work and retry with backoff rather than drop it.
        return GitHubError(text, retryable=True, status=status, retry_after=wait)
    return GitHubError(text, retryable=False, status=status)


def _not_sent(error: requests.RequestException) -> bool:
    """True when the request certainly never reached GitHub (so repeating it is safe)."""
    text = repr(error)
    return isinstance(error, requests.ConnectTimeout) or (
        isinstance(error, requests.ConnectionError)
        and ("NewConnectionError" in text or "NameResolutionError" in text)
    )


def _login(user: Any) -> str | None:
    """The ``login`` of a user object in an answer, if there is one."""
    if isinstance(user, dict) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


def _user_type(user: Any) -> str | None:
    """GitHub's ``type`` of a user object in an answer ("User", "Bot", …), if it says."""
    if isinstance(user, dict) and isinstance(user.get("type"), str):
        return str(user["type"])
    return None


def _remote(data: dict[str, Any], etag: str | None) -> RemoteIssue:
    assignees = [_login(user) for user in data.get("assignees") or []]
    return RemoteIssue(
        number=int(data["number"]),
        url=str(data.get("html_url") or ""),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        state=str(data.get("state") or "open"),
        labels=frozenset(str(label["name"]) for label in data.get("labels") or []),
        etag=etag,
        created_at=_github_time(data.get("created_at")),
        updated_at=_github_time(data.get("updated_at")),
        closed_at=_github_time(data.get("closed_at")),
        author=_login(data.get("user")),
        assignees=tuple(login for login in assignees if login),
        closed_by=_login(data.get("closed_by")),
        comments=int(data.get("comments") or 0),
        closed_by_type=_user_type(data.get("closed_by")),
    )


def _github_time(value: Any) -> datetime | None:
    """GitHub's ``2026-11-26T21:45:00Z``; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_LIST_PAGES = 3  # "recent": the 300 newest bridge issues, or 300 comments since the attempt

# An installation token lives an hour; it is renewed this long before it expires (at most half
# its lifetime), so no request carries a token GitHub may already count as expired: the request
# itself takes time, and GitHub's clock is not ours.
TOKEN_RENEW_MARGIN = timedelta(minutes=5)
_TOKEN_LAST_USE = timedelta(seconds=30)  # a token whose renewal failed is used until this close
_JWT_BACKDATE = 60  # seconds: iat in the past, against clock drift (GitHub's advice)
_JWT_LIFETIME = 540  # seconds after now: exp - iat is 10 minutes, the most GitHub accepts
_MINT_COOLDOWN_FIRST = 5.0  # seconds without a new mint attempt after one failed; doubling ...
_MINT_COOLDOWN_MAX = 300.0  # ... up to this
_APP_HINT = (
    "check github.app_id, github.installation_id and the App's private key, and that the App "
    "is installed on the repository's owner"
)


class GitHubAppAuth(github.Auth.Auth):
    """A GitHub App installation's credentials for PyGithub: the installation token it holds,
    and the App's JWT (RS256, signed with the App's private key) that buys a new one.

    PyGithub's ``AppInstallationAuth`` would mint lazily while building the header of whichever
    request comes next, renew 20 s before expiry by the wall clock, and let a refused mint look
    like a refusal of that request. Here :class:`PyGithubTracker` renews explicitly, by the
    bridge's clock, ``TOKEN_RENEW_MARGIN`` ahead; this object only keeps the token and signs.
    """

    def __init__(
        self, *, app_id: int, installation_id: int, private_key: str, clock: Clock
    ) -> None:
        self.app_id = app_id
        self.installation_id = installation_id
        self._private_key = private_key
        self._clock = clock
        self._token: str | None = None
        self._renew_at: datetime | None = None
        self.expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"GitHubAppAuth(app_id={self.app_id}, installation_id={self.installation_id})"

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        if self._token is None:
            raise RuntimeError("no GitHub App installation token: the tracker mints one first")
        return self._token

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"

    def needs_token(self) -> bool:
        """Whether there is no token, or it is due for renewal."""
        return self._renew_at is None or self._clock() >= self._renew_at

    def app_jwt(self) -> str:
        """A JWT for the App, valid for the next 9 minutes (GitHub allows 10)."""
        now = int(self._clock().timestamp())
        payload = {"iat": now - _JWT_BACKDATE, "exp": now + _JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(payload, self._private_key, algorithm="RS256")

    def accept(self, token: str, expires_at: datetime) -> None:
        """Hold a newly minted token; it is renewed ahead of ``expires_at``."""
        margin = min(TOKEN_RENEW_MARGIN, (expires_at - self._clock()) / 2)
        self._token, self.expires_at, self._renew_at = token, expires_at, expires_at - margin

    def still_usable(self) -> bool:
        """Whether the token held, though due for renewal, has a little while left."""
        return (
            self._token is not None
            and self.expires_at is not None
            and self._clock() < self.expires_at - _TOKEN_LAST_USE
        )

    def forget(self) -> None:
        """Drop the token (GitHub refused it): the next request mints a new one."""
        self._token = self._renew_at = self.expires_at = None


class PyGithubTracker:
    """The real GitHub, through PyGithub's requester.

    Politeness: one request at a time per token; after a 403/429 with ``Retry-After`` or an
    exhausted ``x-ratelimit-remaining``, no request at all until the window ends: effects asking
    meanwhile fail fast as retryable and the outbox reschedules them (nobody sleeps holding work).
    """

    def __init__(
        self,
        *,
        api_url: str,
        repository: str,
        auth: github.Auth.Auth,
        timeout: float,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.repository = repository
        self._metrics = metrics
        self._clock = clock
        self._blocked_until = 0.0  # epoch seconds: no request before this
        self._gh = github.Github(
            auth=auth,
            base_url=api_url.rstrip("/"),
            timeout=max(1, int(timeout)),
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
            per_page=100,
        )
        self._lock = asyncio.Lock()
        self._repo_path = f"/repos/{repository}"
        self._app = auth if isinstance(auth, GitHubAppAuth) else None
        self._mint_failures = 0
        self._mint_retry_at = 0.0  # epoch seconds: no new mint attempt before this
        self._mint_error = ""

    async def close(self) -> None:
        await asyncio.to_thread(self._gh.close)

    def _observe(self, headers: dict[str, Any]) -> None:
        """Track the primary rate limit from a response's headers."""
        remaining = headers.get("x-ratelimit-remaining")
        reset = headers.get("x-ratelimit-reset")
        try:
            if remaining is not None:
                self._metrics.github_rate_remaining.set(float(remaining))
            if reset is not None:
                self._metrics.github_rate_reset.set(float(reset))
            if remaining is not None and reset is not None and float(remaining) <= 0:
                self._blocked_until = max(self._blocked_until, float(reset))
        except ValueError:
            log.warning("github_rate_headers_unreadable")

    async def _mint_app_token(self, app: GitHubAppAuth, now: float) -> None:
        """Buy a new installation token with the App's JWT (inside the one-at-a-time lock).

        Every failure is retryable: a refused mint (wrong key, App uninstalled) is an operator's
        to fix, and the work that asked must wait, not go. After a failure no new attempt is made
        for a while (5 s, doubling to 5 min).
        """
        if now < self._mint_retry_at:
            raise GitHubError(
                f"GitHub App installation token unavailable ({self._mint_error}); not asking "
                "again yet",
                retryable=True,
                retry_after=self._mint_retry_at - now,
                sent=False,
            )
        try:
            data = await self._post_for_token(app)
        except GitHubError as error:
            self._mint_failures += 1
            delay = min(_MINT_COOLDOWN_FIRST * 2 ** (self._mint_failures - 1), _MINT_COOLDOWN_MAX)
            self._mint_retry_at = now + max(delay, error.retry_after or 0.0)
            self._mint_error = str(error)
            fields = {
                "app_id": app.app_id,
                "installation_id": app.installation_id,
                "error": str(error),
                "next_attempt_in": round(self._mint_retry_at - now, 1),
            }
            if isinstance(error, AppTokenRefused):
                log.error("github_app_token_failed", hint=_APP_HINT, **fields)
            else:
                log.warning("github_app_token_not_issued", **fields)
            raise
        try:
            token = str(data["token"])
            expires_at = datetime.fromisoformat(str(data["expires_at"]))
        except (TypeError, KeyError, ValueError):
            raise GitHubError(
                "GitHub App: the installation token answer is unreadable",
                retryable=True,
                sent=False,
            ) from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        app.accept(token, expires_at)
        self._mint_failures, self._mint_retry_at, self._mint_error = 0, 0.0, ""
        log.info(
            "github_app_token_minted",
            app_id=app.app_id,
            installation_id=app.installation_id,
            expires_at=expires_at.isoformat(),
        )

    async def _post_for_token(self, app: GitHubAppAuth) -> Any:
        """``POST /app/installations/{id}/access_tokens`` at the configured ``api_url``."""
        try:
            bearer = app.app_jwt()
        except Exception as error:  # any failure to sign is the key's: never show its text
            raise AppTokenRefused(
                f"GitHub App: the private key cannot sign the App's JWT ({type(error).__name__})"
            ) from None
        # Same base_url, timeout and (absent) retries as every other request; its own session.
        requester = self._gh.requester.withAuth(github.Auth.AppAuthToken(bearer))
        path = f"/app/installations/{app.installation_id}/access_tokens"

        def post() -> Any:
            try:
                _, data = requester.requestJsonAndCheck(
                    "POST", path, headers={"Accept": "application/vnd.github+json"}
                )
                return data
            finally:
                requester.close()

        try:
            data = await _off_loop(post)
        except GithubException as error:
            self._metrics.github_requests.labels("mint_token", str(error.status)).inc()
            failure = classify_github_exception(error, self._clock().timestamp())
            text = f"GitHub App installation token not issued: {failure}"
            # No token, no write: whatever the mint's fate, the write it was for was never sent.
            if error.status >= 500 or failure.retry_after is not None:  # GitHub's trouble
                raise GitHubError(
                    text, retryable=True, retry_after=failure.retry_after, sent=False
                ) from None
            raise AppTokenRefused(text) from None
        except requests.RequestException as error:
            self._metrics.github_requests.labels("mint_token", "error").inc()
            raise GitHubError(
                f"GitHub unreachable: {type(error).__name__}", retryable=True, sent=False
            ) from None
        self._metrics.github_requests.labels("mint_token", "201").inc()
        return data

    async def _request(
        self, operation: str, verb: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, Any], Any]:
        """One request, in turn, outside any rate-limit window; errors classified."""
        async with self._lock:
            now = self._clock().timestamp()
            if now < self._blocked_until:
                self._metrics.github_requests.labels(operation, "deferred").inc()
                raise GitHubError(
                    "GitHub rate-limit window: not calling before it ends",
                    retryable=True,
                    retry_after=self._blocked_until - now,
                    sent=False,
                )
            if self._app is not None and self._app.needs_token():
                try:
                    await self._mint_app_token(self._app, now)
                except GitHubError:
                    if not self._app.still_usable():
                        raise
                    # Renewed ahead of time, so the current token still has minutes left.
            mutating = verb == "POST"  # creates are the calls that must not happen twice
            try:
                headers, data = await _off_loop(
                    self._gh.requester.requestJsonAndCheck, verb, path, **kwargs
                )
            except GithubException as error:
                self._metrics.github_requests.labels(operation, str(error.status)).inc()
                self._observe({k.lower(): v for k, v in (error.headers or {}).items()})
                if error.status == 401 and self._app is not None:
                    self._app.forget()  # revoked or expired early: the retry mints a new one
                # Retry-After counts from the answer, which may have been long in coming.
                answered = self._clock().timestamp()
                failure = classify_github_exception(error, answered)
                if failure.status in (403, 429) and failure.retry_after is not None:
                    self._blocked_until = max(self._blocked_until, answered + failure.retry_after)
                # A 5xx to a create may still have created it: look before repeating.
                failure.outcome_unknown = mutating and error.status >= 500
                raise failure from None
            except requests.RequestException as error:
                self._metrics.github_requests.labels(operation, "error").inc()
                sent = not _not_sent(error)
                raise GitHubError(
                    f"GitHub unreachable: {type(error).__name__}",
                    retryable=True,
                    outcome_unknown=mutating and sent,
                    sent=sent,
                ) from None
            self._observe(headers)
        status = "304" if verb == "GET" and data is None else ("201" if verb == "POST" else "200")
        self._metrics.github_requests.labels(operation, status).inc()
        return headers, data

    async def ensure_labels(self, labels: Iterable[LabelSpec]) -> None:
        existing: set[str] = set()
        for page in range(1, 11):
            _, data = await self._request(
                "list_labels",
                "GET",
                f"{self._repo_path}/labels",
                parameters={"per_page": 100, "page": page},
            )
            existing.update(str(item["name"]).lower() for item in data or [])
            if not data or len(data) < 100:
                break
        for spec in labels:
            if spec.name.lower() in existing:
                continue
            try:
                await self._request(
                    "create_label",
                    "POST",
                    f"{self._repo_path}/labels",
                    input={"name": spec.name, "color": spec.color, "description": spec.description},
                )
            except GitHubError as error:
                if error.status != 422:  # 422: someone created it meanwhile
                    raise
            log.info("github_label_created", label=spec.name)

    async def create_issue(self, title: str, body: str, labels: list[str]) -> CreatedIssue:
        headers, data = await self._request(
            "create_issue",
            "POST",
            f"{self._repo_path}/issues",
            input={"title": title, "body": body, "labels": labels},
        )
        return CreatedIssue(
            number=int(data["number"]), url=str(data["html_url"]), etag=headers.get("etag")
        )

    async def get_issue(self, number: int, etag: str | None) -> RemoteIssue | None:
        headers = {"If-None-Match": etag} if etag else None
        response_headers, data = await self._request(
            "get_issue", "GET", f"{self._repo_path}/issues/{number}", headers=headers
        )
        return None if data is None else _remote(data, response_headers.get("etag"))

    async def edit_issue(self, number: int, fields: dict[str, str]) -> str | None:
        headers, _ = await self._request(
            "edit_issue", "PATCH", f"{self._repo_path}/issues/{number}", input=fields
        )
        etag = headers.get("etag")
        return str(etag) if etag else None

    async def add_label(self, number: int, label: str) -> None:
        await self._request(
            "add_label",
            "POST",
            f"{self._repo_path}/issues/{number}/labels",
            input={"labels": [label]},
        )

    async def remove_label(self, number: int, label: str) -> None:
        try:
            await self._request(
                "remove_label",
                "DELETE",
                f"{self._repo_path}/issues/{number}/labels/{quote(label, safe='')}",
            )
        except GitHubError as error:
            if error.status != 404:
                raise

    async def create_comment(self, number: int, body: str) -> None:
        await self._request(
            "create_comment",
            "POST",
            f"{self._repo_path}/issues/{number}/comments",
            input={"body": body},
        )

    async def find_issue(self, marker: str) -> RemoteIssue | None:
        for page in range(1, _LIST_PAGES + 1):
            listed = await self.list_issues(page)
            for issue in listed.issues:
                if marker in issue.body:
                    return issue
            if listed.last:
                break
        return None

    async def list_issues(self, page: int, *, oldest_first: bool = False) -> IssuePage:
        _, data = await self._request(
            "list_issues",
            "GET",
            f"{self._repo_path}/issues",
            parameters={
                "labels": "incident-bridge",
                "state": "all",
                "sort": "created",
                "direction": "asc" if oldest_first else "desc",
                "per_page": 100,
                "page": page,
            },
        )
        items = list(data or [])
        return IssuePage(
            issues=[_remote(item, None) for item in items if "pull_request" not in item],
            last=len(items) < 100,  # judged before pull requests are dropped
        )

    async def find_comment(self, number: int, marker: str, since: datetime) -> bool:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for page in range(1, _LIST_PAGES + 1):
            _, data = await self._request(
                "list_comments",
                "GET",
                f"{self._repo_path}/issues/{number}/comments",
                parameters={"since": stamp, "per_page": 100, "page": page},
            )
            if any(marker in str(item.get("body") or "") for item in data or []):
                return True
            if not data or len(data) < 100:
                break
        return False

    async def whoami(self) -> str | None:
        if self._app is None:
            _, data = await self._request("get_user", "GET", "/user")
            login = _login(data)
        else:
            async with self._lock:  # one request at a time, like every other
                login = await self._app_bot_login(self._app)
        if not login:
            raise GitHubError("GitHub: the account answer carries no login", retryable=True)
        return login

    async def _app_bot_login(self, app: GitHubAppAuth) -> str | None:
        """``GET /app`` with the App's JWT: its ``slug``, whose bot account is ``<slug>[bot]``."""
        now = self._clock().timestamp()
        if now < self._blocked_until:
            raise GitHubError(
                "GitHub rate-limit window: not calling before it ends",
                retryable=True,
                retry_after=self._blocked_until - now,
            )
        try:
            bearer = app.app_jwt()
        except Exception as error:  # any failure to sign is the key's: never show its text
            raise AppTokenRefused(
                f"GitHub App: the private key cannot sign the App's JWT ({type(error).__name__})"
            ) from None
        requester = self._gh.requester.withAuth(github.Auth.AppAuthToken(bearer))

        def get() -> Any:
            try:
                _, data = requester.requestJsonAndCheck(
                    "GET", "/app", headers={"Accept": "application/vnd.github+json"}
                )
                return data
            finally:
                requester.close()

        try:
            data = await _off_loop(get)
        except GithubException as error:
            self._metrics.github_requests.labels("get_app", str(error.status)).inc()
            raise classify_github_exception(error, now) from None
        except requests.RequestException as error:
            self._metrics.github_requests.labels("get_app", "error").inc()
            raise GitHubError(
                f"GitHub unreachable: {type(error).__name__}", retryable=True
            ) from None
        self._metrics.github_requests.labels("get_app", "200").inc()
        slug = data.get("slug") if isinstance(data, dict) else None
        return f"{slug}[bot]" if isinstance(slug, str) and slug else None

    async def list_comments(self, number: int, since: datetime) -> list[RemoteComment]:
        stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        comments: list[RemoteComment] = []
        for page in range(1, _LIST_PAGES + 1):
            _, data = await self._request(
                "list_comments",
                "GET",
                f"{self._repo_path}/issues/{number}/comments",
                parameters={"since": stamp, "per_page": 100, "page": page},
            )
            for item in data or []:
                comments.append(
                    RemoteComment(
                        id=int(item.get("id") or 0),
                        author=_login(item.get("user")) or "",
                        body=str(item.get("body") or ""),
                        created_at=_github_time(item.get("created_at")),
                        author_type=_user_type(item.get("user")),
                    )
                )
            if not data or len(data) < 100:
                break
        return comments

    async def issue_events(self, number: int) -> list[IssueEvent]:
        events: list[IssueEvent] = []
        for page in range(1, _LIST_PAGES + 1):
            _, data = await self._request(
                "list_events",
                "GET",
                f"{self._repo_path}/issues/{number}/events",
                parameters={"per_page": 100, "page": page},
            )
            for item in data or []:
                label = item.get("label")
                events.append(
                    IssueEvent(
                        id=int(item.get("id") or 0),
                        event=str(item.get("event") or ""),
                        actor=_login(item.get("actor")),
                        created_at=_github_time(item.get("created_at")),
                        label=str(label["name"]) if isinstance(label, dict) else None,
                        assignee=_login(item.get("assignee")),
                        actor_type=_user_type(item.get("actor")),
                    )
                )
            if not data or len(data) < 100:
                break
        return events

    async def open_incident_issues(self, etag: str | None) -> ListedIssues | None:
        headers, data = await self._request(
            "list_open_incidents",
            "GET",
            f"{self._repo_path}/issues",
            parameters={
                "labels": "incident",
                "state": "open",
                "sort": "updated",
                "direction": "desc",
                "per_page": 100,
            },
            headers={"If-None-Match": etag} if etag else None,
        )
        if data is None:
            return None
        issues = [_remote(item, None) for item in data if "pull_request" not in item]
        new_etag = headers.get("etag")
        return ListedIssues(issues=issues, etag=str(new_etag) if new_etag else None)


class DryRunTracker:
    """No GitHub credentials: log every action the bridge would take, take none."""

    repository = DRY_RUN_REPOSITORY

    def __init__(self) -> None:
        self._next = 0

    async def ensure_labels(self, labels: Iterable[LabelSpec]) -> None:
        log.info("dry_run", action="ensure_labels", labels=sorted(spec.name for spec in labels))

    async def create_issue(self, title: str, body: str, labels: list[str]) -> CreatedIssue:
        self._next += 1
        log.info("dry_run", action="create_issue", title=title, labels=labels, body_chars=len(body))
        return CreatedIssue(number=self._next, url="", etag=None)

    async def get_issue(self, number: int, etag: str | None) -> RemoteIssue | None:
        return None  # nothing changed it: there is no issue

    async def edit_issue(self, number: int, fields: dict[str, str]) -> str | None:
        shown = {k: (v if k != "body" else f"<{len(v)} chars>") for k, v in fields.items()}
        log.info("dry_run", action="edit_issue", issue=number, fields=shown)
        return None

    async def add_label(self, number: int, label: str) -> None:
        log.info("dry_run", action="add_label", issue=number, label=label)

    async def remove_label(self, number: int, label: str) -> None:
        log.info("dry_run", action="remove_label", issue=number, label=label)

    async def create_comment(self, number: int, body: str) -> None:
        log.info("dry_run", action="create_comment", issue=number, body_chars=len(body))

    async def find_issue(self, marker: str) -> RemoteIssue | None:
        return None  # nothing was ever created

    async def find_comment(self, number: int, marker: str, since: datetime) -> bool:
        return False

    async def list_issues(self, page: int, *, oldest_first: bool = False) -> IssuePage:
        return IssuePage(issues=[], last=True)  # nothing was ever created

    async def whoami(self) -> str | None:
        return None  # no account: the bridge acts as nobody

    async def list_comments(self, number: int, since: datetime) -> list[RemoteComment]:
        return []

    async def issue_events(self, number: int) -> list[IssueEvent]:
        return []

    async def open_incident_issues(self, etag: str | None) -> ListedIssues | None:
        return ListedIssues(issues=[], etag=None)
