"""Alertmanager's own API (v2), read by reconciliation and silence awareness.

One request per peer and round: ``GET {url}/api/v2/alerts/groups``, which lists every alert group
of every receiver with its alerts — active, silenced or inhibited (the API's defaults) — each
with its ``fingerprint`` (the same as in the webhook) and ``status`` (``state`` ``active`` |
``suppressed`` | ``unprocessed``, ``silencedBy`` / ``inhibitedBy`` ids). Alerts whose ``endsAt``
has passed are not listed: a resolved alert is simply gone. The API has no ``groupKey``.

Models are pydantic with unknown fields ignored (a field a newer Alertmanager adds is no error);
the fields read are checked. Every failure — unreachable, a timeout, a non-200 answer, a body that
is not the API's shape — is one :class:`AlertmanagerError`, classified retryable (try again next
round) or permanent (a URL or a proxy answering something else: retrying will not help until the
configuration changes). Nothing is retried here: the next round is the retry.

A peer URL may carry basic-auth credentials (``http://user:password@am:9093``); aiohttp sends
them as the ``Authorization`` header and no error text or log line carries them
(:func:`display_url`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictStr, TypeAdapter, ValidationError
from yarl import URL

from bridge.http_timeout import client_timeout

GROUPS_PATH = "/api/v2/alerts/groups"
# Answers bigger than this are refused (a proxy's error page, a runaway response).
MAX_BODY_BYTES = 64 * 1024 * 1024

Labels = dict[StrictStr, StrictStr]
StrictDatetime = Annotated[datetime, Strict()]


class AlertmanagerError(Exception):
    """A peer could not be read this round. The message names the peer without credentials."""

    def __init__(self, peer: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{peer}: {message}")
        self.peer = peer
        self.retryable = retryable


# -- what the bridge reads from the API (plain values; no I/O) -------------------------------


@dataclass(frozen=True, slots=True)
class PeerAlert:
    """One alert as a peer lists it."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    state: str  # "active" | "suppressed" | "unprocessed"
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()

    @property
    def suppressed(self) -> bool:
        """Silenced or inhibited: Alertmanager sends no notification for it."""
        return self.state == "suppressed"


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """One aggregation group of one receiver: its group labels and its alerts."""

    receiver: str
    labels: dict[str, str]
    alerts: tuple[PeerAlert, ...]


@dataclass(frozen=True, slots=True)
class PeerGroups:
    """What one peer answered this round: its groups, or the error (then ``groups`` is None)."""

    peer: str  # the URL as shown in logs (no credentials)
    groups: tuple[AlertGroup, ...] | None
    error: AlertmanagerError | None = None


# -- the API's JSON ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class _AlertStatus(_Model):
    state: StrictStr
    silencedBy: list[StrictStr] = Field(default_factory=list)
    inhibitedBy: list[StrictStr] = Field(default_factory=list)


class _Receiver(_Model):
    name: StrictStr


class _Alert(_Model):
    fingerprint: StrictStr
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    startsAt: StrictDatetime
    endsAt: StrictDatetime | None = None
    generatorURL: StrictStr = ""
    status: _AlertStatus


class _Group(_Model):
    labels: Labels
    receiver: _Receiver
    alerts: list[_Alert]


_GroupList = TypeAdapter(list[_Group])


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _ends_at(moment: datetime | None) -> datetime | None:
    # Go's zero time (0001-01-01T00:00:00Z) means "not ended".
    return None if moment is None or moment.year <= 1 else _aware(moment)


def parse_groups(body: bytes, peer: str) -> tuple[AlertGroup, ...]:
    """The groups of an ``/api/v2/alerts/groups`` answer; AlertmanagerError (permanent) when the
    body is not that."""
    try:
        groups = _GroupList.validate_json(body)
    except ValidationError as error:
        first = error.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise AlertmanagerError(
            peer,
            f"not an Alertmanager alert groups answer: {where}: {first['msg']}",
            retryable=False,
        ) from None
    return tuple(
        AlertGroup(
            receiver=group.receiver.name,
            labels=dict(group.labels),
            alerts=tuple(
                PeerAlert(
                    fingerprint=alert.fingerprint,
                    labels=dict(alert.labels),
                    annotations=dict(alert.annotations),
                    starts_at=_aware(alert.startsAt),
                    ends_at=_ends_at(alert.endsAt),
                    generator_url=alert.generatorURL,
                    state=alert.status.state,
                    silenced_by=tuple(alert.status.silencedBy),
                    inhibited_by=tuple(alert.status.inhibitedBy),
                )
                for alert in group.alerts
            ),
        )
        for group in groups
    )


def display_url(url: str) -> str:
    """The peer URL without user and password: what logs and errors show."""
    try:
        return str(URL(url).with_user(None))
    except (ValueError, TypeError):
        return "<unparseable Alertmanager URL>"


class AlertmanagerClient:
    """Reads every configured peer; one aiohttp session, created on first use."""

    def __init__(self, urls: Sequence[str], timeout: timedelta) -> None:
        self._urls = tuple(urls)
        self._timeout = client_timeout(timeout.total_seconds())
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def groups(self, url: str) -> tuple[AlertGroup, ...]:
        """One peer's alert groups; AlertmanagerError when it cannot say."""
        peer = display_url(url)
        target = url.rstrip("/") + GROUPS_PATH
        try:
            async with self._client().get(
                target, headers={"Accept": "application/json"}, allow_redirects=False
            ) as response:
                if response.status != 200:
                    # 5xx and 429: the peer is unwell or busy; anything else will not change.
                    retryable = response.status >= 500 or response.status == 429
                    raise AlertmanagerError(
                        peer, f"HTTP {response.status} from {GROUPS_PATH}", retryable=retryable
                    )
                length = response.content_length
                if length is not None and length > MAX_BODY_BYTES:
                    raise AlertmanagerError(peer, "answer too large", retryable=False)
                # The whole answer: ``content.read(n)`` returns what has arrived so far, which
                # for a real-sized answer is a first chunk, not the body.
                buffer = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    buffer += chunk
                    if len(buffer) > MAX_BODY_BYTES:
                        raise AlertmanagerError(peer, "answer too large", retryable=False)
                body = bytes(buffer)
        except TimeoutError:
            raise AlertmanagerError(
                peer, f"no answer within {self._timeout.total:g}s", retryable=True
            ) from None
        except aiohttp.ClientError as error:
            # The exception text may carry the URL; only its type is safe to show.
            raise AlertmanagerError(
                peer, f"unreachable ({type(error).__name__})", retryable=True
            ) from None
        return parse_groups(body, peer)

    async def poll(self) -> list[PeerGroups]:
        """Every peer at once; one entry per peer, in configuration order."""

        async def one(url: str) -> PeerGroups:
            try:
                return PeerGroups(peer=display_url(url), groups=await self.groups(url))
            except AlertmanagerError as error:
                return PeerGroups(peer=error.peer, groups=None, error=error)

        return list(await asyncio.gather(*(one(url) for url in self._urls)))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
