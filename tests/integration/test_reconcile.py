"""Reconciliation and silences against a real Alertmanager (Debian's ``prometheus-alertmanager``).

Each test starts its own Alertmanager (or two unclustered peers) on 127.0.0.1 with storage in
``tmp_path`` and a short ``group_wait``; its webhooks go to a sink the test reads, and the test
decides which of them reach the bridge — that is how a lost resolution or a lost webhook is
made. Alerts and silences go in through Alertmanager's own API. The bridge runs as in
production (``create_app`` behind the harness) with a fake clock started at the wall-clock time
(Alertmanager expires alerts by the wall clock); reconciliation rounds are run by the test
(``app[RECONCILER].run_once()``), so nothing waits on the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.alertmanager_api import AlertmanagerClient, AlertmanagerError, PeerGroups
from bridge.app import RECONCILER, create_app
from bridge.clock import FakeClock
from bridge.model import Incident
from bridge.reconcile import Reconciler
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.loopback import LoopbackServer
from support import REPO, Harness, github_config, write_config

BINARY = Path("/usr/bin/prometheus-alertmanager")
DEADLINE = 10.0  # seconds: the most any wait on Alertmanager may take

CPU = {"alertname": "HighCPU", "service": "api", "instance": "api-1:9100", "severity": "critical"}
DISK = {"alertname": "DiskFull", "service": "db", "instance": "db-1:9100", "severity": "warning"}


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` every few milliseconds until it holds, at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class WebhookSink(LoopbackServer):
    """Where Alertmanager delivers: every notification is kept; none reaches the bridge unless
    the test forwards it."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/hook", self._receive)
        self.received: list[dict[str, Any]] = []

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response()

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    async def notification(self, alertname: str, status: str = "firing") -> dict[str, Any]:
        """The first notification of ``alertname``'s group with that status (waiting for it)."""

        def found() -> dict[str, Any] | None:
            for body in self.received:
                if body["groupLabels"].get("alertname") == alertname and body["status"] == status:
                    return body
            return None

        async def arrived() -> bool:
            return found() is not None

        await _until(arrived, f"Alertmanager's {status} notification of {alertname}")
        body = found()
        assert body is not None
        return body


