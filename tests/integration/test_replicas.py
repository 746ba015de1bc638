"""Several bridge replicas on one PostgreSQL database: the high-availability acceptance test.

Real ``incident-bridge serve`` processes share the test run's database and talk to the fake
GitHub on loopback. Every notification goes to all of them at once, as an Alertmanager HA pair
(or several Alertmanagers) would send it; one replica is SIGKILLed while it is in the middle
of a GitHub call. Whatever the timing, GitHub must end up with each effect exactly once: one
issue per alert group, one resolution comment per issue, every issue closed, nothing left in
the outbox.

To tell the replicas' GitHub calls apart in the fake's request log, each replica reaches the
fake through a TCP pipe of its own (a loopback port that forwards bytes, nothing more): the
``Host`` header of each recorded request names its sender, so the test kills the replica that
has a write in flight, at that very moment.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from fakes.github import FakeGitHub, RecordedRequest
from support import REPO, TOKEN, eventually, payload

pytestmark = pytest.mark.slow  # run by default (and in CI): pytest deselects nothing

ROOT = Path(__file__).resolve().parents[2]
LEASE = "5s"  # store.lease: the killed replica's claims are taken over 5 s after it dies
ISSUE_MARKER = re.compile(r"<!-- incident-bridge:v1 kind=\S+ id=(INC-\d+) key=([0-9a-f]+) -->")
COMMENT_MARKER = re.compile(r"<!-- incident-bridge:event=(INC-\d+)\.(\d+) -->")
ISSUES_PATH = f"/repos/{REPO}/issues"


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Pipe:
    """A loopback port that forwards every connection, byte for byte, to the fake GitHub."""

    def __init__(self, target: str) -> None:
        self._target = target  # "127.0.0.1:PORT"
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.host = ""  # "127.0.0.1:PORT" of the pipe: what its users send as Host

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.host = f"127.0.0.1:{port}"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        # One side gone (a replica killed, GitHub closing an idle connection): both are closed.
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


class Replica:
    """``incident-bridge serve`` in a child process, on the shared PostgreSQL database; it
    reaches GitHub through its own ``pipe``."""

    def __init__(self, name: str, tmp_path: Path, store_url: str, pipe: Pipe) -> None:
        self.name = name
        self.pipe = pipe
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        github_url = f"http://{pipe.host}"
        self.config = tmp_path / f"{name}.yaml"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            "store:\n"
            f"  url: {store_url}\n"
            f"  lease: {LEASE}\n"
            "github:\n"
            f"  api_url: {github_url}\n"
            f"  repository: {REPO}\n"
            f"  token: {TOKEN}\n"
            "  timeout: 5s\n"
            # GitHub's own ceiling, for every priority: a scenario's writes fit in one minute.
            "  budget:\n"
            "    per_minute: 80\n"
            "    per_hour: 500\n"
            "    reserve: 0\n"
        )
        self.log = tmp_path / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.killed_at: float | None = None  # time.monotonic() just before SIGKILL

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

    async def ready(self, http: aiohttp.ClientSession) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}: {self.log_text()}")
        try:
            async with http.get(f"{self.base}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def kill(self) -> None:
        assert self.process is not None
        self.killed_at = time.monotonic()
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

    async def post(self, http: aiohttp.ClientSession, body: dict[str, Any]) -> Answer:
        try:
            async with http.post(f"{self.base}/api/v1/alerts", json=body) as response:
                answer = await response.json() if response.status == 200 else {}
                return Answer(self, response.status, answer.get("outcome"), time.monotonic())
        except aiohttp.ClientError:  # refused, or the connection cut by the kill
            return Answer(self, None, None, time.monotonic())

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines the process wrote."""
        events = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events


@dataclass
class Answer:
    """One replica's answer to one notification (``status`` None: no HTTP answer at all)."""

    replica: Replica
    status: int | None
    outcome: str | None
    at: float

    @property
    def excused(self) -> bool:
        """Not a 200, but from a replica that had been killed by then: Alertmanager's other
        deliveries carry the notification."""
        killed = self.replica.killed_at
        return self.status in (None, 503) and killed is not None and self.at >= killed


