"""SIGKILL at random moments during a stream of 1,000 Alertmanager notifications to two replicas.

Two real ``incident-bridge serve`` processes share one PostgreSQL database, with the fake GitHub,
the fake Slack, the fake Twilio and a real SMTP server (aiosmtpd) on loopback. A sender plays
Alertmanager: each alert group's notifications go out in order (Alertmanager flushes a group one
notification at a time), to one replica or — an HA pair's duplicate — to both at once, and a
delivery that gets no 200 (the connection refused or cut while the replica is dead, a 503 while
it starts) is retried, on the other replica or the same one restarted, until it gets one. Several
times during the stream a replica is SIGKILLed — while one of the sender's requests is in flight
to it — and started again.

The stream (seeded: the seed is printed, ``INCIDENT_BRIDGE_KILL_SEED=<seed>`` replays the same
stream and kill plan; the timing of the kills within requests is the machine's) opens alert
groups at P0-P3, repeats them, resolves some, fires some again (a new episode) and resolves a few
of those again. When it is over and both replicas have drained the outbox:

- GitHub has every accepted notification exactly once: one issue per alert group (by its marker),
  open or closed as the group's last notification says, one comment per resolution and per
  reopening and no comment posted twice, one post-incident review per resolved P0/P1 group;
- Slack, email and SMS have every message the bridge's notify policy called for (the outbox's
  notification effects) at least once: nothing lost (a duplicate is allowed, and counted).

How many groups: GitHub's secondary rate limit, 80 content writes a minute, is also the ceiling
of the bridge's ``github.budget``. A group costs one write (its issue) and two or three for each
resolution and reopening, and the stream lasts well under a minute, so its groups' plans are kept
to ``WRITES`` writes in all (40 groups, a dozen of them resolving). More would make the bridge
pace its writes (minutes of draining) or, for P2/P3 groups whose issue the budget refuses, list
them in a storm roll-up instead of an issue of their own: storm mode, tested elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import random
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.notify.slack import escape
from bridge.text import one_line
from fakes.github import FakeGitHub, FakeIssue
from fakes.slack import FakeSlack, SlackMessage
from fakes.smtp import Mailbox, smtp_server
from fakes.twilio import FakeTwilio
from support import REPO, TOKEN, email_config, payload, slack_config, sms_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED_VARIABLE = "INCIDENT_BRIDGE_KILL_SEED"
NOTIFICATIONS = 1000
GROUPS = 40
PRIORITIES = {"P0": 7, "P1": 9, "P2": 14, "P3": 10}  # the groups' priorities, shuffled
PLANS = {"firing": 29, "resolved": 8, "refired": 2, "reresolved": 1}  # and plans (at most)
WRITES = 76  # the most GitHub writes the groups' plans may cost in all (the budget: 80 a minute)
STREAM_SECONDS = 36.0  # the notifications are released at an even pace over this long
HA_SHARE = 0.25  # notifications an Alertmanager HA pair delivers twice, once to each replica
KILLS = (6, 9)  # kills in all, the replicas in turn
UPTIME = 2.0  # seconds a restarted replica serves before it is killed again
LEASE = "5s"  # store.lease: a killed replica's claims are taken over 5 s after it died
API_DELAY = 0.04  # seconds every fake API (GitHub, Slack, Twilio) takes to answer
DRAIN_SECONDS = 150.0  # the outbox empties within this long after the stream
DELIVERY_SECONDS = 60.0  # one notification gets its 200 within this long, retries included

SID = "AC" + "7e" * 16
TWILIO_TOKEN = "twilio-auth-token-kill-stream-0123"
SLACK_TOKEN = "xoxb-kill-stream"
CHANNEL = "#incidents"
ALICE_MAIL, ALICE_PHONE = "alice@example.com", "+15550001111"
BOB_MAIL, CAROL_PHONE = "bob@example.com", "+15550002222"

ISSUE_MARKER = re.compile(r"<!-- incident-bridge:v1 kind=(\S+) id=(INC-\d+) key=([0-9a-f]+) -->")
COMMENT_MARKER = re.compile(r"<!-- incident-bridge:event=(INC-\d+\.[\w-]+) -->")
MESSAGE_ID = re.compile(r"\.(INC-\d+\.\d+)@")
SLACK_ROOT = re.compile(r"(INC-\d+) · P\d")
REVIEW_TITLE = re.compile(r"^\[PIR\] (INC-\d+) ")
SMS_WORDS = {"opened": "OPENED", "reopened": "REOPENED", "resolved": "RESOLVED"}
Record = Callable[[Mapping[str, object]], None]  # the e2e ``figures`` fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the stream -------------------------------------------------------------------------------


@dataclass
class Group:
    """One alert group: its priority and its plan — ``firing`` (opens and stays open),
    ``resolved``, ``refired`` (resolved, then a new episode fires) or ``reresolved`` (that
    new episode resolved too)."""

    n: int
    priority: str
    plan: str
    alerts: int
    base: datetime  # the first episode's startsAt

    @property
    def service(self) -> str:
        return f"kill-{self.n:03d}"

    @property
    def key_steps(self) -> list[tuple[int, str]]:
        """Its state changes in order: (episode, "firing" | "resolved")."""
        steps = {"firing": 1, "resolved": 2, "refired": 3, "reresolved": 4}[self.plan]
        return [(0, "firing"), (0, "resolved"), (1, "firing"), (1, "resolved")][:steps]

    def body(self, episode: int, status: str) -> dict[str, Any]:
        """The group's notification: every alert of ``episode`` firing or resolved."""
        template = payload("01_firing_single.json")
        [alert] = template.pop("alerts")
        starts = self.base + timedelta(minutes=2 * episode)
        labels = {
            "alertname": "KillStream",
            "service": self.service,
            "severity": "critical",
            "priority": self.priority,
        }
        summary = f"Kill stream group {self.n} ({self.priority})"
        annotations = {"summary": summary, "description": f"{summary}: a fault-suite group"}
        alerts = []
        for i in range(self.alerts):
            one = copy.deepcopy(alert)
            one["status"] = status
            one["labels"] = {**labels, "instance": f"{self.service}-{i}:9100"}
            one["annotations"] = dict(annotations)
            one["startsAt"] = starts.isoformat().replace("+00:00", "Z")
            ends = starts + timedelta(minutes=1)
            one["endsAt"] = (
                ends.isoformat().replace("+00:00", "Z")
                if status == "resolved"
                else "0001-01-01T00:00:00Z"
            )
            one["fingerprint"] = f"{self.n:08x}{i:08x}"
            alerts.append(one)
        return {
            **template,
            "receiver": "incident-bridge",
            "status": status,
            "alerts": alerts,
            "groupLabels": {"alertname": "KillStream", "service": self.service},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "groupKey": f'{{}}:{{alertname="KillStream", service="{self.service}"}}',
        }


