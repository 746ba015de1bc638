"""SMS to stakeholders through Twilio's Messages API, over plain aiohttp.

One ``POST {api_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` per text, form ``To``,
``From`` and ``Body`` (one segment, :func:`bridge.notify.render.sms_text`), HTTP basic auth with
the account SID and the auth token. 201 is done.

Failures are classified for the outbox (delivery is at least once; it repeats only after an
unknown outcome, never after a known refusal):

* nothing reached Twilio — connection refused, DNS — is retryable and nothing went out;
* 429 is retryable after ``Retry-After``; Twilio did not take the message;
* a 5xx is retryable with the outcome unknown: Twilio may have queued the message first;
* the connection dropped or timed out once the request may have been sent: retryable, outcome
  unknown;
* 401 (20003, bad credentials), 400 (21211 invalid ``To``, 21614 not a mobile number…) and every
  other 4xx are permanent: repeating the same request cannot succeed.

The auth token is only ever in the ``Authorization`` header of the request itself: no error
text, log line or ``repr`` carries it or the header.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.config import TwilioConfig
from bridge.effects import EffectError, retry_after_seconds
from bridge.http_timeout import client_timeout
from bridge.model import Lane
from bridge.notify import render
from bridge.notify.base import Bundle, Notice

API_VERSION = "2010-04-01"
TIMEOUT_SECONDS = 5.0
# Failures before a byte of the request left: refused, DNS, TLS, and (aiohttp 3.10+, which names
# it) a connect timeout. Any other timeout may come after Twilio took the request.
_NOT_SENT: tuple[type[Exception], ...] = (aiohttp.ClientConnectorError,) + (
    (aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()
)


def messages_url(config: TwilioConfig) -> str:
    """The Messages resource of the configured account."""
    base = str(config.api_url).rstrip("/")
    return f"{base}/{API_VERSION}/Accounts/{quote(config.account_sid, safe='')}/Messages.json"


def _twilio_error(body: bytes) -> tuple[int | None, str]:
    """Twilio's error ``code`` and ``message`` from an error answer (best effort)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    code = data.get("code")
    message = data.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        " ".join(message.split())[:200] if isinstance(message, str) else "",
    )


class SmsNotifier:
    """The ``sms`` lane's adapter: one text per stakeholder phone number."""

    channel: Lane = "sms"

    def __init__(self, config: TwilioConfig, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self._config = config
        self._url = messages_url(config)
        self._timeout = client_timeout(timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"SmsNotifier(account_sid={self._config.account_sid!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _authorization(self) -> str:
        # Built per request, by hand: aiohttp.BasicAuth is deprecated in aiohttp 3.14, and its
        # replacement is missing from the older releases the project allows.
        pair = f"{self._config.account_sid}:{self._config.auth_token.get()}"
        return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")

    async def send(self, notice: Notice) -> dict[str, str]:
        await self._post(notice.recipient, render.sms_text(notice))
        return {}

    async def send_bundle(self, bundle: Bundle) -> None:
        await self._post(bundle.recipient, render.bundle_sms(bundle.items))

    async def _post(self, to: str, text: str) -> None:
        form = {"To": to, "From": self._config.from_, "Body": text}
        headers = {"Authorization": self._authorization(), "Accept": "application/json"}
        try:
            async with self._client().post(
                self._url, data=form, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return  # created: Twilio queued it (the body is not needed)
                wait = retry_after_seconds(response.headers.get("Retry-After"), time.time())
                try:
                    body = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    body = b""
        except _NOT_SENT as error:
            # Refused, unresolvable, TLS failed, no connection in time: the request never left.
            raise EffectError(
                f"Twilio unreachable: {type(error).__name__}", retryable=True
            ) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            # Dropped or timed out after the request may have been sent: Twilio may have it.
            raise EffectError(
                f"Twilio connection lost: {type(error).__name__}",
                retryable=True,
                outcome_unknown=True,
            ) from None
        raise _classify(status, body, wait)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _classify(status: int, body: bytes, wait: float | None) -> EffectError:
    code, message = _twilio_error(body)
    detail = f"Twilio {status}" + (f" (code {code})" if code is not None else "")
    if message:
        detail += f": {message}"
    if status == 429:
        return EffectError(detail, retryable=True, status=status, retry_after=wait)
    if status >= 500:
        # Twilio may have queued the message before failing: repeating may send it twice.
        return EffectError(
            detail, retryable=True, status=status, retry_after=wait, outcome_unknown=True
        )
    # 401 (20003) bad credentials, 404 another account, 400 a bad number (21211, 21614…),
    # and anything else unexpected (a redirect): the same request cannot succeed.
    return EffectError(detail, retryable=False, status=status)
