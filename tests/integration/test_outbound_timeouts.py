"""Outbound calls give up within their timeout, not up to a second later.

aiohttp rounds a timeout of 5 s or more up to the next whole second of the loop's clock, so the
5 s timeouts of the Slack and Twilio adapters held a hung provider's lane for up to 6 s per
attempt (and a shutdown waited as long). The aiohttp clients take their timeout from
bridge/http_timeout.py, with that rounding off. Here each client talks to a loopback server that
takes the request and never answers; the calls start just after a whole second of the loop's
clock, where rounding would add almost a full second.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import pytest

from bridge.alertmanager_api import AlertmanagerClient, AlertmanagerError
from bridge.config import SlackConfig, TwilioConfig
from bridge.effects import EffectError
from bridge.engine import apply_notification
from bridge.notify.base import Notice
from bridge.notify.slack import SlackNotifier
from bridge.notify.sms import SmsNotifier
from store_support import POLICY, T0, alert, note
from support import SLACK_CHANNEL, SLACK_TOKEN, TWILIO_SID, TWILIO_TOKEN

TIMEOUT = 5.0  # the adapters' own (Slack's and Twilio's fixed, the Alertmanager API's as set)


@pytest.fixture
async def hung_url() -> AsyncIterator[str]:
    """A server that accepts connections, reads what comes and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def notice(recipient: str) -> Notice:
    """The opening of an incident, as the engine makes it from a notification."""
    decision = apply_notification(None, note(alert()), T0, POLICY)
    assert decision.incident is not None
    return Notice(incident=decision.incident, event=decision.events[-1], recipient=recipient)


async def gives_up_after(call: Awaitable[object]) -> tuple[float, BaseException]:
    started = time.monotonic()
    try:
        await call
    except (EffectError, AlertmanagerError) as error:
        return time.monotonic() - started, error
    raise AssertionError("a server that never answers was answered")


async def test_every_http_client_gives_up_within_its_five_second_timeout(hung_url: str) -> None:
    """Slack, Twilio and the Alertmanager API each give up between 5.0 and 5.4 s, as a
    retryable failure whose outcome the outbox treats as unknown where it may have been sent."""
    sms = SmsNotifier(
        TwilioConfig(
            api_url=hung_url, account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, from_="+15550000000"
        )
    )
    slack = SlackNotifier(SlackConfig(api_url=hung_url, token=SLACK_TOKEN, channel=SLACK_CHANNEL))
    alertmanager = AlertmanagerClient([hung_url], timeout=timedelta(seconds=TIMEOUT))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(math.ceil(loop.time()) - loop.time() + 0.02)  # just past a whole second
    try:
        results = await asyncio.gather(
            gives_up_after(sms.send(notice("+15550001111"))),
            gives_up_after(slack.send(notice(SLACK_CHANNEL))),
            gives_up_after(alertmanager.groups(hung_url)),
        )
    finally:
        await sms.close()
        await slack.close()
        await alertmanager.close()
    for elapsed, error in results:
        assert TIMEOUT <= elapsed < TIMEOUT + 0.4, (elapsed, error)
        assert getattr(error, "retryable", False), error