@dataclass
class Notification:
    """One notification of the stream, released at ``at`` seconds into it."""

    index: int
    at: float
    group: Group
    episode: int
    status: str
    key: bool  # a state change (else a repeat of the group's current state)
    to: tuple[int, ...]  # the replicas it is delivered to: one, or both (an HA duplicate)
    answers: list[str] = field(default_factory=list)  # every attempt's answer, in order


def github_writes(group: Group) -> int:
    """The GitHub writes a group's plan costs: its issue made, a comment and an edit for each
    resolution and reopening, and for a P0/P1 the review made or edited at each of them."""
    changes = len(group.key_steps) - 1
    return 1 + 2 * changes + (changes if group.priority in ("P0", "P1") else 0)


def make_stream(rng: random.Random, now: datetime) -> tuple[list[Group], list[Notification]]:
    """The groups and the 1,000 notifications, in the order they are released. The groups'
    plans cost at most ``WRITES`` GitHub writes, under the budget's 80 a minute: nothing waits
    for the budget and no group goes into a storm roll-up (a P2/P3 issue the budget refuses),
    which this test is not about. Groups open in the first quarter of the stream and change
    state after that; repeats of firing groups fill the rest."""
    priorities = [p for p, n in PRIORITIES.items() for _ in range(n)]
    plans = [p for p, n in PLANS.items() for _ in range(n)]
    rng.shuffle(priorities)
    rng.shuffle(plans)
    base = now - timedelta(minutes=8)
    groups = [
        Group(n, priorities[n], plans[n], rng.choice([1, 1, 2]), base + timedelta(seconds=n))
        for n in range(GROUPS)
    ]
    simpler = {"resolved": "firing", "refired": "resolved", "reresolved": "refired"}
    while sum(map(github_writes, groups)) > WRITES:  # resolved P0/P1 groups cost more
        group = rng.choice([g for g in groups if g.plan == "resolved"])
        group.plan = simpler[group.plan]
    steps: list[tuple[float, Group, int, str]] = []
    for group in groups:
        opens = rng.uniform(0.0, 0.25)
        later = sorted(rng.uniform(opens + 0.05, 0.97) for _ in group.key_steps[1:])
        for moment, (episode, status) in zip([opens, *later], group.key_steps, strict=True):
            steps.append((moment, group, episode, status))
    firing: dict[int, list[tuple[float, float, int]]] = {}  # group → (from, to, episode)
    for group in groups:
        moments = sorted((m, e, s) for m, g, e, s in steps if g is group)
        for i, (moment, episode, status) in enumerate(moments):
            if status == "firing":
                until = moments[i + 1][0] if i + 1 < len(moments) else 1.0
                firing.setdefault(group.n, []).append((moment, until, episode))
    events: list[tuple[float, Group, int, str, bool]] = [(m, g, e, s, True) for m, g, e, s in steps]
    while len(events) < NOTIFICATIONS:
        group = rng.choice(groups)
        moment = rng.random()
        for start, until, episode in firing[group.n]:
            if start < moment < until:
                events.append((moment, group, episode, "firing", False))
    events.sort(key=lambda e: e[0])
    stream = []
    for index, (moment, group, episode, status, key) in enumerate(events):
        to = (0, 1) if rng.random() < HA_SHARE else (index % 2,)
        stream.append(Notification(index, moment * STREAM_SECONDS, group, episode, status, key, to))
    return groups, stream


