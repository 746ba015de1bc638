"""GitHub access behind one small protocol: the real one (PyGithub) and the dry-run one.

PyGithub is synchronous; every call runs in a worker thread, one at a time per token (GitHub
asks integrators not to make concurrent requests with one token). PyGithub is built without
its own retries, pauses or eager fetches: the outbox owns retries, so the request counts in
CONTRACT.md hold. Errors come out as ``GitHubError`` classified retryable or permanent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import github
import requests
import structlog
from github.GithubException import GithubException

from bridge.metrics import Metrics

T = TypeVar("T")
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


class PyGithubTracker:
    """The real GitHub, through PyGithub's requester."""

    def __init__(
        self,
        *,
        api_url: str,
        repository: str,
        auth: github.Auth.Auth,
        timeout: float,
        metrics: Metrics,
    ) -> None:
        self.repository = repository
        self._metrics = metrics
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

    async def _call(self, operation: str, fn: Callable[[], T]) -> T:
        async with self._lock:
            try:
                result = await asyncio.to_thread(fn)
            except GithubException as error:
                self._metrics.github_requests.labels(operation, str(error.status)).inc()
                raise classify_github_exception(error, time.time()) from None
            except requests.RequestException as error:
                self._metrics.github_requests.labels(operation, "error").inc()
                sent = not _not_sent(error)
                raise GitHubError(
                    f"GitHub unreachable: {type(error).__name__}",
                    retryable=True,
                    outcome_unknown=sent,
                ) from None
        return result

    def _request(self, verb: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        headers, data = self._gh.requester.requestJsonAndCheck(verb, path, **kwargs)
        return headers, data

    async def _json(
        self, operation: str, verb: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, Any], Any]:
        headers, data = await self._call(operation, lambda: self._request(verb, path, **kwargs))
        status = "304" if verb == "GET" and data is None else ("201" if verb == "POST" else "200")
        self._metrics.github_requests.labels(operation, status).inc()
        return headers, data

    async def ensure_labels(self, labels: Iterable[LabelSpec]) -> None:
        existing: set[str] = set()
        page = 1
        while True:
            _, data = await self._json(
                "list_labels",
                "GET",
                f"{self._repo_path}/labels",
                parameters={"per_page": 100, "page": page},
            )
            existing.update(str(item["name"]).lower() for item in data or [])
            if not data or len(data) < 100:
                break
            page += 1
        for spec in labels:
            if spec.name.lower() in existing:
                continue
            try:
                await self._json(
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
        headers, data = await self._json(
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
        response_headers, data = await self._json(
            "get_issue", "GET", f"{self._repo_path}/issues/{number}", headers=headers
        )
        if data is None:
            return None
        return RemoteIssue(
            number=number,
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            state=str(data.get("state") or "open"),
            labels=frozenset(str(label["name"]) for label in data.get("labels") or []),
            etag=response_headers.get("etag"),
        )

    async def edit_issue(self, number: int, fields: dict[str, str]) -> str | None:
        headers, _ = await self._json(
            "edit_issue", "PATCH", f"{self._repo_path}/issues/{number}", input=fields
        )
        etag = headers.get("etag")
        return str(etag) if etag else None

    async def add_label(self, number: int, label: str) -> None:
        await self._json(
            "add_label",
            "POST",
            f"{self._repo_path}/issues/{number}/labels",
            input={"labels": [label]},
        )

    async def remove_label(self, number: int, label: str) -> None:
        try:
            await self._json(
                "remove_label",
                "DELETE",
                f"{self._repo_path}/issues/{number}/labels/{quote(label, safe='')}",
            )
        except GitHubError as error:
            if error.status != 404:
                raise

    async def create_comment(self, number: int, body: str) -> None:
        await self._json(
            "create_comment",
            "POST",
            f"{self._repo_path}/issues/{number}/comments",
            input={"body": body},
        )


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
