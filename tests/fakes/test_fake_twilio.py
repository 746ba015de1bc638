"""Tests for the fake Twilio Messages API, driven through plain aiohttp with HTTP basic auth,
as the bridge will call it.

The ``Authorization: Basic`` header is built by hand (:func:`basic_auth`): aiohttp 3.14
deprecates ``aiohttp.BasicAuth`` and the ``auth=`` argument in favour of
``aiohttp.encode_basic_auth``, which older aiohttp releases the project allows lack.
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from .twilio import GSM7_BASIC, GSM7_EXTENSION, FakeTwilio, count_segments, gsm7_septets

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-secret"
FROM = "+15005550006"
TO = "+447700900123"


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
async def fake(clock: ManualClock) -> AsyncIterator[FakeTwilio]:
    """A running fake; fails the test if the fake itself crashed."""
    async with FakeTwilio(account_sid=SID, auth_token=TOKEN, clock=clock) as server:
        yield server
    assert server.internal_errors == []


def basic_auth(login: str = SID, password: str = TOKEN) -> dict[str, str]:
    """The ``Authorization`` header for HTTP basic auth (RFC 7617)."""
    encoded = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}


async def send(
    fake: FakeTwilio,
    form: dict[str, str] | None = None,
    *,
    auth: dict[str, str] | None = None,
    url: str | None = None,
    client_timeout: float = 5,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    """POST a form to the Messages resource with basic auth, as the bridge will; returns the
    status, headers and decoded JSON."""
    if form is None:
        form = {"To": TO, "From": FROM, "Body": "INC-7 P1: disk full on db-1"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client_timeout)) as session,
        session.post(
            url or fake.messages_url,
            data=form,
            headers=basic_auth() if auth is None else auth,
        ) as response,
    ):
        return response.status, response.headers, await response.json()


async def fetch(fake: FakeTwilio, path: str) -> tuple[int, Any]:
    """GET a resource path with the right credentials."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake.base_url + path, headers=basic_auth()) as response,
    ):
        return response.status, await response.json()


# ------------------------------------------------------------------------------ sending


async def test_send_creates_a_queued_message(fake: FakeTwilio, clock: ManualClock) -> None:
    """A form POST with basic auth is 201 with Twilio's Message JSON; the fake keeps it."""
    assert fake.messages_url == (f"{fake.base_url}/2010-04-01/Accounts/{SID}/Messages.json")
    status, _, data = await send(fake)
    assert status == 201
    assert data["sid"].startswith("SM")
    assert len(data["sid"]) == 34
    assert {k: data[k] for k in ("to", "from", "body", "status", "num_segments")} == {
        "to": TO,
        "from": FROM,
        "body": "INC-7 P1: disk full on db-1",
        "status": "queued",
        "num_segments": "1",
    }
    assert (data["account_sid"], data["api_version"], data["direction"]) == (
        SID,
        "2010-04-01",
        "outbound-api",
    )
    assert data["date_created"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert data["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{data['sid']}.json"
    assert (data["price"], data["error_code"], data["num_media"]) == (None, None, "0")

    [message] = fake.messages
    assert (message.sid, message.to, message.from_, message.body, message.segments) == (
        data["sid"],
        TO,
        FROM,
        "INC-7 P1: disk full on db-1",
        1,
    )
    assert message.encoding == "GSM-7"
    record = fake.requests[0]
    assert (record.method, record.status, record.code) == ("POST", 201, None)
    assert record.form == {"To": TO, "From": FROM, "Body": "INC-7 P1: disk full on db-1"}
    assert record.headers["Authorization"].startswith("Basic ")

    clock.advance(90)
    _, _, second = await send(fake, {"To": "+14155550100", "From": FROM, "Body": "again"})
    assert second["sid"] != data["sid"]
    assert second["date_created"] == "Wed, 01 May 2024 12:01:30 +0000"
    assert [m.to for m in fake.sent_to("+14155550100")] == ["+14155550100"]


async def test_fetch_and_status_lifecycle(fake: FakeTwilio, clock: ManualClock) -> None:
    """GET Messages/{Sid}.json returns the message; set_status moves it along; an unknown sid
    is 404 code 20404."""
    _, _, data = await send(fake)
    path = data["uri"]
    clock.advance(5)
    fake.set_status(data["sid"], "delivered")
    status, fetched = await fetch(fake, path)
    assert (status, fetched["status"], fetched["sid"]) == (200, "delivered", data["sid"])
    assert fetched["date_updated"] == "Wed, 01 May 2024 12:00:05 +0000"
    status, missing = await fetch(fake, path.replace(data["sid"], "SM" + "f" * 32))
    assert (status, missing["code"]) == (404, 20404)


async def test_messaging_service_is_accepted_with_zero_segments(fake: FakeTwilio) -> None:
    """Through a Messaging Service (no From) the answer is "accepted" with num_segments "0",
    as Twilio documents; the fake still records the real count."""
    service = "MG" + "a" * 32
    status, _, data = await send(fake, {"To": TO, "MessagingServiceSid": service, "Body": "x"})
    assert (status, data["status"], data["num_segments"], data["from"]) == (
        201,
        "accepted",
        "0",
        None,
    )
    assert data["messaging_service_sid"] == service
    assert fake.messages[0].segments == 1


# ------------------------------------------------------------------------------ errors


async def test_wrong_credentials_are_401_code_20003(fake: FakeTwilio) -> None:
    """A wrong token, a wrong account, no auth or a bearer token: 401 code 20003 with
    WWW-Authenticate; nothing is sent. The token can be rotated."""
    for auth in (
        basic_auth(SID, "wrong"),
        basic_auth("AC" + "f" * 32, TOKEN),
    ):
        status, headers, data = await send(fake, auth=auth)
        assert (status, data["code"], data["message"], data["status"]) == (
            401,
            20003,
            "Authenticate",
            401,
        )
        assert data["more_info"] == "https://www.twilio.com/docs/errors/20003"
        assert headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.messages_url, data={"To": TO}) as response,
    ):
        assert response.status == 401
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.messages_url, data={"To": TO}, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response,
    ):
        assert response.status == 401
    assert fake.messages == []
    assert [r.code for r in fake.requests] == [20003] * 4

    fake.auth_token = "rotated"
    assert (await send(fake))[0] == 401
    assert (await send(fake, auth=basic_auth(SID, "rotated")))[0] == 201


