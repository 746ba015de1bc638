"""The responders' Slack channel (slack-sdk ``AsyncWebClient``): one root message per incident,
every later event a threaded reply, the root edited when the state or the priority changes.

Rendering is pure (:func:`root_message`, :func:`reply_text`, :func:`slack_blocks`). Alert text is
hostile: in Slack mrkdwn ``&``, ``<`` and ``>`` are escaped (so ``<!channel>``, ``<@U123>`` or a
``<url|label>`` link cannot be written), and every ``@`` gets a word joiner after it so that
``@here``-like text never mentions anyone, whatever Slack's ``link_names`` does. Links are only
http(s) URLs, percent-encoded.

Failures are classified for the outbox, which is the one retry mechanism (slack-sdk's own retry
handlers are off: its default retries a dropped connection, which may post twice): a rate limit
(429, ``ratelimited``) is retryable after ``Retry-After``; Slack's 5xx and its internal errors are
retryable; a connection that could not be made sent nothing and is retryable; a connection lost
or timed out once the request was sent may have posted the message, so the retry says the outcome
is unknown (Slack is at least once, never lost: a duplicate is possible then). A bad token, a
missing channel or a refused message is permanent. No message ever contains the token.

The order within one effect makes a retry as harmless as it can be: the root's edit (idempotent)
comes before the threaded reply (which is not), and the reply is the last request.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import SlackConfig
from bridge.effects import EffectError, retry_after_seconds
from bridge.github.render import safe_url
from bridge.http_timeout import client_timeout
from bridge.model import Incident, Lane, Priority
from bridge.notify.base import Notice
from bridge.text import one_line

log = structlog.get_logger(__name__)

_TIMEOUT_SECONDS = 5
_SUMMARY_LIMIT = 300
_EVENT_LIMIT = 500

# The bundled rules' names (rules/priorities.yaml), for a notice that does not carry the rules'
# own name of its priority.
PRIORITY_LABELS: dict[Priority, tuple[str, str]] = {
    Priority.P0: ("🔴", "Critical"),
    Priority.P1: ("🟠", "High"),
    Priority.P2: ("🟡", "Medium"),
    Priority.P3: ("🔵", "Low"),
}
_NO_MARKUP = str.maketrans("", "", "<>&")
_REPLY_ICON = {
    "opened": "🚨",
    "alert_firing": "🔥",
    "alert_resolved": "🟢",
    "priority_raised": "⬆️",
    "resolved": "✅",
    "reopened": "🔁",
    "acknowledged": "👀",
    "identified": "🔎",
    "closed_manually": "✅",
    "reopened_manually": "🔁",
    "sla_breached": "⏰",
    "escalated": "📟",
    "silenced": "🔕",
    "unsilenced": "🔔",
    "flapping": "〰️",
    "reconciled": "✅",
}
# Events after which the root message shows a new state or priority.
ROOT_EDIT_EVENTS = frozenset(
    {
        "priority_raised",
        "resolved",
        "reopened",
        "closed_manually",
        "reopened_manually",
        "reconciled",
        "acknowledged",
    }
)

_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "service_unavailable", "fatal_error", "request_timeout"}
)
_PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
    }
)
# chat.update of a root that a person deleted, or that is not the bot's: the reply still goes out.
_ROOT_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


# ------------------------------------------------------------------------------ rendering


def escape(text: str) -> str:
    """Text for Slack mrkdwn: the three control characters escaped, mentions defused."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("@", "@\u2060")  # a word joiner: "@here" stays readable, pings nobody


def _link(url: str | None, label: str) -> str | None:
    """A mrkdwn link to a safe http(s) URL, or None."""
    safe = safe_url(url or "")
    if safe is None:
        return None
    target = safe.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{target}|{escape(label)}>"


def priority_label(priority: Priority, name: str = "") -> str:
    """``🔴 P0 Critical`` (``name``: the rules' name for the priority, when they rename it)."""
    emoji, bundled = PRIORITY_LABELS[priority]
    return f"{emoji} {priority} {escape(name) if name else bundled}"


