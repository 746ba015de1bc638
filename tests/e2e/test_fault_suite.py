"""Fault suite, part 1 (#10): every accepted notification survives GitHub, Slack, SMTP, Twilio
and the store failing — exactly once on GitHub, at least once on every channel.

The bridge runs for real (``create_app`` behind the harness, served on 127.0.0.1) against the
fake GitHub, Slack and Twilio and a real SMTP server (aiosmtpd), all on loopback; only the clock
is fake, and the test drives the outbox lanes as the integration tests do, so backoffs and
``Retry-After`` windows cost no real waiting. Each test plays one scenario — twelve alert
groups, P0 to P3, each opened, repeated by an Alertmanager HA pair (two copies at once) and two
in three resolved: 44 notifications — while one fault is on, then lets the outbox settle after
recovery and counts:

* GitHub: one issue per group (by its marker), one comment per event (by its event marker), a
  resolved group's issue closed and commented, a resolved P0/P1's review opened once — any
  second copy is a *duplicate*, anything missing is *lost*;
* Slack: a root message per incident and, for a resolved one, its "✅ Resolved" reply;
* email: per ``rules/priorities.yaml``, each P0/P1 stakeholder with an address told of the
  opening and of the resolution; SMS: each P0 stakeholder with a phone told of the opening —
  missing is *lost*; a second copy (at least once) is counted, not failed.

The matrix (channel x fault) — one test per fault, parametrized by channel:

=====================  ========  ========  ===========  ========
fault                  GitHub    Slack     SMTP         Twilio
=====================  ========  ========  ===========  ========
down (refused), back   yes       yes       yes          yes
5xx bursts             yes       yes       4xx (451)*   yes
403 / 429 Retry-After  both      429       n/a*         429
slower than timeout    yes       yes       yes          yes
dropped after applied  yes       yes       yes          yes
=====================  ========  ========  ===========  ========

\\* SMTP has no 5xx "try again" (a 5xx is a permanent refusal there; 4xx is its transient
failure) and no ``Retry-After``. The store: SQLite with a full disk (``PRAGMA max_page_count``
on the bridge's own connection), PostgreSQL unreachable (a proxy on loopback stopped: connection
refused, every session cut) and PostgreSQL refusing the test database's sessions (its backends
terminated with ``pg_terminate_backend`` and ``ALLOW_CONNECTIONS false``, on this run's own
database only). There Alertmanager must get 503, the tables must hold nothing half-written, and
the same notification sent again is accepted and told exactly once.

Every test records its figures (``figures``): printed under "reliability figures".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from bridge.app import NOTIFY_LANES, OUTBOX
from bridge.clock import FakeClock
from bridge.outbox import Outbox
from bridge.store.base import StoreUnavailable
from bridge.store.sqlite import SqliteStore
from bridge.web.services import SERVICES
from fakes.github import SECONDARY_LIMIT_MESSAGE, FakeGitHub
from fakes.slack import FakeSlack
from fakes.smtp import Mailbox
from fakes.twilio import FakeTwilio
from support import (
    POSTGRES_ADMIN_URL,
    REPO,
    TOKEN,
    Harness,
    email_config,
    github_config,
    payload,
    slack_config,
    sms_config,
)

SID = "AC" + "e2" * 16
TWILIO_TOKEN = "twilio-auth-token-fault-suite"
SLACK_TOKEN = "xoxb-fault-suite-token"
CHANNEL = "#incidents"
ALICE_MAIL, ALICE_PHONE = "alice@example.com", "+15550001111"
BOB_MAIL = "bob@example.com"
CAROL_PHONE = "+15550002222"
ERIN_MAIL = "erin@example.com"
MAIL_STAKEHOLDERS = (ALICE_MAIL, BOB_MAIL)
SMS_STAKEHOLDERS = (ALICE_PHONE, CAROL_PHONE)
LANES = ("github", "slack", "email", "sms")
THROTTLE_OFF = "  throttle: {max: 1000, per: 15m}\n"  # storm control is not under test here
GROUPS = 12
LEASE = timedelta(seconds=60)  # store.lease's default: a claim a failed store kept runs out

Record = Callable[[Mapping[str, object]], None]  # the ``figures`` fixture (tests/e2e/conftest)

_INCIDENT_MARKER = re.compile(r"<!-- incident-bridge:v1 kind=(\w+) id=(INC-\d+) ")
_EVENT_MARKER = re.compile(r"<!-- incident-bridge:event=(INC-\d+\.\d+) -->")
_INC = re.compile(r"INC-\d{3,}")


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class FaultyMailbox(Mailbox):
    """The SMTP mailbox with transient faults: the next ``transient`` messages answered 451
    (not taken), the next ``slow`` ones taken and answered after ``delay`` seconds, the next
    ``drop`` ones taken and the connection closed instead of answering."""

    transient: int = 0
    slow: int = 0
    delay: float = 0.0
    drop: int = 0
    faults: int = 0  # how many of the above fired

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.transient > 0:
            self.transient -= 1
            self.faults += 1
            return "451 4.3.0 try again later"
        answer = await super().handle_DATA(server, session, envelope)
        if self.slow > 0:
            self.slow -= 1
            self.faults += 1
            await asyncio.sleep(self.delay)
        elif self.drop > 0:
            self.drop -= 1
            self.faults += 1
            server.transport.close()  # taken, but the client never hears so
        return answer


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a fixed loopback port that can be stopped (connection
    refused) and started again on the same port, keeping its mailbox."""

    def __init__(self) -> None:
        self.mailbox = FaultyMailbox(port=free_port())
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.mailbox.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 to ``target``: ``stop()`` closes the listener (connection
    refused) and cuts every connection through it; ``start()`` serves on the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


