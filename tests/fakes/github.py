"""A stateful fake of the slice of the GitHub REST API that incident-bridge uses.

The fake is an aiohttp application served on ``127.0.0.1`` with an ephemeral port. It is
shaped after what PyGithub 2.x actually sends and parses (see ``github/Requester.py``,
``github/PaginatedList.py``, ``github/Issue.py``), and after GitHub's documented behaviour:

* ``Authorization: token <t>`` or ``Bearer <t>``; anything else is a 401.
* Issues, comments and repository labels with GitHub's JSON shapes; labels used on an
  issue that do not exist yet are auto-created (colour ``ededed``); label names are
  case-insensitive.
* GitHub's error bodies: ``{"message", "documentation_url", "status"}`` (+ ``errors`` on 422).
* Pagination with ``per_page``/``page`` and an RFC 5988 ``Link`` header. Like GitHub, the
  links point at ``/repositories/{id}/...`` rather than ``/repos/{owner}/{repo}/...``, so
  both URL forms are served.
* Strong ``ETag`` on every ``GET`` 200; ``If-None-Match`` → 304 with an empty body, which
  does not count against the rate limit.
* ``x-ratelimit-*`` headers on every response.
* Optionally GitHub's rate limits, enforced (off by default; :meth:`FakeGitHub.enforce_limits`,
  :class:`RateLimits`): the secondary limit on content creation (80 writes a minute, 500 an
  hour, sliding windows by the fake's clock; 403 with ``Retry-After``), the concurrency limit
  (100 requests in flight) and the primary limit (5,000 requests an hour; 403 with
  ``x-ratelimit-remaining: 0`` until ``x-ratelimit-reset``). A refused request is not applied.
* Optionally a GitHub App (``app_id``, ``app_public_key_pem``, ``installation_id``):
  ``POST /app/installations/{id}/access_tokens`` checks the App's RS256 JWT (PyJWT, against the
  fake's clock) and mints a ``ghs_…`` installation token that the REST API accepts until it
  expires (``token_lifetime``, an hour by default); an expired one gets 401 ``Bad credentials``.
* Optionally the whole API under a path prefix, as GitHub Enterprise Server serves it
  (``prefix="/api/v3"``): :attr:`FakeGitHub.base_url` then ends with the prefix.
* Each issue's events (``GET …/issues/{n}/events``: ``labeled``, ``unlabeled``, ``assigned``,
  ``unassigned``, ``closed``, ``reopened``, each with its ``actor``), recorded for the API's own
  changes (the token's account) and for the ``human_*`` actions alike.

Besides HTTP, tests get a request log, direct state access, "human" actions that change state
the way a person using the web UI would, and fault injection (:meth:`FakeGitHub.inject`,
:attr:`FakeGitHub.down`).

Everything runs on the test's event loop; PyGithub is synchronous and must be driven from a
worker thread (``asyncio.to_thread``), exactly as the product does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes.loopback import Fault, LoopbackServer, with_faults

__all__ = [
    "AppKey",
    "FakeComment",
    "FakeGitHub",
    "FakeIssue",
    "FakeIssueEvent",
    "FakeLabel",
    "FakeRepo",
    "FakeUser",
    "GitHubFault",
    "RateLimits",
    "RecordedRequest",
    "iter_link_header",
    "make_app_key",
]

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DOCS_URL = "https://docs.github.com/rest"
MAX_TITLE_LENGTH = 256
MAX_BODY_LENGTH = 65536
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
AUTO_LABEL_COLOR = "ededed"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
STATE_REASONS = frozenset({"completed", "not_planned", "reopened", "duplicate"})

_COLOR_RE = re.compile(r"^[0-9a-fA-F]{6}$")
_TOKEN_ALPHABET = string.ascii_letters + string.digits
MAX_JWT_LIFETIME = 600  # GitHub refuses an App JWT whose exp is more than 10 minutes out
JWT_CLOCK_LEEWAY = 60  # GitHub tolerates this much clock drift on iat

RATE_LIMITS_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
PRIMARY_WINDOW = 3600  # seconds: the primary limit is per hour, from the window's first request
CONTENT_MINUTE = 60.0
CONTENT_HOUR = 3600.0
# What the middleware and the limit checks leave on the aiohttp request for each other.
_CHARGED = web.RequestKey("fake_github_charged", bool)  # counts against the primary limit
_LIMITED = web.RequestKey("fake_github_limited", str)  # "primary"/"secondary": refused by it
_ARRIVED_WITH = web.RequestKey("fake_github_arrived_with", int)  # in flight on arrival, itself too


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class FakeUser:
    """A GitHub account (``type`` is ``"User"``, ``"Bot"`` or ``"Organization"``)."""

    login: str
    id: int
    type: str = "User"


@dataclass
class FakeLabel:
    """A repository label; issues hold references to these objects."""

    id: int
    name: str
    color: str = AUTO_LABEL_COLOR
    description: str | None = None
    default: bool = False


@dataclass
class FakeComment:
    """An issue comment."""

    id: int
    issue_number: int
    body: str
    user: FakeUser
    created_at: datetime
    updated_at: datetime


@dataclass
class FakeIssueEvent:
    """One entry of an issue's events (``GET …/issues/{n}/events``): who did what, when."""

    id: int
    event: str  # labeled | unlabeled | assigned | unassigned | closed | reopened
    actor: FakeUser
    created_at: datetime
    label: FakeLabel | None = None
    assignee: FakeUser | None = None


@dataclass
class FakeIssue:
    """An issue. ``comments`` holds the comment objects (the JSON ``comments`` is the count)."""

    id: int
    number: int
    title: str
    body: str | None
    user: FakeUser
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: FakeUser | None = None
    labels: list[FakeLabel] = field(default_factory=list)
    assignees: list[FakeUser] = field(default_factory=list)
    comments: list[FakeComment] = field(default_factory=list)
    events: list[FakeIssueEvent] = field(default_factory=list)

    @property
    def label_names(self) -> list[str]:
        """Names of the labels on this issue, in the order they were added."""
        return [label.name for label in self.labels]

    def has_label(self, name: str) -> bool:
        """Whether the issue carries ``name`` (case-insensitive, like GitHub)."""
        return any(label.name.lower() == name.lower() for label in self.labels)

    def _fingerprint(self) -> tuple[Any, ...]:
        """Everything whose change bumps ``updated_at``."""
        return (
            self.title,
            self.body,
            self.state,
            self.state_reason,
            tuple(label.id for label in self.labels),
            tuple(user.login for user in self.assignees),
            len(self.comments),
        )


@dataclass
class FakeRepo:
    """A repository: its issues (by number) and labels (by lower-cased name)."""

    id: int
    owner: str
    name: str
    issues: dict[int, FakeIssue] = field(default_factory=dict)
    labels: dict[str, FakeLabel] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    def find_label(self, name: str) -> FakeLabel | None:
        """The label called ``name`` (case-insensitive), if it exists."""
        return self.labels.get(name.lower())


@dataclass
class RecordedRequest:
    """One request as the fake saw it, with the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    body: bytes = b""
    status: int = 0
    rate_limited: str | None = None
    """``"primary"`` or ``"secondary"`` if an enforced limit refused it (see
    :meth:`FakeGitHub.enforce_limits`), else None."""

    @property
    def is_write(self) -> bool:
        """Whether this was a POST/PATCH/PUT/DELETE."""
        return self.method in WRITE_METHODS


@dataclass
class GitHubFault(Fault):
    """An injected response (see :class:`fakes.loopback.Fault`) in GitHub's error shape."""

    def response(self) -> web.Response:
        """The response to send in place of the real one."""
        headers = dict(self.headers)
        if self.status in (204, 304):
            return web.Response(status=self.status, headers=headers)
        body = self.body
        if body is None:
            body = _error_body(self.status, _reason(self.status))
        return _json_response(body, status=self.status, headers=headers)