# -- the replicas ----------------------------------------------------------------------------


class Replica:
    """``incident-bridge serve`` in a child process on the shared database, restartable."""

    def __init__(self, name: str, tmp_path: Path, config: str) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / f"{name}.yaml"
        self.config.write_text(f"listen: 127.0.0.1:{self.port}\n{config}")
        self.log = tmp_path / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.in_flight = 0  # the sender's requests to it that have not been answered yet
        self.busy = asyncio.Event()  # set while in_flight > 0
        self.ready_at = 0.0  # time.monotonic() when it last became ready

    async def start(self) -> None:
        # This checkout's bridge, whatever an editable install elsewhere points at.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bridge", "serve", "--config", str(self.config)),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.config.parent,
                env={**os.environ, "PYTHONPATH": path},
            )

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}: {self.tail()}")
            try:
                async with http.get(f"{self.base}/readyz") as response:
                    if response.status == 200:
                        self.ready_at = time.monotonic()
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        pytest.fail(f"{self.name} not ready within {within:g} s: {self.tail()}")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), 10)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s (never leaves a process)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines of every run of the process."""
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        events = []
        for line in lines:
            if line.startswith("{"):
                with contextlib.suppress(ValueError):  # a line cut by SIGKILL
                    events.append(json.loads(line))
        return events

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def replica_config(
    store_url: str, github: FakeGitHub, slack: FakeSlack, smtp_port: int, twilio: FakeTwilio
) -> str:
    throttle = "  throttle:\n    max: 1000\n    per: 15m\n"  # storm control out of the way
    return (
        f"store:\n  url: {store_url}\n  lease: {LEASE}\n"
        "github:\n"
        f"  api_url: {github.base_url}\n"
        f"  repository: {REPO}\n"
        f"  token: {TOKEN}\n"
        "  timeout: 5s\n"
        # GitHub's own ceiling, for every priority alike.
        "  budget:\n    per_minute: 80\n    per_hour: 500\n    reserve: 0\n"
        + slack_config(slack.base_url, SLACK_TOKEN, CHANNEL)
        + email_config(smtp_port, throttle)
        + sms_config(twilio.base_url, SID, TWILIO_TOKEN, throttle)
        + "stakeholders:\n"
        f"  - {{name: Alice Ops, email: {ALICE_MAIL}, phone: '{ALICE_PHONE}'}}\n"
        f"  - {{name: Bob Lead, email: {BOB_MAIL}}}\n"
        f"  - {{name: Carol Pager, phone: '{CAROL_PHONE}'}}\n"
    )


# -- the sender and the killer ----------------------------------------------------------------


@dataclass
class Tally:
    deliveries: int = 0  # HTTP requests sent
    accepted: int = 0  # 200s
    retries: int = 0  # deliveries after a first one that got no 200
    refused: int = 0
    cut: int = 0  # the connection reset or closed before an answer
    unavailable: int = 0  # 503
    other: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    kills_mid_request: int = 0
    kill_log: list[str] = field(default_factory=list)


class Sender:
    """Alertmanager: each group's notifications in order, each copy retried until a 200."""

    def __init__(self, replicas: list[Replica], http: aiohttp.ClientSession) -> None:
        self.replicas = replicas
        self.http = http
        self.tally = Tally()

    async def attempt(self, replica: Replica, body: bytes) -> str:
        self.tally.deliveries += 1
        replica.in_flight += 1
        replica.busy.set()
        try:
            async with self.http.post(
                f"{replica.base}/api/v1/alerts",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as response:
                await response.read()
                return str(response.status)
        except aiohttp.ClientConnectorError:
            return "refused"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return "cut"
        except aiohttp.ClientError as error:
            return type(error).__name__
        finally:
            replica.in_flight -= 1
            if not replica.in_flight:
                replica.busy.clear()

    async def copy(self, notification: Notification, first: int) -> None:
        """One copy of ``notification``: to replica ``first``, then the other, then back,
        with a short backoff, until one answers 200."""
        body = json.dumps(notification.group.body(notification.episode, notification.status))
        data = body.encode()
        target, pause = first, 0.05
        deadline = time.monotonic() + DELIVERY_SECONDS
        tries = 0
        while True:
            if tries:
                self.tally.retries += 1
            tries += 1
            answer = await self.attempt(self.replicas[target], data)
            notification.answers.append(f"{self.replicas[target].name}:{answer}")
            if answer == "200":
                self.tally.accepted += 1
                return
            if answer == "refused":
                self.tally.refused += 1
            elif answer == "cut":
                self.tally.cut += 1
            elif answer == "503":
                self.tally.unavailable += 1
            else:
                self.tally.other[answer] += 1
            assert time.monotonic() < deadline, (
                f"notification {notification.index} got no 200 in {DELIVERY_SECONDS:g} s:"
                f" {notification.answers}"
            )
            target = 1 - target  # Alertmanager's retry reaches whichever replica the Service picks
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.8)

    async def group(self, notifications: list[Notification], started: float) -> None:
        for notification in notifications:
            delay = started + notification.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(*(self.copy(notification, to) for to in notification.to))

    async def send(self, stream: list[Notification], started: float) -> None:
        by_group: dict[int, list[Notification]] = {}
        for notification in stream:
            by_group.setdefault(notification.group.n, []).append(notification)
        await asyncio.gather(*(self.group(ns, started) for ns in by_group.values()))


