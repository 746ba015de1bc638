"""The store protocol: what every backend (SQLite, PostgreSQL) provides."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bridge.engine import Decision
from bridge.model import EffectKind, EffectSpec, Incident, Priority, StormMember, TimelineEvent


class StoreUnavailable(Exception):
    """The store cannot take or give data right now (locked, disk full, gone); retry later."""


@dataclass(frozen=True, slots=True)
class ClaimedEffect:
    """An outbox row claimed by one worker; ``claim`` is the fencing token for writing results."""

    id: int
    incident_id: int
    kind: EffectKind
    payload: dict[str, Any]
    attempts: int
    claim: int
    created_at: datetime
    # The previous attempt may have reached the far side (crash, timeout, connection lost).
    outcome_unknown: bool = False
    incident_label: str = ""  # INC-042, for logs
    urgent: bool = False  # a P0/P1 incident's: claimed first, may use the budget's reserve


@dataclass(slots=True)
class IssueRecord:
    """What the bridge last wrote to (or read from) an incident's GitHub issue."""

    incident_id: int
    repository: str
    number: int
    url: str
    title: str
    body: str
    region: str
    labels: set[str] = field(default_factory=set)  # the labels the bridge manages on this issue
    state: str = "open"
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident with its issue number in the configured repository, for listings."""

    incident: Incident
    issue_number: int | None
    issue_url: str | None


@dataclass(frozen=True, slots=True)
class WatchedIssue:
    """An incident's issue the poller reads (bridge/github/poller.py): what choosing and pacing
    the reads needs, from the indexed columns — no incident is decoded for it."""

    incident_id: int
    issue_number: int
    priority: Priority
    open: bool

    @property
    def urgent(self) -> bool:
        """An open P0/P1 incident's issue: read every ``github.poll.urgent``."""
        return self.open and self.priority.rank <= 1


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    running: int
    failed: int
    oldest_pending: datetime | None
    # Pending or running, by their incident's priority ("P0" .. "P3").
    by_priority: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """How many rows ``Store.prune`` deleted."""

    events: int
    effects: int


@dataclass(frozen=True, slots=True)
class Storm:
    """An alert storm roll-up (bridge/storm.py): its incident row and the groups it lists."""

    incident: Incident  # kind "storm"
    members: list[StormMember]  # by INC number
    edited_at: datetime | None  # the roll-up issue's last write (edits are paced by it)
    over_at: datetime | None  # no listed group waited for its own issue any more
    announced_at: datetime | None  # the "storm over" comment was posted


@dataclass(frozen=True, slots=True)
class HeldNotice:
    """A message storm control held back for a person's bundle (``bridge/notify/throttle``)."""

    incident_id: int
    event_seq: int
    held_at: datetime


@dataclass(frozen=True, slots=True)
class BundleSlot:
    """What a bundle effect may tell now: ``held`` (oldest first; a slot in the person's window
    is taken for it) — empty when nothing is held any more, or when the window is still full,
    and then ``wait_until`` says when it frees a slot."""

    held: list[HeldNotice]
    wait_until: datetime | None = None


def bundle_payload(recipient: str, name: str) -> dict[str, Any]:
    """The payload of a person's bundle effect (``notify.email`` / ``notify.sms``)."""
    return {"to": recipient, "name": name, "bundle": True}


# The payload key marking a message that was still failing at its deadline and whose person
# was told on their next channel then (``Store.retry_effect`` with a fallback): never again.
LATE = "late"


def recipient_of(kind: str, payload: dict[str, Any]) -> str:
    """Whom an effect's message is for (its outbox ``recipient``): the address or number of an
    email or a text, '' for GitHub and Slack. An incident's effects run in order per lane and
    recipient."""
    if kind in ("notify.email", "notify.sms"):
        return str(payload.get("to") or "")
    return ""


Decide = Callable[[Incident | None], Decision]


@dataclass(frozen=True, slots=True)
class DueIncident:
    """An incident whose next timer (``Incident.due_at``) has come: the scheduler applies it
    through ``Store.ingest`` on the incident's key, so it fires once whoever fires it."""

    id: int
    key: str
    identity: str
    due_at: datetime


def failure_text(kind: str, error: str, fallback: Sequence[EffectSpec]) -> str:
    """The timeline line of a permanently failed effect, naming who is told instead (by name:
    the timeline is shown in the issue, addresses and numbers never are)."""
    return f"{kind} failed permanently: {error[:200]}{_told_instead(fallback)}"