# -- the alert groups ---------------------------------------------------------------------------

STARTS_AT = datetime.fromisoformat("2026-11-26T21:40:00+00:00")


@dataclass(frozen=True)
class Group:
    """One alert group of the scenario: its own service, a priority by label, resolved or not."""

    index: int
    priority: str
    resolves: bool
    big: bool = False  # a long description: a new incident that needs new pages on disk

    @property
    def service(self) -> str:
        return f"svc-{self.index:02d}"

    def firing(self) -> dict[str, Any]:
        body = payload("01_firing_single.json")
        service, summary = self.service, f"HighCPU on {self.service}"
        body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="{service}"}}'
        body["groupLabels"]["service"] = service
        body["commonLabels"].update(service=service, priority=self.priority)
        body["commonAnnotations"]["summary"] = summary
        [alert] = body["alerts"]
        alert["labels"].update(service=service, priority=self.priority)
        alert["annotations"]["summary"] = summary
        if self.big:
            alert["annotations"]["description"] = f"{service} " + "x" * 20_000
        alert["fingerprint"] = f"{self.index + 1:016x}"
        alert["startsAt"] = STARTS_AT.isoformat()
        return body

    def resolved(self, at: datetime) -> dict[str, Any]:
        body = self.firing()
        body["status"] = "resolved"
        [alert] = body["alerts"]
        alert["status"] = "resolved"
        alert["endsAt"] = at.isoformat()
        return body


def groups(count: int = GROUPS, *, big_from: int | None = None) -> list[Group]:
    """P0, P1, P2, P3 in turn; every third group stays open."""
    return [
        Group(
            index=i,
            priority=f"P{i % 4}",
            resolves=i % 3 != 2,
            big=big_from is not None and i >= big_from,
        )
        for i in range(count)
    ]


# -- the world: the bridge and everything it talks to --------------------------------------------


class Stamps:
    """When (by the fake clock) each fake saw each request: a request made during a drain is
    stamped with that drain's clock reading (the clock does not move during a drain)."""

    def __init__(self, clock: FakeClock, logs: dict[str, list[Any]]) -> None:
        self._clock = clock
        self._logs = logs
        self.seen: dict[str, list[tuple[datetime, Any]]] = {name: [] for name in logs}

    def mark(self) -> None:
        now = self._clock()
        for name, log in self._logs.items():
            stamped = self.seen[name]
            stamped.extend((now, request) for request in log[len(stamped) :])


