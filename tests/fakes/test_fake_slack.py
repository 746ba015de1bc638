"""Tests for the fake Slack Web API, driven through slack-sdk's real ``AsyncWebClient``.

A few tests use raw aiohttp requests to pin down what the SDK never sends (a form body with
``blocks`` as JSON, a ``token`` argument, unknown methods, broken JSON).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from .slack import FakeSlack

TOKEN = "xoxb-test-token"
NO_TEXT_WARNING = "ignore:The top-level `text` argument is missing:UserWarning"
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*INC-7* Disk full on db-1"}}
]


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    """The fake's clock."""
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    """A running fake with two channels; fails the test if the fake itself crashed."""
    async with FakeSlack(token=TOKEN, channels=["#incidents", "#ops"], clock=clock) as server:
        yield server
    assert server.internal_errors == []


def make_client(fake: FakeSlack, token: str | None = TOKEN, **kwargs: Any) -> AsyncWebClient:
    """A slack-sdk client pointed at the fake; ``retry_handlers=[]`` unless given, so that
    faults surface instead of being retried."""
    kwargs.setdefault("retry_handlers", [])
    return AsyncWebClient(token=token, base_url=fake.base_url, timeout=5, **kwargs)


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    """A slack-sdk client for the fake, without retries."""
    return make_client(fake)