Cluster = Callable[[int], Awaitable[list["Replica"]]]


@pytest.fixture
async def cluster(tmp_path: Path, github: FakeGitHub, postgres_db: str) -> AsyncIterator[Cluster]:
    """Starts ``n`` replicas on the run's (emptied) database and waits for /readyz on each;
    every replica started is stopped at the end, whatever happened."""
    started: list[Replica] = []
    pipes: list[Pipe] = []
    target = github.base_url.removeprefix("http://")

    async def start(n: int) -> list[Replica]:
        replicas = []
        for i in range(n):
            pipe = Pipe(target)
            pipes.append(pipe)
            await pipe.start()
            replica = Replica(f"replica-{i}", tmp_path, postgres_db, pipe)
            started.append(replica)
            replicas.append(replica)
            await replica.start()
        async with aiohttp.ClientSession() as http:
            for replica in replicas:
                await eventually(partial(replica.ready, http), f"{replica.name} is ready", 30)
        return replicas

    try:
        yield start
    finally:
        await asyncio.gather(*(replica.stop() for replica in started))
        for pipe in pipes:
            await pipe.close()


def new_group(n: int) -> dict[str, Any]:
    """A new alert group of three firing alerts (fixture 04 with its own key and labels)."""
    body = payload("04_group_of_3_firing.json")
    service = f"replica-db-{n}"
    body["groupKey"] = f'{{}}:{{alertname="DiskFull", service="{service}"}}'
    body["groupLabels"]["service"] = service
    body["commonLabels"]["service"] = service
    for i, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{n:012x}{i:04x}"
        alert["labels"]["service"] = service
    return body


def resolved(group: dict[str, Any]) -> dict[str, Any]:
    """The same group with every alert resolved five minutes after it started."""
    body = copy.deepcopy(group)
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = alert["startsAt"].replace("T21:22:", "T21:27:")
    return body


async def deliver(
    http: aiohttp.ClientSession, replicas: list[Replica], body: dict[str, Any]
) -> list[Answer]:
    """One notification, to every replica at once."""
    return list(await asyncio.gather(*(r.post(http, body) for r in replicas)))


def check_answers(answers: list[Answer]) -> None:
    """Accepted by at least one replica; anything but a 200 only from a killed replica."""
    assert any(a.status == 200 for a in answers), [(a.replica.name, a.status) for a in answers]
    for a in answers:
        assert a.status == 200 or a.excused, (a.replica.name, a.status)