@dataclass
class World:
    """The bridge and everything it talks to, on one fake clock."""

    harness: Harness
    clock: FakeClock
    github: FakeGitHub
    slack: FakeSlack
    twilio: FakeTwilio
    smtp: SmtpServer
    stamps: Stamps
    postgres_url: str | None = None  # the database itself (not through a proxy), or SQLite

    @property
    def mailbox(self) -> FaultyMailbox:
        return self.smtp.mailbox

    @property
    def workers(self) -> list[Outbox]:
        app = self.harness.app
        assert app is not None
        return [app[OUTBOX], *app[NOTIFY_LANES]]

    async def drain(self, *, store_may_fail: bool = False) -> None:
        """Every lane runs what is due now: GitHub first, so messages can link the issue.
        With ``store_may_fail`` a lane the store fails under stops quietly, as the running
        bridge's worker does (it logs and waits for the next pass)."""
        for worker in self.workers:
            try:
                await worker.drain()
            except StoreUnavailable:
                if not store_may_fail:
                    raise
        self.stamps.mark()

    async def tick(self, seconds: float, *, store_may_fail: bool = False) -> None:
        await self.drain(store_may_fail=store_may_fail)
        self.clock.advance(seconds)

    async def settle(self, within: timedelta = timedelta(hours=2)) -> None:
        """Let the outbox finish after recovery: drain, then move the clock to the next due
        effect (backoffs, Retry-After windows, budget slots), until nothing is left."""
        app = self.harness.app
        assert app is not None
        store = app[SERVICES].store
        end = self.clock() + within
        while True:
            await self.drain()
            due = [d for d in [await store.next_due(lane) for lane in LANES] if d is not None]
            if not due:
                return
            if self.clock() > end:
                pytest.fail(f"the outbox did not settle within {within}")
            self.clock.advance(max(min(due) - self.clock(), timedelta(seconds=1)))

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the store's tables directly (SQLite file or the PostgreSQL database)."""
        [rows] = await self.queries([sql])
        return rows

    async def queries(self, sqls: list[str]) -> list[list[tuple[Any, ...]]]:
        """Several reads of the store's tables, on one connection of the test's own."""
        if self.postgres_url is not None:
            conn = await asyncpg.connect(self.postgres_url, timeout=5)
            try:
                return [[tuple(row) for row in await conn.fetch(sql)] for sql in sqls]
            finally:
                await conn.close()
        path = self.harness.config.store.sqlite_path
        assert path is not None
        with contextlib.closing(sqlite3.connect(path)) as db:
            return [[tuple(row) for row in db.execute(sql).fetchall()] for sql in sqls]

    def retries(self) -> int:
        """Effect attempts that failed and were rescheduled (every lane)."""
        app = self.harness.app
        assert app is not None
        total = 0.0
        for metric in app[SERVICES].metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "incident_bridge_effects_total" and (
                    sample.labels.get("result") == "retry"
                ):
                    total += sample.value
        return int(total)


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    """The fake GitHub on the bridge's clock (its comments' times are the bridge's times)."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=SLACK_TOKEN, channels=[CHANNEL], clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def twilio(clock: FakeClock) -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(account_sid=SID, auth_token=TWILIO_TOKEN, clock=clock) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world(
    tmp_path: Path,
    clock: FakeClock,
    github: FakeGitHub,
    slack: FakeSlack,
    twilio: FakeTwilio,
    smtp: SmtpServer,
) -> AsyncIterator[MakeWorld]:
    """The bridge with GitHub, Slack, email and SMS configured: three stakeholders (Alice:
    email and phone, Bob: email, Carol: phone), one escalation contact (Erin: email)."""
    started: list[Harness] = []

    async def make(
        *,
        github_extra: str = "",
        email_extra: str = "",
        store_url: str = "sqlite:///state.db",
        postgres_url: str | None = None,
    ) -> World:
        extra = (
            github_extra
            + slack_config(slack.base_url, SLACK_TOKEN, CHANNEL)
            + email_config(smtp.mailbox.port, email_extra + THROTTLE_OFF)
            + sms_config(twilio.base_url, SID, TWILIO_TOKEN, THROTTLE_OFF)
            + "stakeholders:\n"
            f"  - {{name: Alice Ops, email: {ALICE_MAIL}, phone: '{ALICE_PHONE}'}}\n"
            f"  - {{name: Bob Lead, email: {BOB_MAIL}}}\n"
            f"  - {{name: Carol Pager, phone: '{CAROL_PHONE}'}}\n"
            "escalation:\n"
            f"  - {{name: Erin Oncall, email: {ERIN_MAIL}}}\n"
        )
        harness = Harness(tmp_path, github, clock, github_config(extra, store_url=store_url))
        await harness.start()
        started.append(harness)
        stamps = Stamps(
            clock,
            {"github": github.requests, "slack": slack.requests, "sms": twilio.requests},
        )
        stamps.mark()
        return World(harness, clock, github, slack, twilio, smtp, stamps, postgres_url)

    yield make
    for harness in started:
        await harness.stop()


@pytest.fixture
async def world(make_world: MakeWorld) -> World:
    return await make_world()


# -- the scenario -------------------------------------------------------------------------------


@dataclass
class Scenario:
    """The notifications sent and how each was answered."""

    groups: list[Group]
    sent: int = 0
    refused: int = 0  # answered 503
    incident_of: dict[int, str] = field(default_factory=dict)  # group index -> INC-NNN
    statuses: Counter[int] = field(default_factory=Counter)

    async def post(self, world: World, body: dict[str, Any], group: Group) -> int:
        status, answer = await world.harness.post(body)
        self.sent += 1
        self.statuses[status] += 1
        if status == 503:
            self.refused += 1
            assert answer["error"].endswith("retry later")
        else:
            assert status == 200, answer
            if "incident" in answer:
                known = self.incident_of.setdefault(group.index, answer["incident"])
                assert known == answer["incident"]  # one incident per group, always
        return status

    async def notify(self, world: World, group: Group, kind: str) -> list[int]:
        """One notification of ``kind`` (``new``, ``repeat``: two copies at once, as an
        Alertmanager HA pair delivers it, ``resolved``); the statuses answered."""
        if kind == "resolved":
            return [await self.post(world, group.resolved(world.clock()), group)]
        if kind == "repeat":
            body = group.firing()
            return list(
                await asyncio.gather(self.post(world, body, group), self.post(world, body, group))
            )
        return [await self.post(world, group.firing(), group)]


Hook = Callable[[int], Awaitable[None]]


async def play(
    world: World,
    scenario: Scenario,
    *,
    before_chunk: Hook | None = None,
    tick: float = 10.0,
    chunk: int = 4,
    store_may_fail: bool = False,
) -> None:
    """Every group opened, then repeated, then the resolving ones resolved, ``chunk`` groups
    at a time; after each chunk the lanes run and the clock moves ``tick`` seconds."""
    resolving = [g for g in scenario.groups if g.resolves]
    number = 0
    for kind, members in (
        ("new", scenario.groups),
        ("repeat", scenario.groups),
        ("resolved", resolving),
    ):
        for start in range(0, len(members), chunk):
            if before_chunk is not None:
                await before_chunk(number)
            for group in members[start : start + chunk]:
                await scenario.notify(world, group, kind)
            await world.tick(tick, store_may_fail=store_may_fail)
            number += 1


# -- counting -----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What reached each side: ``duplicates`` only GitHub's (must be 0); the channels' extra
    copies (at least once) apart; ``lost`` over every side (must be 0)."""

    duplicates: int = 0
    lost: int = 0
    lost_by: Counter[str] = field(default_factory=Counter)
    extra_copies: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    problems: list[str] = field(default_factory=list)

    def miss(self, side: str, what: str) -> None:
        self.lost += 1
        self.lost_by[side] += 1
        self.problems.append(f"lost on {side}: {what}")

    def twice(self, what: str, copies: int) -> None:
        self.duplicates += copies - 1
        self.problems.append(f"duplicate on GitHub: {what} x{copies}")