def runbook_url(incident: Incident) -> str | None:
    """The first safe ``runbook_url`` annotation: the group's, then the firing alerts', then
    any alert's."""
    candidates = [incident.common_annotations.get("runbook_url", "")]
    candidates += [a.annotations.get("runbook_url", "") for a in incident.firing_alerts()]
    candidates += [a.annotations.get("runbook_url", "") for a in incident.alerts.values()]
    for candidate in candidates:
        if candidate and safe_url(candidate) is not None:
            return candidate
    return None


def _state(notice: Notice) -> tuple[str, str]:
    """The incident's state as an icon and words (mrkdwn)."""
    incident, event = notice.incident, notice.event
    if incident.state == "resolved":
        duration = event.data.get("duration") if event.kind == "resolved" else None
        return "✅", f"Resolved after {escape(str(duration))}" if duration else "Resolved"
    if incident.reopen_count:
        return "🔁", "Reopened"
    return "🚨", "Open"


def root_message(notice: Notice) -> tuple[str, list[dict[str, Any]]]:
    """The incident's root message: the ``text`` fallback and its Block Kit blocks."""
    incident = notice.incident
    resolved = incident.state == "resolved"
    summary = escape(one_line(incident.summary, _SUMMARY_LIMIT))
    emoji, bundled = PRIORITY_LABELS[incident.priority]
    # plain_text: nothing is parsed there, but a name never carries markup into Slack anyway
    name = one_line(notice.priority_name.translate(_NO_MARKUP), 40) or bundled
    header = f"{'✅' if resolved else emoji} {incident.display_id} · {incident.priority} {name}"
    priority = priority_label(incident.priority, notice.priority_name)
    icon, words = _state(notice)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Priority*\n{priority}"},
                {"type": "mrkdwn", "text": f"*State*\n{icon} {words}"},
            ],
        },
    ]
    links = [
        link
        for link in (
            _link(notice.issue_url, f"GitHub issue {incident.display_id}"),
            _link(runbook_url(incident), "Runbook"),
        )
        if link is not None
    ]
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " · ".join(links)}})
    context = f"Opened {incident.opened_at:%Y-%m-%d %H:%M} UTC"
    firing = incident.firing_alerts()
    if incident.alerts:
        context += f" · alerts firing: {len(firing)} of {len(incident.alerts)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    label = priority_label(incident.priority, notice.priority_name)
    text = f"{label} · {incident.display_id}: {summary} · {words}"
    if links:
        text += " · " + " · ".join(links)
    return text, blocks


def reply_text(notice: Notice) -> str:
    """The threaded reply: what happened, when."""
    event = notice.event
    icon = _REPLY_ICON.get(event.kind, "📣")
    what = escape(one_line(event.text, _EVENT_LIMIT))
    return f"{icon} {what} ({event.at:%H:%M} UTC)"


def has_root(notice: Notice) -> bool:
    """Whether the incident's root message is known (its ts and channel id kept)."""
    return bool(notice.state.get("root_ts") and notice.state.get("channel"))


def slack_blocks(notice: Notice) -> tuple[str, list[dict[str, Any]]]:
    """What the notice posts: the root message for ``opened`` (and whenever there is no root
    yet), else the threaded reply (as one mrkdwn section)."""
    if notice.event.kind == "opened" or not has_root(notice):
        text, blocks = root_message(notice)
        if notice.event.kind != "opened":  # a late root: say what just happened too
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": reply_text(notice)}]}
            )
        return text, blocks
    text = reply_text(notice)
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# ------------------------------------------------------------------------------ errors