class Alertmanager:
    """One real Alertmanager on 127.0.0.1: no clustering, storage under ``directory``, every
    group to the sink after 50 ms."""

    def __init__(self, directory: Path, webhook_url: str) -> None:
        self.directory = directory
        self.webhook_url = webhook_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "alertmanager.yml"
        config.write_text(
            "route:\n"
            "  receiver: bridge\n"
            "  group_by: [alertname, service]\n"
            "  group_wait: 50ms\n"
            "  group_interval: 100ms\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: bridge\n"
            "    webhook_configs:\n"
            f"      - url: {self.webhook_url}\n"
            "        send_resolved: true\n"
        )
        with (self.directory / "alertmanager.log").open("ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603, ASYNC220 -- the fixed binary; not waited on here
                [
                    str(BINARY),
                    f"--config.file={config}",
                    f"--storage.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no clustering: each peer on its own
                    "--log.level=warn",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

        async def ready() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.directory / "alertmanager.log").read_text()
                raise AssertionError(f"Alertmanager exited: {log[-2000:]}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{self.url}/-/ready") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await _until(ready, f"Alertmanager on {self.url} to be ready")

    def stop(self) -> None:
        """Terminate it (a peer going down); idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session,
            session.request(method, f"{self.url}{path}", json=body) as response,
        ):
            assert response.status == 200, await response.text()
            text = await response.text()
            return json.loads(text) if text else None

    async def fire(self, starts_at: datetime, *alerts: dict[str, str]) -> None:
        """Post firing alerts (by their labels) at once, as Prometheus would: ``endsAt`` an
        hour away."""
        await self._post(starts_at, datetime.now(UTC) + timedelta(hours=1), alerts)

    async def expire(self, starts_at: datetime, *alerts: dict[str, str]) -> None:
        """The alerts end now: Alertmanager stops listing them (and would send the resolution)."""
        await self._post(starts_at, datetime.now(UTC) - timedelta(seconds=1), alerts)

    async def _post(
        self, starts_at: datetime, ends_at: datetime, alerts: tuple[dict[str, str], ...]
    ) -> None:
        body = [
            {
                "labels": labels,
                "annotations": {"summary": f"{labels['alertname']} on {labels['instance']}"},
                "startsAt": _rfc3339(starts_at),
                "endsAt": _rfc3339(ends_at),
                "generatorURL": "http://prometheus:9090/graph",
            }
            for labels in alerts
        ]
        await self._call("POST", "/api/v2/alerts", body)

    async def silence(self, **matchers: str) -> str:
        """A silence for an hour on the given label values; its id."""
        now = datetime.now(UTC)
        answer = await self._call(
            "POST",
            "/api/v2/silences",
            {
                "matchers": [
                    {"name": k, "value": v, "isRegex": False, "isEqual": True}
                    for k, v in matchers.items()
                ],
                "startsAt": _rfc3339(now),
                "endsAt": _rfc3339(now + timedelta(hours=1)),
                "createdBy": "alice",
                "comment": "on it",
            },
        )
        silence_id: str = answer["silenceID"]
        return silence_id

    async def unsilence(self, silence_id: str) -> None:
        await self._call("DELETE", f"/api/v2/silence/{silence_id}")

    async def groups(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._call("GET", "/api/v2/alerts/groups")
        return data


@pytest.fixture
def clock() -> FakeClock:
    """The wall-clock time, moving only when told: Alertmanager expires alerts by the wall clock,
    the bridge decides by this one."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with WebhookSink() as server:
        yield server


@pytest.fixture
async def peers(
    tmp_path: Path, sink: WebhookSink
) -> AsyncIterator[Callable[[int], Awaitable[list[Alertmanager]]]]:
    """Start ``n`` unclustered Alertmanager peers; every one is terminated at the end."""
    started: list[Alertmanager] = []

    async def start(n: int) -> list[Alertmanager]:
        for _ in range(n):
            peer = Alertmanager(tmp_path / f"am-{len(started)}", sink.url)
            started.append(peer)
            await peer.start()
        return started[-n:]

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


def bridge_config(
    urls: list[str], store_url: str, identity: str = "group_key", extra: str = ""
) -> str:
    return github_config(
        f"identity: {identity}\n"
        "alertmanager:\n"
        f"  urls: [{', '.join(urls)}]\n"
        "  group_wait: 30s\n"
        "  timeout: 2s\n"
        "  receivers: [bridge]\n"  # the test Alertmanager's receiver for the bridge
        f"{extra}",
        store_url=store_url,
    )


@contextlib.asynccontextmanager
async def bridge(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    peers: list[Alertmanager],
    store_url: str = "sqlite:///state.db",
    identity: str = "group_key",
) -> AsyncIterator[Harness]:
    directory = tmp_path / "bridge"
    directory.mkdir(exist_ok=True)
    config = bridge_config([p.url for p in peers], store_url, identity)
    h = Harness(directory, github, clock, config)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def reconciler(h: Harness) -> Reconciler:
    assert h.app is not None
    return h.app[RECONCILER]


async def stored(h: Harness, incident_id: int = 1) -> Incident:
    assert h.app is not None
    incident = await h.app[SERVICES].store.load_incident(incident_id)
    assert incident is not None
    return incident


async def metric(h: Harness | TestClient[Any, Any], name: str) -> float:
    """A sample from ``GET /metrics`` (``name`` with its labels as exported)."""
    http = h.http if isinstance(h, Harness) else h
    response = await http.get("/metrics")
    for line in (await response.text()).splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def opened_from(h: Harness, sink: WebhookSink, alertname: str) -> dict[str, Any]:
    """Forward Alertmanager's real firing notification to the bridge: one incident opens."""
    status, answer = await h.post(await sink.notification(alertname))
    assert status == 200
    assert answer["outcome"] == "opened"
    await h.drain()
    [row] = [r for r in await h.incidents() if r["id"] == answer["incident"]]
    return row


# -- lost resolutions --------------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_a_lost_resolution_is_resolved_by_reconciliation(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
    store_url: str,
) -> None:
    """The alert ends in Alertmanager but its resolved webhook never reaches the bridge: the
    next round finds it on no peer and resolves the incident, commented and closed like any
    resolution; another round changes nothing."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am], store_url) as h:
        await am.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        clock.advance(timedelta(minutes=1))
        assert (await reconciler(h).run_once()).resolved == []  # still firing: nothing to do

        await am.expire(starts, CPU)  # the resolution Alertmanager sends is lost
        clock.advance(timedelta(minutes=1))
        done = await reconciler(h).run_once()
        await h.drain()

        assert (done.result, done.resolved, done.failed) == ("ok", ["INC-001"], [])
        [row] = await h.incidents()
        assert (row["state"], row["resolution"]) == ("resolved", "reconciled")
        assert datetime.fromisoformat(row["resolved_at"]) == clock()
        [issue] = h.issues()
        assert issue.state == "closed"
        [comment] = github.comments(REPO, issue.number)
        assert "Resolved by reconciliation" in comment.body
        assert "<!-- incident-bridge:event=INC-001." in comment.body
        assert await metric(h, 'incident_bridge_reconcile_actions_total{action="resolved"}') == 1

        github.reset_log()
        again = await reconciler(h).run_once()
        await h.drain()
        assert again.resolved == []
        assert github.requests == []


async def test_an_alert_on_any_peer_keeps_the_incident_open(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """Two unclustered peers: gone from one is not gone. A peer down means no resolution that
    round (it may still have the alert); once every peer answers without it, it resolves."""
    am0, am1 = await peers(2)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am0, am1]) as h:
        await am0.fire(starts, CPU)
        await am1.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        await am0.expire(starts, CPU)
        clock.advance(timedelta(minutes=1))
        assert (await reconciler(h).run_once()).resolved == []

        am1.stop()
        done = await reconciler(h).run_once()
        assert (done.result, done.failed, done.resolved) == ("partial", [am1.url], [])
        [row] = await h.incidents()
        assert row["state"] == "open"
        assert await metric(h, "incident_bridge_reconcile_peer_errors_total") == 1
        assert await metric(h, 'incident_bridge_reconcile_runs_total{result="partial"}') == 1

        await am1.start()  # back, empty: it lost its alerts with the restart
        done = await reconciler(h).run_once()
        assert (done.result, done.resolved) == ("ok", ["INC-001"])


async def test_every_peer_down_decides_nothing(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """No peer answers: the round fails, nothing is resolved and the gauge keeps its value."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am]) as h:
        await am.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        am.stop()
        clock.advance(timedelta(minutes=1))
        done = await reconciler(h).run_once()
        assert (done.result, done.failed, done.resolved) == ("failed", [am.url], [])
        [row] = await h.incidents()
        assert row["state"] == "open"
        assert await metric(h, 'incident_bridge_reconcile_runs_total{result="failed"}') == 1


