"""The whole pipeline for real: an exporter of ours → Prometheus (the project's rules) →
Alertmanager (the shipped route) → the bridge → GitHub, Slack, email, SMS and the status page.

Nothing here is a captured payload: the bridge gets what real Prometheus 2.42 and real
Alertmanager 0.25 (Debian's binaries, on 127.0.0.1) make of a metric the test moves. The rules
are ``rules/prometheus/*.rules.yml`` with every ``for:`` shortened to seconds; the Alertmanager
config is ``deploy/alertmanager/alertmanager.yml`` with second-scale group timers and its
bridge receiver pointed at the bridge on loopback (bearer token from a file, as shipped).

Two real alerts of the rules are driven:

* ``ServiceUnavailable`` (``up == 0`` for 1m — 2s here; ``priority: P0``): the ``checkout``
  exporter answers 503, so Prometheus records ``up == 0`` for it.
* ``ActiveUsersWarning`` (``sum by (job) (active_users)`` in 5000-8000; ``priority: P2``): the
  ``shop`` exporter's ``active_users`` goes from 2000 to 6000.

Both return to normal to resolve. GitHub, Slack and Twilio are the fakes on loopback, email a
real SMTP server (aiosmtpd). The bridge runs on the system clock with its outbox, lanes and
scheduler running: in the test's process on SQLite, or as two ``incident-bridge serve``
processes on PostgreSQL. Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from e2e.conftest import Record
from e2e.exporter import Exporter
from e2e.monitoring import (
    ROOT,
    Alertmanager,
    Prometheus,
    alertmanager_config,
    fast_rules,
    free_port,
    samples,
    scrape,
)

from bridge.app import create_app
from bridge.config import Config
from fakes.github import FakeGitHub, FakeIssue
from fakes.slack import FakeSlack
from fakes.smtp import Mailbox, smtp_server
from fakes.twilio import FakeTwilio
from support import (
    REPO,
    REVIEW_LABEL,
    TOKEN,
    email_config,
    eventually,
    github_config,
    slack_config,
    sms_config,
    write_config,
)

pytestmark = pytest.mark.slow

WEBHOOK_TOKEN = "e2e-bridge-webhook-token-0123456789"
SLACK_TOKEN = "xoxb-e2e-slack-token"
CHANNEL = "#incidents"
SID = "AC" + "e2" * 16
TWILIO_TOKEN = "e2e-twilio-auth-token-0123456789"
ALICE, BOB = "alice@example.com", "bob@example.com"
ALICE_PHONE, CAROL_PHONE = "+15550001111", "+15550002222"
STAKEHOLDERS = (
    "stakeholders:\n"
    f"  - {{name: Alice Ops, email: {ALICE}, phone: '{ALICE_PHONE}'}}\n"
    f"  - {{name: Bob Lead, email: {BOB}}}\n"
    f"  - {{name: Carol Pager, phone: '{CAROL_PHONE}'}}\n"
)
P0_ALERT, P2_ALERT = "ServiceUnavailable", "ActiveUsersWarning"
P0_LABEL, P2_LABEL = "priority-critical", "priority-medium"  # rules/priorities.yaml
OUTCOMES = ("opened", "updated", "reopened", "unchanged", "resolved", "heartbeat")
WITHIN = 45.0  # seconds: the most any one step of the pipeline may take


# -- the monitoring stack ----------------------------------------------------------------------


@dataclass
class Stack:
    """The exporters, Prometheus and the Alertmanagers of one test."""

    checkout: Exporter  # its scrape failing is ServiceUnavailable (P0)
    shop: Exporter  # its active_users in the warning band is ActiveUsersWarning (P2)
    prometheus: Prometheus
    alertmanagers: list[Alertmanager]

    def break_things(self) -> float:
        """The checkout service goes down; the shop gets busy (warning band). When (time.time)."""
        self.checkout.failing = True
        self.shop.set("active_users", 6000)
        return time.time()

    def fix_things(self) -> float:
        """Both back to normal. When (time.time)."""
        self.checkout.failing = False
        self.shop.set("active_users", 2000)
        return time.time()

    async def sent(self) -> int:
        """Webhook notifications the Alertmanagers delivered (attempts minus failures)."""
        total = 0.0
        for am in self.alertmanagers:
            total += await am.notifications() - await am.failed()
        return int(total)


StartStack = Callable[[list[list[str]]], Awaitable[Stack]]


@pytest.fixture
async def monitoring(tmp_path: Path) -> AsyncIterator[StartStack]:
    """Start the stack: Alertmanager ``i`` sends every notification to each bridge webhook URL
    in ``hooks[i]``; one Prometheus sends its alerts to every Alertmanager. The processes are
    stopped at the end, whatever happened."""
    processes: list[Alertmanager | Prometheus] = []
    exporters: list[Exporter] = []

    async def start(hooks: list[list[str]]) -> Stack:
        checkout = Exporter(checkout_build_info=1)
        shop = Exporter(active_users=2000)
        for exporter in (checkout, shop):
            exporters.append(exporter)
            await exporter.start()
        managers = []
        for index, urls in enumerate(hooks):
            directory = tmp_path / f"alertmanager-{index}"
            am = Alertmanager(directory, alertmanager_config(directory, urls, WEBHOOK_TOKEN))
            processes.append(am)
            managers.append(am)
        prometheus = Prometheus(
            tmp_path / "prometheus",
            {
                "checkout": (checkout.target, {"service": "checkout"}),
                "shop": (shop.target, {"service": "shop"}),
            },
            fast_rules(tmp_path / "rules"),
            managers,
        )
        processes.append(prometheus)
        await asyncio.gather(*(process.start() for process in processes))
        await eventually(
            prometheus.ready_to_alert,
            "Prometheus scrapes both targets and knows every Alertmanager",
            WITHIN,
        )
        return Stack(checkout, shop, prometheus, managers)

    yield start
    for process in reversed(processes):
        await process.stop()
    for exporter in exporters:
        await exporter.close()


# -- the channels ------------------------------------------------------------------------------


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(token=TOKEN, repos=[REPO]) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=SLACK_TOKEN, channels=[CHANNEL]) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(account_sid=SID, auth_token=TWILIO_TOKEN) as fake:
        yield fake
    assert fake.internal_errors == []


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


# -- the bridge --------------------------------------------------------------------------------


class Bridge:
    """One bridge's HTTP side, however it runs: its webhook URL, API, status page, metrics."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.hook = f"{base}/api/v1/alerts"

    async def get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"{self.base}{path}") as response,
        ):
            assert response.status == 200, await response.text()
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()

    async def incidents(self) -> dict[str, dict[str, Any]]:
        """The incidents (``/api/v1/incidents``) by the alertname of their group."""
        rows: list[dict[str, Any]] = await self.get("/api/v1/incidents")
        return {row["group_labels"]["alertname"]: row for row in rows}

    async def outcomes(self) -> Counter[str]:
        """Notifications accepted, by what they did (``incident_bridge_notifications_total``)."""
        text = await scrape(f"{self.base}/metrics")
        return Counter(
            {
                o: int(samples(text, "incident_bridge_notifications_total", outcome=o))
                for o in OUTCOMES
            }
        )

    async def metric(self, name: str, **labels: str) -> float:
        return samples(await scrape(f"{self.base}/metrics"), name, **labels)


