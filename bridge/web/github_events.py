"""``POST /api/v1/github/events``: GitHub's webhook for the incident repository.

* 404 when ``github.webhook_secret`` is not configured (the bridge polls GitHub instead,
  ``bridge/github/poller.py``);
* 401 unless ``X-Hub-Signature-256`` is the HMAC-SHA256 of the raw body with the secret,
  compared in constant time; 413 above ``webhook.max_body_bytes``;
* 400 for a body that is not JSON, or an ``issues`` / ``issue_comment`` event without the
  fields the bridge reads (never 500); a missing ``X-GitHub-Delivery`` is 400 too;
* 200 for everything else, with what it did: events the bridge does not act on, events on
  issues that are not incidents' and events caused by the bridge's own account are ignored,
  and so are a bot's (a ``[bot]`` login or ``type: "Bot"``: result ``bot``), whose assignment,
  label, comment, close or reopening is no person's doing;
  a delivery seen before (``X-GitHub-Delivery``, recorded only after the signature verified) is
  not applied twice;
* 503 when the store cannot take it, or when the bridge's own login is not known yet and GitHub
  cannot tell it now (an event of its own must never pass for a person's).

What applies: assigned, labelled ``acknowledged`` / ``identified``, or commented on by a human →
acknowledged; closed by a human → resolved manually; reopened by a human → open; an issue people
opened with the ``incident`` label → a reported incident (``bridge/github/observe.py`` and the
steps in ``bridge/acknowledge.py``). Every delivery is counted in
``incident_bridge_github_events_total{event,result}`` and logged in one line.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from bridge.acknowledge import INCIDENT_LABEL
from bridge.github.observe import IssueObserver, Result
from bridge.store.base import StoreUnavailable
from bridge.web.body import BodyError, read_within
from bridge.web.services import Services, services

log = structlog.get_logger(__name__)

GITHUB_EVENTS = web.AppKey("github_events", IssueObserver)

_KINDS = ("issues", "issue_comment", "ping")
_ISSUE_ACTIONS = frozenset({"opened", "assigned", "labeled", "closed", "reopened"})

# GitHub logins: letters, digits and hyphens (a GitHub App's bot: ``<slug>[bot]``).
Login = Annotated[
    StrictStr, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+(\[bot\])?$")
]
Text = Annotated[StrictStr, Field(max_length=300_000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class _User(_Model):
    login: Login
    type: Annotated[StrictStr, Field(max_length=100)] | None = None  # "User", "Bot", …


class _Label(_Model):
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Issue(_Model):
    number: Annotated[int, Field(gt=0, lt=2**31, strict=True)]
    title: Text = ""
    body: Text | None = None
    labels: list[_Label] = Field(default_factory=list)
    user: _User | None = None
    pull_request: dict[str, Any] | None = None

    @property
    def label_names(self) -> frozenset[str]:
        return frozenset(label.name for label in self.labels)


class _Repository(_Model):
    full_name: Annotated[StrictStr, Field(min_length=3, max_length=300)]


class _Comment(_Model):
    body: Text | None = None
    user: _User


class IssuesEvent(_Model):
    """The fields of an ``issues`` event the bridge reads."""

    action: Annotated[StrictStr, Field(max_length=100)]
    issue: _Issue
    repository: _Repository
    sender: _User
    label: _Label | None = None
    assignee: _User | None = None


class CommentEvent(_Model):
    """The fields of an ``issue_comment`` event the bridge reads."""

    action: Annotated[StrictStr, Field(max_length=100)]
    issue: _Issue
    comment: _Comment
    repository: _Repository
    sender: _User


class _Malformed(ValueError):
    """The body is not the event its header says; the message is safe to return."""


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) is ``sha256=`` and the HMAC-SHA256 of
    ``body`` with ``secret``, compared in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest((header or "").strip().encode(), expected.encode())


def _parse(kind: str, body: bytes) -> IssuesEvent | CommentEvent:
    model: type[IssuesEvent] | type[CommentEvent] = (
        IssuesEvent if kind == "issues" else CommentEvent
    )
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        first = error.errors(include_input=False)[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise _Malformed("malformed JSON") from None
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise _Malformed(f"not a GitHub {kind} event: {where}: {first['msg']}") from None


class _Answer(Exception):
    """Ends the request with this status, body and counted result."""

    def __init__(self, status: int, result: str, body: dict[str, object]) -> None:
        super().__init__(result)
        self.status, self.result, self.body = status, result, body


def _answer(
    svc: Services, kind: str, status: int, result: str, body: dict[str, object], **fields: object
) -> web.Response:
    svc.metrics.github_events.labels(event=kind if kind in _KINDS else "other", result=result).inc()
    level = log.info if status < 500 else log.warning
    level("github_event", code=status, github_event=kind[:50], result=result, **fields)
    return web.json_response(body, status=status)


async def receive_github_event(request: web.Request) -> web.Response:
    svc = services(request)
    started = time.perf_counter()
    kind = request.headers.get("X-GitHub-Event", "")
    delivery = request.headers.get("X-GitHub-Delivery", "")
    secret = svc.config.github.webhook_secret
    if secret is None:
        # No secret, no webhook: the bridge polls GitHub instead.
        return web.json_response(
            {"error": "no github.webhook_secret configured; the bridge polls GitHub"}, status=404
        )
    try:
        body = await read_within(request, svc.config.webhook.max_body_bytes)
    except BodyError as refused:
        return _answer(svc, kind, refused.status, "malformed", {"error": refused.error})
    if not signature_ok(secret.get(), body, request.headers.get("X-Hub-Signature-256")):
        return _answer(
            svc, kind, 401, "bad_signature", {"error": "missing or wrong X-Hub-Signature-256"}
        )
    fields: dict[str, object] = {"delivery": delivery[:100]}
    try:
        result, more = await _handle(svc, request.app[GITHUB_EVENTS], kind, delivery, body)
    except _Answer as answer:
        return _answer(svc, kind, answer.status, answer.result, answer.body, **fields)
    except StoreUnavailable as error:
        return _answer(
            svc,
            kind,
            503,
            "unavailable",
            {"error": "store unavailable, retry later"},
            reason=str(error),
            **fields,
        )
    except Exception as error:  # a bug must not become a 500 GitHub shows as a failed hook
        log.exception("github_event_failed")
        return _answer(
            svc,
            kind,
            503,
            "unavailable",
            {"error": "internal error, retry later"},
            reason=type(error).__name__,
            **fields,
        )
    fields.update(more)
    fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return _answer(svc, kind, 200, result, {"status": "accepted", "result": result}, **fields)


async def _handle(
    svc: Services, observer: IssueObserver, kind: str, delivery: str, body: bytes
) -> tuple[Result | str, dict[str, object]]:
    """What the verified delivery does: the result, and fields for the log line."""
    if kind == "ping":
        return "ignored", {}
    if kind not in ("issues", "issue_comment"):
        return "ignored", {}
    if not delivery or len(delivery) > 100:
        raise _Answer(400, "malformed", {"error": "missing or overlong X-GitHub-Delivery"})
    try:
        event = _parse(kind, body)
    except _Malformed as error:
        raise _Answer(400, "malformed", {"error": str(error)}) from None
    issue = event.issue
    fields: dict[str, object] = {"action": event.action[:50], "issue": issue.number}
    if event.repository.full_name.lower() != observer.repository.lower():
        return "ignored", {**fields, "repository": event.repository.full_name[:300]}
    if issue.pull_request is not None:
        return "ignored", fields  # a pull request's comment or label: never an incident
    wanted = event.action in _ISSUE_ACTIONS if kind == "issues" else event.action == "created"
    if not wanted:
        return "ignored", fields
    if isinstance(event, IssuesEvent):
        needed = {"assigned": event.assignee, "labeled": event.label}
        if event.action in needed and needed[event.action] is None:
            missing = "assignee" if event.action == "assigned" else "label"
            raise _Answer(400, "malformed", {"error": f"not a GitHub issues event: {missing}"})
    if not observer.known and not await observer.learn_login():
        raise _Answer(
            503, "unavailable", {"error": "GitHub did not tell the bridge's own login yet"}
        )
    if observer.own(event.sender.login):
        return "own_account", fields
    # Recorded once applied, not before: a delivery whose step failed (the store down: 503)
    # is applied when GitHub or a person delivers it again. Two copies at the same moment may
    # both apply; every step is idempotent (the first acknowledgement wins, a close or reopen
    # acts only on the state it changes).
    if await svc.store.delivery_seen(delivery):
        return "duplicate", fields
    result = await _apply(observer, event)
    await svc.store.first_delivery(delivery, svc.clock())
    return result, fields


async def _apply(observer: IssueObserver, event: IssuesEvent | CommentEvent) -> Result:
    issue = event.issue
    labels = issue.label_names
    who, who_type = event.sender.login, event.sender.type
    author = issue.user.login if issue.user is not None else who
    if event.action == "opened":
        return await observer.reported(issue.number, issue.title, author, labels, issue.body)
    acknowledging = isinstance(event, CommentEvent) or event.action in ("assigned", "labeled")
    if acknowledging and any(label.lower() == INCIDENT_LABEL for label in labels):
        # GitHub sends an issue's opened, labeled and assigned deliveries at once, handled in
        # any order: a reported issue is adopted before what people did to it is applied, or
        # an assignment handled first would find no incident and be lost (adopted before,
        # this changes nothing).
        await observer.reported(issue.number, issue.title, author, labels, issue.body)
    if isinstance(event, CommentEvent):
        comment = event.comment
        return await observer.commented(
            issue.number,
            labels,
            comment.user.login,
            comment.body or "",
            author_type=comment.user.type,
        )
    if event.action == "assigned":
        assert event.assignee is not None  # checked in _handle
        return await observer.assigned(
            issue.number,
            labels,
            event.assignee.login,
            sender=who,
            sender_type=who_type,
            assignee_type=event.assignee.type,
        )
    if event.action == "labeled":
        assert event.label is not None  # checked in _handle
        if event.label.name.lower() == INCIDENT_LABEL:
            return await observer.reported(issue.number, issue.title, author, labels, issue.body)
        return await observer.labelled(
            issue.number, labels, event.label.name, who, who_type=who_type
        )
    if event.action == "closed":
        return await observer.closed(issue.number, labels, who, who_type)
    return await observer.reopened(issue.number, labels, who, who_type)