def _subject(message: Message) -> str:
    return str(message["Subject"])


def _marked(issues: list[Any]) -> dict[str, list[Any]]:
    """Issues by the incident their marker names (``INC-NNN``)."""
    by_id: dict[str, list[Any]] = {}
    for issue in issues:
        found = _INCIDENT_MARKER.search(issue.body or "")
        assert found is not None, issue.title
        by_id.setdefault(found.group(2), []).append(issue)
    return by_id


def count_github(world: World, scenario: Scenario, t: Tally) -> None:
    """One issue per incident, one comment per event, one review per resolved P0/P1; a
    resolved incident's issue closed and commented."""
    issues = _marked(world.harness.issues())
    reviews = _marked(world.harness.reviews())
    for what, by_id in (("issue", issues), ("review", reviews)):
        for inc, same in by_id.items():
            if len(same) > 1:
                t.twice(f"{what} of {inc}", len(same))
    for same in issues.values():
        for issue in same:
            markers = Counter(
                found.group(1)
                for comment in world.github.comments(REPO, issue.number)
                for found in _EVENT_MARKER.finditer(comment.body)
            )
            for marker, copies in markers.items():
                if copies > 1:
                    t.twice(f"comment {marker}", copies)
    for group in scenario.groups:
        inc = scenario.incident_of[group.index]
        if inc not in issues:
            t.miss("github", f"the issue of {inc}")
            continue
        issue = issues[inc][0]
        if issue.state != ("closed" if group.resolves else "open"):
            t.miss("github", f"{inc}'s issue is {issue.state}")
        if not group.resolves:
            continue
        if not _EVENT_MARKER.search("".join(c.body for c in issue.comments)):
            t.miss("github", f"the resolution comment of {inc}")
        if group.priority in ("P0", "P1") and inc not in reviews:
            t.miss("github", f"the review of {inc}")


def count_slack(world: World, scenario: Scenario, t: Tally) -> None:
    """A root message per incident, the resolution in its thread; second copies counted."""
    roots: dict[str, list[Any]] = {}
    for message in world.slack.messages(CHANNEL):
        found = _INC.search(message.text)
        if found is not None:
            roots.setdefault(found.group(0), []).append(message)
    for group in scenario.groups:
        inc = scenario.incident_of[group.index]
        mine = roots.get(inc, [])
        if not mine:
            t.miss("slack", f"the root message of {inc}")
            continue
        t.extra_copies["slack"] += len(mine) - 1
        if group.resolves:
            replies = [r for root in mine for r in world.slack.thread(CHANNEL, root.ts)]
            told = [r for r in replies if r.text.startswith("✅ Resolved")]
            if not told:
                t.miss("slack", f"the resolution reply of {inc}")
            t.extra_copies["slack"] += max(0, len(told) - 1)


def count_messages(world: World, scenario: Scenario, t: Tally) -> None:
    """Per rules/priorities.yaml: P0 email + SMS, P1 email, P2/P3 neither; email at the
    opening and the resolution, SMS at the opening. Messages to others (the escalation
    contact, a text instead of a late email) are fallbacks."""
    told: Counter[tuple[str, str, str, str]] = Counter()  # (channel, to, INC-NNN, what)
    for rcpt, message in world.mailbox.received:
        subject = _subject(message)
        if found := _INC.search(subject):
            what = "all-clear" if subject.endswith("(resolved)") else "opening"
            told["email", rcpt, found.group(0), what] += 1
    for text in world.twilio.messages:
        if found := _INC.match(text.body):
            opening = text.body.startswith(f"{found.group(0)} P0 OPENED:")
            told["sms", text.to, found.group(0), "opening" if opening else text.body[:20]] += 1
    for group in scenario.groups:
        inc = scenario.incident_of[group.index]
        wanted: list[tuple[str, str, str, str]] = []
        if group.priority in ("P0", "P1"):
            for what in ("opening", "all-clear") if group.resolves else ("opening",):
                wanted += [("email", rcpt, inc, what) for rcpt in MAIL_STAKEHOLDERS]
        if group.priority == "P0":
            wanted += [("sms", phone, inc, "opening") for phone in SMS_STAKEHOLDERS]
        for key in wanted:
            copies = told.pop(key, 0)
            if not copies:
                t.miss(key[0], f"the {key[3]} of {inc} to {key[1]}")
            t.extra_copies[key[0]] += max(0, copies - 1)
    t.fallbacks = sum(told.values())