def late_text(kind: str, error: str, fallback: Sequence[EffectSpec]) -> str:
    """The timeline line of a message still failing (and still retried) at its response
    deadline, naming who is told instead, by name only, as :func:`failure_text`."""
    told = _told_instead(fallback) or "; nobody else to tell"
    return f"{kind} still failing at the response deadline, retrying: {error[:200]}{told}"


def failure_effects(
    failed_kind: str, incident_kind: str, fallback: Sequence[EffectSpec]
) -> list[EffectSpec]:
    """What a failing effect's timeline line queues, besides the bundles that take over: the
    messages on the person's next channel, and a sync, so the issue's timeline shows the
    failure now rather than at the incident's next change (coalesced into a pending sync). Not
    after a failing sync itself (it would only fail again) nor for a storm's roll-up (its own
    effect keeps it)."""
    effects = [spec for spec in fallback if not spec.payload.get("bundle")]
    if failed_kind not in ("github.sync", "github.storm") and incident_kind != "storm":
        effects.append(EffectSpec("github.sync"))
    return effects


def _told_instead(fallback: Sequence[EffectSpec]) -> str:
    if not fallback:
        return ""
    instead = ", ".join(
        f"{spec.kind.removeprefix('notify.')}"
        f"{' summary' if spec.payload.get('bundle') else ''}"
        f" to {spec.payload.get('name') or 'someone'}"
        for spec in fallback
    )
    return f"; told instead: {instead}"


