"""A stateful fake of the slice of Twilio's Programmable Messaging REST API the bridge uses.

The fake is an aiohttp application served on ``127.0.0.1`` with an ephemeral port::

    async with FakeTwilio(account_sid=SID, auth_token=TOKEN) as fake:
        url = f"{fake.base_url}/2010-04-01/Accounts/{SID}/Messages.json"
        await session.post(url, data={"To": ..., "From": ..., "Body": ...},
                           headers={"Authorization": "Basic " + b64(f"{SID}:{TOKEN}")})

It follows Twilio's documented behaviour (Message resource, API version ``2010-04-01``):

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body (``To``, ``From``
  or ``MessagingServiceSid``, ``Body``) creates a message: 201 and the Message JSON
  (``sid`` ``SM`` + 32 hex, ``status`` ``"queued"`` — ``"accepted"`` through a Messaging
  Service —, ``num_segments`` as a string, RFC 2822 dates, ``direction`` ``outbound-api``).
  ``GET .../Messages/{Sid}.json`` fetches one.
* HTTP basic auth with the account SID and auth token; anything else is 401 with code 20003
  (and ``WWW-Authenticate``). Another account's path is 404 code 20404.
* Errors are Twilio's JSON: ``{"code", "message", "more_info", "status"}``. 400 code 21604
  (no ``To``), 21603 (no ``From``), 21602 (no ``Body``), 21211 (``To`` not E.164: ``+`` and
  8 to 15 digits, the first not 0), 21212 (``From`` neither E.164, a short code nor an
  alphanumeric sender ID), 21606 (``From`` not one of ``from_numbers``, when given), 21266
  (``To`` equals ``From``), 21617 (``Body`` over 1,600 characters).
* ``num_segments`` as Twilio counts it (:func:`count_segments`): GSM-7 when every character
  is in the GSM 03.38 basic or extension table (extension characters ``€ [ ] { } \\ ^ ~ |``
  and form feed take two septets), 160 septets in one segment, else 153 per part; otherwise
  UCS-2, 70 UTF-16 code units in one, else 67 per part. An escape pair or a surrogate pair is
  never split across parts. (Twilio's opt-in Smart Encoding, which swaps look-alikes such as
  curly quotes for GSM characters, is not modelled.)

Rate limiting (429 with ``Retry-After``, code 20429), 5xx, delays and dropped connections come
only from fault injection (:meth:`FakeTwilio.inject`, :attr:`FakeTwilio.down`). There is a
request log and an injectable clock.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from fakes.loopback import Fault, LoopbackServer, with_faults

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "FakeTwilio",
    "RecordedRequest",
    "SmsMessage",
    "TwilioFault",
    "count_segments",
    "gsm7_septets",
]

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_VERSION = "2010-04-01"
MAX_BODY_LENGTH = 1600
ERRORS_URL = "https://www.twilio.com/docs/errors"

# GSM 03.38 default alphabet (positions 0x00-0x7F; 0x1B is the escape to the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The 127 characters of the GSM-7 basic table; each takes one septet."""
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""The GSM-7 extension table; each character takes two septets (escape + code)."""

GSM7_SINGLE, GSM7_PART = 160, 153  # septets: one-segment message / each part of a longer one
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units, likewise

_E164_RE = re.compile(r"^\+[1-9]\d{7,14}$")
_SHORT_CODE_RE = re.compile(r"^\d{3,8}$")
_ALPHANUMERIC_RE = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_MESSAGING_SERVICE_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
_ROOT = f"/{API_VERSION}/Accounts/{{account_sid}}"


def gsm7_septets(text: str) -> int | None:
    """The septets ``text`` takes in GSM-7, or None if a character is not in GSM-7."""
    total = 0
    for char in text:
        if char in GSM7_BASIC:
            total += 1
        elif char in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


def _parts(units: list[int], single: int, part: int) -> int:
    """Segments for characters taking ``units`` each: one if all fit in ``single``, else
    filled greedily ``part`` at a time without splitting a character."""
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > part:
            segments += 1
            used = 0
        used += size
    return segments


def count_segments(body: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", segments)`` for an SMS body, as Twilio counts ``num_segments``."""
    if gsm7_septets(body) is not None:
        units = [2 if char in GSM7_EXTENSION else 1 for char in body]
        return "GSM-7", _parts(units, GSM7_SINGLE, GSM7_PART)
    units = [2 if ord(char) > 0xFFFF else 1 for char in body]  # astral: a surrogate pair
    return "UCS-2", _parts(units, UCS2_SINGLE, UCS2_PART)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class SmsMessage:
    """A message the fake accepted. ``from_`` is the sender (``From``, or None when sent
    through a Messaging Service); ``segments``/``encoding`` as :func:`count_segments`."""

    sid: str
    to: str
    from_: str | None
    body: str
    segments: int
    encoding: str
    status: str
    date_created: datetime
    date_updated: datetime
    messaging_service_sid: str | None = None


