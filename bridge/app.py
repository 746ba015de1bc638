"""The one place where the bridge is wired: ``create_app(config)``.

Resources live in ``cleanup_ctx`` in dependency order: the store, then GitHub and the outbox
worker, the notification lanes, retention and the scheduler. Shutdown runs them backwards: the
scheduler fires no more timers, the worker finishes the effect in hand and claims no more, then
the store closes. ``/readyz`` turns 503 before any of that (see ``cli.serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import github
import structlog
from aiohttp import web

from bridge import classify, deadlines, review, sla
from bridge.acknowledge import priority_labels
from bridge.alertmanager_api import AlertmanagerClient
from bridge.clock import Clock, system_clock
from bridge.config import Config
from bridge.engine import Policy, settle_flapping
from bridge.flapping import FlapPolicy
from bridge.github import render
from bridge.github.budget import Budget
from bridge.github.client import (
    DryRunTracker,
    GitHubAppAuth,
    GitHubError,
    IssueTracker,
    LabelSpec,
    PyGithubTracker,
)
from bridge.github.observe import IssueObserver
from bridge.github.poller import Poller
from bridge.github.sync import GitHubSync
from bridge.heartbeat import Heartbeat
from bridge.ingest import Ingestor
from bridge.metrics import Metrics
from bridge.model import Classification, Incident, Priority
from bridge.notify.base import Notifier
from bridge.notify.email import EmailNotifier
from bridge.notify.fallback import Contacts, fallback_for
from bridge.notify.policy import Audience, Recipient, notifications
from bridge.notify.runner import NotifyRunner, Throttle
from bridge.notify.slack import SlackNotifier
from bridge.notify.sms import SmsNotifier
from bridge.outbox import Gate, Outbox
from bridge.reconcile import Reconciler
from bridge.reminders import ReviewReminders
from bridge.retention import Retention
from bridge.rules import Rules
from bridge.scheduler import Scheduler, Tick, TimerStep
from bridge.store.base import Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.web import alerts, github_events, health, incidents, status
from bridge.web.services import SERVICES, Services

log = structlog.get_logger(__name__)


class StartupError(Exception):
    """The configuration cannot be served (the message names the key)."""


TRACKER = web.AppKey("tracker", IssueTracker)
RETENTION = web.AppKey("retention", Retention)
NOTIFY_LANES = web.AppKey("notify_lanes", list[Outbox])
OUTBOX = web.AppKey("outbox", Outbox)
# The timer loop; tests with ``run_outbox=False`` fire due timers with ``run_once()``.
SCHEDULER = web.AppKey("scheduler", Scheduler)
# Reconciliation with Alertmanager, set when ``alertmanager`` is configured; tests with
# ``run_outbox=False`` run its rounds with ``run_once()``.
RECONCILER = web.AppKey("reconciler", Reconciler)

# Polling GitHub without a webhook secret; tests with ``run_outbox=False`` run its rounds with
# ``run_once()``.
POLLER = web.AppKey("poller", Poller)

_SHUTDOWN_DRAIN_SECONDS = 7.0
_POLL_STOP_SECONDS = 1.0


class _Drain:
    """Shutdown's one deadline. Every worker is told to stop at once when shutdown begins
    (aiohttp's ``on_shutdown``, before it waits for in-flight requests), and each cleanup then
    waits for its own worker only until the shared deadline: the drains overlap instead of
    adding up, so a slow GitHub and a slow Slack still leave the process inside Kubernetes'
    grace period (CONTRACT.md: exit within 10 s)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline: float | None = None
        self.stops: list[Callable[[], None]] = []
        """What ``begin`` calls: each worker's ``stop`` (finish the work in hand, take no more)."""

    async def begin(self, _app: web.Application) -> None:
        self._deadline = asyncio.get_running_loop().time() + self._seconds
        for stop in self.stops:
            stop()

    def left(self) -> float:
        """Seconds until the deadline (the whole drain if shutdown has not begun: a cleanup
        after a failed start)."""
        if self._deadline is None:
            return self._seconds
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def wait(self, task: asyncio.Task[None], timed_out: str) -> None:
        """Wait for ``task`` until the deadline; past it, cancel it and log ``timed_out``."""
        try:
            await asyncio.wait_for(task, self.left())
        except TimeoutError:
            log.warning(timed_out)


def load_rules(config: Config) -> Rules:
    """The operator's rules directory when configured, else the bundled rules."""
    return Rules.load(config.rules_dir) if config.rules_dir else Rules.bundled()


def build_policy(config: Config, rules: Rules) -> Policy:
    """The engine's view of configuration and rules: plain values and pure functions."""
    hours = config.business_hours.calendar()

    def classify_alert(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
        return classify.classify(rules, labels, annotations)

    def respond_by(priority: Priority, start: datetime) -> datetime:
        return deadlines.respond_by(rules.policy(priority), start, hours)

    def resolve_by(priority: Priority, start: datetime) -> datetime:
        return deadlines.resolve_by(rules.policy(priority), start, hours)

    return Policy(
        classify=classify_alert,
        respond_by=respond_by,
        resolve_by=resolve_by,
        reopen_window=config.github.reopen_window,
        heartbeat_alertname=config.heartbeat.alertname,
        flapping=FlapPolicy(max_flips=config.flapping.max_flips, window=config.flapping.window),
    )


def timer_steps(config: Config, rules: Rules) -> list[TimerStep]:
    """The timer steps the scheduler applies, in order, to each incident whose ``due_at`` has
    come (``bridge.scheduler.chain`` merges their decisions into one transaction)."""
    steps: list[TimerStep] = [sla.timer(build_sla_policy(config, rules))]
    steps.append(settle_flapping)  # a flapping incident quiet for the flap window closes
    return steps


def build_sla_policy(config: Config, rules: Rules) -> sla.SlaPolicy:
    """The SLA step's view: each priority's paging rule, business hours, and who the
    ``escalation`` contacts can be paged on (for the breach comment's "paging …")."""
    hours = config.business_hours.calendar()
    return sla.SlaPolicy(
        escalation={
            p: sla.Escalation(
                page=rules.policy(p).page,
                every=rules.policy(p).escalation_interval,
                rounds=rules.policy(p).escalate_max,
            )
            for p in Priority
        },
        in_business_hours=hours.is_open,
        contacts=tuple(
            sla.Contact(
                name=person.name,
                email=config.email is not None and person.email is not None,
                sms=config.sms is not None and person.phone is not None,
            )
            for person in config.escalation
        ),
    )


def build_render_options(config: Config, rules: Rules) -> render.RenderOptions:
    styles = {
        p: render.PriorityStyle(label=rules.policy(p).label, name=rules.policy(p).name)
        for p in Priority
    }

    def runbook(incident: Incident) -> render.Runbook | None:
        alerts = incident.firing_alerts() or list(incident.alerts.values())
        for alert in sorted(alerts, key=lambda a: a.priority.rank):
            found = classify.runbook_for(rules, alert.labels, alert.annotations)
            if found is not None:
                return render.Runbook(title=found.title, markdown=found.markdown)
        return None

    return render.RenderOptions(
        styles=styles,
        close_on_resolve=config.github.close_on_resolve,
        extra_labels=tuple(config.github.labels),
        runbook=runbook,
        traceability={
            service: render.Trace(
                requirement=trace.requirement,
                component=trace.component,
                implementation=trace.implementation,
                tests=trace.tests,
            )
            for service, trace in config.traceability.items()
        },
    )


def label_specs(config: Config, rules: Rules) -> list[LabelSpec]:
    """Every label the bridge may put on an issue, created at start-up when missing."""
    specs = [
        LabelSpec("incident-bridge", "5319e7", "Managed by incident-bridge"),
        LabelSpec("incident", "b60205", "An incident"),
        LabelSpec("maintenance-corrective", "d93f0b", "Corrective maintenance: fix defects"),
        LabelSpec("maintenance-perfective", "0e8a16", "Perfective maintenance: improve"),
        LabelSpec("maintenance-adaptive", "1d76db", "Adaptive maintenance: environment changes"),
        LabelSpec("maintenance-preventive", "fbca04", "Preventive maintenance: scheduled"),
        LabelSpec("resolved", "0e8a16", "Every alert resolved"),
        LabelSpec("acknowledged", "1d76db", "Someone is on it"),
        LabelSpec("identified", "0052cc", "The cause is identified (status page: Identified)"),
        LabelSpec("sla-breached", "b60205", "A response or resolution deadline was missed"),
        LabelSpec("flapping", "c5def5", "Fires and resolves repeatedly: notifications damped"),
        LabelSpec(
            "storm", "5319e7", "Alert storm roll-up: groups listed while the budget is spent"
        ),
        LabelSpec(review.LABEL, "5319e7", "Post-incident review of a P0/P1 incident"),
    ]
    colors = {
        Priority.P0: "b60205",
        Priority.P1: "d93f0b",
        Priority.P2: "fbca04",
        Priority.P3: "c2e0c6",
    }
    for priority in Priority:
        policy = rules.policy(priority)
        specs.append(
            LabelSpec(policy.label, colors[priority], f"{priority}: {policy.meaning}"[:100])
        )
    specs += [LabelSpec(name, "ededed", "incident-bridge label") for name in config.github.labels]
    return specs


def make_tracker(config: Config, metrics: Metrics, clock: Clock) -> IssueTracker:
    gh = config.github
    if gh.dry_run or gh.repository is None:
        return DryRunTracker()
    auth: github.Auth.Auth
    if gh.token is not None:
        auth = github.Auth.Token(gh.token.get())
    else:
        # The config's cross-field check guarantees all three when no token is set.
        assert gh.app_id is not None
        assert gh.installation_id is not None
        assert gh.private_key is not None
        auth = GitHubAppAuth(
            app_id=gh.app_id,
            installation_id=gh.installation_id,
            private_key=gh.private_key.get(),
            clock=clock,
        )
    return PyGithubTracker(
        api_url=gh.api_url,
        repository=gh.repository,
        auth=auth,
        timeout=gh.timeout.total_seconds(),
        metrics=metrics,
        clock=clock,
    )


def make_store(config: Config, clock: Clock) -> Store:
    if config.store.is_postgres:
        return PostgresStore(config.store.url, clock=clock)
    path = config.store.sqlite_path
    if path is None:  # the config accepts no other kind of URL
        raise StartupError("store.url: neither sqlite:/// nor postgresql://")
    return SqliteStore(Path(path), clock=clock)


async def _ensure_labels(
    tracker: IssueTracker, specs: list[LabelSpec], done: asyncio.Event
) -> None:
    """Create missing labels; GitHub being down at start-up must not stop the bridge."""
    delay = 1.0
    while True:
        try:
            await tracker.ensure_labels(specs)
            done.set()
            return
        except GitHubError as error:
            log.warning("github_labels_not_ensured", error=str(error), retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 300.0)


def build_audience(config: Config, rules: Rules) -> Audience:
    """Who is told what: the configured channels, the stakeholders, and per priority the
    stakeholder channels of ``rules/priorities.yaml``."""
    return Audience(
        slack=config.slack is not None,
        email=config.email is not None,
        sms=config.sms is not None,
        stakeholders=tuple(
            Recipient(name=p.name, email=p.email, phone=p.phone) for p in config.stakeholders
        ),
        channels={p: frozenset(rules.policy(p).stakeholders) for p in Priority},
        escalation=tuple(Recipient(p.name, p.email, p.phone) for p in config.escalation),
        respond_by=build_policy(config, rules).respond_by,  # a message's deadline
    )


def build_notifiers(config: Config) -> list[Notifier]:
    """One adapter per configured channel."""
    notifiers: list[Notifier] = []
    if config.email is not None:
        notifiers.append(EmailNotifier(config.email))
    if config.slack is not None:
        notifiers.append(SlackNotifier(config.slack))
    if config.sms is not None:
        notifiers.append(SmsNotifier(config.sms.twilio))
    return notifiers


def throttle_of(config: Config, channel: str) -> Throttle | None:
    """The channel's storm control (``email.throttle``, ``sms.throttle``); Slack has none: one
    thread per incident already bounds it."""
    section = config.email if channel == "email" else config.sms if channel == "sms" else None
    if section is None:
        return None
    return Throttle(limit=section.throttle.max, per=section.throttle.per)


def _writer_gate(store: Store, clock: Clock, lease: timedelta) -> Gate:
    """The GitHub writer lease for this process: one replica at a time runs effects, so one
    request at a time goes out per token and the shared budget is spent by one hand."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    renewed: datetime | None = None  # when this process last took or renewed the lease

    async def gate(release: bool) -> bool:
        nonlocal renewed
        now = clock()
        if not release and renewed is not None and now - renewed < lease / 4:
            return True  # held, with at least three quarters of it left: no store write
        held = await store.hold_lease(
            "github-writer", holder, now, timedelta(0) if release else lease
        )
        renewed = now if held and not release else None
        return held

    return gate


def _reconcile_ctx(
    reconciler: Reconciler, run: bool, drain: _Drain
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Rounds against Alertmanager while serving; stopped before the store closes."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(reconciler.run_forever()) if run else None
        yield
        reconciler.stop()
        if task is not None:
            await drain.wait(task, "reconcile_stop_timeout")
        await reconciler.close()

    return ctx


def _github_events_ctx(
    observer: IssueObserver, poller: Poller | None, *, learn: bool, run: bool
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The bridge's own GitHub login learnt in the background (GitHub being down must not hold
    start-up up); without a webhook secret, the poller. Stopped before the outbox hands the
    writer lease over and before the store closes."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        learning = asyncio.create_task(observer.learn_forever()) if learn else None
        polling = asyncio.create_task(poller.run_forever()) if poller and run else None
        yield
        if learning is not None:
            learning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await learning
        if poller is not None:
            poller.stop()
        if polling is not None:
            # Polling only reads (a step it applies is one transaction, done or not): it is
            # not waited for beyond a moment, so the outbox keeps the shutdown's time.
            try:
                await asyncio.wait_for(polling, _POLL_STOP_SECONDS)
            except TimeoutError:
                log.info("github_poll_cancelled")

    return ctx


def create_app(
    config: Config,
    *,
    clock: Clock = system_clock,
    tracker: IssueTracker | None = None,
    rules: Rules | None = None,
    run_outbox: bool = True,
) -> web.Application:
    """The aiohttp application. ``tracker`` replaces GitHub (tests); ``run_outbox=False`` leaves
    effects and retention for the caller to drive (tests with a fake clock)."""
    rules = rules or load_rules(config)
    metrics = Metrics()
    store = make_store(config, clock)
    policy = build_policy(config, rules)
    app = web.Application(client_max_size=config.webhook.max_body_bytes + 1024)
    the_tracker = tracker or make_tracker(config, metrics, clock)
    budget = None
    if not config.github.dry_run:
        budget = Budget(
            store,
            clock,
            metrics,
            per_minute=config.github.budget.per_minute,
            per_hour=config.github.budget.per_hour,
            reserve=config.github.budget.reserve,
        )
    sync = GitHubSync(store, the_tracker, build_render_options(config, rules), clock, budget)
    writer = _writer_gate(store, clock, config.store.lease)
    outbox = Outbox(store, sync.run, clock, metrics, lease=config.store.lease, gate=writer)
    repository = "" if config.github.dry_run else the_tracker.repository
    # One lane per notification channel: a channel that is down delays only itself.
    notifiers = build_notifiers(config)
    audience = build_audience(config, rules)
    contacts = Contacts(
        email=config.email is not None,
        sms=config.sms is not None,
        stakeholders=audience.stakeholders,
        escalation=audience.escalation,
    )
    lanes = [
        Outbox(
            store,
            NotifyRunner(
                store,
                notifier,
                repository,
                clock=clock,
                throttle=throttle_of(config, notifier.channel),
                priority_names={p: rules.policy(p).name for p in Priority},
            ).run,
            clock,
            metrics,
            lease=config.store.lease,
            lane=notifier.channel,
            fallback=lambda effect: fallback_for(effect.kind, effect.payload, contacts),
        )
        for notifier in notifiers
    ]

    def wake_all() -> None:
        for worker in (outbox, *lanes):
            worker.wake()

    ingestor = Ingestor(
        store,
        policy,
        config.identity,
        clock,
        metrics,
        on_effects=wake_all,
        # A change that set a timer earlier than the scheduler's next look wakes it.
        on_timer=lambda due: scheduler.wake_for(due),
        notify=lambda decision: notifications(decision, audience),
        heartbeat_timeout=config.heartbeat.timeout,
        on_heartbeat=lambda: scheduler.wake(),  # a pipeline-down incident resolves at once
    )
    services = app[SERVICES] = Services(
        config=config,
        clock=clock,
        metrics=metrics,
        store=store,
        ingestor=ingestor,
        repository=repository,
    )
    # Periodic checks that belong to no incident (the heartbeat's dead man's switch).
    heartbeat = Heartbeat(
        store,
        ingestor,
        policy,
        config.heartbeat.alertname,
        config.heartbeat.timeout,
        metrics,
        clock,
    )
    # A post-incident review still open 48 h after its incident resolved: one reminder.
    ticks: list[Tick] = [heartbeat.check, ReviewReminders(store, wake_all).check]
    scheduler = app[SCHEDULER] = Scheduler(
        store, ingestor, clock, timer_steps(config, rules), ticks, metrics=metrics
    )
    reconciler: Reconciler | None = None
    if config.alertmanager is not None:
        peers = config.alertmanager
        reconciler = app[RECONCILER] = Reconciler(
            AlertmanagerClient(peers.urls, peers.timeout),
            store,
            ingestor,
            clock,
            metrics,
            group_wait=peers.group_wait,
            interval=peers.interval,
            identity_mode=config.identity,
            heartbeat_alertname=config.heartbeat.alertname,
            flapping=policy.flapping,
            is_writer=lambda: outbox.is_writer,  # one replica asks the peers
            receivers=peers.receivers,
        )
    # People's doings on GitHub: the webhook when a secret is configured, else polling.
    observer = app[github_events.GITHUB_EVENTS] = IssueObserver(
        store,
        ingestor,
        the_tracker,
        repository=repository,
        policy=policy,
        priorities=priority_labels({p: rules.policy(p).label for p in Priority}),
    )
    poller: Poller | None = None
    if not config.github.dry_run and config.github.webhook_secret is None:
        poller = app[POLLER] = Poller(
            store,
            the_tracker,
            observer,
            clock,
            metrics,
            urgent=config.github.poll.urgent,
            other=config.github.poll.other,
            reopen_window=config.github.reopen_window,
            gate=writer,  # only the GitHub writer polls: one request at a time per token
        )
    app[TRACKER] = the_tracker
    app[OUTBOX] = outbox
    app[NOTIFY_LANES] = lanes
    if config.store.is_postgres:
        services.exports_shared_gauges = lambda: outbox.is_writer
    retention = app[RETENTION] = Retention(store, clock, metrics, config.store.retention)

    drain = _Drain(_SHUTDOWN_DRAIN_SECONDS)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        log.info("store_opened", store=config.store.display)
        yield
        await store.close()

    async def github_ctx(app: web.Application) -> AsyncIterator[None]:
        labels = asyncio.create_task(
            _ensure_labels(the_tracker, label_specs(config, rules), services.labels_ready)
        )
        worker = asyncio.create_task(outbox.run_forever()) if run_outbox else None
        yield
        labels.cancel()
        outbox.stop()
        if worker is not None:
            await drain.wait(worker, "outbox_drain_timeout")
        await outbox.release()
        with contextlib.suppress(asyncio.CancelledError):
            await labels
        close = getattr(the_tracker, "close", None)
        if close is not None:
            await close()

    async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
        workers = [asyncio.create_task(lane.run_forever()) for lane in lanes] if run_outbox else []
        yield
        for lane in lanes:
            lane.stop()
        if workers:
            _done, pending = await asyncio.wait(workers, timeout=drain.left())
            for worker in pending:
                worker.cancel()
        for notifier in notifiers:
            await notifier.close()

    async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(retention.run_forever()) if run_outbox else None
        yield
        retention.stop()
        if task is not None:
            await drain.wait(task, "retention_stop_timeout")

    async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(scheduler.run_forever()) if run_outbox else None
        yield
        scheduler.stop()  # before the store closes: no timer fires into a closed store
        if task is not None:
            await drain.wait(task, "scheduler_stop_timeout")

    # Shutdown stops every worker at once; each cleanup below waits only until one deadline.
    drain.stops += [outbox.stop, *(lane.stop for lane in lanes), retention.stop, scheduler.stop]
    if reconciler is not None:
        drain.stops.append(reconciler.stop)
    if poller is not None:
        drain.stops.append(poller.stop)
    app.on_shutdown.append(drain.begin)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(github_ctx)
    app.cleanup_ctx.append(notify_ctx)
    app.cleanup_ctx.append(retention_ctx)
    app.cleanup_ctx.append(scheduler_ctx)
    if reconciler is not None:
        app.cleanup_ctx.append(_reconcile_ctx(reconciler, run_outbox, drain))
    app.cleanup_ctx.append(
        _github_events_ctx(
            observer,
            poller,
            learn=config.github.webhook_secret is not None,
            run=run_outbox,
        )
    )
    app.router.add_post("/api/v1/alerts", alerts.receive_alerts)
    app.router.add_post("/api/v1/github/events", github_events.receive_github_event)
    app.router.add_get("/api/v1/incidents", incidents.list_incidents)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/status", status.status_html)
    app.router.add_get("/status.json", status.status_json)
    return app