class Store(Protocol):
    """Durable state. Every method may raise StoreUnavailable."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""

    async def ingest(self, key: str, identity: str, decide: Decide) -> Decision:
        """In one durable transaction: load the latest incident of ``key``, run ``decide`` on it
        and persist the decision (incident, events, effects). Returns the decision, with the
        incident numbered when it is new. Concurrent calls share fsyncs."""

    async def claim_effects(
        self, now: datetime, limit: int, lease: timedelta, lane: str = "github"
    ) -> list[ClaimedEffect]:
        """Due effects of ``lane`` (``github``, or a notification channel), at most one per
        incident, lane and recipient (its oldest unfinished), claimed for ``lease``. Lanes
        never wait on each other: a channel that is down holds up only its own effects, and one
        person's failing mailbox only their own messages. Storm control's bundles stand apart:
        they neither wait for nor hold back the messages of the incident they are queued on."""

    async def finish_effect(self, effect: ClaimedEffect, now: datetime) -> bool: ...

    async def retry_effect(
        self,
        effect: ClaimedEffect,
        at: datetime,
        error: str,
        *,
        outcome_unknown: bool,
        fallback: Sequence[EffectSpec] | None = None,
    ) -> bool:
        """Back to pending, due at ``at``. With ``fallback`` (a message still failing at its
        response deadline): in the same transaction, once per effect, its payload is marked
        ``LATE``, ``fallback`` is queued and the incident's timeline says who is told instead
        (``late_text``); the effect itself keeps being retried. An effect already marked is
        only retried."""

    async def fail_effect(
        self,
        effect: ClaimedEffect,
        now: datetime,
        error: str,
        fallback: Sequence[EffectSpec] = (),
    ) -> bool:
        """Mark permanently failed and record it in the incident's timeline; in the same
        transaction, queue ``fallback`` (a notification on the person's next channel). A
        bundle's fallback (a spec with ``bundle``) takes over what the failed bundle held: it
        joins the person's pending bundle on that channel, or is added as a new one; whatever
        a failed bundle held and no fallback took is forgotten (the timeline has the failure)."""

    async def next_due(self, lane: str = "github") -> datetime | None:
        """When the next pending effect is due (None when nothing is pending). A backend
        shared by several processes leaves out effects waiting behind their incident's running
        effect: no claim can take them before it ends."""

    async def outbox_stats(self) -> OutboxStats: ...

    async def load_incident(self, incident_id: int) -> Incident | None: ...

    async def load_events(self, incident_id: int, limit: int) -> list[TimelineEvent]:
        """The most recent ``limit`` events, oldest first."""

    async def load_event(self, incident_id: int, seq: int) -> TimelineEvent | None: ...

    async def issue_record(self, incident_id: int, repository: str) -> IssueRecord | None: ...

    async def save_issue_record(self, record: IssueRecord) -> None: ...

    async def list_incidents(
        self, repository: str, *, limit: int = 100, state: str | None = None
    ) -> list[IncidentRow]: ...

    async def watched_issues(
        self, repository: str, *, resolved_since: datetime, open_limit: int, resolved_limit: int
    ) -> list[WatchedIssue]:
        """The issues in ``repository`` of incidents (not maintenance requests or storm
        roll-ups): of the newest ``open_limit`` open ones that have an issue, and of the newest
        ``resolved_limit`` resolved since ``resolved_since`` (people may reopen those)."""

    async def open_counts(self) -> dict[str, int]:
        """Open incidents by priority."""

    async def incident_count(self) -> int:
        """Every incident stored, open or not."""

    async def prune(self, before: datetime) -> PruneResult:
        """Delete what retention no longer needs: the timeline events older than ``before`` of
        incidents resolved before ``before``, and done or failed effects finished before it.
        Open incidents' events and unfinished effects are never touched. Deletes in small
        batches, so ingest never waits long behind it."""

    async def hold_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``; False while
        another holder's lease runs. (The GitHub writer: one replica writes at a time.)"""

    async def urgent_waiting(self, now: datetime) -> bool:
        """Whether a P0/P1 incident's effect is due and waiting to be run (a storm roll-up's
        effect is claimed first too, but is not one)."""

    async def writes_since(self, since: datetime) -> list[datetime]:
        """The GitHub writes recorded after ``since``, oldest first."""

    async def record_write(self, at: datetime) -> None:
        """Record one GitHub write (and forget those older than an hour)."""

    async def budget_factor(self) -> tuple[float, datetime | None]:
        """The shared budget's factor and when GitHub last refused (None: never; factor 1)."""

    async def set_budget_factor(self, factor: float, at: datetime) -> None: ...

    async def notify_state(self, incident_id: int, channel: str) -> dict[str, str]:
        """What ``channel`` keeps for the incident between its messages (empty at first)."""

    async def save_notify_state(
        self, incident_id: int, channel: str, state: dict[str, str]
    ) -> None: ...

    # -- storm control per person (bridge/notify/runner.py) ---------------------------------

    async def notify_or_hold(
        self,
        effect: ClaimedEffect,
        channel: str,
        recipient: str,
        now: datetime,
        limit: int,
        per: timedelta,
    ) -> bool:
        """May ``effect`` (one message to ``recipient`` on ``channel``) be sent now? In one
        transaction, serialized per person and channel: True when no bundle of theirs is pending
        or being sent and fewer than ``limit`` messages went to them in the ``per`` before
        ``now`` — its slot is then taken (logged at ``now``; asking again for the same effect
        answers True again). Otherwise False: it is held for the person's pending bundle, which
        is added when there is none (a ``notify.<channel>`` effect with ``bundle_payload``, on
        the effect's incident, due when the window frees a slot). Log rows older than the window
        are pruned."""

    async def bundle_slot(
        self,
        bundle: ClaimedEffect,
        channel: str,
        recipient: str,
        now: datetime,
        limit: int,
        per: timedelta,
    ) -> BundleSlot:
        """What the claimed ``bundle`` is to tell, taking a slot for it in the person's window
        (once: asking again for the same bundle takes none). Nothing held: no slot. The window
        full: nothing, and when a slot frees."""

    async def bundle_told(self, bundle_id: int) -> None:
        """The bundle's message went out: forget what it held."""

    async def restore(self, incident: Incident, record: IssueRecord | None) -> bool:
        """Put back an incident rebuilt from its GitHub issue, keeping ``incident.number``
        (``kind``, ``number`` and ``key`` are set by the caller). Returns False, changing
        nothing, when an incident of that kind and number exists. Otherwise stores it (setting
        ``incident.id``), stores ``record`` if given (its ``incident_id`` set to the new id) and
        raises the ``number:<kind>`` counter to at least the number, so numbering continues
        after it."""

    # -- storm mode (bridge/storm.py) ------------------------------------------------------

    async def join_storm(self, incident_id: int, now: datetime) -> int:
        """In one transaction: list the incident in the active storm (the newest not over),
        starting one when there is none (a ``storm`` incident numbered from the incident
        counter), and queue the roll-up's ``github.storm`` edit. An incident already listed
        stays in its storm (its edit is queued). Returns the storm's incident id."""

    async def storm_of(self, incident_id: int) -> int | None:
        """The storm that lists the incident, if any."""

    async def queue_storm(self, storm_id: int, not_before: datetime) -> None:
        """Queue the roll-up's edit, coalesced with a pending one, due no earlier than
        ``not_before`` nor than ``storm.EDIT_GAP`` after its last write."""

    async def load_storm(self, storm_id: int, repository: str) -> Storm | None: ...

    async def record_storm_write(
        self, storm_id: int, at: datetime, *, priority: Priority, resolved: bool
    ) -> None:
        """The roll-up issue was written at ``at``; its row takes the priority and state shown."""

    async def storm_over(self, storm_id: int, repository: str, at: datetime) -> bool:
        """Mark the storm over if no listed group is still firing without its own issue (checked
        in the same transaction as joins, so none slips in). True when marked now."""

    async def storm_announced(self, storm_id: int, at: datetime) -> None:
        """The "storm over" comment was posted."""

    async def queue_syncs(self, incident_ids: list[int], now: datetime) -> None:
        """Queue a ``github.sync`` for each incident (coalesced with a pending one)."""

    # -- the on-call lifecycle (bridge/timers.py, bridge/scheduler.py, bridge/web/github_events)

    async def due_incidents(self, now: datetime, limit: int) -> list[DueIncident]:
        """Incidents whose ``due_at`` is at or before ``now``, earliest first."""

    async def next_timer(self) -> datetime | None:
        """The earliest ``due_at`` of any incident (None: no timer pending)."""

    async def set_mark(self, name: str, at: datetime) -> None:
        """Remember a moment by name (the heartbeat's last Watchdog); a later one replaces it,
        an earlier one never does."""

    async def mark(self, name: str) -> datetime | None:
        """The moment remembered as ``name``, if any."""

    async def first_delivery(self, delivery_id: str, now: datetime) -> bool:
        """Record a GitHub webhook delivery; False when it was recorded before (a replay or a
        redelivery). Deliveries older than the retention are pruned with the events."""

    async def delivery_seen(self, delivery_id: str) -> bool:
        """Whether a GitHub webhook delivery was recorded (``first_delivery``)."""

    async def incident_by_issue(self, repository: str, number: int) -> Incident | None:
        """The incident whose issue in ``repository`` is ``number`` (None for other issues)."""

    # -- reports (bridge/report.py) ------------------------------------------------------------

    async def incidents_between(self, since: datetime, until: datetime) -> list[IncidentHistory]:
        """Every incident (kind ``incident``) that was open at some moment of [``since``,
        ``until``) — opened before ``until`` and not resolved before ``since``; one resolved
        later and reopened counts by its last resolution — with its whole timeline, oldest
        event first; by id. One consistent read."""

    async def open_incidents(self, after_id: int, limit: int) -> list[Incident]:
        """Open incidents of every kind with an id above ``after_id``, by id, at most ``limit``:
        a page (reconciliation walks them all, ``after_id`` the last id of the previous page)."""

    # -- post-incident reviews (bridge/review.py) ----------------------------------------------

    async def notifications(self, incident_id: int) -> list[SentNotification]:
        """The incident's notification effects (Slack, email, SMS) in the order they were
        queued, whatever their state; those retention pruned are gone."""

    async def schedule_review(self, incident_id: int, due_at: datetime | None) -> None:
        """When the incident's review is to be reminded of (None: not now — the incident is
        open again). Once the reminder was queued (``remind_reviews``), nothing changes it:
        a review is reminded of once."""

    async def remind_reviews(self, now: datetime, limit: int) -> list[int]:
        """In one transaction: take up to ``limit`` reviews whose reminder is due at ``now``,
        mark them reminded and queue a ``github.pir_reminder`` effect on each one's incident
        (urgent for a P0/P1). Returns those incidents' ids. A review is taken once, whichever
        replica asks."""


@dataclass(frozen=True, slots=True)
class SentNotification:
    """One notification effect of an incident (``Store.notifications``), by name only: what a
    post-incident review's timeline says was told to whom."""

    kind: str  # notify.slack | notify.email | notify.sms
    name: str  # the person's name; "" for Slack
    event_seq: int | None  # the event it told; None for a storm-control summary
    state: str  # pending | running | done | failed
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class IncidentHistory:
    """An incident and its timeline events (oldest first), as a report reads them."""

    incident: Incident
    events: list[TimelineEvent]
