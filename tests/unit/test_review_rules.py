"""Post-incident reviews, the rules (bridge/review.py): which decisions ask for a review, when it
is due, and the timeline it is given — over realistic incident histories.

Histories are played through the real pure steps — the engine for Alertmanager's
notifications, the SLA timer, acknowledgement from GitHub, reconciliation — on a fake clock
(moments passed in); the store's part (key, id, number) is filled in by hand, and what the
outbox sent is given as ``SentNotification`` rows as the store reads them back.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bridge import acknowledge as ack
from bridge import review, sla
from bridge.business_hours import BusinessHours
from bridge.engine import Decision, Policy, apply_notification, settle_flapping
from bridge.flapping import FlapPolicy
from bridge.model import (
    AlertSnapshot,
    Classification,
    Incident,
    Notification,
    Priority,
    TimelineEvent,
)
from bridge.store.base import SentNotification

T0 = datetime(2026, 11, 26, 21, 39, 53, tzinfo=UTC)  # the alert starts firing
OPENED = datetime(2026, 11, 26, 21, 45, tzinfo=UTC)  # Alertmanager's group_wait, then us
P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label, else P3."""
    wanted = labels.get("priority", "P3")
    return Classification(Priority(wanted), f"priority label {wanted}")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + (timedelta(minutes=5) if p == P0 else timedelta(minutes=15)),
    resolve_by=lambda p, t: t + (timedelta(hours=1) if p == P0 else timedelta(hours=4)),
    flapping=FlapPolicy(max_flips=3, window=timedelta(hours=1)),
)
SLA = sla.SlaPolicy(
    escalation={
        p: sla.Escalation(page="always", every=timedelta(minutes=5), rounds=3) for p in Priority
    },
    in_business_hours=BusinessHours().is_open,
    contacts=(sla.Contact("On-call", email=True, sms=True),),
)


def snapshot(
    status: str = "firing",
    *,
    priority: Priority = P0,
    starts: datetime = T0,
    ends: datetime | None = None,
) -> Notification:
    alert = AlertSnapshot(
        fingerprint="f1",
        status=status,  # type: ignore[arg-type]  # "firing" | "resolved" only
        labels={"alertname": "ServiceUnavailable", "service": "checkout", "priority": priority},
        annotations={"summary": "Checkout is down"},
        starts_at=starts,
        ends_at=ends,
        generator_url="http://prometheus:9090/graph",
    )
    return Notification(
        receiver="team",
        status=alert.status,
        alerts=(alert,),
        group_labels={"alertname": "ServiceUnavailable"},
        common_labels=dict(alert.labels),
        common_annotations={"summary": "Checkout is down"},
        external_url="http://alertmanager:9093",
        group_key='{}:{alertname="ServiceUnavailable"}',
        truncated_alerts=0,
    )


@dataclass
class History:
    """An incident lived step by step, as ``Ingestor`` would apply it (review included)."""

    incident: Incident | None = None
    events: list[TimelineEvent] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def apply(
        self, step: Callable[[Incident | None, datetime], Decision], now: datetime
    ) -> Decision:
        before = copy.deepcopy(self.incident)
        decision = step(before, now)
        review.request(self.incident, decision, now)
        if decision.changed and decision.incident is not None:
            if decision.is_new:
                decision.incident.key, decision.incident.id, decision.incident.number = (
                    "k" * 64,
                    1,
                    42,
                )
            self.incident = decision.incident
            self.events.extend(decision.events)
        self.decisions.append(decision)
        return decision

    def notify(self, n: Notification, now: datetime) -> Decision:
        return self.apply(lambda current, at: apply_notification(current, n, at, POLICY), now)

    def timer(self, now: datetime) -> Decision:
        return self.apply(
            lambda current, at: sla.step(current, at, SLA) if current else Decision("unchanged"),
            now,
        )

    @property
    def current(self) -> Incident:
        assert self.incident is not None
        return self.incident


def kinds(decision: Decision) -> list[str]:
    return [effect.kind for effect in decision.effects]


def a_p0_night() -> History:
    """The guide's P0: fired 21:39:53, opened 21:45, nobody on it by 21:50 (breach, the on-call
    texted), acknowledged by alice at 21:52, every alert resolved at 22:24:53."""
    h = History()
    h.notify(snapshot(), OPENED)
    h.timer(OPENED + timedelta(minutes=5))
    h.apply(ack.acknowledge("alice", "assigned"), OPENED + timedelta(minutes=7))
    end = T0 + timedelta(minutes=45)
    h.notify(snapshot("resolved", ends=end), end + timedelta(seconds=20))
    return h


# -- which decisions ask for a review -------------------------------------------------------