async def tally(world: World, scenario: Scenario) -> Tally:
    """Compare what each side shows with what the scenario's accepted notifications ask for."""
    assert {g.index for g in scenario.groups} == set(scenario.incident_of), "all accepted"
    t = Tally()
    count_github(world, scenario, t)
    count_slack(world, scenario, t)
    count_messages(world, scenario, t)
    return t


async def charged_writes(world: World) -> int:
    """The writes GitHub's budget was charged for (the store's ``github_writes``, last hour)."""
    [(charged,)] = await world.query("SELECT COUNT(*) FROM github_writes")
    return int(charged)


def received_writes(world: World) -> int:
    """The writes the fake GitHub received on issues (the labels made at start-up are not
    the budget's)."""
    return len([r for r in world.github.requests if r.is_write and "/issues" in r.path])


async def assert_outbox_done(world: World) -> None:
    """Every effect finished: nothing pending, running or failed for good."""
    states = dict(await world.query("SELECT state, COUNT(*) FROM outbox GROUP BY state"))
    assert set(states) == {"done"}, states


async def conclude(
    world: World, scenario: Scenario, figures: Record, faults: int, **extra: object
) -> Tally:
    """Settle, count, record the figures, and hold the bridge to its promise."""
    await world.settle()
    t = await tally(world, scenario)
    figures(
        {
            "notifications": scenario.sent,
            "refused_503": scenario.refused,
            "faults": faults,
            "retries": world.retries(),
            "duplicates": t.duplicates,
            "lost": t.lost,
            "slack_copies": t.extra_copies["slack"],
            "email_copies": t.extra_copies["email"],
            "sms_copies": t.extra_copies["sms"],
            "fallbacks": t.fallbacks,
            **extra,
        }
    )
    assert t.duplicates == 0, t.problems
    assert t.lost == 0, t.problems
    await assert_outbox_done(world)
    return t


# -- the channels' faults, one adapter per service ------------------------------------------------


class Service(Protocol):
    """One outside service and the faults it can be made to have."""

    name: str

    async def stop(self) -> None: ...
    async def start(self) -> None: ...
    def burst(self, times: int) -> None: ...
    def slow(self, delay: float, times: int) -> None: ...
    def drop(self, times: int) -> None: ...
    def fault_hits(self) -> int: ...


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


class _Injected:
    """Faults injected into a fake HTTP service (``inject``), counted by their hits."""

    fake: FakeGitHub | FakeSlack | FakeTwilio
    writes: str  # the path pattern of the requests that change something

    def __init__(self) -> None:
        self._faults: list[Any] = []
        self._port = 0
        self.refused = 0

    async def stop(self) -> None:
        self._port = _port(self.fake.base_url)
        await self.fake.close()

    async def start(self) -> None:
        await self.fake.start(self._port)

    def burst(self, times: int) -> None:
        for status in (500, 502, 503):
            self._faults.append(self.fake.inject("POST", self.writes, status, times=times))

    def slow(self, delay: float, times: int) -> None:
        self._faults.append(
            self.fake.inject("POST", self.writes, 0, apply_first=True, delay=delay, times=times)
        )

    def drop(self, times: int) -> None:
        self._faults.append(
            self.fake.inject("POST", self.writes, 0, apply_first=True, drop=True, times=times)
        )

    def fault_hits(self) -> int:
        return sum(f.hits for f in self._faults)


class GitHubService(_Injected):
    name = "github"
    writes = r"/repos/.+/issues(/\d+/comments)?$"  # creates and comments: not idempotent

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__()
        self.fake = fake

    def burst(self, times: int) -> None:
        super().burst(times)
        self._faults.append(self.fake.inject("PATCH", r"/issues/\d+$", 502, times=times))


class SlackService(_Injected):
    name = "slack"
    writes = r"chat\.postMessage$"

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__()
        self.fake = fake


class TwilioService(_Injected):
    name = "sms"
    writes = r"/Messages\.json$"

    def __init__(self, fake: FakeTwilio) -> None:
        super().__init__()
        self.fake = fake


class SmtpService:
    name = "email"

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    def burst(self, times: int) -> None:
        self.server.mailbox.transient += times * 3

    def slow(self, delay: float, times: int) -> None:
        self.server.mailbox.delay = delay
        self.server.mailbox.slow += times

    def drop(self, times: int) -> None:
        self.server.mailbox.drop += times

    def fault_hits(self) -> int:
        return self.server.mailbox.faults