async def raw(
    fake: FakeSlack,
    api_method: str,
    *,
    token: str | None = TOKEN,
    data: dict[str, str] | bytes | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One raw POST; returns the status and the decoded JSON body."""
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.base_url + api_method, data=data, json=json_body, headers=all_headers
        ) as response,
    ):
        return response.status, await response.json(content_type=None)


# ------------------------------------------------------------------------------ auth


async def test_auth_test_and_base_url(fake: FakeSlack, client: AsyncWebClient) -> None:
    """auth.test answers with the bot's identity; base_url ends with "/" like slack.com/api/."""
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/api/")
    response = await client.auth_test()
    assert response.status_code == 200
    assert response["ok"] is True
    assert (response["user_id"], response["bot_id"], response["team_id"]) == (
        fake.bot_user_id,
        fake.bot_id,
        fake.team_id,
    )
    assert fake.calls("auth.test")[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_wrong_or_missing_token_is_http_200_ok_false(fake: FakeSlack) -> None:
    """A wrong token is invalid_auth, none is not_authed, both HTTP 200 like Slack; nothing
    is posted."""
    with pytest.raises(SlackApiError) as info:
        await make_client(fake, token="xoxb-wrong").chat_postMessage(channel="#incidents", text="x")
    assert info.value.response.status_code == 200
    assert info.value.response["error"] == "invalid_auth"

    with pytest.raises(SlackApiError) as info:
        await make_client(fake, token=None).auth_test()
    assert (info.value.response.status_code, info.value.response["error"]) == (200, "not_authed")
    assert fake.messages("#incidents") == []
    assert [(r.api_method, r.ok, r.error) for r in fake.requests] == [
        ("chat.postMessage", False, "invalid_auth"),
        ("auth.test", False, "not_authed"),
    ]

    fake.token = "xoxb-rotated"  # a revoked token stops working at once
    with pytest.raises(SlackApiError) as info:
        await make_client(fake).auth_test()
    assert info.value.response["error"] == "invalid_auth"


# ------------------------------------------------------------------------------ posting


async def test_post_by_name_and_id_returns_the_id_and_increasing_ts(
    fake: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    """chat.postMessage takes "#name", "name" or the id, answers with the id and a ts that is
    unique and increasing even at one clock instant; the message is stored with its blocks."""
    channel_id = fake.channel("#incidents").id
    first = await client.chat_postMessage(channel="#incidents", text="INC-7 opened", blocks=BLOCKS)
    second = await client.chat_postMessage(channel="incidents", text="second")
    third = await client.chat_postMessage(channel=channel_id, text="third")
    assert {first["channel"], second["channel"], third["channel"]} == {channel_id}
    assert first["ts"] == f"{int(clock.now.timestamp())}.000000"
    assert first["ts"] < second["ts"] < third["ts"]
    assert second["ts"] == f"{int(clock.now.timestamp())}.000001"

    message = first["message"]
    assert (message["text"], message["blocks"], message["user"], message["bot_id"]) == (
        "INC-7 opened",
        BLOCKS,
        fake.bot_user_id,
        fake.bot_id,
    )
    stored = fake.messages("#incidents")
    assert [m.text for m in stored] == ["INC-7 opened", "second", "third"]
    assert stored[0].blocks == BLOCKS
    assert stored[1].blocks is None
    assert fake.messages("#ops") == []
    assert fake.calls("chat.postMessage")[0].args == {
        "channel": "#incidents",
        "text": "INC-7 opened",
        "blocks": BLOCKS,
    }

    clock.advance(2.5)
    later = await client.chat_postMessage(channel="#ops", text="later")
    assert later["ts"] == f"{int(clock.now.timestamp())}.500000"


async def test_threaded_replies(fake: FakeSlack, client: AsyncWebClient) -> None:
    """thread_ts makes a reply stored under its parent (not in the channel unless broadcast);
    the parent reports reply_count and latest_reply."""
    parent = await client.chat_postMessage(channel="#incidents", text="INC-7 opened")
    ts = parent["ts"]
    reply = await client.chat_postMessage(channel="#incidents", text="acked", thread_ts=ts)
    assert reply["message"]["thread_ts"] == ts
    assert reply["message"]["parent_user_id"] == fake.bot_user_id
    human = fake.human_post("#incidents", "looking", thread_ts=ts)
    broadcast = await client.chat_postMessage(
        channel=fake.channel("#incidents").id, text="resolved", thread_ts=ts, reply_broadcast=True
    )
    assert broadcast["message"]["subtype"] == "thread_broadcast"

    assert [m.text for m in fake.thread("#incidents", ts)] == ["acked", "looking", "resolved"]
    assert [m.text for m in fake.messages("#incidents")] == ["INC-7 opened", "resolved"]
    assert fake.message("#incidents", reply["ts"]).thread_ts == ts
    assert human.user != fake.bot_user_id

    # The parent as Slack now shows it (via an update, which answers with the message).
    updated = await client.chat_update(channel=parent["channel"], ts=ts, text="INC-7 acked")
    assert updated["message"]["reply_count"] == 3
    assert updated["message"]["latest_reply"] == broadcast["ts"]
    assert updated["message"]["reply_users"] == sorted({fake.bot_user_id, human.user})


async def test_thread_ts_unknown_or_malformed(fake: FakeSlack, client: AsyncWebClient) -> None:
    """A well-formed thread_ts that is no message's is accepted, as Slack does, and the reply
    is seen nowhere in the channel; a malformed one is invalid_thread_ts."""
    response = await client.chat_postMessage(
        channel="#incidents", text="lost", thread_ts="1700000000.000100"
    )
    assert response["ok"] is True
    assert fake.messages("#incidents") == []
    assert [m.text for m in fake.thread("#incidents", "1700000000.000100")] == ["lost"]

    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="#incidents", text="x", thread_ts="0")
    assert info.value.response["error"] == "invalid_thread_ts"


@pytest.mark.filterwarnings(NO_TEXT_WARNING)  # blocks-only and empty calls on purpose
async def test_post_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    """Unknown channel, a channel without the bot, an archived one, a hidden private one, no
    text, too long text and bad blocks are Slack's errors; nothing is stored."""
    fake.add_channel("#elsewhere", member=False)
    fake.add_channel("#old", archived=True)
    fake.add_channel("#secret", private=True, member=False)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "#nope", "text": "x"}, "channel_not_found"),
        ({"channel": "C0DOESNOTEXIST", "text": "x"}, "channel_not_found"),
        ({"channel": "#elsewhere", "text": "x"}, "not_in_channel"),
        ({"channel": "#old", "text": "x"}, "is_archived"),
        ({"channel": "#secret", "text": "x"}, "channel_not_found"),
        ({"channel": "#incidents"}, "no_text"),
        ({"channel": "#incidents", "text": ""}, "no_text"),
        ({"channel": "#incidents", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "#incidents", "text": "x", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        ({"channel": "#incidents", "text": "x", "blocks": "{not json"}, "invalid_blocks_format"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(**kwargs)
        assert (info.value.response.status_code, info.value.response["error"]) == (200, error)
    for name in ("#incidents", "#elsewhere", "#old", "#secret"):
        assert fake.messages(name) == []
    # Blocks alone (no text) are fine.
    response = await client.chat_postMessage(channel="#incidents", blocks=BLOCKS)
    assert fake.message("#incidents", response["ts"]).text == ""


# ------------------------------------------------------------------------------ updating


@pytest.mark.filterwarnings(NO_TEXT_WARNING)  # blocks-only and empty calls on purpose
async def test_update_replaces_text_and_blocks(
    fake: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    """chat.update by channel id and ts: text alone drops the blocks, blocks alone keep the
    text, [] removes blocks; history and edited are kept."""
    posted = await client.chat_postMessage(channel="#incidents", text="v1", blocks=BLOCKS)
    channel_id, ts = posted["channel"], posted["ts"]

    new_blocks = [{"type": "section", "text": {"type": "plain_text", "text": "v2"}}]
    clock.advance(60)
    response = await client.chat_update(channel=channel_id, ts=ts, blocks=new_blocks)
    assert (response["channel"], response["ts"], response["text"]) == (channel_id, ts, "v1")
    assert response["message"]["blocks"] == new_blocks
    assert response["message"]["edited"]["ts"] == f"{int(clock.now.timestamp())}.000000"

    await client.chat_update(channel=channel_id, ts=ts, text="v3", blocks=BLOCKS)
    assert (fake.message(channel_id, ts).text, fake.message(channel_id, ts).blocks) == (
        "v3",
        BLOCKS,
    )
    await client.chat_update(channel=channel_id, ts=ts, text="v4")
    message = fake.message("#incidents", ts)
    assert (message.text, message.blocks) == ("v4", None)
    await client.chat_update(channel=channel_id, ts=ts, text="v5", blocks=[])
    assert fake.message("#incidents", ts).blocks is None
    assert [text for text, _ in message.history] == ["v1", "v1", "v3", "v4"]
    assert len(fake.messages("#incidents")) == 1  # updated in place, never re-posted

    # A threaded reply can be updated too.
    reply = await client.chat_postMessage(channel=channel_id, text="r1", thread_ts=ts)
    await client.chat_update(channel=channel_id, ts=reply["ts"], text="r2")
    assert [m.text for m in fake.thread(channel_id, ts)] == ["r2"]


@pytest.mark.filterwarnings(NO_TEXT_WARNING)  # blocks-only and empty calls on purpose
async def test_update_errors(fake: FakeSlack, client: AsyncWebClient) -> None:
    """chat.update wants the channel id (a name is channel_not_found), an existing ts, the
    bot's own message and something to set."""
    posted = await client.chat_postMessage(channel="#incidents", text="v1")
    channel_id, ts = posted["channel"], posted["ts"]
    human = fake.human_post("#incidents", "a person's message")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "#incidents", "ts": ts, "text": "x"}, "channel_not_found"),
        ({"channel": channel_id, "ts": "1.000001", "text": "x"}, "message_not_found"),
        ({"channel": fake.channel("#ops").id, "ts": ts, "text": "x"}, "message_not_found"),
        ({"channel": channel_id, "ts": human.ts, "text": "x"}, "cant_update_message"),
        ({"channel": channel_id, "ts": ts}, "no_text"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(**kwargs)
        assert info.value.response["error"] == error
    assert fake.message(channel_id, ts).text == "v1"
    assert fake.message(channel_id, ts).history == []


async def test_conversations_info(fake: FakeSlack, client: AsyncWebClient) -> None:
    """conversations.info by id (a GET with query parameters); a name is channel_not_found."""
    channel = fake.channel("#ops")
    response = await client.conversations_info(channel=channel.id)
    assert response["channel"]["id"] == channel.id
    assert response["channel"]["name"] == "ops"
    assert response["channel"]["is_member"] is True
    assert fake.calls("conversations.info")[0].method == "GET"
    with pytest.raises(SlackApiError) as info:
        await client.conversations_info(channel="#ops")
    assert info.value.response["error"] == "channel_not_found"


async def test_raw_form_body_token_argument_and_odd_input(fake: FakeSlack) -> None:
    """A form body with blocks as a JSON string and the token as an argument works like the
    SDK's JSON; unknown methods are HTTP 404 unknown_method; broken JSON is invalid_json."""
    status, data = await raw(
        fake,
        "chat.postMessage",
        token=None,
        data={"token": TOKEN, "channel": "#incidents", "text": "t", "blocks": json.dumps(BLOCKS)},
    )
    assert (status, data["ok"]) == (200, True)
    assert fake.message("#incidents", data["ts"]).blocks == BLOCKS
    assert "token" not in fake.requests[-1].args

    assert await raw(fake, "chat.nope", json_body={}) == (
        404,
        {"ok": False, "error": "unknown_method"},
    )
    status, data = await raw(
        fake, "chat.postMessage", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert (status, data["error"]) == (200, "invalid_json")
    status, data = await raw(fake, "auth.test", token=None, data={"token": "wrong"})
    assert data["error"] == "invalid_auth"
    assert len(fake.messages("#incidents")) == 1


# ------------------------------------------------------------------------------ faults


async def test_429_with_retry_after_is_a_slack_api_error(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    """An injected 429 + Retry-After surfaces as SlackApiError with status 429, the header
    and error "ratelimited"; the message was not posted; the next call goes through."""
    fault = fake.inject("POST", r"chat\.postMessage$", 429, headers={"Retry-After": "30"})
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="#incidents", text="INC-7")
    response = info.value.response
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert response["error"] == "ratelimited"
    assert fake.messages("#incidents") == []
    assert fault.hits == 1
    assert fake.faults == []

    await client.chat_postMessage(channel="#incidents", text="INC-7")
    assert [r.status for r in fake.calls("chat.postMessage")] == [429, 200]


async def test_429_retried_by_the_sdks_rate_limit_handler(fake: FakeSlack) -> None:
    """With slack-sdk's AsyncRateLimitErrorRetryHandler the 429 is waited out (Retry-After 0)
    and retried; exactly one message results."""
    fake.inject("POST", r"chat\.postMessage$", 429, headers={"Retry-After": "0"})
    client = make_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    response = await client.chat_postMessage(channel="#incidents", text="INC-7")
    assert response["ok"] is True
    assert [m.text for m in fake.messages("#incidents")] == ["INC-7"]
    assert [r.status for r in fake.calls("chat.postMessage")] == [429, 200]


async def test_5xx_with_and_without_apply_first(fake: FakeSlack, client: AsyncWebClient) -> None:
    """500/503 surface as SlackApiError with that status; apply_first posts the message before
    failing, plain faults do not; an HTML body is an error too; times counts down."""
    fake.inject("POST", r"chat\.postMessage$", 503, apply_first=True)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="#incidents", text="applied")
    assert info.value.response.status_code == 503
    assert info.value.response["error"] == "service_unavailable"
    assert [m.text for m in fake.messages("#incidents")] == ["applied"]

    fake.inject("*", r"chat\.", 500, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            await client.chat_postMessage(channel="#incidents", text="not applied")
        assert info.value.response.status_code == 500
    fake.inject("POST", r"chat\.update$", 502, body="<html>Bad Gateway</html>")
    ts = fake.messages("#incidents")[0].ts
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=fake.channel("#incidents").id, ts=ts, text="x")
    assert info.value.response.status_code == 502
    assert [m.text for m in fake.messages("#incidents")] == ["applied"]

    fake.down = True
    with pytest.raises(SlackApiError) as info:
        await client.auth_test()
    assert info.value.response.status_code == 503
    fake.down = False
    assert (await client.auth_test())["ok"] is True


async def test_drop_after_apply_is_a_connection_error_but_the_message_exists(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    """drop + apply_first: Slack posted the message, the client saw the connection close."""
    fault = fake.inject("POST", r"chat\.postMessage$", 0, drop=True, apply_first=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel="#incidents", text="INC-7")
    assert [m.text for m in fake.messages("#incidents")] == ["INC-7"]
    assert fault.hits == 1
    assert fake.requests[-1].dropped is True

    # Without apply_first nothing is posted.
    fake.inject("POST", r"chat\.postMessage$", 0, drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel="#incidents", text="never")
    assert len(fake.messages("#incidents")) == 1


async def test_sdk_default_retry_after_a_drop_posts_twice(fake: FakeSlack) -> None:
    """slack-sdk retries once after a dropped connection by default: after a drop that was
    applied, the retry posts the same text again (the duplicate hazard the bridge must own)."""
    fake.inject("POST", r"chat\.postMessage$", 0, drop=True, apply_first=True)
    client = AsyncWebClient(token=TOKEN, base_url=fake.base_url, timeout=5)
    response = await client.chat_postMessage(channel="#incidents", text="INC-7")
    assert response["ok"] is True
    assert [m.text for m in fake.messages("#incidents")] == ["INC-7", "INC-7"]


async def test_delay_past_the_client_timeout(fake: FakeSlack) -> None:
    """A delay longer than the client's timeout is a TimeoutError; with apply_first the
    message exists anyway. status=0 keeps the real answer."""
    fake.inject("POST", r"chat\.postMessage$", 0, delay=1.5, apply_first=True)
    client = AsyncWebClient(token=TOKEN, base_url=fake.base_url, timeout=1, retry_handlers=[])
    with pytest.raises(asyncio.TimeoutError):
        await client.chat_postMessage(channel="#incidents", text="slow")
    assert [m.text for m in fake.messages("#incidents")] == ["slow"]

    fake.inject("POST", r"auth\.test$", 0, delay=0.05)
    assert (await client.auth_test())["ok"] is True
    await asyncio.sleep(0.6)  # let the slow handler finish before the fake shuts down