@contextlib.asynccontextmanager
async def in_process(config: Config) -> AsyncIterator[Bridge]:
    """The bridge in this process as ``serve`` runs it: ``create_app`` on the system clock with
    the outbox, the notification lanes and the scheduler running, on a free loopback port."""
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=3)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield Bridge(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


class Replica(Bridge):
    """``incident-bridge serve`` (this checkout's code) in a child process, its log in
    ``<name>.log``; ``env`` is added to its environment (``${VAR}`` in the config)."""

    def __init__(self, directory: Path, name: str, config_text: str, env: dict[str, str]) -> None:
        port = free_port()
        super().__init__(f"http://127.0.0.1:{port}")
        self.name = name
        self.env = env
        self.config = directory / f"{name}.yaml"
        self.config.write_text(f"listen: 127.0.0.1:{port}\n{config_text}")
        self.log = directory / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bridge", "serve", "--config", str(self.config)),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.config.parent,
                env={**os.environ, **self.env, "PYTHONPATH": path},
            )
        await eventually(self._ready, f"{self.name} is ready", WITHIN)

    async def _ready(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            await self.get("/readyz")
        except (aiohttp.ClientError, AssertionError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        """SIGTERM (serve drains and exits), SIGKILL after 10 s; idempotent."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


# -- what the fakes saw ------------------------------------------------------------------------


def incident_issues(github: FakeGitHub) -> list[FakeIssue]:
    return [i for i in github.issues(REPO) if not i.has_label(REVIEW_LABEL)]


def reviews(github: FakeGitHub) -> list[FakeIssue]:
    return [i for i in github.issues(REPO) if i.has_label(REVIEW_LABEL)]


class FirstSeen:
    """When each issue was first seen with a priority label, and first seen closed (time.time,
    polled every 0.1 s), for the latency figures."""

    def __init__(self, github: FakeGitHub) -> None:
        self.github = github
        self.opened: dict[str, float] = {}
        self.closed: dict[str, float] = {}

    def issues_open(self, *labels: str) -> bool:
        for issue in incident_issues(self.github):
            for label in issue.label_names:
                self.opened.setdefault(label, time.time())
        return set(labels) <= self.opened.keys()

    def issues_closed(self, *labels: str) -> bool:
        for issue in incident_issues(self.github):
            if issue.state == "closed":
                for label in issue.label_names:
                    self.closed.setdefault(label, time.time())
        return set(labels) <= self.closed.keys()


def issue_of(github: FakeGitHub, row: dict[str, Any]) -> FakeIssue:
    number = row["issue_number"]
    assert number is not None, row
    return github.issue(REPO, number)


def events(issue: FakeIssue, kind: str) -> int:
    """How many ``closed`` / ``reopened`` events the issue has."""
    return sum(1 for event in issue.events if event.event == kind)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def roots_resolved(slack: FakeSlack) -> bool:
    """Every root message in the channel shows the resolution (✅)."""
    return all(
        message.blocks is not None and message.blocks[0]["text"]["text"].startswith("✅")
        for message in slack.messages(CHANNEL)
    )


async def recorded(bridge: Bridge) -> dict[str, dict[str, Any]]:
    """The incidents, once the bridge has recorded every one's issue (the fake shows an issue
    a moment before the bridge has its answer)."""
    rows: dict[str, dict[str, Any]] = {}

    async def numbered() -> bool:
        nonlocal rows
        rows = await bridge.incidents()
        return all(row["issue_number"] is not None for row in rows.values())

    await eventually(numbered, "the bridge recorded its issues", WITHIN)
    return rows


async def at_least(outcomes: Awaitable[Counter[str]], outcome: str, count: int) -> bool:
    return (await outcomes)[outcome] >= count


async def total_outcomes(bridges: list[Replica]) -> Counter[str]:
    total: Counter[str] = Counter()
    for bridge in bridges:
        total.update(await bridge.outcomes())
    return total


# -- 1. one Alertmanager, the bridge in process ------------------------------------------------


async def test_real_alerts_open_one_issue_each_tell_people_and_close_on_recovery(
    tmp_path: Path,
    monitoring: StartStack,
    github: FakeGitHub,
    slack: FakeSlack,
    twilio: FakeTwilio,
    mailbox: Mailbox,
    figures: Record,
) -> None:
    """Prometheus evaluates the project's rules against our exporters and Alertmanager (the
    shipped route) delivers to the bridge. The checkout target going down is one P0 issue
    (``priority-critical``): Slack, email to every stakeholder with an address, SMS to every
    one with a phone. The shop's users in the warning band are one P2 issue
    (``priority-medium``): Slack and the status page only. Alertmanager's repeats change
    nothing (one issue each, no comment, no second message). Both show on the status page.
    Back to normal: each issue gets one resolution comment and is closed once, the P0
    stakeholders get the all-clear by email, the P0 a post-incident review, the status page
    says Monitoring — and every notification Alertmanager sent is accounted for."""
    directory = tmp_path / "bridge"
    directory.mkdir()
    config = write_config(
        directory,
        github_config(
            f"webhook:\n  bearer_token: {WEBHOOK_TOKEN}\n"
            + slack_config(slack.base_url, SLACK_TOKEN, CHANNEL)
            + email_config(mailbox.port)
            + sms_config(twilio.base_url, SID, TWILIO_TOKEN)
            + STAKEHOLDERS
        ),
        {"GITHUB_URL": github.base_url},
    )
    seen = FirstSeen(github)
    async with in_process(config) as bridge:
        stack = await monitoring([[bridge.hook]])
        [am] = stack.alertmanagers
        assert await stack.prometheus.rules_loaded() >= 20  # the project's rules, all of them
        # The Watchdog (vector(1)) through Prometheus and Alertmanager: the pipeline is up.
        await eventually(
            lambda: at_least(bridge.outcomes(), "heartbeat", 1),
            "the Watchdog heartbeat reached the bridge",
            WITHIN,
        )
        assert incident_issues(github) == []  # the heartbeat is never an incident

        broken = stack.break_things()
        await eventually(
            lambda: seen.issues_open(P0_LABEL, P2_LABEL), "both incident issues exist", WITHIN
        )
        rows = await recorded(bridge)
        assert set(rows) == {P0_ALERT, P2_ALERT}
        p0, p2 = rows[P0_ALERT], rows[P2_ALERT]
        assert (p0["priority"], p0["priority_rule"]) == ("P0", "label priority=P0")
        assert p2["priority"] == "P2"
        p0_issue, p2_issue = issue_of(github, p0), issue_of(github, p2)
        assert P0_LABEL in p0_issue.label_names
        assert P2_LABEL in p2_issue.label_names
        assert p0_issue.title.startswith(f"[{p0['id']}] ")
        [p0_alert] = await am.alerts(P0_ALERT)  # startsAt: when Prometheus found it firing

        # What the P0 calls for (rules/priorities.yaml: email + SMS), and Slack for both.
        await eventually(
            lambda: len(mailbox.received) == 2 and len(twilio.messages) == 2,
            "the P0's emails and texts arrived",
            WITHIN,
        )
        await eventually(
            lambda: len(slack.messages(CHANNEL)) == 2, "both Slack root messages", WITHIN
        )

        # Alertmanager repeats every group (repeat_interval 2s): twice each, at least.
        await eventually(
            lambda: at_least(bridge.outcomes(), "unchanged", 4),
            "Alertmanager's repeats reached the bridge",
            WITHIN,
        )
        assert len(incident_issues(github)) == 2
        assert [len(i.comments) for i in (p0_issue, p2_issue)] == [0, 0]
        assert sorted(rcpt for rcpt, _ in mailbox.received) == [ALICE, BOB]
        for _, message in mailbox.received:
            assert str(message["Subject"]).startswith(f"[P0][{p0['id']}] ")
        assert sorted(sms.to for sms in twilio.messages) == [ALICE_PHONE, CAROL_PHONE]
        for sms in twilio.messages:
            assert sms.body.startswith(f"{p0['id']} P0 ")
        assert len(slack.calls("chat.postMessage")) == 2  # the two roots, nothing more
        assert await bridge.metric("incident_bridge_outbox_pending") == 0

        page = await bridge.get("/status.json")
        listed = {item["id"]: item for item in page["incidents"]}
        assert set(listed) == {p0["id"], p2["id"]}
        assert [listed[i]["status"] for i in (p0["id"], p2["id"])] == ["Investigating"] * 2
        assert (listed[p0["id"]]["service"], listed[p0["id"]]["impact"]) == ("checkout", "major")
        assert listed[p2["id"]]["impact"] == "minor"
        # `sum by (job)` drops the series' service label; the rule names the job instead, so the
        # shop's busy hour is the shop's (it was the alertname before the rules said so).
        assert listed[p2["id"]]["service"] == "shop"
        assert page["status"] == "Major outage"
        assert "Major outage" in await bridge.get("/status")

        fixed = stack.fix_things()
        await eventually(
            lambda: seen.issues_closed(P0_LABEL, P2_LABEL), "both issues are closed", WITHIN
        )
        await eventually(
            lambda: len(mailbox.received) == 4 and len(reviews(github)) == 1,
            "the P0's all-clear emails and its post-incident review",
            WITHIN,
        )
        await eventually(lambda: roots_resolved(slack), "Slack's roots show ✅", WITHIN)
        rows = await bridge.incidents()
        assert [rows[a]["state"] for a in (P0_ALERT, P2_ALERT)] == ["resolved", "resolved"]
        for issue in (p0_issue, p2_issue):
            [comment] = issue.comments  # the resolution's, once
            assert "<!-- incident-bridge:event=" in comment.body
            assert (events(issue, "closed"), events(issue, "reopened")) == (1, 0)
        assert len(incident_issues(github)) == 2
        assert len(twilio.messages) == 2  # nobody is texted a resolution
        assert sorted(rcpt for rcpt, _ in mailbox.received) == [ALICE, ALICE, BOB, BOB]
        [review] = reviews(github)
        assert review.title.startswith(f"[PIR] {p0['id']} ")
        page = await bridge.get("/status.json")
        assert {item["id"]: item["status"] for item in page["incidents"]} == {
            p0["id"]: "Monitoring",
            p2["id"]: "Monitoring",
        }

        # Every notification Alertmanager delivered reached the bridge and did one thing.
        outcomes = await bridge.outcomes()
        sent, failed = await stack.sent(), int(await am.failed())
        assert sent == sum(outcomes.values())
        assert (outcomes["opened"], outcomes["resolved"], outcomes["reopened"]) == (2, 2, 0)

    figures(
        {
            "alertmanager_notifications": sent,
            "alertmanager_failed": failed,
            **{f"bridge_{o}": outcomes[o] for o in ("opened", "unchanged", "resolved")},
            "bridge_heartbeats": outcomes["heartbeat"],
            "incident_issues": len(incident_issues(github)),
            "duplicate_issues": len(incident_issues(github)) - 2,
            "duplicate_comments": sum(len(i.comments) for i in (p0_issue, p2_issue)) - 2,
            "reviews": len(reviews(github)),
            "slack_posts": len(slack.calls("chat.postMessage")),
            "emails": len(mailbox.received),
            "sms": len(twilio.messages),
            "p0_metric_to_issue_s": round(seen.opened[P0_LABEL] - broken, 1),
            "p2_metric_to_issue_s": round(seen.opened[P2_LABEL] - broken, 1),
            "p0_firing_to_opened_s": round(
                (parse_time(p0["opened_at"]) - parse_time(p0_alert["startsAt"])).total_seconds(),
                2,
            ),
            "p0_metric_to_closed_s": round(seen.closed[P0_LABEL] - fixed, 1),
            "p2_metric_to_closed_s": round(seen.closed[P2_LABEL] - fixed, 1),
        }
    )


# -- 2. two unclustered Alertmanagers, two replicas on PostgreSQL ------------------------------


async def test_two_unclustered_alertmanagers_and_two_replicas_make_one_issue_per_group(
    tmp_path: Path,
    monitoring: StartStack,
    github: FakeGitHub,
    slack: FakeSlack,
    postgres_db: str,
    figures: Record,
) -> None:
    """Two Alertmanagers that do not know each other (no cluster: both really deliver), both
    fed by the same Prometheus, each sending every notification to both bridge replicas
    (``incident-bridge serve`` processes on one PostgreSQL database): every notification
    arrives four times, and the repeats on top. Still exactly one issue per alert group and
    one Slack root each; both replicas take duplicates. Back to normal: each issue gets one
    resolution comment and is closed once, never reopened, and the P0 one review."""
    directory = tmp_path / "replicas"
    directory.mkdir()
    config_text = github_config(
        f"webhook:\n  bearer_token: {WEBHOOK_TOKEN}\n"
        + slack_config(slack.base_url, SLACK_TOKEN, CHANNEL),
        store_url=postgres_db,
    )
    env = {"GITHUB_URL": github.base_url}
    replicas = [Replica(directory, f"replica-{n}", config_text, env) for n in range(2)]
    seen = FirstSeen(github)
    try:
        for replica in replicas:  # one at a time: the first migrates the schema
            await replica.start()
        hooks = [replica.hook for replica in replicas]
        stack = await monitoring([hooks, hooks])

        # Each Alertmanager's Watchdog notification reaches each replica.
        async def heartbeats() -> bool:
            return all([(await r.outcomes())["heartbeat"] >= 2 for r in replicas])

        await eventually(heartbeats, "both Alertmanagers' Watchdog reached both replicas", WITHIN)

        broken = stack.break_things()
        await eventually(
            lambda: seen.issues_open(P0_LABEL, P2_LABEL), "both incident issues exist", WITHIN
        )
        # Four deliveries of each first notification, then each Alertmanager's repeats.
        await eventually(
            lambda: at_least(total_outcomes(replicas), "unchanged", 12),
            "the duplicates and repeats reached the replicas",
            WITHIN,
        )
        await eventually(
            lambda: len(slack.messages(CHANNEL)) == 2, "both Slack root messages", WITHIN
        )
        rows = await recorded(replicas[0])
        assert set(rows) == {P0_ALERT, P2_ALERT}
        assert [rows[a]["priority"] for a in (P0_ALERT, P2_ALERT)] == ["P0", "P2"]
        p0_issue, p2_issue = issue_of(github, rows[P0_ALERT]), issue_of(github, rows[P2_ALERT])
        assert len(incident_issues(github)) == 2
        assert [len(i.comments) for i in (p0_issue, p2_issue)] == [0, 0]
        assert len(slack.calls("chat.postMessage")) == 2
        for replica in replicas:  # both took duplicates, not one replica everything
            assert (await replica.outcomes())["unchanged"] >= 2

        fixed = stack.fix_things()
        await eventually(
            lambda: seen.issues_closed(P0_LABEL, P2_LABEL), "both issues are closed", WITHIN
        )
        await eventually(lambda: len(reviews(github)) == 1, "the P0's review", WITHIN)
        await eventually(lambda: roots_resolved(slack), "Slack's roots show ✅", WITHIN)

        # Every delivery has been answered: what the Alertmanagers sent, the replicas took.
        async def all_answered() -> bool:
            return await stack.sent() == sum((await total_outcomes(replicas)).values())

        await eventually(all_answered, "every delivery reached a replica", WITHIN)
        for issue in (p0_issue, p2_issue):
            [comment] = issue.comments
            assert "<!-- incident-bridge:event=" in comment.body
            assert (issue.state, events(issue, "closed"), events(issue, "reopened")) == (
                "closed",
                1,
                0,
            )
        assert len(incident_issues(github)) == 2
        rows = await replicas[1].incidents()
        assert [rows[a]["state"] for a in (P0_ALERT, P2_ALERT)] == ["resolved", "resolved"]
        per_replica = [await replica.outcomes() for replica in replicas]
        outcomes = sum(per_replica, Counter[str]())
        assert (outcomes["opened"], outcomes["resolved"], outcomes["reopened"]) == (2, 2, 0)
        per_am = [int(await am.notifications()) for am in stack.alertmanagers]
        failed = sum([int(await am.failed()) for am in stack.alertmanagers])
    finally:
        for replica in replicas:
            await replica.stop()

    figures(
        {
            "alertmanager_notifications": "+".join(map(str, per_am)),
            "alertmanager_failed": failed,
            "deliveries_per_replica": "+".join(
                str(sum(c.values()) - c["heartbeat"]) for c in per_replica
            ),
            **{f"bridge_{o}": outcomes[o] for o in ("opened", "unchanged", "resolved")},
            "incident_issues": len(incident_issues(github)),
            "duplicate_issues": len(incident_issues(github)) - 2,
            "resolution_comments": sum(len(i.comments) for i in (p0_issue, p2_issue)),
            "closes": sum(events(i, "closed") for i in (p0_issue, p2_issue)),
            "reviews": len(reviews(github)),
            "slack_roots": len(slack.messages(CHANNEL)),
            "p0_metric_to_issue_s": round(seen.opened[P0_LABEL] - broken, 1),
            "p2_metric_to_issue_s": round(seen.opened[P2_LABEL] - broken, 1),
            "p0_metric_to_closed_s": round(seen.closed[P0_LABEL] - fixed, 1),
            "p2_metric_to_closed_s": round(seen.closed[P2_LABEL] - fixed, 1),
        }
    )
