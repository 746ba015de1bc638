"""GitHub access behind one small protocol: the real one (PyGithub) and the dry-run one.

PyGithub is synchronous; every call runs in a worker thread, one at a time per token (GitHub
asks integrators not to make concurrent requests with one token). PyGithub is built without
its own retries, pauses or eager fetches: the outbox owns retries, so the request counts in
CONTRACT.md hold. Errors come out as ``GitHubError`` classified retryable or permanent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import github
import requests
import structlog
from github.GithubException import GithubException

from bridge.clock import Clock
from bridge.metrics import Metrics

log = structlog.get_logger(__name__)

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


class GitHubError(Exception):
    """A failed GitHub call, classified for the outbox."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


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


def _retry_after(headers: dict[str, Any], now: float) -> float | None:
    """Seconds to wait from ``Retry-After`` or an exhausted ``x-ratelimit-*`` window."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
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


def _remote(data: dict[str, Any], etag: str | None) -> RemoteIssue:
    return RemoteIssue(
        number=int(data["number"]),
        url=str(data.get("html_url") or ""),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        state=str(data.get("state") or "open"),
        labels=frozenset(str(label["name"]) for label in data.get("labels") or []),
        etag=etag,
    )


_LIST_PAGES = 3  # "recent": the 300 newest bridge issues, or 300 comments since the attempt


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
                )
            mutating = verb == "POST"  # creates are the calls that must not happen twice
            try:
                headers, data = await asyncio.to_thread(
                    self._gh.requester.requestJsonAndCheck, verb, path, **kwargs
                )
            except GithubException as error:
                self._metrics.github_requests.labels(operation, str(error.status)).inc()
                self._observe({k.lower(): v for k, v in (error.headers or {}).items()})
                failure = classify_github_exception(error, now)
                if failure.status in (403, 429) and failure.retry_after is not None:
                    self._blocked_until = max(self._blocked_until, now + failure.retry_after)
                # A 5xx to a create may still have created it: look before repeating.
                failure.outcome_unknown = mutating and error.status >= 500
                raise failure from None
            except requests.RequestException as error:
                self._metrics.github_requests.labels(operation, "error").inc()
                raise GitHubError(
                    f"GitHub unreachable: {type(error).__name__}",
                    retryable=True,
                    outcome_unknown=mutating and not _not_sent(error),
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
            _, data = await self._request(
                "list_issues",
                "GET",
                f"{self._repo_path}/issues",
                parameters={
                    "labels": "incident-bridge",
                    "state": "all",
                    "sort": "created",
                    "direction": "desc",
                    "per_page": 100,
                    "page": page,
                },
            )
            for item in data or []:
                if marker in str(item.get("body") or ""):
                    return _remote(item, None)
            if not data or len(data) < 100:
                break
        return None

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
