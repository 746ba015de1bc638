"""Every metric the bridge exports, created up front on its own registry.

Label values that are known in advance are created at start-up so that dashboards and alerts see
zeros instead of absent series.
"""

from __future__ import annotations

from typing import Generic, TypeVar, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from bridge.engine import NotificationOutcome
from bridge.model import EffectKind, Priority

WEBHOOK_CODES = ("200", "400", "401", "413", "415", "503")
# Every GitHub operation with the statuses it answers when it works (a POST 201, a conditional
# read 304 too); each also has "error" (no answer), and those behind the rate-limit window
# "deferred" (not sent). Other statuses (4xx, 5xx) appear when they happen.
GITHUB_OPERATIONS: dict[str, tuple[str, ...]] = {
    "create_issue": ("201", "error", "deferred"),
    "edit_issue": ("200", "error", "deferred"),
    "get_issue": ("200", "304", "error", "deferred"),
    "add_label": ("201", "error", "deferred"),
    "remove_label": ("200", "error", "deferred"),
    "create_comment": ("201", "error", "deferred"),
    "list_labels": ("200", "error", "deferred"),
    "create_label": ("201", "error", "deferred"),
    "get_user": ("200", "error", "deferred"),
    "list_issues": ("200", "error", "deferred"),
    "list_comments": ("200", "error", "deferred"),
    "list_events": ("200", "error", "deferred"),
    "list_open_incidents": ("200", "304", "error", "deferred"),
    "get_app": ("200", "error"),  # the App's own JWT: not the token's window
    "mint_token": ("201", "error"),
}
# POST /api/v1/github/events (bridge/web/github_events.py): the deliveries by event and result.
GITHUB_EVENT_KINDS = ("issues", "issue_comment", "ping", "other")
GITHUB_EVENT_RESULTS = (
    "applied",  # changed an incident (acknowledged, closed, reopened, reported, identified)
    "unchanged",  # about an incident, but nothing to change (already acknowledged, …)
    "ignored",  # an action, issue or event the bridge does not act on
    "not_incident",  # about an issue that is no incident's
    "own_account",  # caused by the bridge's own account
    "bot",  # caused by a bot (a [bot] login or type Bot): no person's doing
    "duplicate",  # an X-GitHub-Delivery seen before
    "bad_signature",  # 401
    "malformed",  # 400
    "unavailable",  # 503: the store (or GitHub, to learn the bridge's login) did not answer
)
# The poller (bridge/github/poller.py), without a webhook secret: one result per request round.
GITHUB_POLL_RESULTS = ("unchanged", "changed", "error")
EFFECT_RESULTS = ("done", "retry", "failed")
RECONCILE_RESULTS = ("ok", "partial", "failed")
RECONCILE_ACTIONS = ("resolved", "silenced", "unsilenced", "opened")
# A message told instead on its person's next channel (bridge/notify/fallback.py): its own one
# failed for good, or was still failing at the response deadline.
NOTIFY_CHANNELS = ("slack", "email", "sms")
FALLBACK_REASONS = ("failed", "late")
SLA_KINDS = ("response", "resolution")
INGEST_OUTCOMES: tuple[str, ...] = get_args(NotificationOutcome)
# MTTD / MTTA / MTTR (bridge/measures.py): buckets around the operations guide's targets —
# 1 and 5 min (detect, P0 respond), 15 min (P1 respond), 1 h (P0 resolve), 4 h (P1), 24 h (P2).
IMPROVEMENT_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
# incident_bridge_incident_seconds_total{service}: services come from alert labels, so the
# distinct values one process exports are capped; later ones are counted as OTHER_SERVICE.
SERVICE_SERIES_LIMIT = 200
OTHER_SERVICE = "other"