@dataclass
class RecordedRequest:
    """One request as the fake saw it, with what it answered.

    ``form`` is the decoded form body; ``code`` the Twilio error code of the answer (None on
    success or when the answer was not Twilio JSON). ``dropped``: the connection was closed
    instead of answering.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    form: dict[str, str] = field(default_factory=dict)
    status: int = 0
    code: int | None = None
    dropped: bool = False


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"{ERRORS_URL}/{code}",
        "status": status,
    }


@dataclass
class TwilioFault(Fault):
    """An injected response (see :class:`fakes.loopback.Fault`) in the service's error shape."""

    def response(self) -> web.Response:
        """The response to send in place of the real one; by default Twilio's error shape
        with code 20000 + status (20429 Too Many Requests, 20500, 20503)."""
        body = self.body
        if body is None:
            body = _error_body(self.status, 20000 + self.status, _reason(self.status))
        return _json_response(body, status=self.status, headers=self.headers)


class _TwilioError(Exception):
    """Raised by handlers; answered in Twilio's error shape."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self) -> web.Response:
        body = _error_body(self.status, self.code, self.message)
        return _json_response(body, status=self.status, headers=self.headers)


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


def _rfc2822(value: datetime) -> str:
    """Twilio's date format: ``Wed, 01 May 2024 12:00:00 +0000``."""
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeTwilio(LoopbackServer):
    """Fake Twilio Messages API; see the module docstring.

    ``account_sid``/``auth_token`` are the accepted basic-auth credentials (the token may be
    changed at any time, e.g. to simulate a rotation). ``from_numbers``, when given, are the
    account's senders; ``From`` must be one of them (else 21606). ``clock`` returns an aware
    ``datetime`` used for every date.
    """

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 31 + "1",
        auth_token: str = "twilio-auth-token",  # noqa: S107 - a fake token for a fake server
        *,
        from_numbers: Iterable[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", account_sid):
            raise ValueError(f"an account SID is 'AC' and 32 hex digits, got {account_sid!r}")
        self.account_sid = account_sid
        self.auth_token = auth_token
        """Accepted auth token; may be changed at any time."""
        self.from_numbers = None if from_numbers is None else frozenset(from_numbers)
        self.down = False
        """When true, every request is answered with 503 (code 20503)."""
        self.messages: list[SmsMessage] = []
        """Every message accepted, in order."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self.faults: list[TwilioFault] = []
        """Pending injected faults (exhausted ones are removed)."""
        self.internal_errors: list[BaseException] = []
        """Bugs in the fake itself (answered with 500); tests may assert this stays empty."""
        self._clock = clock or _utcnow
        self._sids = itertools.count(1)
        self.app = self._build_app()

    # ---------------------------------------------------------------- lifecycle

    def _url(self, host: str, port: int) -> str:
        """``http://127.0.0.1:PORT``, Twilio's ``api_url``."""
        return f"http://{host}:{port}"

    @property
    def messages_url(self) -> str:
        """The URL to POST messages to: ``{base_url}/2010-04-01/Accounts/{sid}/Messages.json``."""
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    # ---------------------------------------------------------------- request log

    def calls(self, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only those with one HTTP method."""
        return [r for r in self.requests if method is None or r.method == method.upper()]

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
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        apply_first: bool = False,
        delay: float = 0.0,
        drop: bool = False,
    ) -> TwilioFault:
        """Answer the next ``times`` requests matching ``method`` (or ``"*"``) and
        ``path_regex`` (searched in the path, e.g. ``r"/Messages\\.json$"``) with
        ``status``/``body``/``headers``.

        ``body`` defaults to Twilio's error shape with code 20000 + status. With
        ``apply_first=True`` the request is processed first, so the message is created
        ("Twilio accepted it but the response was lost"). ``delay`` waits that many seconds
        before answering (after applying, with ``apply_first``). ``drop`` closes the
        connection instead of answering. ``status=0`` keeps the real response (useful with
        ``delay``). Faults are matched in injection order; the returned :class:`TwilioFault`
        counts its ``hits``.
        """
        fault = TwilioFault(
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

    def message(self, sid: str) -> SmsMessage:
        """One message by SID; ``KeyError`` if unknown."""
        for message in self.messages:
            if message.sid == sid:
                return message
        raise KeyError(sid)

    def sent_to(self, number: str) -> list[SmsMessage]:
        """The messages sent to ``number``, in order."""
        return [m for m in self.messages if m.to == number]

    def set_status(self, sid: str, status: str) -> SmsMessage:
        """Move a message along its lifecycle (``sent``, ``delivered``, ``failed``…), as
        Twilio would after accepting it."""
        message = self.message(sid)
        message.status = status
        message.date_updated = self._now()
        return message

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC).replace(microsecond=0)

    # ---------------------------------------------------------------- JSON shapes

    def _message_json(self, message: SmsMessage) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}"
        via_service = message.messaging_service_sid is not None and message.status == "accepted"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": _rfc2822(message.date_created),
            "date_sent": None,
            "date_updated": _rfc2822(message.date_updated),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            # Through a Messaging Service the sender, hence the count, is not known yet.
            "num_segments": "0" if via_service else str(message.segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    # ---------------------------------------------------------------- HTTP plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(_ROOT + "/Messages.json", self._create_message)
        app.router.add_get(_ROOT + "/Messages/{message_sid}.json", self._fetch_message)
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
            form=dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)),
        )
        self.requests.append(record)
        try:
            response = await self._dispatch(request, handler)
        except asyncio.CancelledError:
            record.dropped = True
            raise
        record.status = response.status
        if response.status >= 400 and isinstance(response, web.Response):
            try:
                answer = json.loads(response.body) if isinstance(response.body, bytes) else None
            except ValueError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("code"), int):
                record.code = answer["code"]
        return response

    async def _dispatch(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.down:
            return _TwilioError(503, 20503, "Service Unavailable").response()
        return await with_faults(request, self.faults, lambda: self._handle(request, handler))

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._check_auth(request)
            return await handler(request)
        except _TwilioError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status == 405:
                return _TwilioError(405, 20004, "Method not allowed").response()
            return self._not_found(request).response()
        except Exception as exc:
            _log.exception("FakeTwilio internal error on %s %s", request.method, request.path)
            self.internal_errors.append(exc)
            return _TwilioError(500, 20500, f"FakeTwilio internal error: {exc!r}").response()

    @staticmethod
    def _not_found(request: web.Request) -> _TwilioError:
        return _TwilioError(404, 20404, f"The requested resource {request.path} was not found")

    def _check_auth(self, request: web.Request) -> None:
        unauthorized = _TwilioError(
            401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
        )
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise unauthorized
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized from None
        username, _, password = decoded.partition(":")
        if username != self.account_sid or password != self.auth_token:
            raise unauthorized
        if request.match_info.get("account_sid", self.account_sid) != self.account_sid:
            raise self._not_found(request)

    # ---------------------------------------------------------------- handlers

    async def _create_message(self, request: web.Request) -> web.Response:
        form = await request.post()
        to = str(form.get("To", "")).strip()
        sender = str(form.get("From", "")).strip()
        service = str(form.get("MessagingServiceSid", "")).strip()
        body = str(form.get("Body", ""))
        if not to:
            raise _TwilioError(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            raise _TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl"):
            raise _TwilioError(400, 21602, "Message body is required.")
        if not _E164_RE.match(to):
            raise _TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if service and not _MESSAGING_SERVICE_RE.match(service):
            raise _TwilioError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        if sender:
            valid_sender = (
                _E164_RE.match(sender)
                or _SHORT_CODE_RE.match(sender)
                or _ALPHANUMERIC_RE.match(sender)
            )
            if not valid_sender:
                raise _TwilioError(400, 21212, f"Invalid From Number (caller ID): {sender}")
            if self.from_numbers is not None and sender not in self.from_numbers:
                raise _TwilioError(
                    400,
                    21606,
                    f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                    "number or short code for your account.",
                )
            if sender == to:
                raise _TwilioError(400, 21266, "'To' and 'From' number cannot be the same")
        if len(body) > MAX_BODY_LENGTH:
            raise _TwilioError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        encoding, segments = count_segments(body)
        now = self._now()
        message = SmsMessage(
            sid=f"SM{next(self._sids):032x}",
            to=to,
            from_=sender or None,
            body=body,
            segments=segments,
            encoding=encoding,
            status="queued" if sender else "accepted",
            date_created=now,
            date_updated=now,
            messaging_service_sid=service or None,
        )
        self.messages.append(message)
        return _json_response(self._message_json(message), status=201)

    async def _fetch_message(self, request: web.Request) -> web.Response:
        try:
            message = self.message(request.match_info["message_sid"])
        except KeyError:
            raise self._not_found(request) from None
        return _json_response(self._message_json(message))
