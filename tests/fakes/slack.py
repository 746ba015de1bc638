"""A stateful fake of the slice of the Slack Web API that incident-bridge's notifications use.

The fake is an aiohttp application served on ``127.0.0.1`` with an ephemeral port, under
``/api/`` like ``https://slack.com/api/``, so slack-sdk talks to it unchanged::

    async with FakeSlack(token="xoxb-test", channels=["#incidents"]) as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)

It is shaped after what slack-sdk 3.x sends (``slack_sdk/web/internal_utils.py``,
``async_internal_utils.py``: JSON bodies for ``chat.*``, query parameters for ``auth.test`` and
``conversations.info``, ``Authorization: Bearer``) and after Slack's documented behaviour:

* Arguments come from the query string, a form body (``blocks`` then a JSON string) or a JSON
  body; the token from ``Authorization: Bearer`` or a ``token`` argument.
* API errors are HTTP 200 with ``{"ok": false, "error": "..."}``: ``not_authed`` (no token),
  ``invalid_auth`` (wrong token), ``channel_not_found``, ``not_in_channel``, ``is_archived``,
  ``no_text``, ``msg_too_long``, ``invalid_blocks``/``invalid_blocks_format``,
  ``invalid_thread_ts``, ``message_not_found``, ``cant_update_message``, ``invalid_json``.
  An unknown method is HTTP 404 ``unknown_method``.
* ``chat.postMessage`` takes the channel by name (``#incidents`` or ``incidents``) or by id and
  answers with the id; ``ts`` is unique and strictly increasing (from the clock, bumped by a
  microsecond when two messages would share one). ``thread_ts`` of a top-level message makes a
  threaded reply (the parent gets ``reply_count``/``latest_reply``/``reply_users``);
  ``reply_broadcast`` also shows the reply in the channel. A well-formed ``thread_ts`` that is
  no message's is accepted, as Slack does, and the reply lands in a thread nobody sees
  (:meth:`FakeSlack.thread` still shows it, :meth:`FakeSlack.messages` does not); a malformed
  one is ``invalid_thread_ts``.
* ``chat.update`` takes the channel by id only (a name is ``channel_not_found``, as on Slack)
  and ``ts``; ``text`` replaces the text and, without ``blocks``, removes the blocks; ``blocks``
  replaces the blocks (``[]`` removes them); with neither it is ``no_text``. Only the bot's
  own messages can be updated (``cant_update_message``).
* ``conversations.info`` (channel id) and ``auth.test``.
* A rate limit is HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``;
  the fake produces it only when injected (:meth:`FakeSlack.inject`).

Besides HTTP, tests get direct state access (:meth:`FakeSlack.messages`,
:meth:`FakeSlack.thread`, :meth:`FakeSlack.message`, :meth:`FakeSlack.channel`), a person's
actions (:meth:`FakeSlack.human_post`), a request log (:attr:`FakeSlack.requests`,
:meth:`FakeSlack.calls`), fault injection (:meth:`FakeSlack.inject`, :attr:`FakeSlack.down`)
and an injectable clock.

Note that slack-sdk's ``AsyncWebClient`` retries a request once after a dropped connection by
default (``AsyncConnectionErrorRetryHandler``); pass ``retry_handlers=[]`` to see the error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.loopback import Fault, LoopbackServer, with_faults

__all__ = [
    "FakeChannel",
    "FakeSlack",
    "RecordedRequest",
    "SlackFault",
    "SlackMessage",
]

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_TEXT_LENGTH = 40_000  # Slack's documented limit on a message's text
MAX_BLOCKS = 50  # Slack's limit on blocks in one message
API_PREFIX = "/api"
HUMAN_USER = "U0HUMAN0001"

_TS_RE = re.compile(r"^\d{1,10}\.\d{6}$")
_METHOD_RE = re.compile(r"^[a-zA-Z]+(\.[a-zA-Z]+)+$")
_ARGS = web.RequestKey("fake_slack_args", dict)  # the merged Slack arguments of a request
_BAD_JSON = web.RequestKey("fake_slack_bad_json", bool)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class SlackMessage:
    """One message: top-level (``thread_ts`` None) or a threaded reply.

    ``history`` holds the earlier ``(text, blocks)`` versions, oldest first; ``edited_ts`` is
    the ts (by the fake's clock) of the last ``chat.update``.
    """

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    user: str
    bot_id: str | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    edited_ts: str | None = None
    history: list[tuple[str, list[dict[str, Any]] | None]] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        """Whether this is a reply in a thread."""
        return self.thread_ts is not None


@dataclass
class FakeChannel:
    """A channel: its top-level messages in order and its threads by parent ts."""

    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    is_member: bool = True
    created: int = 0
    messages: list[SlackMessage] = field(default_factory=list)
    threads: dict[str, list[SlackMessage]] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request as the fake saw it, with what it answered.

    ``api_method`` is the Slack method (``"chat.postMessage"``); ``args`` the merged arguments
    (query, form or JSON body; the ``token`` argument removed); ``ok``/``error`` the Slack
    result (None when the answer was not Slack JSON). ``dropped``: the connection was closed
    instead of answering.
    """

    method: str
    path: str
    api_method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    args: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    ok: bool | None = None
    error: str | None = None
    dropped: bool = False


_DEFAULT_FAULT_ERRORS = {
    429: "ratelimited",
    500: "internal_error",
    502: "internal_error",
    503: "service_unavailable",
    504: "request_timeout",
}


@dataclass
class SlackFault(Fault):
    """An injected response (see :class:`fakes.loopback.Fault`) in the service's error shape."""

    def response(self) -> web.Response:
        """The response to send in place of the real one: ``body`` as JSON (a dict) or as an
        HTML page (a str; a ``Content-Type`` in ``headers`` labels it otherwise, as a proxy
        that answers an HTML error page as JSON does); by default Slack's error shape for the
        status."""
        if isinstance(self.body, str):
            headers = dict(self.headers)
            content_type = headers.pop("Content-Type", "text/html")
            return web.Response(
                status=self.status, text=self.body, content_type=content_type, headers=headers
            )
        body = self.body
        if body is None:
            body = {"ok": False, "error": _DEFAULT_FAULT_ERRORS.get(self.status, "fatal_error")}
        return _json_response(body, status=self.status, headers=self.headers)


class _SlackError(Exception):
    """Raised by handlers; answered as ``{"ok": false, "error": code}``."""

    def __init__(self, code: str, status: int = 200) -> None:
        super().__init__(code)
        self.code = code
        self.status = status

    def response(self) -> web.Response:
        return _json_response({"ok": False, "error": self.code}, status=self.status)


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ts_string(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _is_true(value: Any) -> bool:
    """Slack's reading of a boolean argument (JSON true, or "true"/"1" in a form)."""
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1")


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeSlack(LoopbackServer):
    """Fake Slack Web API server; see the module docstring.

    ``token`` is the accepted bot token (may be changed at any time, e.g. to simulate a
    revoked one). ``channels`` are the names of public channels the bot is a member of
    (``"#incidents"`` or ``"incidents"``); :meth:`add_channel` adds others (private, archived,
    without the bot). ``clock`` returns an aware ``datetime`` and drives every ``ts``.
    """

    def __init__(
        self,
        token: str = "xoxb-fake-token",  # noqa: S107 - a fake token for a fake server
        channels: Iterable[str] = ("#incidents",),
        *,
        team: str = "Acme",
        team_id: str = "T0ACME00001",
        bot_user_id: str = "U0BRIDGE001",
        bot_id: str = "B0BRIDGE001",
        app_id: str = "A0BRIDGE001",
        bot_name: str = "incident-bridge",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        """Accepted token; may be changed at any time."""
        self.team = team
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_name = bot_name
        self.down = False
        """When true, every request is answered with HTTP 503 (Slack's error shape)."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.faults: list[SlackFault] = []
        """Pending injected faults (exhausted ones are removed)."""
        self.internal_errors: list[BaseException] = []
        """Bugs in the fake itself (answered with 500); tests may assert this stays empty."""
        self._clock = clock or _utcnow
        self._last_micros = 0
        self._channels: dict[str, FakeChannel] = {}  # by id
        self._next_channel = 1
        for name in channels:
            self.add_channel(name)
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    def _url(self, host: str, port: int) -> str:
        """``http://127.0.0.1:PORT/api/`` (ends with ``/``), for ``AsyncWebClient(base_url=)``."""
        return f"http://{host}:{port}{API_PREFIX}/"

    # ---------------------------------------------------------------- request log

    def calls(self, api_method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only those to one Slack method."""
        return [r for r in self.requests if api_method is None or r.api_method == api_method]

    def reset_log(self) -> None:
        """Forget recorded requests (state is untouched)."""
        self.requests.clear()

    # ---------------------------------------------------------------- fault injection

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        apply_first: bool = False,
        delay: float = 0.0,
        drop: bool = False,
    ) -> SlackFault:
        """Answer the next ``times`` requests matching ``method`` (or ``"*"``) and
        ``path_regex`` (searched in the path, e.g. ``r"chat\\.postMessage$"``) with
        ``status``/``body``/``headers``.

        ``body`` defaults to Slack's error shape (``ratelimited`` for 429,
        ``service_unavailable`` for 503, ``internal_error`` for 500/502, ``fatal_error``
        otherwise); a str is sent as an HTML page, as Slack's edge does on some 5xx. With
        ``apply_first=True`` the request is processed first, so its state change happens
        ("Slack posted it but the response was lost"). ``delay`` waits that many seconds before
        answering (after applying, with ``apply_first``). ``drop`` closes the connection instead
        of answering. ``status=0`` keeps the real response (useful with ``delay``). Faults are
        matched in injection order; the returned :class:`SlackFault` counts its ``hits``.
        """
        fault = SlackFault(
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

    # ---------------------------------------------------------------- direct state access

    def add_channel(
        self,
        name: str,
        *,
        private: bool = False,
        archived: bool = False,
        member: bool = True,
        channel_id: str | None = None,
    ) -> FakeChannel:
        """Create a channel (``"#name"`` or ``"name"``); returns the existing one if present."""
        bare = name.removeprefix("#")
        if not bare or bare != bare.lower() or " " in bare:
            raise ValueError(f"Slack channel names are lower-case without spaces, got {name!r}")
        existing = self._by_name(bare)
        if existing is not None:
            return existing
        if channel_id is None:
            prefix = "G" if private else "C"
            channel_id = f"{prefix}0{self._next_channel:09d}"
            self._next_channel += 1
        channel = FakeChannel(
            id=channel_id,
            name=bare,
            is_private=private,
            is_archived=archived,
            is_member=member,
            created=int(self._clock().timestamp()),
        )
        self._channels[channel_id] = channel
        return channel

    def channel(self, name_or_id: str) -> FakeChannel:
        """A channel by id, ``#name`` or ``name``; ``KeyError`` if unknown."""
        channel = self._channels.get(name_or_id) or self._by_name(name_or_id.removeprefix("#"))
        if channel is None:
            raise KeyError(name_or_id)
        return channel

    def messages(self, channel: str) -> list[SlackMessage]:
        """The channel's top-level messages, oldest first (broadcast thread replies included,
        as Slack shows them in the channel)."""
        return list(self.channel(channel).messages)

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """The replies in the thread of ``ts``, oldest first (without the parent); also the
        replies sent to a ``thread_ts`` that is no message's."""
        return list(self.channel(channel).threads.get(ts, []))

    def message(self, channel: str, ts: str) -> SlackMessage:
        """One message, top-level or reply; ``KeyError`` if there is none with that ts."""
        state = self.channel(channel)
        for message in state.messages:
            if message.ts == ts:
                return message
        for replies in state.threads.values():
            for reply in replies:
                if reply.ts == ts:
                    return reply
        raise KeyError(ts)

    def human_post(
        self, channel: str, text: str, *, user: str = HUMAN_USER, thread_ts: str | None = None
    ) -> SlackMessage:
        """Post as a person would (no request, no checks); ``thread_ts`` makes it a reply."""
        return self._store(self.channel(channel), text, None, user, None, thread_ts, False)

    # ---------------------------------------------------------------- state internals

    def _by_name(self, name: str) -> FakeChannel | None:
        for channel in self._channels.values():
            if channel.name == name:
                return channel
        return None

    def _next_ts(self) -> str:
        micros = int(self._clock().timestamp() * 1_000_000)
        self._last_micros = max(micros, self._last_micros + 1)
        return _ts_string(self._last_micros)

    def _store(
        self,
        channel: FakeChannel,
        text: str,
        blocks: list[dict[str, Any]] | None,
        user: str,
        bot_id: str | None,
        thread_ts: str | None,
        broadcast: bool,
    ) -> SlackMessage:
        message = SlackMessage(
            channel=channel.id,
            ts=self._next_ts(),
            text=text,
            blocks=blocks,
            user=user,
            bot_id=bot_id,
            thread_ts=thread_ts,
            reply_broadcast=broadcast and thread_ts is not None,
        )
        if thread_ts is None:
            channel.messages.append(message)
        else:
            channel.threads.setdefault(thread_ts, []).append(message)
            if broadcast:
                channel.messages.append(message)
        return message

    def _parent(self, channel: FakeChannel, ts: str) -> SlackMessage | None:
        for message in channel.messages:
            if message.ts == ts and not message.is_reply:
                return message
        return None

    # ---------------------------------------------------------------- JSON shapes

    def _message_json(self, channel: FakeChannel, message: SlackMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "text": message.text,
            "user": message.user,
            "ts": message.ts,
            "team": self.team_id,
        }
        if message.bot_id is not None:
            data["bot_id"] = message.bot_id
            data["app_id"] = self.app_id
            data["bot_profile"] = {
                "id": message.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
            }
        if message.blocks is not None:
            data["blocks"] = message.blocks
        if message.edited_ts is not None:
            data["edited"] = {"user": message.user, "ts": message.edited_ts}
        if message.thread_ts is not None:
            data["thread_ts"] = message.thread_ts
            parent = self._parent(channel, message.thread_ts)
            if parent is not None:
                data["parent_user_id"] = parent.user
            if message.reply_broadcast:
                data["subtype"] = "thread_broadcast"
        else:
            replies = channel.threads.get(message.ts, [])
            if replies:
                data["thread_ts"] = message.ts
                data["reply_count"] = len(replies)
                data["reply_users_count"] = len({r.user for r in replies})
                data["reply_users"] = sorted({r.user for r in replies})
                data["latest_reply"] = replies[-1].ts
        return data

    def _channel_json(self, channel: FakeChannel) -> dict[str, Any]:
        return {
            "id": channel.id,
            "name": channel.name,
            "name_normalized": channel.name,
            "is_channel": not channel.is_private,
            "is_group": channel.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": channel.is_private,
            "is_archived": channel.is_archived,
            "is_general": False,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_member": channel.is_member,
            "created": channel.created,
            "creator": HUMAN_USER,
            "context_team_id": self.team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }

    # ---------------------------------------------------------------- HTTP plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", API_PREFIX + "/{api_method}", self._route)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        api_method = request.path.removeprefix(API_PREFIX + "/")
        args, bad_json = self._parse_args(request, raw)
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            api_method=api_method,
            query=dict(request.query),
            headers=dict(request.headers),
            body=raw,
            args={k: v for k, v in args.items() if k != "token"},
        )
        self.requests.append(record)
        request[_ARGS] = args
        request[_BAD_JSON] = bad_json
        try:
            response = await self._dispatch(request, handler)
        except asyncio.CancelledError:
            record.dropped = True
            raise
        record.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            try:
                answer = json.loads(response.body) if isinstance(response.body, bytes) else None
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                record.ok = bool(answer.get("ok"))
                error = answer.get("error")
                record.error = error if isinstance(error, str) else None
        return response

    @staticmethod
    def _parse_args(request: web.Request, raw: bytes) -> tuple[dict[str, Any], bool]:
        """Slack's arguments: the query string, then the form or JSON body on top."""
        args: dict[str, Any] = dict(request.query)
        if not raw.strip():
            return args, False
        if request.content_type == "application/json":
            try:
                payload = json.loads(raw)
            except ValueError:
                return args, True
            if not isinstance(payload, dict):
                return args, True
            args.update(payload)
        elif request.content_type in ("application/x-www-form-urlencoded", ""):
            args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return args, False

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.down:
            return _json_response({"ok": False, "error": "service_unavailable"}, status=503)
        return await with_faults(request, self.faults, lambda: self._handle(request, handler))

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except _SlackError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status == 404:
                return _SlackError("unknown_method", 404).response()
            return _SlackError("invalid_request", exc.status).response()
        except Exception as exc:
            _log.exception("FakeSlack internal error on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            return _json_response({"ok": False, "error": "fake_internal_error"}, status=500)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise _SlackError("method_not_allowed", 405)
        routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.info": self._conversations_info,
        }
        api_method = request.match_info["api_method"]
        route = routes.get(api_method)
        if route is None or not _METHOD_RE.match(api_method):
            raise _SlackError("unknown_method", 404)
        if request[_BAD_JSON]:
            raise _SlackError("invalid_json")
        args = request[_ARGS]
        self._check_auth(request, args)
        return _json_response({"ok": True, **route(args)})

    def _check_auth(self, request: web.Request, args: dict[str, Any]) -> None:
        header = request.headers.get("Authorization")
        token: Any = None
        if header is not None:
            scheme, _, credential = header.partition(" ")
            token = credential.strip() if scheme.lower() == "bearer" else ""
        if token is None:
            token = args.get("token")
        if token is None or token == "":
            raise _SlackError("not_authed")
        if token != self.token:
            raise _SlackError("invalid_auth")

    # ---------------------------------------------------------------- argument checks

    def _channel_arg(self, args: dict[str, Any], *, by_name: bool) -> FakeChannel:
        value = args.get("channel")
        if not isinstance(value, str) or not value:
            raise _SlackError("channel_not_found")
        channel = self._channels.get(value)
        if channel is None and by_name:
            channel = self._by_name(value.removeprefix("#"))
        if channel is None or (channel.is_private and not channel.is_member):
            raise _SlackError("channel_not_found")  # Slack hides private channels from outsiders
        return channel

    @staticmethod
    def _blocks_arg(args: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The ``blocks`` argument (a list, or its JSON in a form); None if absent."""
        value = args.get("blocks")
        if value is None:
            return None
        if isinstance(value, str):
            if value == "":
                return []
            try:
                value = json.loads(value)
            except ValueError:
                raise _SlackError("invalid_blocks_format") from None
        if not isinstance(value, list):
            raise _SlackError("invalid_blocks_format")
        if len(value) > MAX_BLOCKS or not all(
            isinstance(b, dict) and isinstance(b.get("type"), str) for b in value
        ):
            raise _SlackError("invalid_blocks")
        return value

    @staticmethod
    def _text_arg(args: dict[str, Any]) -> str | None:
        value = args.get("text")
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_TEXT_LENGTH:
            raise _SlackError("msg_too_long")
        return text

    # ---------------------------------------------------------------- handlers

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team.lower()}.slack.com/",
            "team": self.team,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args, by_name=True)
        blocks = self._blocks_arg(args)
        text = self._text_arg(args)
        if not text and not blocks and not args.get("attachments"):
            raise _SlackError("no_text")
        thread_ts = args.get("thread_ts")
        if thread_ts is not None:
            thread_ts = str(thread_ts)
            if thread_ts == "":
                thread_ts = None
            elif not _TS_RE.match(thread_ts):
                raise _SlackError("invalid_thread_ts")
        if not channel.is_member:
            raise _SlackError("not_in_channel")
        if channel.is_archived:
            raise _SlackError("is_archived")
        broadcast = _is_true(args.get("reply_broadcast", False))
        message = self._store(
            channel, text or "", blocks, self.bot_user_id, self.bot_id, thread_ts, broadcast
        )
        return {
            "channel": channel.id,
            "ts": message.ts,
            "message": self._message_json(channel, message),
        }

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args, by_name=False)  # chat.update wants the id
        ts = args.get("ts")
        if not isinstance(ts, str) or not ts:
            raise _SlackError("message_not_found")
        try:
            message = self.message(channel.id, ts)
        except KeyError:
            raise _SlackError("message_not_found") from None
        if message.user != self.bot_user_id:
            raise _SlackError("cant_update_message")
        if channel.is_archived:
            raise _SlackError("is_archived")
        blocks = self._blocks_arg(args)
        text = self._text_arg(args)
        if text is None and blocks is None and not args.get("attachments"):
            raise _SlackError("no_text")
        message.history.append((message.text, message.blocks))
        if text is not None:
            message.text = text
            message.blocks = blocks or None  # text without blocks drops the old blocks
        elif blocks is not None:
            message.blocks = blocks or None
        message.edited_ts = self._next_ts()
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(channel, message),
        }

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args, by_name=False)
        return {"channel": self._channel_json(channel)}