def service(world: World, name: str) -> Service:
    if name == "github":
        return GitHubService(world.github)
    if name == "slack":
        return SlackService(world.slack)
    if name == "sms":
        return TwilioService(world.twilio)
    return SmtpService(world.smtp)


# -- the count itself ---------------------------------------------------------------------------


async def test_the_count_sees_every_duplicate_and_every_loss(world: World, figures: Record) -> None:
    """Without a fault the scenario counts nothing; a second issue or comment on GitHub is a
    duplicate, and a missing Slack message, email or text is lost — so a zero in the tests
    below means something."""
    scenario = Scenario(groups())
    await play(world, scenario)
    await world.settle()
    clean = await tally(world, scenario)
    assert (clean.duplicates, clean.lost, clean.fallbacks) == (0, 0, 0), clean.problems
    assert sum(clean.extra_copies.values()) == 0

    first = world.harness.issues()[0]
    world.github.human_create_issue(REPO, first.title, first.body)  # a second issue
    resolved = next(i for i in world.harness.issues() if i.comments)
    world.github.human_comment(REPO, resolved.number, resolved.comments[0].body)
    world.slack.channel(CHANNEL).messages.pop(0)  # a root message
    world.mailbox.received.pop(0)  # an email
    world.twilio.messages.pop(0)  # a text
    broken = await tally(world, scenario)
    figures(
        {
            "notifications": scenario.sent,
            "planted": "2 duplicates, 3 losses",
            "counted_duplicates": broken.duplicates,
            "counted_lost": broken.lost,
        }
    )
    assert (broken.duplicates, broken.lost) == (2, 3), broken.problems
    assert broken.lost_by == Counter({"slack": 1, "email": 1, "sms": 1})


# -- tests: a service down, 5xx bursts, slow answers, dropped connections ------------------------


@pytest.mark.parametrize("name", LANES)
async def test_a_service_down_for_minutes_then_back_loses_nothing(
    world: World, name: str, figures: Record
) -> None:
    """The service stopped (connection refused) for three minutes while all 44 notifications
    arrive: every webhook is still 200 at once, and after it is back every incident has one
    issue and every message goes out. Attempts that never reached GitHub spend none of its
    write budget, so an outage does not turn ordinary groups into a storm roll-up."""
    down = service(world, name)
    await down.stop()
    scenario = Scenario(groups())
    await play(world, scenario)
    for _ in range(10):  # 100 s more of the outage: backoffs keep failing
        await world.tick(10)
    assert scenario.statuses == Counter({200: scenario.sent})
    await down.start()
    await conclude(world, scenario, figures, faults=world.retries(), down_seconds=180)
    if name == "github":
        # Attempts refused before a connection reached GitHub cost none of its write budget:
        # what the budget was charged is what GitHub received (so no storm roll-up either).
        assert await charged_writes(world) == received_writes(world)
        assert not [i for i in world.harness.issues() if i.has_label("storm")]


@pytest.mark.parametrize("name", LANES)
async def test_bursts_of_server_errors_are_absorbed(
    world: World, name: str, figures: Record
) -> None:
    """A burst of 500, 502 and 503 on the service's writes before every chunk of
    notifications (a 451 burst for SMTP): retried, nothing lost, nothing twice on GitHub."""
    flaky = service(world, name)

    async def burst(_chunk: int) -> None:
        flaky.burst(times=1)

    scenario = Scenario(groups())
    await play(world, scenario, before_chunk=burst)
    await conclude(world, scenario, figures, faults=flaky.fault_hits())


@pytest.mark.parametrize("name", LANES)
async def test_a_connection_dropped_after_the_change_was_applied(
    world: World, name: str, figures: Record
) -> None:
    """The service applies a write and the connection drops before the answer, twice per
    chunk: on GitHub the retry finds the marker (exactly once); a channel may repeat a message
    (at least once) but never loses one."""
    dropping = service(world, name)

    async def drop(_chunk: int) -> None:
        dropping.drop(times=2)

    scenario = Scenario(groups())
    await play(world, scenario, before_chunk=drop)
    await conclude(world, scenario, figures, faults=dropping.fault_hits())