class SlackCallError(EffectError):
    """A failed Slack call, with Slack's error code when it answered one."""

    def __init__(self, message: str, *, code: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    return retry_after_seconds(value, time.time())


def classify(error: BaseException, method: str) -> SlackCallError:
    """The outbox's view of one failed Slack call. The message names the method, the HTTP
    status and Slack's error code; never the token or the request."""
    if isinstance(error, SlackApiError):
        response = error.response
        # slack_sdk's response; or, when the body was not the JSON it claimed to be (a proxy's
        # error page), aiohttp's raw one, which has ``status`` and no ``data``.
        status = int(getattr(response, "status_code", 0) or getattr(response, "status", 0))
        data = getattr(response, "data", None)
        data = data if isinstance(data, dict) else {}
        code = str(data.get("error") or "")
        text = f"Slack {method}: HTTP {status} {code or '(no error code)'}"
        if status == 429 or code == "ratelimited":
            return SlackCallError(
                text,
                code=code,
                retryable=True,
                status=status,
                retry_after=_retry_after(getattr(response, "headers", None)),
            )
        if code in _PERMANENT_ERRORS:
            return SlackCallError(text, code=code, retryable=False, status=status)
        if status >= 500 or code in _RETRYABLE_ERRORS:
            # A gateway timeout may come after Slack did the work.
            return SlackCallError(
                text, code=code, retryable=True, status=status, outcome_unknown=status == 504
            )
        # Any other error code is about the request itself (invalid_arguments, no_text, ...):
        # sending it again gives the same answer.
        return SlackCallError(text, code=code, retryable=False, status=status)
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        # No connection: nothing was sent.
        return SlackCallError(
            f"Slack {method}: unreachable ({type(error).__name__})", retryable=True
        )
    if isinstance(error, (aiohttp.ClientError, TimeoutError)):
        # The request may have reached Slack and been applied before the answer was lost.
        return SlackCallError(
            f"Slack {method}: connection lost or timed out after sending ({type(error).__name__})",
            retryable=True,
            outcome_unknown=True,
        )
    raise error


# ------------------------------------------------------------------------------ adapter


class SlackNotifier:
    """The Slack lane's adapter."""

    channel: Lane = "slack"

    def __init__(self, config: SlackConfig) -> None:
        self._config = config
        base = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
        self._base_url = base
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None

    def _web(self) -> AsyncWebClient:
        """The client and its session, made on first use (inside the running loop)."""
        if self._client is None or self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=client_timeout(_TIMEOUT_SECONDS))
            self._client = AsyncWebClient(
                token=self._config.token.get(),
                base_url=self._base_url,
                timeout=_TIMEOUT_SECONDS,
                session=self._session,
                retry_handlers=[],  # the outbox is the one retry mechanism
            )
        return self._client

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        client = self._web()
        try:
            response = await client.api_call(method, json=kwargs)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as error:
            raise classify(error, method) from None
        data = response.data
        return data if isinstance(data, dict) else {}

    async def _post_root(self, notice: Notice) -> dict[str, str]:
        text, blocks = slack_blocks(notice)
        answer = await self._call(
            "chat.postMessage",
            channel=self._config.channel,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        return {"root_ts": str(answer["ts"]), "channel": str(answer["channel"])}

    async def _edit_root(self, notice: Notice, channel: str, ts: str) -> None:
        text, blocks = root_message(notice)
        try:
            await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackCallError as error:
            if error.code not in _ROOT_GONE_ERRORS:
                raise
            # A person deleted the root, or it is no longer editable: the reply still tells.
            log.warning("slack_root_not_edited", error=str(error))

    async def send(self, notice: Notice) -> dict[str, str]:
        root_ts = notice.state.get("root_ts")
        channel = notice.state.get("channel")
        if not has_root(notice) or root_ts is None or channel is None:
            return await self._post_root(notice)
        if notice.event.kind == "opened":
            # The root exists (this effect ran before and its state was kept): refresh it
            # rather than post a second one.
            await self._edit_root(notice, channel, root_ts)
            return {}
        if notice.event.kind in ROOT_EDIT_EVENTS:
            await self._edit_root(notice, channel, root_ts)  # idempotent: first
        text, blocks = slack_blocks(notice)
        await self._call(
            "chat.postMessage",
            channel=channel,
            thread_ts=root_ts,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
        )
        return {}

    async def close(self) -> None:
        session, self._session, self._client = self._session, None, None
        if session is not None and not session.closed:
            await session.close()