# -- silences ----------------------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
async def test_a_silence_acknowledges_and_pauses_until_it_ends(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
    store_url: str,
) -> None:
    """A silence on every alert: acknowledged by the silence, labelled, deadlines paused (no
    timer due). The silence deleted while the alert still fires: deadlines resume, later by
    exactly the time paused."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am], store_url) as h:
        await am.fire(starts, CPU)
        before = await opened_from(h, sink, "HighCPU")
        assert before["acknowledged_at"] is None

        silence = await am.silence(alertname="HighCPU", service="api")
        clock.advance(timedelta(minutes=1))
        silenced_at = clock()
        done = await reconciler(h).run_once()
        await h.drain()

        assert done.silenced == ["INC-001"]
        [row] = await h.incidents()
        assert row["acknowledged_by"] == f"Alertmanager silence {silence}"
        assert datetime.fromisoformat(row["acknowledged_at"]) == silenced_at
        incident = await stored(h)
        assert incident.paused_at == silenced_at
        assert incident.acknowledged_via == "silence"
        assert incident.due_at is None
        [issue] = h.issues()
        assert "acknowledged" in issue.label_names
        assert f"silence {silence}" in (issue.body or "")
        assert (await reconciler(h).run_once()).silenced == []  # already paused

        clock.advance(timedelta(minutes=10))
        await am.unsilence(silence)
        done = await reconciler(h).run_once()

        assert done.unsilenced == ["INC-001"]
        [row] = await h.incidents()
        for deadline in ("respond_by", "resolve_by"):
            moved = datetime.fromisoformat(row[deadline]) - datetime.fromisoformat(before[deadline])
            assert moved == timedelta(minutes=10)
        assert row["acknowledged_by"] == f"Alertmanager silence {silence}"  # stays acknowledged
        incident = await stored(h)
        assert incident.paused_at is None
        assert incident.due_at == incident.resolve_by


async def test_a_partly_silenced_group_is_not_paused(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """A silence on one alert of two leaves the incident running."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    other = {**CPU, "instance": "api-2:9100"}
    async with bridge(tmp_path, github, clock, [am]) as h:
        await am.fire(starts, CPU, other)
        await opened_from(h, sink, "HighCPU")
        assert len((await stored(h)).firing_alerts()) == 2
        await am.silence(instance="api-1:9100")
        clock.advance(timedelta(minutes=1))
        done = await reconciler(h).run_once()
        assert done.silenced == []
        assert (await stored(h)).paused_at is None