def test_a_p0_resolving_asks_for_its_review_before_the_closing_sync() -> None:
    """The resolution's own transaction queues ``github.pir`` between the resolution comment and
    the sync, so the one edit closing the incident's issue also links the review."""
    h = a_p0_night()
    resolution = h.decisions[-1]
    assert resolution.outcome == "resolved"
    assert kinds(resolution) == ["github.comment", "github.pir", "github.sync"]
    assert h.current.review_requested_at == T0 + timedelta(minutes=45, seconds=20)
    # Nothing before the resolution asked for one.
    assert all("github.pir" not in kinds(d) for d in h.decisions[:-1])


@pytest.mark.parametrize(("priority", "asked"), [(P0, True), (P1, True), (P2, False), (P3, False)])
def test_only_p0_and_p1_incidents_get_a_review(priority: Priority, asked: bool) -> None:
    """The guide: a review within 48 hours for P0/P1; P2/P3 get none."""
    h = History()
    h.notify(snapshot(priority=priority), OPENED)
    decision = h.notify(snapshot("resolved", priority=priority, ends=OPENED), OPENED)
    assert ("github.pir" in kinds(decision)) is asked
    assert (h.current.review_requested_at is not None) is asked


def test_a_maintenance_request_never_gets_a_review() -> None:
    """A maintenance request is planned work: cleared, it asks for nothing."""
    h = History()
    h.notify(snapshot(), OPENED)
    h.current.kind = "maint"
    decision = h.notify(snapshot("resolved", ends=OPENED), OPENED)
    assert "github.pir" not in kinds(decision)


@pytest.mark.parametrize(
    "resolve",
    [
        pytest.param(lambda h, at: h.apply(ack.close_manually("bob"), at), id="closed-by-hand"),
        pytest.param(
            lambda h, at: h.notify(snapshot("resolved", ends=at), at), id="alerts-resolved"
        ),
    ],
)
def test_any_resolution_asks_for_the_review(
    resolve: Callable[[History, datetime], Decision],
) -> None:
    """Whatever resolves a P0 — its alerts or a person closing the issue — asks for the review."""
    h = History()
    h.notify(snapshot(), OPENED)
    decision = resolve(h, OPENED + timedelta(minutes=30))
    assert h.current.state == "resolved"
    assert "github.pir" in kinds(decision)


def test_a_flapping_p0_gets_its_review_when_it_finally_settles() -> None:
    """A flapping incident's alerts resolving do not resolve it (no review yet); the quiet
    period's end does, and asks for the review then."""
    h = History()
    at = OPENED
    h.notify(snapshot(), at)
    for n in range(4):  # fired and resolved again and again: flapping
        at += timedelta(minutes=2)
        h.notify(snapshot("resolved", starts=T0 + timedelta(minutes=n * 2), ends=at), at)
        at += timedelta(minutes=2)
        h.notify(snapshot(starts=T0 + timedelta(minutes=n * 2 + 2)), at)
    at += timedelta(minutes=1)
    quiet = h.notify(snapshot("resolved", starts=T0 + timedelta(minutes=8), ends=at), at)
    assert h.current.flapping
    assert h.current.state == "open"
    assert "github.pir" not in kinds(quiet)
    settled = h.apply(
        lambda current, now: settle_flapping(h.current if current is None else current, now),
        at + timedelta(hours=1),
    )
    assert settled.outcome == "resolved"
    assert "github.pir" in kinds(settled)


def test_a_refire_within_the_window_updates_the_same_review_and_so_does_the_next_resolution() -> (
    None
):
    """Reopened within the reopen window: the review is updated (it shows the incident open
    again); resolved again: updated again. Its first request time stays."""
    h = a_p0_night()
    asked = h.current.review_requested_at
    refire_at = OPENED + timedelta(hours=3)
    reopened = h.notify(snapshot(starts=refire_at), refire_at)
    assert reopened.outcome == "reopened"
    assert kinds(reopened) == ["github.comment", "github.pir", "github.sync"]
    again = h.notify(
        snapshot("resolved", starts=refire_at, ends=refire_at + timedelta(minutes=9)),
        refire_at + timedelta(minutes=10),
    )
    assert again.outcome == "resolved"
    assert "github.pir" in kinds(again)
    assert h.current.review_requested_at == asked


def test_a_review_is_updated_even_when_the_next_episode_is_only_p2() -> None:
    """Once an incident has a review, its later resolutions update it whatever their priority."""
    h = History()
    h.notify(snapshot(priority=P1), OPENED)
    h.notify(snapshot("resolved", priority=P1, ends=OPENED), OPENED)
    later = OPENED + timedelta(hours=1)
    h.notify(snapshot(priority=P2, starts=later), later)
    assert h.current.priority == P2
    decision = h.notify(snapshot("resolved", priority=P2, starts=later, ends=later), later)
    assert "github.pir" in kinds(decision)