async def test_another_accounts_path_is_404(fake: FakeTwilio) -> None:
    """Right credentials but another account's URL: 404 code 20404."""
    other = fake.messages_url.replace(SID, "AC" + "e" * 32)
    status, _, data = await send(fake, url=other)
    assert (status, data["code"]) == (404, 20404)
    assert fake.messages == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Body": "x"}, 21604),
        ({"To": TO, "Body": "x"}, 21603),
        ({"To": TO, "From": FROM}, 21602),
        ({"To": TO, "From": FROM, "Body": ""}, 21602),
        ({"To": "447700900123", "From": FROM, "Body": "x"}, 21211),  # no +
        ({"To": "+1234567", "From": FROM, "Body": "x"}, 21211),  # 7 digits
        ({"To": "+1234567890123456", "From": FROM, "Body": "x"}, 21211),  # 16 digits
        ({"To": "+0447700900123", "From": FROM, "Body": "x"}, 21211),  # country code 0
        ({"To": "+44 7700 900123", "From": FROM, "Body": "x"}, 21211),  # spaces
        ({"To": "+44770090012a", "From": FROM, "Body": "x"}, 21211),
        ({"To": TO, "From": "not a number!", "Body": "x"}, 21212),
        ({"To": TO, "From": TO, "Body": "x"}, 21266),
        ({"To": TO, "From": FROM, "Body": "x" * 1601}, 21617),
        ({"To": TO, "MessagingServiceSid": "MG123", "Body": "x"}, 21701),
    ],
)
async def test_validation_errors(fake: FakeTwilio, form: dict[str, str], code: int) -> None:
    """Each invalid request is 400 with Twilio's code; nothing is sent."""
    status, _, data = await send(fake, form)
    assert (status, data["code"], data["status"]) == (400, code, 400)
    assert data["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert fake.messages == []


async def test_boundaries_that_are_valid(fake: FakeTwilio) -> None:
    """8 and 15 digits are valid E.164; 1,600 characters are allowed; an alphanumeric sender
    ID and a short code are valid senders."""
    for form in (
        {"To": "+12345678", "From": FROM, "Body": "x"},
        {"To": "+123456789012345", "From": FROM, "Body": "x"},
        {"To": TO, "From": FROM, "Body": "x" * 1600},
        {"To": TO, "From": "Acme Ops", "Body": "x"},
        {"To": TO, "From": "54321", "Body": "x"},
    ):
        assert (await send(fake, form))[0] == 201
    assert fake.messages[2].segments == math.ceil(1600 / 153)


async def test_from_numbers_restrict_the_sender(clock: ManualClock) -> None:
    """With from_numbers, any other From is 400 code 21606."""
    async with FakeTwilio(SID, TOKEN, from_numbers=[FROM], clock=clock) as fake:
        status, _, data = await send(fake, {"To": TO, "From": "+15005550001", "Body": "x"})
        assert (status, data["code"]) == (400, 21606)
        assert (await send(fake))[0] == 201
        assert len(fake.messages) == 1


# ------------------------------------------------------------------------------ segments


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("€" * 80, ("GSM-7", 1)),  # 160 septets
        ("€" * 81, ("GSM-7", 2)),  # 162 septets
        ("[]{}" * 20, ("GSM-7", 1)),  # 160 septets
        ("[]{}" * 20 + "a", ("GSM-7", 2)),
        ("a" * 159 + "^", ("GSM-7", 2)),
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà¤", ("GSM-7", 1)),
        # An escape pair is never split: 152 + 2 would overflow the first 153-septet part.
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 3)),
        ("ж" * 70, ("UCS-2", 1)),
        ("ж" * 71, ("UCS-2", 2)),
        ("ж" * 134, ("UCS-2", 2)),
        ("ж" * 135, ("UCS-2", 3)),
        ("a" * 69 + "ç", ("UCS-2", 1)),  # lower-case ç is not GSM-7 (only Ç is)
        ("a" * 70 + "\u2019", ("UCS-2", 2)),  # a curly apostrophe forces UCS-2
        ("😀" * 35, ("UCS-2", 1)),  # 70 UTF-16 code units
        ("😀" * 36, ("UCS-2", 2)),
        # A surrogate pair is never split either.
        ("ж" * 66 + "😀" + "ж" * 66, ("UCS-2", 3)),
    ],
)
def test_count_segments(body: str, expected: tuple[str, int]) -> None:
    """GSM-7 160/153 with extension characters counting double, UCS-2 70/67, like Twilio."""
    assert count_segments(body) == expected