async def killer(
    rng: random.Random,
    replicas: list[Replica],
    http: aiohttp.ClientSession,
    tally: Tally,
    started: float,
) -> None:
    """SIGKILL the replicas in turn at random moments of the stream — while a request of the
    sender is in flight to the victim, when one comes within half a second — and start each
    again at once (after a random pause of up to half a second), as a supervisor would. A
    replica is killed again only once it has served for ``UPTIME`` (a replica killed as soon
    as it is up would never run an effect: the test would show nothing); the other one may
    still be down then."""
    kills = rng.randint(*KILLS)
    first = rng.randrange(2)
    moments = sorted(rng.uniform(0.03, 0.85) * STREAM_SECONDS for _ in range(kills))
    restarts: list[asyncio.Task[None]] = []
    restarting: dict[int, asyncio.Task[None]] = {}

    async def restart(replica: Replica, pause: float) -> None:
        await asyncio.sleep(pause)
        await replica.start()
        await replica.wait_ready(http)

    for i, moment in enumerate(moments):
        victim = (first + i) % 2
        replica = replicas[victim]
        if victim in restarting:
            await restarting.pop(victim)
        delay = max(started + moment, replica.ready_at + UPTIME) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(replica.busy.wait(), 0.5)
        mid_request = replica.in_flight > 0
        await replica.kill()
        tally.kills += 1
        tally.kills_mid_request += mid_request
        tally.kill_log.append(
            f"{time.monotonic() - started:.1f}s {replica.name}"
            f"{' mid-request' if mid_request else ''}"
        )
        task = asyncio.create_task(restart(replica, rng.uniform(0.0, 0.5)))
        restarting[victim] = task
        restarts.append(task)
    await asyncio.gather(*restarts)