async def test_a_silenced_group_resolves_when_its_alerts_are_gone(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """A silenced group never sends a resolution: its alerts gone from Alertmanager is it."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am]) as h:
        await am.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        await am.silence(alertname="HighCPU")
        clock.advance(timedelta(minutes=1))
        assert (await reconciler(h).run_once()).silenced == ["INC-001"]

        await am.expire(starts, CPU)
        clock.advance(timedelta(minutes=1))
        done = await reconciler(h).run_once()
        await h.drain()

        assert done.resolved == ["INC-001"]
        incident = await stored(h)
        assert (incident.state, incident.resolution, incident.paused_at) == (
            "resolved",
            "reconciled",
            None,
        )
        assert h.issues()[0].state == "closed"
        assert not any(b["status"] == "resolved" for b in sink.received)  # none was sent


async def test_a_silence_on_the_peer_that_answered_counts(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """With a peer down, a silence seen on the peer that answered still pauses the incident."""
    am0, am1 = await peers(2)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am0, am1]) as h:
        await am0.fire(starts, CPU)
        await am1.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        am1.stop()
        await am0.silence(alertname="HighCPU")
        clock.advance(timedelta(minutes=1))
        done = await reconciler(h).run_once()
        assert (done.result, done.silenced) == ("partial", ["INC-001"])


# -- lost webhooks -----------------------------------------------------------------------------


async def test_groups_the_bridge_never_heard_of_are_counted(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """``identity: group_key``: an active group older than group_wait with no incident is
    counted in the gauge and not opened (the API has no groupKey). A young group, a silenced
    one and the heartbeat are not counted."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am]) as h:
        await am.fire(starts, CPU)
        await opened_from(h, sink, "HighCPU")
        await am.fire(starts, DISK)  # its webhook is lost
        await am.fire(clock(), {**DISK, "alertname": "Young", "service": "web"})
        await am.fire(starts, {**DISK, "alertname": "Quiet", "service": "ops"})
        await am.silence(alertname="Quiet")
        await am.fire(starts, {"alertname": "Watchdog", "instance": "prometheus"})

        done = await reconciler(h).run_once()

        assert [(g.receiver, g.labels) for g in done.missed] == [
            ("bridge", {"alertname": "DiskFull", "service": "db"})
        ]
        assert done.opened == []
        assert await metric(h, "incident_bridge_reconcile_missed_groups") == 1
        assert [r["id"] for r in await h.incidents()] == ["INC-001"]

        status, _ = await h.post(await sink.notification("DiskFull"))  # it arrives after all
        assert status == 200
        assert (await reconciler(h).run_once()).missed == []
        assert await metric(h, "incident_bridge_reconcile_missed_groups") == 0


async def test_groups_the_bridge_never_heard_of_are_opened_by_group_labels(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    sink: WebhookSink,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """``identity: group_labels``: a missed group is opened as the webhook would have; the
    webhook arriving late meets the same incident, not a second one."""
    [am] = await peers(1)
    starts = clock() - timedelta(minutes=2)
    async with bridge(tmp_path, github, clock, [am], identity="group_labels") as h:
        await am.fire(starts, DISK)
        done = await reconciler(h).run_once()
        await h.drain()

        assert (len(done.missed), done.opened) == (1, ["INC-001"])
        [row] = await h.incidents()
        assert row["group_labels"] == {"alertname": "DiskFull", "service": "db"}
        assert row["receiver"] == "bridge"
        assert row["title"] == "DiskFull on db-1:9100"
        [issue] = h.issues()
        assert issue.title == "[INC-001] DiskFull on db-1:9100"
        assert await metric(h, 'incident_bridge_reconcile_actions_total{action="opened"}') == 1

        status, answer = await h.post(await sink.notification("DiskFull"))
        assert status == 200
        assert answer["incident"] == "INC-001"
        assert answer["outcome"] in ("unchanged", "updated")
        assert len(await h.incidents()) == 1
        assert (await reconciler(h).run_once()).missed == []


# -- the client's failures ---------------------------------------------------------------------


@dataclass
class Misbehaving(LoopbackServer):
    """A server where an Alertmanager should be, answering ``status`` with ``body`` after
    ``delay`` seconds."""

    status: int = 200
    body: bytes = b"[]"
    delay: float = 0.0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._answer)

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers.get("Authorization", ""))
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@pytest.mark.parametrize(
    ("server", "retryable", "message"),
    [
        (Misbehaving(status=503, body=b"unavailable"), True, "HTTP 503"),
        (Misbehaving(status=429), True, "HTTP 429"),
        (Misbehaving(status=404), False, "HTTP 404"),
        (Misbehaving(status=302), False, "HTTP 302"),
        (Misbehaving(body=b"<html>proxy</html>"), False, "not an Alertmanager alert groups"),
        (Misbehaving(delay=0.5), True, "no answer within 0.2s"),
    ],
    ids=["503", "429", "404", "redirect", "not the API", "timeout"],
)
async def test_a_peer_that_cannot_say_is_a_typed_error(
    server: Misbehaving, retryable: bool, message: str
) -> None:
    """Every way a peer fails is one AlertmanagerError, classified, naming the peer without
    its credentials (which do reach it, as basic auth)."""
    async with server:
        url = server.base_url.replace("http://", "http://ops:hunter2@") + "/am"
        client = AlertmanagerClient([url], timedelta(seconds=0.2))
        try:
            [answer] = await client.poll()
        finally:
            await client.close()
    assert answer.groups is None
    assert answer.error is not None
    assert answer.error.retryable is retryable
    assert message in str(answer.error)
    assert str(answer.error).startswith(f"{server.base_url}/am: ")
    assert "hunter2" not in str(answer.error)
    assert server.seen[0].startswith("Basic ")