# The client timeouts: GitHub's and email's are configurable (at least 1 s for GitHub, which
# PyGithub takes in whole seconds); Slack's and Twilio's are fixed at 5 s.
# (github extra, email extra, answer after s, chunks): a slow answer costs a timeout of real
# time, so Slack and Twilio get one (in the openings), GitHub and SMTP two (and a resolution).
# aiohttp rounds a timeout above 5 s up to the loop's next whole second, so Slack's and
# Twilio's 5 s may run out up to a second late: they are answered after 6.5 s.
SLOW = {
    "github": ("  timeout: 1s\n", "", 1.5, (0, 6)),
    "email": ("", "  timeout: 500ms\n", 1.0, (0, 6)),
    "slack": ("", "", 6.5, (0,)),
    "sms": ("", "", 6.5, (0,)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", LANES)
async def test_answers_slower_than_our_timeout(
    make_world: MakeWorld, name: str, figures: Record
) -> None:
    """The service applies the write but answers after the bridge's client timeout, in the
    first chunk (and a resolution's): the outcome is unknown, so GitHub is searched for the
    marker first and a channel's message may go twice; nothing is lost."""
    github_extra, email_extra, delay, chunks = SLOW[name]
    world = await make_world(github_extra=github_extra, email_extra=email_extra)
    slow = service(world, name)

    async def slow_down(chunk: int) -> None:
        if chunk in chunks:
            slow.slow(delay, times=1)

    scenario = Scenario(groups())
    await play(world, scenario, before_chunk=slow_down)
    await conclude(world, scenario, figures, faults=slow.fault_hits(), answer_after_s=delay)


# -- tests: rate limits with Retry-After ----------------------------------------------------------


def inside_window(stamps: Stamps, name: str, limited: Any, seconds: float) -> list[Any]:
    """The requests made after ``limited`` (a refused request) and before its window ended."""
    seen = stamps.seen[name]
    [place] = [i for i, (_, request) in enumerate(seen) if request is limited]  # a retry is equal
    end = seen[place][0] + timedelta(seconds=seconds)
    return [request for at, request in seen[place + 1 :] if at < end]


# (service, status, body, the chunks before which a refusal is armed): a second one where the
# service gets writes again — GitHub and Slack in the resolutions, SMS (P0 openings only) in the
# third chunk of openings.
RATE_LIMITS = {
    "github-403": (
        "github",
        403,
        {"message": SECONDARY_LIMIT_MESSAGE, "documentation_url": "https://docs.github.com"},
        (0, 6),
    ),
    "github-429": ("github", 429, {"message": "Too many requests"}, (0, 6)),
    "slack-429": ("slack", 429, None, (0, 6)),
    "sms-429": ("sms", 429, None, (0, 2)),
}


@pytest.mark.parametrize("case", sorted(RATE_LIMITS))
async def test_no_request_inside_a_retry_after_window(
    world: World, case: str, figures: Record
) -> None:
    """The service refuses a write with 403/429 and ``Retry-After: 45``, twice: after each
    refusal no request reaches it before the window ends — not even another incident's — and
    after the window everything is delivered."""
    name, status, body, chunks = RATE_LIMITS[case]
    fake: Any = {"github": world.github, "slack": world.slack, "sms": world.twilio}[name]
    writes = {"github": GitHubService.writes, "slack": SlackService.writes}.get(
        name, TwilioService.writes
    )
    window = 45.0
    faults: list[Any] = []

    async def limit(chunk: int) -> None:
        if chunk in chunks:
            faults.append(
                fake.inject("POST", writes, status, body=body, headers={"Retry-After": "45"})
            )

    scenario = Scenario(groups())
    await play(world, scenario, before_chunk=limit)
    await world.settle()
    refused = [r for _, r in world.stamps.seen[name] if r.status == status]
    early = [r for limited in refused for r in inside_window(world.stamps, name, limited, window)]
    hits = sum(f.hits for f in faults)
    await conclude(world, scenario, figures, faults=hits, requests_inside_window=len(early))
    assert len(refused) == hits == 2
    assert early == [], [(r.method, r.path) for r in early]
    if name == "github":  # what the tracker held back inside the window cost no write budget
        assert await charged_writes(world) == received_writes(world)


# -- tests: the store unavailable ---------------------------------------------------------------


_ORPHANS = (
    "SELECT COUNT(*) FROM {table} x WHERE NOT EXISTS"
    " (SELECT 1 FROM incidents i WHERE i.id = x.incident_id)"
)
_WITHOUT = (
    "SELECT number FROM incidents i WHERE kind = 'incident' AND NOT EXISTS"
    " (SELECT 1 FROM {table} x WHERE x.incident_id = i.id{kind}) ORDER BY number"
)


async def half_written(world: World) -> list[str]:
    """What a transaction must never leave: an incident without its timeline, its issue's
    effect or its Slack message, an effect or an event without its incident, a gap in the
    numbering, a group with a second incident."""
    (
        no_events,
        no_sync,
        no_slack,
        [(orphan_effects,)],
        [(orphan_events,)],
        numbers,
        twice,
    ) = await world.queries(
        [
            _WITHOUT.format(table="events", kind=""),
            _WITHOUT.format(table="outbox", kind=" AND x.kind = 'github.sync'"),
            _WITHOUT.format(table="outbox", kind=" AND x.kind = 'notify.slack'"),
            _ORPHANS.format(table="outbox"),
            _ORPHANS.format(table="events"),
            "SELECT number FROM incidents ORDER BY number",
            "SELECT key, COUNT(*) FROM incidents GROUP BY key HAVING COUNT(*) > 1",
        ]
    )
    problems = [f"INC-{n:03d} without events" for (n,) in no_events]
    problems += [f"INC-{n:03d} without its github.sync" for (n,) in no_sync]
    problems += [f"INC-{n:03d} without its Slack message" for (n,) in no_slack]
    if orphan_effects or orphan_events:
        problems.append(f"{orphan_effects} effects, {orphan_events} events without an incident")
    if [n for (n,) in numbers] != list(range(1, len(numbers) + 1)):
        problems.append(f"numbering with a gap: {numbers}")
    if twice:
        problems.append(f"a group with two incidents: {twice}")
    return problems


async def outage_then_recovery(
    world: World,
    scenario: Scenario,
    fail: Callable[[], Awaitable[None]],
    repair: Callable[[], Awaitable[None]],
    *,
    look_during: bool = True,
) -> list[tuple[Group, str]]:
    """The first half of the groups opened while the store is fine; then the store fails
    while the rest open, everything repeats and the resolving first half resolves (the lanes
    keep running meanwhile, and fail quietly); then it is back, and every refused notification
    is sent again, in order, and the rest of the scenario follows. The tables are checked
    after every notification (during the outage too, when the test can still read them).
    Returns what was refused."""
    half = len(scenario.groups) // 2
    first, second = scenario.groups[:half], scenario.groups[half:]
    for group in first:
        await scenario.notify(world, group, "new")
    await world.tick(10)

    await fail()
    refused: list[tuple[Group, str]] = []
    during = [(g, "new") for g in second] + [(g, "repeat") for g in scenario.groups]
    during += [(g, "resolved") for g in first if g.resolves]
    for number, (group, kind) in enumerate(during):
        statuses = await scenario.notify(world, group, kind)
        if 503 in statuses:
            refused.append((group, kind))
        if look_during:
            assert await half_written(world) == []
        if number % 4 == 3:
            await world.tick(10, store_may_fail=True)
    await world.tick(10, store_may_fail=True)
    await repair()

    for group, kind in refused:  # Alertmanager retries what got a 5xx
        assert 503 not in await scenario.notify(world, group, kind)
    await world.tick(10)
    for group in second:
        if group.resolves:
            await scenario.notify(world, group, "resolved")
    world.clock.advance(LEASE)  # a claim the failing store could not finish runs out
    assert await half_written(world) == []
    return refused


async def test_sqlite_disk_full_is_503_and_nothing_is_half_written(
    world: World, figures: Record
) -> None:
    """SQLite's real SQLITE_FULL (``max_page_count`` clamped to the file on the bridge's own
    connection) while new groups with long descriptions arrive: each is a 503, never a 500 or
    a 200, and leaves no trace; repeats of known groups need no write and stay 200. Space
    back, the same notifications are accepted and each is told exactly once."""
    app = world.harness.app
    assert app is not None
    store = app[SERVICES].store
    assert isinstance(store, SqliteStore)
    scenario = Scenario(groups(big_from=GROUPS // 2))

    async def full() -> None:
        await store.execute_for_test("PRAGMA max_page_count = 1")  # clamped: the file is full

    async def space() -> None:
        await store.execute_for_test("PRAGMA max_page_count = 1073741823")

    refused = await outage_then_recovery(world, scenario, full, space)
    new = {g.index for g, kind in refused if kind == "new"}
    assert new, "a full disk refused no new incident"
    assert new <= {g.index for g in scenario.groups if g.big}  # only what needs new pages
    await conclude(world, scenario, figures, faults=len(refused), store="sqlite disk full")


@pytest.fixture
async def proxy(postgres_db: str) -> AsyncIterator[TcpProxy]:
    """A loopback proxy in front of PostgreSQL: the bridge's only way to its database."""
    address = urlsplit(postgres_db)
    relay = TcpProxy(address.hostname or "127.0.0.1", address.port or 5432)
    await relay.start()
    yield relay
    await relay.stop()


def through(url: str, proxy: TcpProxy) -> str:
    address = urlsplit(url)
    netloc = address.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(address._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))


async def _admin(sql: str, *args: object) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest.mark.parametrize("how", ["unreachable", "sessions-terminated"])
async def test_postgres_unavailable_is_503_and_nothing_is_half_written(
    make_world: MakeWorld, postgres_db: str, proxy: TcpProxy, how: str, figures: Record
) -> None:
    """PostgreSQL gone for a while — unreachable (the proxy stopped: connection refused, the
    pool's sessions cut mid-stream) or refusing this run's database (its backends terminated,
    ``ALLOW_CONNECTIONS false``) — while notifications arrive: 503 for what needs the store,
    nothing half-written; back, the same notifications are accepted and told exactly once."""
    world = await make_world(store_url=through(postgres_db, proxy), postgres_url=postgres_db)
    database = urlsplit(postgres_db).path.lstrip("/")
    scenario = Scenario(groups())

    async def fail() -> None:
        if how == "unreachable":
            await proxy.stop()
            return
        await _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await _admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )

    async def repair() -> None:
        if how == "unreachable":
            await proxy.start()
        else:
            await _admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    try:
        # A database refusing sessions refuses the test's own reads too.
        look = how == "unreachable"
        refused = await outage_then_recovery(world, scenario, fail, repair, look_during=look)
    finally:
        await repair()
    assert refused, "the store's outage refused nothing"
    await conclude(world, scenario, figures, faults=len(refused), store=f"postgresql {how}")