async def query(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def outbox_settled(url: str) -> bool:
    """Every effect ever queued is done (none pending, running or failed)."""
    [row] = await query(url, "SELECT count(*) FROM outbox WHERE state <> 'done'")
    return int(row[0]) == 0


def host_of(request: RecordedRequest) -> str:
    return next((v for k, v in request.headers.items() if k.lower() == "host"), "")


def issue_creates(github: FakeGitHub) -> list[RecordedRequest]:
    return [r for r in github.calls("POST") if r.path == ISSUES_PATH]


def comment_posts(github: FakeGitHub) -> list[RecordedRequest]:
    return [r for r in github.calls("POST") if r.path.endswith("/comments")]


def issue_writes(github: FakeGitHub) -> list[RecordedRequest]:
    """Every write but the replicas' start-up creation of repository labels."""
    return [r for r in github.requests if r.is_write and r.path != f"/repos/{REPO}/labels"]


def marker_of(request: RecordedRequest, pattern: re.Pattern[str]) -> str:
    found = pattern.search(str((request.json or {}).get("body", "")))
    assert found is not None, request.json
    return found.group(0)


async def check_one_issue_per_incident(github: FakeGitHub, url: str, groups: int) -> None:
    """Incidents INC-001..INC-<groups>, one per group, each with exactly one issue on GitHub,
    created by exactly one request."""
    rows = await query(url, "SELECT key, kind, number, state FROM incidents ORDER BY number")
    assert [row["number"] for row in rows] == list(range(1, groups + 1))  # gap-free, unique
    assert {row["kind"] for row in rows} == {"incident"}
    assert len({row["key"] for row in rows}) == groups  # one incident per group
    keys = {f"INC-{row['number']:03d}": row["key"] for row in rows}

    issues = github.issues(REPO)
    markers = [ISSUE_MARKER.search(issue.body or "") for issue in issues]
    found = {m.group(1): m.group(2) for m in markers if m is not None}
    assert len(issues) == groups
    assert found == keys  # every incident has an issue, none has two

    creates = issue_creates(github)
    assert sum(r.status == 201 for r in creates) == groups
    # Not one create was sent twice for an incident, not even one whose answer never came.
    duplicates = Counter(marker_of(r, ISSUE_MARKER) for r in creates)
    assert duplicates.most_common(1)[0][1] == 1, duplicates.most_common(3)


async def kill_while(
    replicas: list[Replica], requests: Callable[[], list[RecordedRequest]]
) -> tuple[Replica, RecordedRequest]:
    """SIGKILL whichever replica has one of ``requests()`` in flight (received by GitHub, not
    answered yet), once at least five of them were answered; return it and that request."""
    by_host = {replica.pipe.host: replica for replica in replicas}
    caught: list[tuple[Replica, RecordedRequest]] = []

    def someone_is_writing() -> bool:
        sent = requests()
        if sum(r.status != 0 for r in sent) >= 5:
            caught[:] = [(by_host[host_of(r)], r) for r in sent if r.status == 0]
        return bool(caught)

    await eventually(someone_is_writing, "a replica is writing to GitHub", 30, 0.002)
    victim, request = caught[0]
    await victim.kill()
    return victim, request


async def one_replica_killed(
    cluster: Cluster, github: FakeGitHub, postgres_db: str, *, mid: str
) -> None:
    """The acceptance scenario: three replicas, 24 alert groups each delivered to all three at
    once, one replica SIGKILLed while it writes to GitHub, every group then resolved; ``mid``
    says during which write (``"create"``: the groups' issue creations, ``"comment"``: their
    resolution comments). Each group costs three writes (create, comment, closing edit): 72,
    inside the 80 a minute GitHub allows."""
    groups = 24
    github.inject("*", r".*", 0, delay=0.03, times=10**9)  # effects are in flight at the kill
    replicas = await cluster(3)
    bodies = [new_group(n) for n in range(groups)]
    answers: list[list[Answer]] = []

    async def send(
        http: aiohttp.ClientSession, to: list[Replica], make: Callable[[int], dict[str, Any]]
    ) -> None:
        for n in range(groups):
            answers.append(await deliver(http, to, make(n)))
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        if mid == "create":
            # The groups keep coming while the victim dies; the survivors resolve them.
            sender = asyncio.create_task(send(http, replicas, lambda n: bodies[n]))
            try:
                victim, lost = await kill_while(replicas, lambda: issue_creates(github))
            finally:
                await sender
            survivors = [r for r in replicas if r is not victim]
            await send(http, survivors, lambda n: resolved(bodies[n]))
        else:
            # All groups at once: large batches of claims, so a survivor taking the victim's
            # over may run late in its batch and release some of them unstarted.
            answers += await asyncio.gather(*(deliver(http, replicas, b) for b in bodies))
            sender = asyncio.create_task(send(http, replicas, lambda n: resolved(bodies[n])))
            try:
                victim, lost = await kill_while(replicas, lambda: comment_posts(github))
            finally:
                await sender
            survivors = [r for r in replicas if r is not victim]
    for group in answers:
        check_answers(group)
    # The run really was concurrent: the victim accepted notifications itself before it died.
    assert any(a.replica is victim and a.status == 200 for group in answers for a in group)

    def all_closed() -> bool:
        issues = github.issues(REPO)
        return len(issues) == groups and all(issue.state == "closed" for issue in issues)

    await eventually(lambda: outbox_settled(postgres_db), "the outbox is empty", 60)
    await eventually(all_closed, "every issue is closed", 10)

    await check_one_issue_per_incident(github, postgres_db, groups)
    states = await query(postgres_db, "SELECT DISTINCT state FROM incidents")
    assert [row["state"] for row in states] == ["resolved"]
    outbox = await query(postgres_db, "SELECT state, count(*) FROM outbox GROUP BY state")
    # Per group: the create, the resolution comment, the closing sync; each done once.
    assert {row["state"]: row["count"] for row in outbox} == {"done": 3 * groups}

    for issue in github.issues(REPO):
        assert issue.state_reason == "completed"
        [comment] = github.comments(REPO, issue.number)  # exactly one resolution comment
        event = COMMENT_MARKER.search(comment.body)
        assert event is not None
        assert f"id={event.group(1)} " in (issue.body or "")  # about this issue's incident
    posted = Counter(marker_of(r, COMMENT_MARKER) for r in comment_posts(github))
    assert len(posted) == groups
    assert set(posted.values()) == {1}  # no comment was ever sent twice
    edits = Counter(r.path for r in github.calls("PATCH"))
    assert len(edits) == groups
    assert set(edits.values()) == {1}  # one closing edit per issue, nothing repeated
    # And no other write at all: per group a create, a comment and an edit (labels go with
    # the create; the replicas' start-up label set-up aside).
    assert len(issue_writes(github)) == 3 * groups

    # The victim's last request, whose answer it never saw: a survivor took the claim over
    # when its lease ran out, and since GitHub had applied the request, found its marker
    # instead of sending it again.
    logs = [event for replica in survivors for event in replica.log_events()]
    assert any(e.get("event") == "effect" and e.get("outcome_unknown") for e in logs)
    if lost.status == 201:
        found = "github_issue_adopted" if mid == "create" else "github_comment_found"
        assert any(e.get("event") == found for e in logs)


async def test_three_replicas_one_killed_mid_create_apply_every_effect_exactly_once(
    cluster: Cluster, github: FakeGitHub, postgres_db: str
) -> None:
    """Three replicas, every notification delivered to all three at once, GitHub answering
    each request after 30 ms. One replica is SIGKILLed while one of its issue creations is in
    flight; the groups keep coming (the dead replica's deliveries fail, the others' carry
    them), then every group resolves. The survivors take the dead replica's claims over when
    their lease runs out (adopting the issue its last create made), and GitHub ends up with one
    issue per group, one resolution comment each, every issue closed by one edit, and the
    outbox empty."""
    await one_replica_killed(cluster, github, postgres_db, mid="create")


async def test_three_replicas_one_killed_mid_comment_apply_every_effect_exactly_once(
    cluster: Cluster, github: FakeGitHub, postgres_db: str
) -> None:
    """The same with the kill during the resolutions, all groups having fired at once: a
    replica dies while one of its resolution comments is in flight. A survivor takes the claim
    over when its lease runs out, finds the comment on the issue and does not post it again;
    whichever survivor runs it, however late (a taken-over effect released unstarted keeps
    its unknown outcome: see test_outbox), every comment is posted exactly once."""
    await one_replica_killed(cluster, github, postgres_db, mid="comment")


async def test_two_replicas_receiving_each_new_group_at_once_open_it_once(
    cluster: Cluster, github: FakeGitHub, postgres_db: str
) -> None:
    """Twenty times in a row, a new alert group's notification reaches two replicas at the
    same moment. Each time one replica opens the incident and the other, serialized behind
    it on the group's key, finds it open and changes nothing: twenty incidents numbered
    without gaps, twenty issues, one create each."""
    groups = 20
    replicas = await cluster(2)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        for n in range(groups):
            answers = await deliver(http, replicas, new_group(n))
            assert [a.status for a in answers] == [200, 200]
            assert sorted(str(a.outcome) for a in answers) == ["opened", "unchanged"]

    await eventually(lambda: outbox_settled(postgres_db), "the outbox is empty", 30)
    await check_one_issue_per_incident(github, postgres_db, groups)
    assert all(issue.state == "open" for issue in github.issues(REPO))
    assert len(issue_writes(github)) == groups  # the creates, and nothing else