async def test_an_unreachable_peer_is_retryable() -> None:
    port = _free_port()
    client = AlertmanagerClient([f"http://127.0.0.1:{port}"], timedelta(seconds=1))
    try:
        with pytest.raises(AlertmanagerError) as caught:
            await client.groups(f"http://127.0.0.1:{port}")
    finally:
        await client.close()
    assert caught.value.retryable
    assert "unreachable" in str(caught.value)


# -- the loop ----------------------------------------------------------------------------------


@dataclass
class CountingSource:
    """Peers that answer with nothing, counting the rounds (or failing, to test the loop)."""

    polls: int = 0
    crash: bool = False
    closed: bool = False

    async def poll(self) -> list[PeerGroups]:
        self.polls += 1
        if self.crash:
            raise RuntimeError("a bug")
        return [PeerGroups("am-0", ())]

    async def close(self) -> None:
        self.closed = True


async def test_the_loop_runs_only_on_the_writer_and_survives_a_bad_round(
    harness: Harness,
) -> None:
    """Rounds run every interval while this replica holds the writer lease (the others export a
    gauge of 0); a round that raises is logged and counted, and the next one runs."""
    assert harness.app is not None
    services = harness.app[SERVICES]
    source = CountingSource(crash=True)
    writer = False
    loop = Reconciler(
        source,
        services.store,
        services.ingestor,
        harness.clock,
        services.metrics,
        group_wait=timedelta(seconds=30),
        interval=timedelta(milliseconds=10),
        identity_mode="group_key",
        heartbeat_alertname="Watchdog",
        is_writer=lambda: writer,
    )
    services.metrics.reconcile_missed_groups.set(3)
    task = asyncio.create_task(loop.run_forever())
    try:

        async def gauge_zeroed() -> bool:
            registry = services.metrics.registry
            return registry.get_sample_value("incident_bridge_reconcile_missed_groups") == 0

        await _until(gauge_zeroed, "a replica that is not the writer to export 0")
        assert source.polls == 0
        writer = True

        async def two_polls() -> bool:
            return source.polls >= 2

        await _until(two_polls, "rounds after a crashed one")
        source.crash = False
        polls = source.polls

        async def a_good_round() -> bool:
            return source.polls > polls + 1

        await _until(a_good_round, "a good round")
        assert await metric(harness, 'incident_bridge_reconcile_runs_total{result="failed"}') >= 1
        assert await metric(harness, 'incident_bridge_reconcile_runs_total{result="ok"}') >= 1
    finally:
        loop.stop()
        await asyncio.wait_for(task, DEADLINE)
        await loop.close()
    assert source.closed