def test_gsm7_tables() -> None:
    """The basic table has 127 characters (128 minus the escape), the extension table 10;
    they do not overlap; the septet count adds extension characters twice."""
    assert len(GSM7_BASIC) == 127
    assert frozenset("\f^{}\\[~]|€") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert gsm7_septets("a€[") == 5
    assert gsm7_septets("a`") is None  # the backtick is not GSM-7


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=800))
def test_gsm7_segment_bounds(body: str) -> None:
    """For any GSM-7 text: one segment up to 160 septets; beyond, at least ceil(septets/153)
    and at most one more per escape pair that could straddle a boundary."""
    septets = gsm7_septets(body)
    assert septets is not None
    encoding, segments = count_segments(body)
    assert encoding == "GSM-7"
    if septets <= 160:
        assert segments == 1
    else:
        assert math.ceil(septets / 153) <= segments <= math.ceil(septets / 152)


async def test_num_segments_in_the_response(fake: FakeTwilio) -> None:
    """The API answers num_segments as a string, per the message's encoding."""
    for body, expected in (("a" * 161, "2"), ("€" * 81, "2"), ("ж" * 71, "2"), ("ж" * 70, "1")):
        _, _, data = await send(fake, {"To": TO, "From": FROM, "Body": body})
        assert data["num_segments"] == expected
    assert [m.encoding for m in fake.messages] == ["GSM-7", "GSM-7", "UCS-2", "UCS-2"]


# ------------------------------------------------------------------------------ faults


async def test_429_with_retry_after(fake: FakeTwilio) -> None:
    """An injected 429 + Retry-After reaches the client as HTTP 429 with the header and code
    20429; nothing is sent; the next request goes through."""
    fault = fake.inject("POST", r"/Messages\.json$", 429, headers={"Retry-After": "12"})
    status, headers, data = await send(fake)
    assert (status, headers["Retry-After"], data["code"]) == (429, "12", 20429)
    assert fake.messages == []
    assert fault.hits == 1
    assert fake.faults == []
    assert (await send(fake))[0] == 201
    assert [(r.status, r.code) for r in fake.requests] == [(429, 20429), (201, None)]


async def test_5xx_apply_first_times_and_down(fake: FakeTwilio) -> None:
    """apply_first creates the message and then fails; plain faults do not create it; times
    counts down; down answers 503 to everything."""
    fake.inject("POST", r"/Messages\.json$", 500, apply_first=True)
    status, _, data = await send(fake)
    assert (status, data["code"]) == (500, 20500)
    assert len(fake.messages) == 1

    fake.inject("*", r"/Messages", 503, times=2, body={"code": 20503, "message": "busy"})
    for _ in range(2):
        status, _, data = await send(fake)
        assert (status, data) == (503, {"code": 20503, "message": "busy"})
    assert len(fake.messages) == 1

    fake.down = True
    assert (await send(fake))[0] == 503
    fake.down = False
    assert (await send(fake))[0] == 201
    assert len(fake.messages) == 2


async def test_drop_after_apply_is_a_connection_error_but_the_message_exists(
    fake: FakeTwilio,
) -> None:
    """drop + apply_first: Twilio queued the SMS, the client saw the connection close."""
    fake.inject("POST", r"/Messages\.json$", 0, drop=True, apply_first=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(fake)
    assert len(fake.messages) == 1
    assert fake.requests[-1].dropped is True

    fake.inject("POST", r"/Messages\.json$", 0, drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await send(fake)
    assert len(fake.messages) == 1


async def test_delay_past_the_client_timeout(fake: FakeTwilio) -> None:
    """A delay longer than the client's timeout is a TimeoutError; with apply_first the
    message exists anyway. status=0 keeps the real answer."""
    fake.inject("POST", r"/Messages\.json$", 0, delay=0.6, apply_first=True)
    with pytest.raises(asyncio.TimeoutError):
        await send(fake, client_timeout=0.2)
    assert len(fake.messages) == 1
    fake.inject("POST", r"/Messages\.json$", 0, delay=0.05)
    assert (await send(fake))[0] == 201
    await asyncio.sleep(0.5)  # let the slow handler finish before the fake shuts down