# -- what GitHub, Slack, the mailbox and Twilio hold --------------------------------------------


async def query(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def drained(url: str) -> bool:
    """Every effect queued is done; one that failed for good fails the test at once."""
    rows = await query(url, "SELECT state, kind, last_error FROM outbox WHERE state <> 'done'")
    failed = [(r["kind"], r["last_error"]) for r in rows if r["state"] == "failed"]
    assert not failed, failed
    return not rows


def texts_of(blocks: Any) -> Iterator[str]:
    """Every ``text`` string inside Slack blocks."""
    if isinstance(blocks, dict):
        for name, value in blocks.items():
            if name == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts_of(value)
    elif isinstance(blocks, list):
        for value in blocks:
            yield from texts_of(value)


def slack_by_incident(slack: FakeSlack) -> tuple[Counter[str], dict[str, list[str]]]:
    """Per incident: how many root messages it has, and every text its roots (each version)
    and their threads' replies hold."""
    roots: Counter[str] = Counter()
    said: dict[str, list[str]] = {}
    for root in slack.messages(CHANNEL):
        versions: list[tuple[str, Any]] = [*root.history, (root.text, root.blocks)]
        found = next(
            (m for _, b in versions for t in texts_of(b) if (m := SLACK_ROOT.search(t))), None
        )
        assert found is not None, root
        incident = found.group(1)
        roots[incident] += 1
        texts = said.setdefault(incident, [])
        for text, blocks in versions:
            texts.append(text)
            texts.extend(texts_of(blocks))
        replies: list[SlackMessage] = slack.thread(CHANNEL, root.ts)
        texts.extend(reply.text for reply in replies)
    return roots, said


def issues_by_id(issues: list[FakeIssue]) -> dict[str, list[FakeIssue]]:
    found: dict[str, list[FakeIssue]] = {}
    for issue in issues:
        marker = ISSUE_MARKER.search(issue.body or "")
        assert marker is not None, issue.title
        found.setdefault(marker.group(2), []).append(issue)
    return found


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(account_sid=SID, auth_token=TWILIO_TOKEN) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def replicas(
    tmp_path: Path,
    postgres_db: str,
    github: FakeGitHub,
    slack: FakeSlack,
    mailbox: Mailbox,
    twilio: FakeTwilio,
) -> AsyncIterator[list[Replica]]:
    """Two replicas on the run's (emptied) database, stopped at the end whatever happened."""
    config = replica_config(postgres_db, github, slack, mailbox.port, twilio)
    pair = [Replica(f"replica-{i}", tmp_path, config) for i in range(2)]
    try:
        yield pair
    finally:
        await asyncio.gather(*(replica.stop() for replica in pair))


async def test_sigkills_during_a_stream_of_1000_notifications_lose_and_repeat_nothing(
    replicas: list[Replica],
    postgres_db: str,
    github: FakeGitHub,
    slack: FakeSlack,
    mailbox: Mailbox,
    twilio: FakeTwilio,
    figures: Record,
) -> None:
    """1,000 notifications for 40 alert groups at P0-P3 (openings, repeats, resolutions,
    re-fires; a quarter of them delivered to both replicas as an HA pair would), to two
    replicas on one PostgreSQL database, SIGKILLed in turn six to nine times at random
    moments, mostly with a request in flight, and restarted; every notification retried until
    a replica answers 200. Afterwards: GitHub holds each group's issue exactly once, in the
    state of the group's last notification, with one comment per resolution and reopening and
    none twice, and one review per resolved P0/P1 group; every message the bridge queued for
    Slack, email and SMS arrived, at least once."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.randrange(2**32))  # noqa: S311 - a test's seed, not a secret
    print(f"kill stream seed: {seed} (replay: {SEED_VARIABLE}={seed})")
    rng = random.Random(seed)  # noqa: S311 - a replayable stream, not a secret
    began = time.monotonic()
    groups, stream = make_stream(rng, datetime.now(UTC))
    # Every API a little slow, so that effects are in flight when a replica dies too.
    github.inject("*", r".*", 0, delay=API_DELAY, times=10**9)
    slack.inject("*", r".*", 0, delay=API_DELAY, times=10**9)
    twilio.inject("*", r".*", 0, delay=API_DELAY, times=10**9)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for replica in replicas:
            await replica.start()
        for replica in replicas:
            await replica.wait_ready(http)
        sender = Sender(replicas, http)
        started = time.monotonic()
        await asyncio.gather(
            sender.send(stream, started), killer(rng, replicas, http, sender.tally, started)
        )
        streamed = time.monotonic() - started
        tally = sender.tally
        print(f"stream done in {streamed:.1f} s; kills: {tally.kill_log}")

        deadline = time.monotonic() + DRAIN_SECONDS
        while not await drained(postgres_db):
            if time.monotonic() > deadline:
                pending = await query(
                    postgres_db,
                    "SELECT kind, state, count(*) AS n FROM outbox WHERE state <> 'done'"
                    " GROUP BY kind, state",
                )
                pytest.fail(
                    f"the outbox is not empty {DRAIN_SECONDS:g} s after the stream: "
                    f"{[dict(r) for r in pending]}; seed {seed}"
                )
            await asyncio.sleep(0.5)
        drain = time.monotonic() - started - streamed
    for replica in replicas:
        assert replica.alive, f"{replica.name} died by itself: {replica.tail()}"

    last = {n.group.n: n for n in stream}  # each group's last notification
    assert all(len([a for a in n.answers if a.endswith(":200")]) == len(n.to) for n in stream)

    # -- GitHub: exactly once --------------------------------------------------------------
    rows = await query(
        postgres_db, "SELECT id, key, kind, number, state, priority FROM incidents ORDER BY number"
    )
    assert {row["kind"] for row in rows} == {"incident"}, "a storm roll-up: the budget ran out"
    assert [row["number"] for row in rows] == list(range(1, GROUPS + 1))  # unique, gap-free
    display = {row["id"]: f"INC-{row['number']:03d}" for row in rows}

    everything = github.issues(REPO)
    reviews = [issue for issue in everything if REVIEW_TITLE.match(issue.title)]
    incident_issues = issues_by_id([i for i in everything if i not in reviews])
    duplicates = sum(len(found) - 1 for found in incident_issues.values())
    assert duplicates == 0, {k: [i.number for i in v] for k, v in incident_issues.items()}
    assert len(incident_issues) == GROUPS
    by_service: dict[str, FakeIssue] = {}
    incident_of: dict[str, str] = {}  # service → INC id
    for row in rows:
        [issue] = incident_issues[display[row["id"]]]
        marker = ISSUE_MARKER.search(issue.body or "")
        assert marker is not None
        assert marker.group(3) == row["key"]
        service = re.search(r"kill-\d{3}", issue.body or "")
        assert service is not None
        by_service[service.group(0)] = issue
        incident_of[service.group(0)] = display[row["id"]]

    # Not one create reached GitHub twice for an issue, not even after a kill during it.
    creates = Counter(
        m.group(0)
        for r in github.calls("POST")
        if r.path == f"/repos/{REPO}/issues" and r.status == 201
        if (m := ISSUE_MARKER.search(str((r.json or {}).get("body", "")))) is not None
    )
    assert len(creates) == GROUPS + len(reviews), creates
    assert set(creates.values()) == {1}, creates

    comments = [c for issue in everything for c in github.comments(REPO, issue.number)]
    comment_markers = Counter(
        m.group(1) for c in comments if (m := COMMENT_MARKER.search(c.body)) is not None
    )
    duplicate_comments = sum(n - 1 for n in comment_markers.values())
    assert duplicate_comments == 0, [m for m, n in comment_markers.items() if n > 1]

    wrong_state = []
    for group in groups:
        issue = by_service[group.service]
        final = last[group.n].status
        if issue.state != ("open" if final == "firing" else "closed"):
            wrong_state.append((group.service, group.plan, final, issue.number, issue.state))
        # One comment per resolution and per reopening: every state change after the opening.
        changes = len(group.key_steps) - 1
        posted = [c for c in github.comments(REPO, issue.number) if COMMENT_MARKER.search(c.body)]
        assert len(posted) == changes, (group.service, group.plan, [c.body[:80] for c in posted])
    assert wrong_state == []

    reviewed = Counter(m.group(1) for r in reviews if (m := REVIEW_TITLE.match(r.title)))
    wanted_reviews = {
        incident_of[g.service] for g in groups if g.priority in ("P0", "P1") and g.plan != "firing"
    }
    assert set(reviewed) == wanted_reviews
    assert set(reviewed.values()) <= {1}

    # -- Slack, email, SMS: at least once -------------------------------------------------
    effects = await query(
        postgres_db,
        "SELECT o.incident_id, o.kind, o.payload, e.kind AS event, e.text"
        " FROM outbox o JOIN events e ON e.incident_id = o.incident_id"
        " AND e.seq = (o.payload::json ->> 'event_seq')::int"
        " WHERE o.kind LIKE 'notify.%' ORDER BY o.id",
    )
    total_notify = await query(
        postgres_db, "SELECT count(*) AS n FROM outbox WHERE kind LIKE 'notify.%'"
    )
    assert total_notify[0]["n"] == len(effects)  # every message is about an event
    roots, said = slack_by_incident(slack)
    expected: Counter[str] = Counter()
    lost: list[str] = []
    slack_needed: Counter[tuple[str, str]] = Counter()
    email_needed: Counter[tuple[str, str]] = Counter()
    sms_needed: Counter[tuple[str, str, str]] = Counter()
    for effect in effects:
        incident = display[effect["incident_id"]]
        message = json.loads(effect["payload"])
        expected[effect["kind"]] += 1
        if effect["kind"] == "notify.slack":
            if effect["event"] == "opened":
                slack_needed[(incident, "")] += 1
            else:
                slack_needed[(incident, escape(one_line(effect["text"], 500)))] += 1
        elif effect["kind"] == "notify.email":
            email_needed[(message["to"], f"{incident}.{message['event_seq']}")] += 1
        else:
            sms_needed[(message["to"], incident, SMS_WORDS[effect["event"]])] += 1

    for (incident, text), n in slack_needed.items():
        have = roots[incident] if not text else sum(text in t for t in said.get(incident, []))
        if have < n:
            lost.append(f"slack {incident} {text or 'root'}: {have} of {n}")
    emails: Counter[tuple[str, str]] = Counter()
    for rcpt, mail in mailbox.received:
        found = MESSAGE_ID.search(str(mail["Message-ID"]))
        assert found is not None, mail["Message-ID"]
        emails[(rcpt, found.group(1))] += 1
    for wanted, n in email_needed.items():
        if emails[wanted] < n:
            lost.append(f"email {wanted}: {emails[wanted]} of {n}")
    texts: Counter[tuple[str, str, str]] = Counter()
    for sms in twilio.messages:
        head = re.match(r"(INC-\d+) P\d (\w+)", sms.body)
        assert head is not None, sms.body
        texts[(sms.to, head.group(1), head.group(2))] += 1
    for wanted_sms, n in sms_needed.items():
        if texts[wanted_sms] < n:
            lost.append(f"sms {wanted_sms}: {texts[wanted_sms]} of {n}")
    assert lost == []
    # The policy's shape, from the stream: P0 texts, P0/P1 email, everyone is on Slack.
    opened_p0 = sum(g.priority == "P0" for g in groups)
    assert expected["notify.sms"] >= 2 * opened_p0 > 0
    assert expected["notify.email"] > 0
    assert roots.keys() == set(display.values())

    [retried] = await query(
        postgres_db, "SELECT count(*) FILTER (WHERE attempts > 1) AS n FROM outbox"
    )
    logged = [event for replica in replicas for event in replica.log_events()]
    # Effects a replica died running, finished by a replica that did not know whether they
    # had been applied (it looks for the issue's or comment's marker before it repeats one).
    unknown = {
        e["effect_id"] for e in logged if e.get("event") == "effect" and e["outcome_unknown"]
    }
    adopted = sum(
        e.get("event") in ("github_issue_adopted", "github_comment_found") for e in logged
    )
    writes = [r for r in github.requests if r.is_write and r.path != f"/repos/{REPO}/labels"]
    slack_posts = sum(r.ok is True for r in slack.calls("chat.postMessage"))
    figures(
        {
            "seed": seed,
            "notifications": len(stream),
            "groups": GROUPS,
            "deliveries": tally.deliveries,
            "200s": tally.accepted,
            "retries": tally.retries,
            "refused": tally.refused,
            "cut": tally.cut,
            "503s": tally.unavailable,
            "kills": tally.kills,
            "kills_mid_request": tally.kills_mid_request,
            "ha_duplicates": sum(len(n.to) == 2 for n in stream),
            "effects_retried": retried["n"],  # tried more than once
            "effects_taken_over": len(unknown),  # with the outcome unknown: after a kill
            "found_on_github": adopted,  # of those, applied already: not repeated
            "github_writes": f"{len(writes)}/{sum(map(github_writes, groups))}",
            "issues": len(incident_issues),
            "reviews": len(reviews),
            "github_duplicates": duplicates + duplicate_comments,
            "lost": len(lost),
            # Messages per channel: sent / called for by the policy (more: a duplicate).
            "slack": f"{slack_posts}/{expected['notify.slack']}",
            "email": f"{len(mailbox.received)}/{expected['notify.email']}",
            "sms": f"{len(twilio.messages)}/{expected['notify.sms']}",
            "stream_s": round(streamed, 1),
            "drain_s": round(drain, 1),
            "duration_s": round(time.monotonic() - began, 1),
        }
    )