M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A labelled metric's children by label values, each looked up once: ``labels()`` takes a
    lock and checks its arguments every time, a few µs that the webhook's path pays several
    times per request. For the event loop's own use (no lock)."""

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class Metrics:
    """The bridge's metrics, on a registry of its own (never the global default one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter(
            "incident_bridge_webhooks",
            "Alertmanager webhook requests, by HTTP status code answered.",
            ["code"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "incident_bridge_webhook_duration_seconds",
            "Time to answer an Alertmanager webhook, durable commit included.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.notifications = Counter(
            "incident_bridge_notifications",
            "Alertmanager notifications accepted, by what they did to their incident.",
            ["outcome"],
            registry=r,
        )
        self.alerts = Counter(
            "incident_bridge_alerts",
            "Alerts received inside accepted notifications.",
            registry=r,
        )
        self.incidents_opened = Counter(
            "incident_bridge_incidents_opened",
            "Incidents opened, by priority at opening.",
            ["priority"],
            registry=r,
        )
        self.incidents_open = Gauge(
            "incident_bridge_incidents_open",
            "Incidents currently open, by priority.",
            ["priority"],
            registry=r,
        )
        self.github_requests = Counter(
            "incident_bridge_github_requests",
            "Requests to the GitHub API, by operation and HTTP status (or 'error' when none).",
            ["operation", "status"],
            registry=r,
        )
        self.github_rate_remaining = Gauge(
            "incident_bridge_github_rate_limit_remaining",
            "Requests left in GitHub's primary rate-limit window (x-ratelimit-remaining).",
            registry=r,
        )
        self.github_rate_reset = Gauge(
            "incident_bridge_github_rate_limit_reset_timestamp_seconds",
            "When GitHub's primary rate-limit window resets (x-ratelimit-reset).",
            registry=r,
        )
        self.effects = Counter(
            "incident_bridge_effects",
            "Outbox effect attempts, by effect kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.notify_fallbacks = Counter(
            "incident_bridge_notify_fallbacks",
            "Notifications that did not reach their person on time, by channel and reason:"
            " failed (permanently) or late (still failing at the response deadline, retried);"
            " each is told on the person's next channel when they have one.",
            ["channel", "reason"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "incident_bridge_outbox_pending",
            "Effects waiting in the outbox (pending or running).",
            registry=r,
        )
        self.outbox_failed = Gauge(
            "incident_bridge_outbox_failed",
            "Effects that failed permanently and are kept for inspection.",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "incident_bridge_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending effect (0 when none).",
            registry=r,
        )
        self.effect_seconds = Histogram(
            "incident_bridge_effect_latency_seconds",
            "Time from a notification being accepted to its effect being applied.",
            ["kind"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=r,
        )
        self.github_budget_used = Gauge(
            "incident_bridge_github_budget_used",
            "GitHub content-creating requests made in the sliding window (all replicas).",
            ["window"],
            registry=r,
        )
        self.github_budget_factor = Gauge(
            "incident_bridge_github_budget_factor",
            "Share of github.budget in use: 1 until GitHub refuses a write, then halved and"
            " growing back.",
            registry=r,
        )
        self.github_budget_next_slot = Gauge(
            "incident_bridge_github_budget_next_slot_seconds",
            "Seconds until the budget allows the next write (0 when it allows one now).",
            registry=r,
        )
        self.outbox_queue = Gauge(
            "incident_bridge_outbox_queue",
            "Effects waiting in the outbox (pending or running), by their incident's priority.",
            ["priority"],
            registry=r,
        )
        self.sla_breaches = Counter(
            "incident_bridge_sla_breaches",
            "Response and resolution deadlines missed, by priority and kind.",
            ["priority", "kind"],
            registry=r,
        )
        for priority in Priority:
            for kind in SLA_KINDS:
                self.sla_breaches.labels(priority=str(priority), kind=kind)
        self.flapping = Counter(
            "incident_bridge_flapping_incidents",
            "Incidents that started flapping (notifications damped, close deferred), by priority.",
            ["priority"],
            registry=r,
        )
        for priority in Priority:
            self.flapping.labels(priority=str(priority))
        self.heartbeat_last_seen = Gauge(
            "incident_bridge_heartbeat_last_seen_timestamp_seconds",
            "When the heartbeat alert (heartbeat.alertname) was last recorded (0: never, the"
            " dead man's switch is not armed).",
            registry=r,
        )
        self.heartbeat_missing = Gauge(
            "incident_bridge_heartbeat_missing",
            "1 while the dead man's switch holds the alerting pipeline down (no heartbeat alert"
            " for heartbeat.timeout), else 0.",
            registry=r,
        )
        self.github_budget_factor.set(1.0)
        for window in ("minute", "hour"):
            self.github_budget_used.labels(window=window)
        for priority in Priority:
            self.outbox_queue.labels(priority=str(priority))
        self.github_events = Counter(
            "incident_bridge_github_events",
            "GitHub webhook deliveries (POST /api/v1/github/events), by event and result.",
            ["event", "result"],
            registry=r,
        )
        for event in GITHUB_EVENT_KINDS:
            for event_result in GITHUB_EVENT_RESULTS:
                self.github_events.labels(event=event, result=event_result)
        self.github_polls = Counter(
            "incident_bridge_github_polls",
            "Issues polled without a webhook secret, by result: unchanged (a 304, free of rate"
            " limit), changed (read and applied) or error (retried next round).",
            ["result"],
            registry=r,
        )
        for poll_result in GITHUB_POLL_RESULTS:
            self.github_polls.labels(result=poll_result)
        self.pruned = Counter(
            "incident_bridge_pruned_rows",
            "Rows deleted by store.retention, by kind (timeline events, finished effects).",
            ["kind"],
            registry=r,
        )
        for kind in ("events", "effects"):
            self.pruned.labels(kind=kind)
        # Reconciliation with Alertmanager (bridge/reconcile.py), on the GitHub writer only.
        self.reconcile_missed_groups = Gauge(
            "incident_bridge_reconcile_missed_groups",
            "Active Alertmanager groups older than group_wait with no open incident, at the"
            " last reconciliation (lost webhooks).",
            registry=r,
        )
        self.reconcile_runs = Counter(
            "incident_bridge_reconcile_runs",
            "Reconciliation rounds, by result: ok (every peer answered), partial, failed.",
            ["result"],
            registry=r,
        )
        self.reconcile_peer_errors = Counter(
            "incident_bridge_reconcile_peer_errors",
            "Alertmanager peers that did not answer a reconciliation round.",
            registry=r,
        )
        self.reconcile_actions = Counter(
            "incident_bridge_reconcile_actions",
            "What reconciliation changed: incidents resolved, silenced, unsilenced, missed"
            " groups opened.",
            ["action"],
            registry=r,
        )
        for result in RECONCILE_RESULTS:
            self.reconcile_runs.labels(result=result)
        for action in RECONCILE_ACTIONS:
            self.reconcile_actions.labels(action=action)
        for code in WEBHOOK_CODES:
            self.webhooks.labels(code=code)
        for operation, statuses in GITHUB_OPERATIONS.items():
            for status in statuses:
                self.github_requests.labels(operation=operation, status=status)
        for outcome in INGEST_OUTCOMES:
            self.notifications.labels(outcome=outcome)
        for priority in Priority:
            self.incidents_opened.labels(priority=str(priority))
            self.incidents_open.labels(priority=str(priority))
        for channel in NOTIFY_CHANNELS:
            for reason in FALLBACK_REASONS:
                self.notify_fallbacks.labels(channel=channel, reason=reason)
        for kind in get_args(EffectKind):
            self.effect_seconds.labels(kind=kind)
            for result in EFFECT_RESULTS:
                self.effects.labels(kind=kind, result=result)
        # Continuous improvement (bridge/measures.py), observed from committed decisions.
        self.time_to_detect = Histogram(
            "incident_bridge_time_to_detect_seconds",
            "Earliest alert startsAt to incident opened, by priority (the guide: MTTD < 5 min).",
            ["priority"],
            buckets=IMPROVEMENT_BUCKETS,
            registry=r,
        )
        self.time_to_acknowledge = Histogram(
            "incident_bridge_time_to_acknowledge_seconds",
            "Incident opened to its first acknowledgement (a person or a silence), by priority.",
            ["priority"],
            buckets=IMPROVEMENT_BUCKETS,
            registry=r,
        )
        self.time_to_resolve = Histogram(
            "incident_bridge_time_to_resolve_seconds",
            "Earliest alert startsAt to incident resolved, by priority, at every resolution"
            " (the guide: MTTR < 1 h for P0, < 4 h for P1).",
            ["priority"],
            buckets=IMPROVEMENT_BUCKETS,
            registry=r,
        )
        for priority in Priority:
            for histogram in (self.time_to_detect, self.time_to_acknowledge, self.time_to_resolve):
                histogram.labels(priority=str(priority))
        self.incident_time = Counter(
            "incident_bridge_incident_seconds",
            "Incident time per affected service (its alerts' service label, else job, else"
            " 'unknown') and priority, counted when an episode resolves: incident minutes x 60."
            f" At most {SERVICE_SERIES_LIMIT} services per process, later ones as"
            f" '{OTHER_SERVICE}'.",
            ["service", "priority"],
            registry=r,
        )
        self._services: set[str] = set()
        # The children the webhook's path uses on every request.
        self.webhooks_by_code = Children(self.webhooks)
        self.notifications_by_outcome = Children(self.notifications)
        self.opened_by_priority = Children(self.incidents_opened)
        self.detect_by_priority = Children(self.time_to_detect)

    def count_incident_time(self, service: str, priority: str, seconds: float) -> None:
        """Add an episode's ``seconds`` to ``service``, within the cap on distinct services."""
        if service not in self._services:
            if len(self._services) >= SERVICE_SERIES_LIMIT:
                service = OTHER_SERVICE
            else:
                self._services.add(service)
        self.incident_time.labels(service=service, priority=priority).inc(seconds)