async def test_the_app_reconciles_on_its_own_when_serving(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    peers: Callable[[int], Awaitable[list[Alertmanager]]],
) -> None:
    """Served with its workers (``run_outbox``), the app runs rounds every
    ``alertmanager.interval`` once its outbox holds the writer lease; without ``alertmanager``
    there is no reconciler."""
    [am] = await peers(1)
    config = write_config(
        tmp_path,
        bridge_config([am.url], "sqlite:///state.db", extra="  interval: 50ms\n"),
        {"GITHUB_URL": github.base_url},
    )
    client = TestClient(TestServer(create_app(config, clock=clock), host="127.0.0.1"))
    await client.start_server()
    try:

        async def a_round_ran() -> bool:
            return await metric(client, 'incident_bridge_reconcile_runs_total{result="ok"}') > 0

        await _until(a_round_ran, "the app's first reconciliation round")
    finally:
        await client.close()
    plain = write_config(tmp_path, github_config(), {"GITHUB_URL": github.base_url})
    assert RECONCILER not in create_app(plain, clock=clock)


@dataclass
class Trickling(LoopbackServer):
    """An Alertmanager whose answer (``groups`` groups) arrives in 4 KB writes, as a real,
    busy one's does."""

    groups: int = 300
    bodies: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._answer)

    def body(self) -> bytes:
        one = {
            "labels": {"alertname": "HighCPU"},
            "receiver": {"name": "bridge"},
            "alerts": [
                {
                    "fingerprint": "f",
                    "labels": {"alertname": "HighCPU"},
                    "annotations": {"summary": "x" * 500},
                    "startsAt": "2026-01-01T00:00:00.000Z",
                    "endsAt": "2026-11-27T03:07:51.000Z",
                    "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
                }
            ],
        }
        groups = []
        for n in range(self.groups):
            group = json.loads(json.dumps(one))
            group["labels"]["service"] = f"s{n}"
            group["alerts"][0]["fingerprint"] = f"{n:016x}"
            groups.append(group)
        return json.dumps(groups).encode()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = self.body()
        self.bodies.append(len(body))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for start in range(0, len(body), 4096):
            await response.write(body[start : start + 4096])
            await asyncio.sleep(0)
        await response.write_eof()
        return response


async def test_a_large_answer_arriving_in_pieces_is_read_whole() -> None:
    """A real Alertmanager's answer runs to hundreds of KB and arrives in pieces: the client
    reads all of it (reading only what had arrived made every round fail as "not the API")."""
    async with Trickling() as server:
        client = AlertmanagerClient([server.base_url], timedelta(seconds=5))
        try:
            groups = await client.groups(server.base_url)
        finally:
            await client.close()
    assert server.bodies[0] > 100_000
    assert len(groups) == 300
    assert groups[-1].alerts[0].fingerprint == f"{299:016x}"