def test_a_new_incident_after_the_window_starts_without_a_review() -> None:
    """Past the reopen window the group is a new incident: the old review is not its review."""
    h = a_p0_night()
    later = OPENED + timedelta(days=3)
    decision = h.notify(snapshot(starts=later), later)
    assert decision.is_new
    assert "github.pir" not in kinds(decision)
    assert h.current.review_requested_at is None


def test_unchanged_and_open_decisions_ask_for_nothing() -> None:
    """A repeat, an update, an acknowledgement: no review effect."""
    h = History()
    h.notify(snapshot(), OPENED)
    assert "github.pir" not in kinds(h.notify(snapshot(), OPENED + timedelta(minutes=1)))
    assert "github.pir" not in kinds(h.apply(ack.acknowledge("alice", "comment"), OPENED))


# -- when the review is due -----------------------------------------------------------------


def test_the_review_is_due_48_hours_after_the_resolution_and_not_while_reopened() -> None:
    """Due at resolved_at + 48 h; None while the incident is open again."""
    h = a_p0_night()
    assert h.current.resolved_at == T0 + timedelta(minutes=45)
    assert review.due_at(h.current) == T0 + timedelta(minutes=45, hours=48)
    h.notify(snapshot(starts=OPENED + timedelta(hours=3)), OPENED + timedelta(hours=3))
    assert review.due_at(h.current) is None


def test_the_review_lives_in_its_own_slot_beside_the_incident_issue() -> None:
    """The review's issue record is kept under a slot of its own, never the repository's."""
    assert review.slot("acme/incidents") != "acme/incidents"
    assert review.slot("acme/incidents").startswith("acme/incidents")


# -- the timeline ---------------------------------------------------------------------------


def sent(
    kind: str, name: str, seq: int, state: str = "done", at: datetime | None = None
) -> SentNotification:
    return SentNotification(kind=kind, name=name, event_seq=seq, state=state, finished_at=at)


def test_the_timeline_tells_fired_detected_notified_whom_acknowledged_escalated_resolved() -> None:
    """The guide's timeline from the recorded history: each event in order, and after the ones
    people were told of, whom (by name) and on which channel — delivered, failed or still
    sending."""
    h = a_p0_night()
    seq = {event.kind: event.seq for event in reversed(h.events)}  # the first of each kind
    told = [
        sent("notify.slack", "", seq["opened"], at=OPENED + timedelta(seconds=2)),
        sent("notify.email", "Ops lead", seq["opened"], at=OPENED + timedelta(seconds=3)),
        sent("notify.email", "CTO", seq["opened"], at=OPENED + timedelta(seconds=4)),
        sent("notify.sms", "Ops lead", seq["opened"], at=OPENED + timedelta(seconds=3)),
        sent("notify.sms", "CTO", seq["opened"], state="failed", at=OPENED + timedelta(seconds=9)),
        sent(
            "notify.sms", "On-call", seq["escalated"], at=OPENED + timedelta(minutes=5, seconds=1)
        ),
        sent("notify.email", "Ops lead", seq["resolved"], state="pending"),
    ]
    lines = [
        (entry.at.strftime("%H:%M:%S"), entry.text) for entry in review.timeline(h.events, told)
    ]
    assert lines == [
        ("21:39:53", "Alert fired: ServiceUnavailable on checkout"),
        ("21:45:00", "Detected: Incident opened as P0 (priority label P0)"),
        ("21:45:02", "Notified: Slack; email to Ops lead, CTO; SMS to Ops lead, CTO (failed)"),
        (
            "21:50:00",
            "SLA breached: Response deadline missed: not acknowledged by 2026-11-26 21:50 UTC"
            " (P0); paging On-call by SMS",
        ),
        ("21:50:00", lines[4][1]),
        ("21:50:01", "Notified: SMS to On-call"),
        ("21:52:00", "Acknowledged by alice (assigned the issue)"),
        ("22:24:53", "Alert resolved: ServiceUnavailable on checkout"),
        ("22:24:53", "Resolved: every alert resolved after 45m"),
        ("22:24:53", "Notified: email to Ops lead (sending)"),
    ]
    assert lines[4][1].startswith("Escalation 1 of 3: paged On-call by SMS")


def test_the_timeline_never_names_an_address_or_a_number() -> None:
    """Only names: the notification rows carry addresses, the timeline never shows them."""
    h = a_p0_night()
    opened = next(e.seq for e in h.events if e.kind == "opened")
    told = [sent("notify.email", "", opened, at=OPENED)]
    text = " ".join(entry.text for entry in review.timeline(h.events, told))
    assert "email to someone" in text
    assert "@" not in text


def test_storm_control_summaries_are_not_listed_as_events_of_this_incident() -> None:
    """A summary (no event of its own) may tell of several incidents: not in this timeline."""
    h = a_p0_night()
    summary = SentNotification("notify.email", "CTO", None, "done", OPENED)
    assert review.timeline(h.events, [summary]) == review.timeline(h.events, [])