@dataclass
class RateLimits:
    """GitHub's limits as :meth:`FakeGitHub.enforce_limits` enforces them (GitHub's defaults;
    tests use small numbers).

    ``content_per_minute``/``content_per_hour``: the secondary limit on content creation;
    POST/PATCH/PUT/DELETE requests to issues, comments and labels count, in sliding windows by
    the fake's clock. ``concurrent``: the secondary limit on requests in flight at once.
    ``primary_per_hour``: the primary limit; every authenticated request counts.
    ``count_human_actions``: also charge the ``human_*`` helpers to the content windows (GitHub
    counts actions taken in the web UI too); they are never refused.
    """

    content_per_minute: int = 80
    content_per_hour: int = 500
    primary_per_hour: int | None = None
    """None: the fake's ``rate_limit`` (5,000 unless the constructor was given another)."""
    concurrent: int = 100
    count_human_actions: bool = False

    def __post_init__(self) -> None:
        numbers = (
            self.content_per_minute,
            self.content_per_hour,
            1 if self.primary_per_hour is None else self.primary_per_hour,
            self.concurrent,
        )
        if any(n < 1 for n in numbers):
            raise ValueError(f"rate limits must be at least 1, got {self!r}")


class _ApiError(Exception):
    """Raised by handlers; turned into a GitHub-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        documentation_url: str = DOCS_URL,
        headers: dict[str, str] | None = None,
        with_status: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.documentation_url = documentation_url
        self.headers = headers
        self.with_status = with_status

    def response(self) -> web.Response:
        body = _error_body(self.status, self.message, self.errors, self.documentation_url)
        if not self.with_status:
            del body["status"]
        return _json_response(body, status=self.status, headers=self.headers)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_body(
    status: int,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    documentation_url: str = DOCS_URL,
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors is not None:
        body["errors"] = errors
    body["documentation_url"] = documentation_url
    body["status"] = str(status)
    return body


def _json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _not_found() -> _ApiError:
    return _ApiError(404, "Not Found")


def _validation_failed(
    resource: str, field_name: str, code: str, message: str | None = None
) -> _ApiError:
    error: dict[str, Any] = {"resource": resource, "code": code, "field": field_name}
    if message is not None:
        error["message"] = message
    return _ApiError(422, "Validation Failed", errors=[error])


def _invalid_request(detail: str) -> _ApiError:
    return _ApiError(422, f"Invalid request.\n\n{detail}")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_since(raw: str | None, resource: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _validation_failed(resource, "since", "invalid") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison, as GitHub does for conditional GETs."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AppKey:
    """A GitHub App's RSA key pair, PEM: the private half for the bridge, the public one for
    the fake."""

    private_pem: str
    public_pem: str


def make_app_key() -> AppKey:
    """A fresh 2048-bit RSA key pair, the private half in the PKCS#1 PEM GitHub hands out."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return AppKey(private_pem=private.decode(), public_pem=public.decode())


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeGitHub(LoopbackServer):
    """Fake GitHub REST server; see the module docstring.

    Usage::

        async with FakeGitHub(token="t0ken", repos=["acme/incidents"]) as fake:
            gh = github.Github(auth=github.Auth.Token("t0ken"), base_url=fake.base_url, ...)

    ``clock`` returns an aware ``datetime`` and is used for all timestamps (truncated to
    whole seconds, as GitHub reports them); pass a controllable one to test time logic.

    ``prefix`` serves the API under a path, as GitHub Enterprise Server does (``"/api/v3"``);
    :attr:`base_url` includes it and so do the URLs in answers. The request log keeps the full
    path, prefix included.

    With ``app_id``, ``app_public_key_pem`` and ``installation_id`` the fake is also a GitHub App
    installed on the repositories: an App JWT (RS256, ``iss`` the App id, ``exp`` at most
    10 minutes after ``iat`` and in the future, all by ``clock``) buys an installation token at
    ``POST /app/installations/{id}/access_tokens``, valid for ``token_lifetime`` (seconds or a
    timedelta). The REST API accepts live installation tokens as well as ``token`` (pass
    ``token=""`` to accept installation tokens only).

    Rate limits. By default the fake only reports the primary limit: ``x-ratelimit-*`` headers
    (``rate_limit`` a wall-clock hour, every answer but a 304 counts) and a 403 once
    :attr:`rate_limit_remaining` is 0 (tests set it). With ``enforce_limits=True`` (GitHub's
    numbers; the primary one is ``rate_limit``) or ``enforce_limits=RateLimits(...)``, or later
    :meth:`enforce_limits`, it enforces GitHub's limits, by ``clock``:

    * Secondary, content creation: a POST/PATCH/PUT/DELETE to issues, comments or labels beyond
      ``content_per_minute`` in the last 60 s or ``content_per_hour`` in the last hour is refused
      with 403 ``You have exceeded a secondary rate limit…`` and ``Retry-After`` (seconds until
      the oldest counted write leaves the window that is full, at least 1). Every write that
      gets past authentication and the limits counts, whatever its answer. With
      ``count_human_actions`` the ``human_*`` helpers are charged to the same windows (never
      refused), as GitHub counts actions in the web UI.
    * Secondary, concurrency: a request arriving while ``concurrent`` are in flight is refused
      the same way, without ``Retry-After`` (GitHub then says "wait at least a minute").
    * Primary: every authenticated request but a 304 counts against ``primary_per_hour``; the
      first hour starts when enforcement does, the next with the first request after it ended
      (``x-ratelimit-reset``, epoch seconds by ``clock``). Once none remain: 403 ``API rate
      limit exceeded for user ID …`` (``installation ID …`` with an installation token),
      ``x-ratelimit-remaining: 0``, no ``Retry-After``. Requests that fail authentication and
      the App endpoints do not count.

    A refused request is not applied. Refusals are counted in :attr:`secondary_limit_hits` and
    :attr:`primary_limit_hits` and marked in the request log (:attr:`RecordedRequest.rate_limited`,
    :meth:`limited_calls`). Injected faults answer before the limits are checked (with
    ``apply_first``, after). :meth:`disable_limits` goes back to the default.
    """

    def __init__(
        self,
        token: str = "t0ken",  # noqa: S107 - a fake token for a fake server
        repos: Iterable[str] = ("acme/incidents",),
        *,
        bot_login: str = "incident-bridge[bot]",
        html_base: str = "https://github.example",
        clock: Callable[[], datetime] | None = None,
        rate_limit: int = 5000,
        prefix: str = "",
        app_id: int | None = None,
        app_public_key_pem: str | bytes | None = None,
        installation_id: int | None = None,
        token_lifetime: timedelta | float = 3600.0,
        enforce_limits: bool | RateLimits = False,
    ) -> None:
        app_settings = (app_id, app_public_key_pem, installation_id)
        if any(value is not None for value in app_settings) and None in app_settings:
            raise ValueError("app_id, app_public_key_pem and installation_id go together")
        self.token = token
        """Accepted token; may be changed at any time (e.g. to simulate rotation)."""
        self.prefix = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        """Path the API is served under (``""`` or e.g. ``"/api/v3"``)."""
        self.app_id = app_id
        self.app_public_key_pem = app_public_key_pem
        """The App's public key; may be changed at any time (e.g. to simulate a key rotation)."""
        self.installation_id = installation_id
        self.token_lifetime = (
            token_lifetime
            if isinstance(token_lifetime, timedelta)
            else timedelta(seconds=token_lifetime)
        )
        """How long a newly minted installation token is valid."""
        self.installation_tokens: dict[str, datetime] = {}
        """Every installation token minted, with its expiry."""
        self.tokens_minted = 0
        """Number of installation tokens minted."""
        self.html_base = html_base.rstrip("/")
        self.down = False
        """When true, every request is answered with 503."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.faults: list[GitHubFault] = []
        """Pending injected faults (exhausted ones are removed)."""
        self.internal_errors: list[BaseException] = []
        """Bugs in the fake itself (answered with 500); tests may assert this stays empty."""
        self._rate_limit = rate_limit
        self.rate_limit_limit = rate_limit
        self.rate_limit_remaining = rate_limit
        self.rate_limit_reset = int(time.time()) + 3600
        self.limits: RateLimits | None = None
        """The limits being enforced (:meth:`enforce_limits`), or None (the default)."""
        self.secondary_limit_hits = 0
        """Requests refused by an enforced secondary limit (content creation or concurrency)."""
        self.primary_limit_hits = 0
        """Requests refused by the enforced primary limit."""
        self.content_writes: deque[float] = deque()
        """When (clock, epoch seconds) each write counted against the content windows was made,
        within the last hour, oldest first."""
        self.in_flight = 0
        """Requests being answered right now."""

        self._clock = clock or _utcnow
        self._repo_ids = itertools.count(100_001)
        self._user_ids = itertools.count(1_001)
        self._issue_ids = itertools.count(1_000_000_001)
        self._comment_ids = itertools.count(2_000_000_001)
        self._label_ids = itertools.count(3_000_000_001)
        self._event_ids = itertools.count(4_000_000_001)
        self._users: dict[str, FakeUser] = {}
        self._repos: dict[str, FakeRepo] = {}
        self.bot = self._user(bot_login, "Bot")
        """The account the token belongs to (``GET /user``)."""
        for full_name in repos:
            self.add_repo(full_name)

        self.app = self._build_app()
        if isinstance(enforce_limits, RateLimits):
            self._set_limits(enforce_limits)
        elif enforce_limits:
            self._set_limits(RateLimits())

    # ---------------------------------------------------------------- lifecycle

    def _url(self, host: str, port: int) -> str:
        """``http://127.0.0.1:PORT`` (plus the prefix), to pass as PyGithub's ``base_url``."""
        return f"http://{host}:{port}{self.prefix}"

    # ---------------------------------------------------------------- request log

    def calls(
        self, method: str | None = None, path_contains: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and a path substring."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper())
            and (path_contains is None or path_contains in r.path)
        ]

    def count_writes(self) -> int:
        """Number of POST/PATCH/PUT/DELETE requests recorded."""
        return sum(1 for r in self.requests if r.is_write)

    def reset_log(self) -> None:
        """Forget recorded requests (state is untouched)."""
        self.requests.clear()

    def limited_calls(self, kind: str | None = None) -> list[RecordedRequest]:
        """Recorded requests an enforced limit refused (``kind``: ``"primary"`` or
        ``"secondary"``; None for both)."""
        return [
            r
            for r in self.requests
            if r.rate_limited is not None and (kind is None or r.rate_limited == kind)
        ]

    # ---------------------------------------------------------------- rate limits

    def enforce_limits(
        self,
        *,
        content_per_minute: int = 80,
        content_per_hour: int = 500,
        primary_per_hour: int | None = None,
        concurrent: int = 100,
        count_human_actions: bool = False,
    ) -> RateLimits:
        """Enforce GitHub's rate limits from now on (see the class docstring); the numbers
        default to GitHub's, ``primary_per_hour`` to the constructor's ``rate_limit``.

        Starts afresh: empty content windows, a full primary budget in a new hour by the clock.
        The hit counters are kept.
        """
        return self._set_limits(
            RateLimits(
                content_per_minute=content_per_minute,
                content_per_hour=content_per_hour,
                primary_per_hour=primary_per_hour,
                concurrent=concurrent,
                count_human_actions=count_human_actions,
            )
        )

    def disable_limits(self) -> None:
        """Stop enforcing; back to the default (reported primary limit, wall-clock hour)."""
        self.limits = None
        self.content_writes.clear()
        self.rate_limit_limit = self.rate_limit_remaining = self._rate_limit
        self.rate_limit_reset = int(time.time()) + PRIMARY_WINDOW

    def _set_limits(self, limits: RateLimits) -> RateLimits:
        if limits.primary_per_hour is None:
            limits = replace(limits, primary_per_hour=self._rate_limit)
        assert limits.primary_per_hour is not None
        self.limits = limits
        self.content_writes.clear()
        self.rate_limit_limit = limits.primary_per_hour
        self.rate_limit_remaining = limits.primary_per_hour
        self.rate_limit_reset = int(self._clock().timestamp()) + PRIMARY_WINDOW
        return limits

    def _content_retry_after(self, now: float) -> int | None:
        """None if one more content write fits both windows at ``now``, else the whole seconds
        (at least 1) until it does."""
        limits = self.limits
        assert limits is not None
        writes = self.content_writes
        while writes and writes[0] <= now - CONTENT_HOUR:
            writes.popleft()
        in_minute = [t for t in writes if t > now - CONTENT_MINUTE]
        free_at = now
        # With k writes in a window that allows n, the (k - n + 1) oldest have to leave it.
        if len(in_minute) >= limits.content_per_minute:
            oldest = in_minute[len(in_minute) - limits.content_per_minute]
            free_at = max(free_at, oldest + CONTENT_MINUTE)
        if len(writes) >= limits.content_per_hour:
            oldest = writes[len(writes) - limits.content_per_hour]
            free_at = max(free_at, oldest + CONTENT_HOUR)
        if free_at <= now:
            return None
        return max(1, math.ceil(free_at - now))

    def _charge_human(self) -> None:
        """A person's write through the web UI: counted, never refused."""
        if self.limits is not None and self.limits.count_human_actions:
            self.content_writes.append(self._clock().timestamp())

    def _roll_primary_window(self) -> None:
        now = int(self._clock().timestamp())
        if now >= self.rate_limit_reset:
            self.rate_limit_reset = now + PRIMARY_WINDOW
            self.rate_limit_remaining = self.rate_limit_limit

    # ---------------------------------------------------------------- fault injection

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        apply_first: bool = False,
        delay: float = 0.0,
        drop: bool = False,
    ) -> GitHubFault:
        """Answer the next ``times`` requests matching ``method`` (or ``"*"``) and
        ``path_regex`` (searched in the path) with ``status``/``body``/``headers``.

        ``body`` defaults to GitHub's error shape with the status' reason phrase. With
        ``apply_first=True`` the request is processed first, so its state change happens
        ("GitHub applied it but the response was lost"). Faults are matched in injection
        order and the returned :class:`GitHubFault` can be inspected (``hits``).

        ``delay`` waits that many seconds before answering (after applying, with
        ``apply_first``): a slow GitHub. ``drop`` closes the connection instead of answering
        ("the connection dropped after GitHub applied the change" with ``apply_first``).
        ``status=0`` keeps the real response (useful with ``delay``).
        """
        fault = GitHubFault(
            method=method.upper(),
            path_regex=re.compile(path_regex),
            status=status,
            body=body,
            headers=dict(headers or {}),
            times=times,
            apply_first=apply_first,
            delay=delay,
            drop=drop,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Drop all pending injected faults."""
        self.faults.clear()

    # ---------------------------------------------------------------- GitHub App

    def installation_token_live(self, token: str) -> bool:
        """Whether ``token`` is an installation token the fake minted and that has not expired."""
        expires_at = self.installation_tokens.get(token)
        return expires_at is not None and self._clock() < expires_at

    def expire_installation_tokens(self) -> None:
        """Make every installation token minted so far expire now (as if GitHub revoked them)."""
        now = self._clock()
        for token, expires_at in self.installation_tokens.items():
            self.installation_tokens[token] = min(expires_at, now)

    # ---------------------------------------------------------------- direct state access

    def add_repo(self, full_name: str) -> FakeRepo:
        """Create an (empty) repository ``owner/name``; returns the existing one if present."""
        key = full_name.lower()
        if key not in self._repos:
            owner, sep, name = full_name.partition("/")
            if not sep or not owner or not name or "/" in name:
                raise ValueError(f"repository must be 'owner/name', got {full_name!r}")
            self._repos[key] = FakeRepo(id=next(self._repo_ids), owner=owner, name=name)
        return self._repos[key]

    def repo(self, full_name: str) -> FakeRepo:
        """The repository state; ``KeyError`` if unknown."""
        return self._repos[full_name.lower()]

    def issues(self, repo: str) -> list[FakeIssue]:
        """All issues of ``repo`` ordered by number."""
        return sorted(self.repo(repo).issues.values(), key=lambda i: i.number)

    def issue(self, repo: str, number: int) -> FakeIssue:
        """One issue; ``KeyError`` if it does not exist."""
        return self.repo(repo).issues[number]

    def comments(self, repo: str, number: int) -> list[FakeComment]:
        """Comments of an issue, oldest first."""
        return list(self.issue(repo, number).comments)

    def label_names(self, repo: str, number: int) -> list[str]:
        """Names of the labels on an issue."""
        return self.issue(repo, number).label_names

    def labels(self, repo: str) -> list[FakeLabel]:
        """The repository's labels in creation order."""
        return sorted(self.repo(repo).labels.values(), key=lambda label: label.id)

    def add_label(
        self, repo: str, name: str, color: str = AUTO_LABEL_COLOR, description: str | None = None
    ) -> FakeLabel:
        """Create a repository label directly (no request); returns the existing one if any."""
        state = self.repo(repo)
        existing = state.find_label(name)
        if existing is not None:
            return existing
        label = FakeLabel(id=next(self._label_ids), name=name, color=color, description=description)
        state.labels[name.lower()] = label
        return label

    # ---------------------------------------------------------------- human actions
    # With enforced limits and ``count_human_actions`` each one is charged to the content
    # windows (see :class:`RateLimits`).

    def human_create_issue(
        self,
        repo: str,
        title: str,
        body: str | None = None,
        labels: Iterable[str] = (),
        login: str = "alice",
    ) -> FakeIssue:
        """Open an issue as a person would (no request, no validation)."""
        author = self._user(login)
        issue = self._new_issue(self.repo(repo), title, body, list(labels), [], author, author)
        self._charge_human()
        return issue

    def human_edit_body(self, repo: str, number: int, body: str) -> FakeIssue:
        """Replace the issue body, bumping ``updated_at``/ETag if it changed."""
        issue = self.issue(repo, number)
        with self._touching(issue):
            issue.body = body
        self._charge_human()
        return issue

    def human_edit_title(self, repo: str, number: int, title: str) -> FakeIssue:
        """Replace the issue title, bumping ``updated_at``/ETag if it changed."""
        issue = self.issue(repo, number)
        with self._touching(issue):
            issue.title = title
        self._charge_human()
        return issue

    def human_add_label(self, repo: str, number: int, name: str, login: str = "alice") -> FakeIssue:
        """Add a label as ``login`` (auto-created in the repo if missing)."""
        state = self.repo(repo)
        issue = self.issue(repo, number)
        with self._touching(issue):
            self._add_labels(state, issue, [name], self._user(login))
        self._charge_human()
        return issue

    def human_remove_label(
        self, repo: str, number: int, name: str, login: str = "alice"
    ) -> FakeIssue:
        """Remove a label as ``login``; ``KeyError`` if the issue does not have it."""
        issue = self.issue(repo, number)
        if not issue.has_label(name):
            raise KeyError(f"issue {repo}#{number} has no label {name!r}")
        with self._touching(issue):
            self._remove_labels(issue, [name], self._user(login))
        self._charge_human()
        return issue

    def human_assign(
        self, repo: str, number: int, assignee: str, login: str | None = None
    ) -> FakeIssue:
        """Assign ``assignee`` to the issue, as ``login`` (by default the assignee themself)."""
        issue = self.issue(repo, number)
        actor = self._user(login or assignee)
        with self._touching(issue):
            self._set_assignees(issue, [*issue.assignees, self._user(assignee)], actor)
        self._charge_human()
        return issue

    def human_comment(self, repo: str, number: int, body: str, login: str = "alice") -> FakeComment:
        """Comment on an issue as ``login`` (bumps the issue's ``updated_at`` and count)."""
        issue = self.issue(repo, number)
        comment = self._new_comment(issue, body, self._user(login))
        self._charge_human()
        return comment

    def human_close(
        self, repo: str, number: int, state_reason: str = "completed", login: str = "alice"
    ) -> FakeIssue:
        """Close an issue as ``login``."""
        issue = self.issue(repo, number)
        with self._touching(issue):
            self._set_state(issue, "closed", state_reason, self._user(login))
        self._charge_human()
        return issue

    def human_reopen(self, repo: str, number: int, login: str = "alice") -> FakeIssue:
        """Reopen an issue as ``login`` (``state_reason`` becomes ``reopened``)."""
        issue = self.issue(repo, number)
        with self._touching(issue):
            self._set_state(issue, "open", None, self._user(login))
        self._charge_human()
        return issue

    # ---------------------------------------------------------------- state internals

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC).replace(microsecond=0)

    def _user(self, login: str, kind: str = "User") -> FakeUser:
        user = self._users.get(login.lower())
        if user is None:
            user = FakeUser(login=login, id=next(self._user_ids), type=kind)
            self._users[login.lower()] = user
        return user

    @contextmanager
    def _touching(self, issue: FakeIssue) -> Iterator[None]:
        """Bump ``updated_at`` if the block changed anything GitHub would call an update."""
        before = issue._fingerprint()
        yield
        if issue._fingerprint() != before:
            issue.updated_at = self._now()

    def _ensure_label(self, repo: FakeRepo, name: str) -> FakeLabel:
        return self.add_label(repo.full_name, name)

    def _event(
        self,
        issue: FakeIssue,
        event: str,
        actor: FakeUser,
        *,
        label: FakeLabel | None = None,
        assignee: FakeUser | None = None,
    ) -> None:
        issue.events.append(
            FakeIssueEvent(
                id=next(self._event_ids),
                event=event,
                actor=actor,
                created_at=self._now(),
                label=label,
                assignee=assignee,
            )
        )

    def _add_labels(
        self, repo: FakeRepo, issue: FakeIssue, names: Iterable[str], actor: FakeUser | None = None
    ) -> None:
        for name in names:
            if not issue.has_label(name):
                label = self._ensure_label(repo, name)
                issue.labels.append(label)
                self._event(issue, "labeled", actor or self.bot, label=label)

    def _remove_labels(
        self, issue: FakeIssue, names: Iterable[str], actor: FakeUser | None = None
    ) -> None:
        wanted = {name.lower() for name in names}
        for label in [lb for lb in issue.labels if lb.name.lower() in wanted]:
            issue.labels.remove(label)
            self._event(issue, "unlabeled", actor or self.bot, label=label)

    def _set_labels(self, repo: FakeRepo, issue: FakeIssue, names: Iterable[str]) -> None:
        names = list(names)
        keep = {name.lower() for name in names}
        self._remove_labels(issue, [lb.name for lb in issue.labels if lb.name.lower() not in keep])
        self._add_labels(repo, issue, names)

    def _set_assignees(self, issue: FakeIssue, users: list[FakeUser], actor: FakeUser) -> None:
        before = {user.login.lower() for user in issue.assignees}
        after = {user.login.lower() for user in users}
        for user in issue.assignees:
            if user.login.lower() not in after:
                self._event(issue, "unassigned", actor, assignee=user)
        for user in users:
            if user.login.lower() not in before:
                self._event(issue, "assigned", actor, assignee=user)
                before.add(user.login.lower())
        issue.assignees = list({user.login.lower(): user for user in users}.values())

    def _set_state(self, issue: FakeIssue, state: str, reason: str | None, actor: FakeUser) -> None:
        if state == "closed":
            if issue.state != "closed":
                issue.state = "closed"
                issue.closed_at = self._now()
                issue.closed_by = actor
                issue.state_reason = reason or "completed"
                self._event(issue, "closed", actor)
            elif reason is not None:
                issue.state_reason = reason
        elif issue.state != "open":
            issue.state = "open"
            issue.closed_at = None
            issue.state_reason = "reopened"
            self._event(issue, "reopened", actor)

    def _new_issue(
        self,
        repo: FakeRepo,
        title: str,
        body: str | None,
        labels: list[str],
        assignees: list[FakeUser],
        author: FakeUser,
        actor: FakeUser | None = None,
    ) -> FakeIssue:
        now = self._now()
        number = max(repo.issues, default=0) + 1
        issue = FakeIssue(
            id=next(self._issue_ids),
            number=number,
            title=title,
            body=body,
            user=author,
            created_at=now,
            updated_at=now,
        )
        self._set_assignees(issue, assignees, actor or author)
        self._add_labels(repo, issue, labels, actor or author)
        repo.issues[number] = issue
        return issue

    def _new_comment(self, issue: FakeIssue, body: str, author: FakeUser) -> FakeComment:
        now = self._now()
        comment = FakeComment(
            id=next(self._comment_ids),
            issue_number=issue.number,
            body=body,
            user=author,
            created_at=now,
            updated_at=now,
        )
        with self._touching(issue):
            issue.comments.append(comment)
        return comment

    def _find_comment(self, repo: FakeRepo, comment_id: int) -> tuple[FakeIssue, FakeComment]:
        for issue in repo.issues.values():
            for comment in issue.comments:
                if comment.id == comment_id:
                    return issue, comment
        raise _not_found()

    # ---------------------------------------------------------------- JSON shapes

    def _user_json(self, api: str, user: FakeUser) -> dict[str, Any]:
        prefix = {"Bot": "BOT_kgDO", "Organization": "O_kgDO"}.get(user.type, "U_kgDO")
        if user.type == "Bot":
            html_url = f"{self.html_base}/apps/{user.login.removesuffix('[bot]')}"
        else:
            html_url = f"{self.html_base}/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"{prefix}{user.id}",
            "avatar_url": f"https://avatars.github.example/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": f"{api}/users/{quote(user.login)}",
            "html_url": html_url,
            "type": user.type,
            "site_admin": False,
        }

    def _label_json(self, api: str, repo: FakeRepo, label: FakeLabel) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_kwDO{label.id}",
            "url": f"{api}/repos/{repo.full_name}/labels/{quote(label.name, safe='')}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
        }

    def _issue_json(
        self, api: str, repo: FakeRepo, issue: FakeIssue, *, single: bool
    ) -> dict[str, Any]:
        repo_url = f"{api}/repos/{repo.full_name}"
        url = f"{repo_url}/issues/{issue.number}"
        data: dict[str, Any] = {
            "url": url,
            "repository_url": repo_url,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{self.html_base}/{repo.full_name}/issues/{issue.number}",
            "id": issue.id,
            "node_id": f"I_kwDO{issue.id}",
            "number": issue.number,
            "title": issue.title,
            "user": self._user_json(api, issue.user),
            "labels": [self._label_json(api, repo, label) for label in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": self._user_json(api, issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(api, user) for user in issue.assignees],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "closed_at": _iso(issue.closed_at),
            "author_association": "NONE" if issue.user.type == "Bot" else "MEMBER",
            "active_lock_reason": None,
            "body": issue.body,
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if single:
            # Like GitHub, only the single-issue endpoint carries closed_by.
            data["closed_by"] = (
                self._user_json(api, issue.closed_by) if issue.closed_by is not None else None
            )
        return data

    def _comment_json(
        self, api: str, repo: FakeRepo, issue: FakeIssue, comment: FakeComment
    ) -> dict[str, Any]:
        repo_url = f"{api}/repos/{repo.full_name}"
        return {
            "url": f"{repo_url}/issues/comments/{comment.id}",
            "html_url": (
                f"{self.html_base}/{repo.full_name}/issues/{issue.number}#issuecomment-{comment.id}"
            ),
            "issue_url": f"{repo_url}/issues/{issue.number}",
            "id": comment.id,
            "node_id": f"IC_kwDO{comment.id}",
            "user": self._user_json(api, comment.user),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "author_association": "NONE" if comment.user.type == "Bot" else "MEMBER",
            "body": comment.body,
            "performed_via_github_app": None,
        }

    def _repo_json(self, api: str, repo: FakeRepo) -> dict[str, Any]:
        owner = self._user(repo.owner, "Organization")
        return {
            "id": repo.id,
            "node_id": f"R_kgDO{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._user_json(api, owner),
            "html_url": f"{self.html_base}/{repo.full_name}",
            "url": f"{api}/repos/{repo.full_name}",
            "issues_url": f"{api}/repos/{repo.full_name}/issues{{/number}}",
            "labels_url": f"{api}/repos/{repo.full_name}/labels{{/name}}",
            "default_branch": "main",
            "has_issues": True,
            "open_issues_count": sum(1 for i in repo.issues.values() if i.state == "open"),
        }

    # ---------------------------------------------------------------- HTTP plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        router = app.router
        router.add_get(self.prefix + "/user", self._get_user)
        if self.app_id is not None:
            router.add_get(self.prefix + "/app", self._get_app)
            installation = self.prefix + r"/app/installations/{installation_id:\d+}"
            router.add_get(installation, self._get_installation)
            router.add_post(installation + "/access_tokens", self._mint_installation_token)
        for prefix in (
            self.prefix + "/repos/{owner}/{repo}",
            self.prefix + r"/repositories/{repo_id:\d+}",
        ):
            issue = prefix + r"/issues/{number:\d+}"
            comment = prefix + r"/issues/comments/{comment_id:\d+}"
            router.add_get(prefix, self._get_repo)
            router.add_get(prefix + "/issues", self._list_issues)
            router.add_post(prefix + "/issues", self._create_issue)
            router.add_get(comment, self._get_comment)
            router.add_patch(comment, self._edit_comment)
            router.add_delete(comment, self._delete_comment)
            router.add_get(issue, self._get_issue)
            router.add_patch(issue, self._edit_issue)
            router.add_get(issue + "/labels", self._list_issue_labels)
            router.add_post(issue + "/labels", self._add_issue_labels)
            router.add_put(issue + "/labels", self._set_issue_labels)
            router.add_delete(issue + "/labels", self._clear_issue_labels)
            router.add_delete(issue + "/labels/{name:.+}", self._remove_issue_label)
            router.add_get(issue + "/comments", self._list_comments)
            router.add_get(issue + "/events", self._list_issue_events)
            router.add_post(issue + "/comments", self._create_comment)
            router.add_get(prefix + "/labels", self._list_labels)
            router.add_post(prefix + "/labels", self._create_label)
            router.add_get(prefix + "/labels/{name:.+}", self._get_label)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=raw,
        )
        self.requests.append(record)
        bad_json = False
        if raw.strip():
            try:
                record.json = json.loads(raw)
            except ValueError:
                bad_json = True

        self.in_flight += 1
        request[_ARRIVED_WITH] = self.in_flight  # the concurrency limit judges the arrival
        try:
            response = await self._dispatch(request, handler, bad_json)
        finally:
            self.in_flight -= 1
        record.status = response.status
        record.rate_limited = request.get(_LIMITED)
        if self.limits is None:
            self._add_rate_limit_headers(response)
        else:
            self._add_enforced_rate_limit_headers(request, response)
        return response

    async def _dispatch(
        self, request: web.Request, handler: Handler, bad_json: bool
    ) -> web.StreamResponse:
        if self.down:
            return _ApiError(503, "Service Unavailable").response()
        return await with_faults(
            request, self.faults, lambda: self._handle(request, handler, bad_json)
        )

    async def _handle(
        self, request: web.Request, handler: Handler, bad_json: bool
    ) -> web.StreamResponse:
        try:
            app_path = request.path.removeprefix(self.prefix)
            app_endpoint = app_path == "/app" or app_path.startswith("/app/")
            if not app_endpoint:
                self._check_auth(request)  # the App endpoints check the App's JWT instead
            if self.limits is not None:
                if not app_endpoint:
                    self._check_limits(request)
            elif self.rate_limit_remaining <= 0:
                raise _ApiError(
                    403,
                    f"API rate limit exceeded for user ID {self.bot.id}.",
                    documentation_url=RATE_LIMITS_DOCS,
                )
            if bad_json:
                raise _ApiError(400, "Problems parsing JSON")
            return await handler(request)
        except _ApiError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                return _not_found().response()
            return _ApiError(exc.status, exc.reason).response()
        except Exception as exc:
            _log.exception("FakeGitHub internal error on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            return _ApiError(500, f"FakeGitHub internal error: {exc!r}").response()

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise _ApiError(401, "Requires authentication")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        accepted = (self.token and credential == self.token) or self.installation_token_live(
            credential
        )
        if scheme.lower() not in ("token", "bearer") or not accepted:
            raise _ApiError(401, "Bad credentials")

    def _check_limits(self, request: web.Request) -> None:
        """Enforced limits, for an authenticated REST request: refuse it (``_ApiError``, with
        the request marked) or charge it."""
        limits = self.limits
        assert limits is not None
        self._roll_primary_window()
        if self.rate_limit_remaining <= 0:
            self.primary_limit_hits += 1
            request[_LIMITED] = "primary"
            raise _ApiError(
                403,
                f"API rate limit exceeded for {self._principal(request)}.",
                documentation_url=f"{RATE_LIMITS_DOCS}#about-primary-rate-limits",
            )
        request[_CHARGED] = True
        if request[_ARRIVED_WITH] > limits.concurrent:
            raise self._secondary_limit(request, None)
        content = (
            request.method in WRITE_METHODS
            and request.match_info.http_exception is None
            and request.path.removeprefix(self.prefix).startswith(("/repos/", "/repositories/"))
        )
        if content:
            now = self._clock().timestamp()
            retry_after = self._content_retry_after(now)
            if retry_after is not None:
                raise self._secondary_limit(request, retry_after)
            self.content_writes.append(now)

    def _secondary_limit(self, request: web.Request, retry_after: int | None) -> _ApiError:
        self.secondary_limit_hits += 1
        request[_LIMITED] = "secondary"
        return _ApiError(
            403,
            SECONDARY_LIMIT_MESSAGE,
            documentation_url=f"{RATE_LIMITS_DOCS}#about-secondary-rate-limits",
            headers=None if retry_after is None else {"Retry-After": str(retry_after)},
            with_status=False,
        )

    def _principal(self, request: web.Request) -> str:
        """Whose primary budget a request spends, as GitHub names it in the 403."""
        _, _, credential = request.headers.get("Authorization", "").partition(" ")
        if self.installation_id is not None and self.installation_token_live(credential.strip()):
            return f"installation ID {self.installation_id}"
        return f"user ID {self.bot.id}"

    def _check_app_jwt(self, request: web.Request) -> None:
        """Accept only a JWT signed with the App's key, issued by the App, and current."""
        undecodable = _ApiError(401, "A JSON web token could not be decoded")
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self.app_public_key_pem is None:
            raise undecodable
        try:
            claims = jwt.decode(
                credential.strip(),
                self.app_public_key_pem,
                algorithms=["RS256"],
                # Times are checked below against the fake's clock, not the wall clock.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iat", "exp", "iss"],
                },
            )
        except jwt.PyJWTError:
            raise undecodable from None
        now = self._clock().timestamp()
        iat, exp = claims["iat"], claims["exp"]
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + JWT_CLOCK_LEEWAY:
            raise _ApiError(
                401,
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued",
            )
        if not isinstance(exp, int) or isinstance(exp, bool) or exp <= now:
            raise _ApiError(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future "
                "time at which the assertion expires",
            )
        if exp - iat > MAX_JWT_LIFETIME or exp > now + MAX_JWT_LIFETIME + JWT_CLOCK_LEEWAY:
            raise _ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
        if str(claims["iss"]) != str(self.app_id):
            raise _ApiError(401, "'Issuer' claim ('iss') must be the App's id")

    def _installation_for(self, request: web.Request) -> int:
        installation_id = int(request.match_info["installation_id"])
        if installation_id != self.installation_id:
            raise _not_found()
        return installation_id

    def _add_rate_limit_headers(self, response: web.StreamResponse) -> None:
        now = int(time.time())
        if now >= self.rate_limit_reset:
            self.rate_limit_reset = now + 3600
            self.rate_limit_remaining = self.rate_limit_limit
        if response.status != 304 and self.rate_limit_remaining > 0:
            self.rate_limit_remaining -= 1
        defaults = {
            "x-ratelimit-limit": str(self.rate_limit_limit),
            "x-ratelimit-remaining": str(self.rate_limit_remaining),
            "x-ratelimit-reset": str(self.rate_limit_reset),
            "x-ratelimit-used": str(self.rate_limit_limit - self.rate_limit_remaining),
            "x-ratelimit-resource": "core",
        }
        for name, value in defaults.items():
            # Headers set by an injected fault (e.g. remaining=0) win.
            response.headers.setdefault(name, value)

    def _add_enforced_rate_limit_headers(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        """The primary limit's headers, by the clock; only authenticated requests count."""
        self._roll_primary_window()
        if request.get(_CHARGED) and response.status != 304 and self.rate_limit_remaining > 0:
            self.rate_limit_remaining -= 1
        headers = {
            "x-ratelimit-limit": str(self.rate_limit_limit),
            "x-ratelimit-remaining": str(self.rate_limit_remaining),
            "x-ratelimit-reset": str(self.rate_limit_reset),
            "x-ratelimit-used": str(self.rate_limit_limit - self.rate_limit_remaining),
            "x-ratelimit-resource": "core",
        }
        for name, value in headers.items():
            response.headers.setdefault(name, value)  # an injected fault's headers win

    def _api(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{self.prefix}"

    @staticmethod
    async def _payload(request: web.Request) -> Any:
        """The JSON body (None if empty). The middleware already rejected unparsable bodies;
        aiohttp caches the body, so reading it again is free."""
        raw = await request.read()
        return json.loads(raw) if raw.strip() else None

    def _respond(
        self,
        request: web.Request,
        data: Any,
        *,
        status: int = 200,
        link: str | None = None,
    ) -> web.Response:
        """JSON response; GET 200s carry a strong ETag and honour If-None-Match."""
        body = json.dumps(data).encode()
        headers: dict[str, str] = {}
        if link:
            headers["Link"] = link
        if request.method == "GET" and status == 200:
            digest = hashlib.sha256(body)
            digest.update((link or "").encode())
            etag = f'"{digest.hexdigest()}"'
            headers["ETag"] = etag
            if _etag_matches(request.headers.get("If-None-Match"), etag):
                return web.Response(status=304, headers=headers)
        return web.Response(
            status=status,
            body=body,
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    def _paginate(
        self, request: web.Request, repo: FakeRepo, items: list[Any]
    ) -> tuple[list[Any], str | None]:
        """Slice ``items`` per ``per_page``/``page`` and build GitHub's ``Link`` header."""
        per_page = self._int_param(request, "per_page", DEFAULT_PER_PAGE)
        per_page = min(per_page, MAX_PER_PAGE)
        page = self._int_param(request, "page", 1)
        last_page = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        # GitHub links to /repositories/{id}/... whatever form the request used.
        parts = request.path.removeprefix(self.prefix).split("/")
        rest = parts[4:] if parts[1] == "repos" else parts[3:]
        base = f"{self._api(request)}/repositories/{repo.id}/{'/'.join(rest)}"
        params = [(k, v) for k, v in request.query.items() if k != "page"]

        def url(n: int) -> str:
            return f"{base}?{urlencode([*params, ('page', str(n))])}"

        links: list[str] = []
        if page > 1:
            links.append(f'<{url(page - 1)}>; rel="prev"')
        if page < last_page:
            links.append(f'<{url(page + 1)}>; rel="next"')
            links.append(f'<{url(last_page)}>; rel="last"')
        if page > 1:
            links.append(f'<{url(1)}>; rel="first"')
        return chunk, ", ".join(links) or None

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            return default
        return value if value >= 1 else default

    def _repo_for(self, request: web.Request) -> FakeRepo:
        match = request.match_info
        if "repo_id" in match:
            for repo in self._repos.values():
                if str(repo.id) == match["repo_id"]:
                    return repo
            raise _not_found()
        found = self._repos.get(f"{match['owner']}/{match['repo']}".lower())
        if found is None:
            raise _not_found()
        return found

    def _issue_for(self, request: web.Request) -> tuple[FakeRepo, FakeIssue]:
        repo = self._repo_for(request)
        issue = repo.issues.get(int(request.match_info["number"]))
        if issue is None:
            raise _not_found()
        return repo, issue

    async def _object_payload(self, request: web.Request) -> dict[str, Any]:
        payload = await self._payload(request)
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise _invalid_request(f"{json.dumps(payload)} is not an object.")
        return payload

    # ---------------------------------------------------------------- validation

    @staticmethod
    def _validate_title(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            if value is None:
                raise _validation_failed("Issue", "title", "missing_field")
            raise _invalid_request("For 'properties/title', value is not a string or integer.")
        title = str(value)
        if not title.strip():
            raise _validation_failed("Issue", "title", "missing_field")
        if len(title) > MAX_TITLE_LENGTH:
            raise _validation_failed(
                "Issue",
                "title",
                "custom",
                f"title is too long (maximum is {MAX_TITLE_LENGTH} characters)",
            )
        return title

    @staticmethod
    def _validate_body(value: Any, resource: str = "Issue") -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid_request("For 'properties/body', value is not a string or null.")
        if len(value) > MAX_BODY_LENGTH:
            raise _validation_failed(
                resource,
                "body",
                "custom",
                f"body is too long (maximum is {MAX_BODY_LENGTH} characters)",
            )
        return value

    @staticmethod
    def _label_names(value: Any) -> list[str]:
        """Accept ``["a"]``, ``[{"name": "a"}]`` (what GitHub accepts for labels)."""
        if not isinstance(value, list):
            raise _invalid_request("For 'properties/labels', value is not an array.")
        names: list[str] = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name.strip():
                raise _validation_failed("Label", "name", "invalid")
            names.append(name)
        return names

    def _assignees(self, payload: dict[str, Any]) -> list[FakeUser] | None:
        if "assignees" in payload:
            value = payload["assignees"]
        elif "assignee" in payload:
            value = [] if payload["assignee"] in (None, "") else [payload["assignee"]]
        else:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid_request("For 'properties/assignees', value is not an array of strings.")
        return [self._user(login) for login in value]

    # ---------------------------------------------------------------- handlers: user / repo

    async def _get_user(self, request: web.Request) -> web.Response:
        data = self._user_json(self._api(request), self.bot)
        data["name"] = None
        return self._respond(request, data)

    async def _get_repo(self, request: web.Request) -> web.Response:
        return self._respond(request, self._repo_json(self._api(request), self._repo_for(request)))

    # ---------------------------------------------------------------- handlers: GitHub App

    def _installation_json(self, api: str, installation_id: int) -> dict[str, Any]:
        owners = sorted({repo.owner for repo in self._repos.values()})
        account = self._user(owners[0] if owners else "acme", "Organization")
        return {
            "id": installation_id,
            "app_id": self.app_id,
            "app_slug": self.bot.login.removesuffix("[bot]"),
            "target_type": "Organization",
            "account": self._user_json(api, account),
            "repository_selection": "selected",
            "access_tokens_url": f"{api}/app/installations/{installation_id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"{self.html_base}/organizations/{account.login}/settings/installations/"
            f"{installation_id}",
            "permissions": {"issues": "write", "metadata": "read"},
            "events": [],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "suspended_at": None,
        }

    async def _get_app(self, request: web.Request) -> web.Response:
        """``GET /app`` with the App's JWT: the App itself (its ``slug`` names its bot account,
        ``<slug>[bot]``)."""
        self._check_app_jwt(request)
        slug = self.bot.login.removesuffix("[bot]")
        owners = sorted({repo.owner for repo in self._repos.values()})
        owner = self._user(owners[0] if owners else "acme", "Organization")
        data: dict[str, Any] = {
            "id": self.app_id,
            "slug": slug,
            "node_id": f"A_kwDO{self.app_id}",
            "name": slug,
            "owner": self._user_json(self._api(request), owner),
            "html_url": f"{self.html_base}/apps/{slug}",
            "permissions": {"issues": "write", "metadata": "read"},
            "events": [],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
        }
        return self._respond(request, data)

    async def _get_installation(self, request: web.Request) -> web.Response:
        self._check_app_jwt(request)
        installation_id = self._installation_for(request)
        return self._respond(request, self._installation_json(self._api(request), installation_id))

    async def _mint_installation_token(self, request: web.Request) -> web.Response:
        self._check_app_jwt(request)
        self._installation_for(request)
        expires_at = self._now() + self.token_lifetime
        token = "ghs_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))
        self.installation_tokens[token] = expires_at
        self.tokens_minted += 1
        data = {
            "token": token,
            "expires_at": _iso(expires_at),
            "permissions": {"issues": "write", "metadata": "read"},
            "repository_selection": "selected",
        }
        return self._respond(request, data, status=201)

    # ---------------------------------------------------------------- handlers: issues

    async def _list_issues(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        query = request.query
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _validation_failed("Issue", "state", "invalid")
        sort = query.get("sort", "created")
        if sort not in ("created", "updated", "comments"):
            raise _validation_failed("Issue", "sort", "invalid")
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            raise _validation_failed("Issue", "direction", "invalid")
        since = _parse_since(query.get("since"), "Issue")
        wanted = [n.strip() for n in query.get("labels", "").split(",") if n.strip()]
        creator = query.get("creator")
        assignee = query.get("assignee")

        def keep(issue: FakeIssue) -> bool:
            if state != "all" and issue.state != state:
                return False
            if not all(issue.has_label(name) for name in wanted):
                return False
            if since is not None and issue.updated_at < since:
                return False
            if creator is not None and issue.user.login.lower() != creator.lower():
                return False
            if assignee == "none":
                return not issue.assignees
            if assignee == "*":
                return bool(issue.assignees)
            if assignee is not None:
                return any(u.login.lower() == assignee.lower() for u in issue.assignees)
            return True

        def sort_key(issue: FakeIssue) -> tuple[Any, int]:
            if sort == "updated":
                return (issue.updated_at, issue.number)
            if sort == "comments":
                return (len(issue.comments), issue.number)
            return (issue.created_at, issue.number)

        matching = sorted(
            (i for i in repo.issues.values() if keep(i)), key=sort_key, reverse=direction == "desc"
        )
        page, link = self._paginate(request, repo, matching)
        api = self._api(request)
        return self._respond(
            request, [self._issue_json(api, repo, i, single=False) for i in page], link=link
        )

    async def _create_issue(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        payload = await self._object_payload(request)
        title = self._validate_title(payload.get("title"))
        body = self._validate_body(payload.get("body"))
        labels = self._label_names(payload["labels"]) if payload.get("labels") is not None else []
        assignees = self._assignees(payload) or []
        issue = self._new_issue(repo, title, body, labels, assignees, self.bot)
        return self._respond(
            request, self._issue_json(self._api(request), repo, issue, single=True), status=201
        )

    async def _get_issue(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        data = self._issue_json(self._api(request), repo, issue, single=True)
        return self._respond(request, data)

    async def _edit_issue(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        payload = await self._object_payload(request)
        # Validate everything before changing anything.
        title = self._validate_title(payload["title"]) if "title" in payload else None
        body = self._validate_body(payload.get("body"))
        state = payload.get("state")
        if state is not None and state not in ("open", "closed"):
            raise _validation_failed("Issue", "state", "invalid")
        reason = payload.get("state_reason")
        if reason is not None and reason not in STATE_REASONS:
            raise _validation_failed("Issue", "state_reason", "invalid")
        labels = self._label_names(payload["labels"]) if payload.get("labels") is not None else None
        assignees = self._assignees(payload)

        with self._touching(issue):
            if title is not None:
                issue.title = title
            if "body" in payload:
                issue.body = body
            if labels is not None:
                self._set_labels(repo, issue, labels)
            if assignees is not None:
                self._set_assignees(issue, assignees, self.bot)
            if state is not None:
                self._set_state(issue, state, reason, self.bot)
            elif reason is not None and issue.state == "closed":
                issue.state_reason = reason
        data = self._issue_json(self._api(request), repo, issue, single=True)
        return self._respond(request, data)

    # ---------------------------------------------------------------- handlers: issue labels

    def _issue_labels_response(
        self, request: web.Request, repo: FakeRepo, issue: FakeIssue
    ) -> web.Response:
        api = self._api(request)
        return self._respond(request, [self._label_json(api, repo, lb) for lb in issue.labels])

    async def _labels_from_body(self, request: web.Request) -> list[str]:
        payload = await self._payload(request)
        if isinstance(payload, dict):
            payload = payload.get("labels", [])
        return self._label_names(payload if payload is not None else [])

    async def _list_issue_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        page, link = self._paginate(request, repo, issue.labels)
        api = self._api(request)
        return self._respond(request, [self._label_json(api, repo, lb) for lb in page], link=link)

    async def _add_issue_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        names = await self._labels_from_body(request)
        with self._touching(issue):
            self._add_labels(repo, issue, names)
        return self._issue_labels_response(request, repo, issue)

    async def _set_issue_labels(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        names = await self._labels_from_body(request)
        with self._touching(issue):
            self._set_labels(repo, issue, names)
        return self._issue_labels_response(request, repo, issue)

    async def _clear_issue_labels(self, request: web.Request) -> web.Response:
        _, issue = self._issue_for(request)
        with self._touching(issue):
            self._remove_labels(issue, [lb.name for lb in issue.labels])
        return web.Response(status=204)

    async def _remove_issue_label(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        name = request.match_info["name"]
        if not issue.has_label(name):
            raise _ApiError(
                404,
                "Label does not exist",
                documentation_url="https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue",
            )
        with self._touching(issue):
            self._remove_labels(issue, [name])
        return self._issue_labels_response(request, repo, issue)

    # ---------------------------------------------------------------- handlers: comments

    async def _list_comments(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        since = _parse_since(request.query.get("since"), "IssueComment")
        matching = [c for c in issue.comments if since is None or c.updated_at >= since]
        page, link = self._paginate(request, repo, matching)
        api = self._api(request)
        return self._respond(
            request, [self._comment_json(api, repo, issue, c) for c in page], link=link
        )

    def _issue_event_json(
        self, api: str, repo: FakeRepo, issue: FakeIssue, event: FakeIssueEvent
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": event.id,
            "node_id": f"IE_kwDO{event.id}",
            "url": f"{api}/repos/{repo.full_name}/issues/events/{event.id}",
            "actor": self._user_json(api, event.actor),
            "event": event.event,
            "commit_id": None,
            "commit_url": None,
            "created_at": _iso(event.created_at),
            "performed_via_github_app": None,
        }
        if event.label is not None:
            data["label"] = {"name": event.label.name, "color": event.label.color}
        if event.assignee is not None:
            data["assignee"] = self._user_json(api, event.assignee)
            data["assigner"] = self._user_json(api, event.actor)
        return data

    async def _list_issue_events(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        page, link = self._paginate(request, repo, issue.events)
        api = self._api(request)
        return self._respond(
            request, [self._issue_event_json(api, repo, issue, e) for e in page], link=link
        )

    async def _comment_body(self, request: web.Request) -> str:
        payload = await self._object_payload(request)
        body = payload.get("body")
        if body is None or (isinstance(body, str) and not body.strip()):
            raise _validation_failed("IssueComment", "body", "missing_field")
        result = self._validate_body(body, "IssueComment")
        assert result is not None
        return result

    async def _create_comment(self, request: web.Request) -> web.Response:
        repo, issue = self._issue_for(request)
        comment = self._new_comment(issue, await self._comment_body(request), self.bot)
        return self._respond(
            request, self._comment_json(self._api(request), repo, issue, comment), status=201
        )

    async def _get_comment(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        issue, comment = self._find_comment(repo, int(request.match_info["comment_id"]))
        return self._respond(request, self._comment_json(self._api(request), repo, issue, comment))

    async def _edit_comment(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        issue, comment = self._find_comment(repo, int(request.match_info["comment_id"]))
        body = await self._comment_body(request)
        if body != comment.body:
            comment.body = body
            comment.updated_at = self._now()
        return self._respond(request, self._comment_json(self._api(request), repo, issue, comment))

    async def _delete_comment(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        issue, comment = self._find_comment(repo, int(request.match_info["comment_id"]))
        with self._touching(issue):
            issue.comments.remove(comment)
        return web.Response(status=204)

    # ---------------------------------------------------------------- handlers: repo labels

    async def _list_labels(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        page, link = self._paginate(request, repo, self.labels(repo.full_name))
        api = self._api(request)
        return self._respond(request, [self._label_json(api, repo, lb) for lb in page], link=link)

    async def _get_label(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        label = repo.find_label(request.match_info["name"])
        if label is None:
            raise _not_found()
        return self._respond(request, self._label_json(self._api(request), repo, label))

    async def _create_label(self, request: web.Request) -> web.Response:
        repo = self._repo_for(request)
        payload = await self._object_payload(request)
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _validation_failed("Label", "name", "missing_field")
        color = payload.get("color", AUTO_LABEL_COLOR)
        if not isinstance(color, str) or not _COLOR_RE.match(color.removeprefix("#")):
            raise _validation_failed("Label", "color", "invalid")
        description = payload.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 100):
            raise _validation_failed("Label", "description", "invalid")
        if repo.find_label(name) is not None:
            raise _ApiError(
                422,
                "Validation Failed",
                errors=[{"resource": "Label", "code": "already_exists", "field": "name"}],
                documentation_url="https://docs.github.com/rest/issues/labels#create-a-label",
            )
        label = self.add_label(repo.full_name, name, color.removeprefix("#").lower(), description)
        return self._respond(request, self._label_json(self._api(request), repo, label), status=201)


def iter_link_header(value: str) -> Iterator[tuple[str, str]]:
    """Parse a ``Link`` header into ``(rel, url)`` pairs (test convenience)."""
    for part in value.split(","):
        url_part, _, rel_part = part.strip().partition(";")
        rel = rel_part.strip().removeprefix('rel="').removesuffix('"')
        yield rel, url_part.strip().removeprefix("<").removesuffix(">")
