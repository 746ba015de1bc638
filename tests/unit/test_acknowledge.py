"""What people do on an incident's issue, as pure lifecycle steps (bridge/acknowledge.py).

Every test builds an incident, runs a step with a chosen "now" and reads the decision: the new
state, the timeline events (numbered after the incident's last one) and the effects. The input
incident is never changed: steps work on a copy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from bridge import acknowledge as ack
from bridge import status_page
from bridge.engine import Decision, Policy, apply_notification
from bridge.github.render import RenderOptions, desired_state
from bridge.model import (
    AlertSnapshot,
    AlertState,
    Classification,
    Incident,
    Notification,
    Priority,
    TimelineEvent,
)

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)
WINDOW = timedelta(minutes=30)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    return Classification(Priority(labels.get("priority", "P2")), "test rule")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=5 * (p.rank + 1)),
    resolve_by=lambda p, t: t + timedelta(hours=p.rank + 1),
)
PRIORITIES = ack.priority_labels(
    {
        Priority.P0: "priority-critical",
        Priority.P1: "priority-high",
        Priority.P2: "priority-medium",
        Priority.P3: "priority-low",
    }
)


def firing(fp: str = "a1", starts: datetime = T0) -> AlertState:
    return AlertState(
        fingerprint=fp,
        status="firing",
        labels={"alertname": "HighCPU", "service": "checkout"},
        annotations={},
        starts_at=starts,
        ends_at=None,
        generator_url="",
        priority=Priority.P1,
        rule="test rule",
        updated_at=starts,
    )


def incident(**changes: object) -> Incident:
    """An open, unacknowledged P1 incident with one firing alert and three timeline events."""
    base = Incident(
        key="k",
        identity="i",
        kind="incident",
        receiver="team",
        group_key="{}:{}",
        group_labels={"alertname": "HighCPU"},
        state="open",
        priority=Priority.P1,
        priority_rule="test rule",
        summary="Checkout is down",
        opened_at=T0,
        earliest_starts_at=T0,
        respond_by=T0 + timedelta(minutes=15),
        resolve_by=T0 + timedelta(hours=4),
        alerts={"a1": firing()},
        event_seq=3,
        id=7,
        number=42,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def resolved(**changes: object) -> Incident:
    """The incident resolved by its alerts at T0 + 5 min (its alert resolved too)."""
    gone = copy.copy(firing())
    gone.status, gone.ends_at = "resolved", T0 + timedelta(minutes=5)
    values: dict[str, object] = {
        "state": "resolved",
        "resolution": "alerts",
        "resolved_at": T0 + timedelta(minutes=5),
        "alerts": {"a1": gone},
    }
    values.update(changes)
    return incident(**values)


def kinds(decision: Decision) -> list[str]:
    return [event.kind for event in decision.events]


def effects(decision: Decision) -> list[tuple[str, int | None]]:
    return [(effect.kind, effect.event_seq) for effect in decision.effects]


# -- acknowledgement -----------------------------------------------------------------------


def test_acknowledging_records_who_when_and_how_on_a_copy() -> None:
    """The first acknowledgement: who, when and how are recorded, one ``acknowledged`` event
    numbered after the last one, and a sync (the ``acknowledged`` label, the timeline)."""
    before = incident()
    decision = ack.acknowledge("alice", "assigned")(before, NOW)

    after = decision.incident
    assert after is not None
    assert (decision.outcome, decision.changed) == ("acknowledged", True)
    assert (after.acknowledged_at, after.acknowledged_by, after.acknowledged_via) == (
        NOW,
        "alice",
        "assigned",
    )
    [event] = decision.events
    assert (event.kind, event.seq, event.at) == ("acknowledged", 4, NOW)
    assert event.data == {"who": "alice", "via": "assigned"}
    assert "alice" in event.text
    assert effects(decision) == [("github.sync", None)]
    assert before.acknowledged_at is None  # the step changed a copy
    assert before.event_seq == 3


@pytest.mark.parametrize(
    ("current", "why"),
    [
        (None, "no incident"),
        (incident(kind="maint"), "a maintenance request is never acknowledged"),
        (incident(kind="storm"), "nor a storm roll-up"),
        (resolved(), "a resolved incident has nothing left to acknowledge"),
        (
            incident(acknowledged_at=T0, acknowledged_by="bob", acknowledged_via="comment"),
            "the first acknowledgement wins",
        ),
    ],
)
def test_acknowledging_changes_nothing(current: Incident | None, why: str) -> None:
    """These acknowledgements change nothing (and so cost nothing)."""
    decision = ack.acknowledge("alice", "label")(current, NOW)
    assert (decision.outcome, decision.changed, decision.effects) == ("unchanged", False, []), why
    assert decision.incident is current


@pytest.mark.parametrize(
    ("at", "recorded"),
    [
        (None, NOW),
        (T0 + timedelta(minutes=2), T0 + timedelta(minutes=2)),
        (T0 - timedelta(hours=1), T0),  # never before the incident opened
        (NOW + timedelta(hours=1), NOW),  # never in the future
    ],
)
def test_acknowledged_at_is_githubs_moment_kept_between_opening_and_now(
    at: datetime | None, recorded: datetime
) -> None:
    """A poll sees a comment after it was made: the comment's own time is the acknowledgement's
    (MTTA), kept between the incident's opening and now."""
    decision = ack.acknowledge("alice", "comment", at)(incident(), NOW)
    assert decision.incident is not None
    assert decision.incident.acknowledged_at == recorded


# -- identified ----------------------------------------------------------------------------


def test_identified_label_acknowledges_and_identifies() -> None:
    """Labelled ``identified`` before anyone acknowledged: both events, one sync."""
    decision = ack.identify("carol")(incident(), NOW)
    assert decision.incident is not None
    assert kinds(decision) == ["acknowledged", "identified"]
    assert [e.seq for e in decision.events] == [4, 5]
    assert decision.incident.acknowledged_by == "carol"
    assert decision.incident.acknowledged_via == "label"
    assert effects(decision) == [("github.sync", None)]


def test_identified_after_an_acknowledgement_only_identifies() -> None:
    """Already acknowledged by someone else: the acknowledgement stays theirs."""
    acked = incident(acknowledged_at=T0, acknowledged_by="bob", acknowledged_via="assigned")
    decision = ack.identify("carol")(acked, NOW)
    assert decision.incident is not None
    assert kinds(decision) == ["identified"]
    assert decision.incident.acknowledged_by == "bob"


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (incident(acknowledged_at=T0, acknowledged_by="bob"), []),
        (incident(), ["acknowledged"]),  # identified before, but not acknowledged: acknowledge
    ],
)
def test_identified_once_per_episode(current: Incident, expected: list[str]) -> None:
    """The timeline already holds this episode's ``identified`` event: no second one."""
    decision = ack.identify("carol", identified_before=True)(current, NOW)
    assert kinds(decision) == expected
    assert decision.changed == bool(expected)


@pytest.mark.parametrize("current", [None, resolved(), incident(kind="maint")])
def test_identified_changes_nothing_unless_open(current: Incident | None) -> None:
    """Only an open incident is identified."""
    assert not ack.identify("carol")(current, NOW).changed


def event(seq: int, kind: str, minutes: int) -> TimelineEvent:
    return TimelineEvent(seq=seq, at=T0 + timedelta(minutes=minutes), kind=kind, text=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "identified", "started"),
    [
        ([], False, T0),
        ([event(1, "opened", 0), event(2, "identified", 3)], True, T0),
        (
            [event(1, "opened", 0), event(2, "identified", 3), event(3, "reopened", 30)],
            False,
            T0 + timedelta(minutes=30),
        ),
        (
            [event(2, "identified", 3), event(3, "reopened", 30), event(4, "identified", 40)],
            True,
            T0 + timedelta(minutes=30),
        ),
        # A human reopening undoes a close: the same episode goes on.
        ([event(2, "identified", 3), event(3, "reopened_manually", 30)], True, T0),
    ],
)
def test_episodes_begin_when_the_alerts_reopen_the_incident(
    events: list[TimelineEvent], identified: bool, started: datetime
) -> None:
    """An incident reopened by its alerts starts a new episode: what people did before it
    (acknowledged, identified) belongs to the episode that ended."""
    assert ack.identified_in_episode(events) is identified
    assert ack.episode_started(incident(), events) == started


# -- closed and reopened by a human --------------------------------------------------------


def test_closed_while_alerts_fire_resolves_manually_and_says_so() -> None:
    """Closed by hand while an alert fires: resolved manually, held closed, and the event's
    comment tells that alerts still fire — before the sync that renders the closed state."""
    decision = ack.close_manually("dave")(incident(quiet_until=NOW + WINDOW), NOW)
    after = decision.incident
    assert after is not None
    assert decision.outcome == "closed"
    assert (after.state, after.resolution, after.resolved_at, after.manual_hold) == (
        "resolved",
        "manual",
        NOW,
        True,
    )
    assert after.quiet_until is None
    [closed] = decision.events
    assert closed.kind == "closed_manually"
    assert closed.data == {"who": "dave", "firing": 1}
    assert "1 alert still fires" in closed.text
    assert effects(decision) == [("github.comment", closed.seq), ("github.sync", None)]


def test_closed_without_firing_alerts_needs_no_comment() -> None:
    """Nothing fires (an incident people reopened earlier, or a reported one): no comment."""
    decision = ack.close_manually("dave")(incident(alerts={}), NOW)
    assert kinds(decision) == ["closed_manually"]
    assert effects(decision) == [("github.sync", None)]


def test_closing_an_issue_left_open_after_its_alerts_resolved_is_quiet() -> None:
    """``close_on_resolve: false`` leaves a resolved incident's issue open; people closing it
    only mark the resolution manual (the issue must stay closed) — nobody is told again."""
    decision = ack.close_manually("dave")(resolved(), NOW)
    assert decision.incident is not None
    assert decision.events == []
    assert (decision.incident.resolution, decision.incident.manual_hold) == ("manual", True)
    assert decision.incident.resolved_at == T0 + timedelta(minutes=5)  # MTTR unchanged
    assert effects(decision) == [("github.sync", None)]


@pytest.mark.parametrize(
    "current",
    [
        None,
        resolved(resolution="manual", manual_hold=True),
        incident(kind="maint", manual_hold=True, state="resolved", resolution="manual"),
    ],
)
def test_closing_changes_nothing(current: Incident | None) -> None:
    """No incident, or one already closed by hand (a repeat)."""
    assert not ack.close_manually("dave")(current, NOW).changed


OPTIONS = RenderOptions(styles={})  # desired_state reads no style


@pytest.mark.parametrize("state", ["open", "resolved"])
def test_a_maintenance_request_closed_by_people_stays_closed(state: str) -> None:
    """People close a maintenance request when the work is done: it is held closed (the sync
    keeps it closed) until its condition fires anew; nobody is told, the timeline says so."""
    request = incident(kind="maint", state=state, respond_by=None, resolve_by=None)
    decision = ack.close_manually("dave")(request, NOW)
    after = decision.incident
    assert after is not None
    assert (after.state, after.manual_hold, after.resolution) == ("resolved", True, "manual")
    assert kinds(decision) == ["closed_manually"]
    assert effects(decision) == [("github.sync", None)]
    assert desired_state(after, OPTIONS) == "closed"

    reopened = ack.reopen_manually("erin")(after, NOW).incident
    assert reopened is not None
    assert not reopened.manual_hold
    assert desired_state(reopened, OPTIONS) == "open"


def test_reopened_by_a_human_is_open_again() -> None:
    """Reopened by hand: open again, no longer held closed, acknowledgement kept, deadlines
    moved later by the 5 minutes it spent resolved."""
    closed = resolved(
        resolution="manual", manual_hold=True, acknowledged_at=T0, acknowledged_by="bob"
    )
    decision = ack.reopen_manually("erin")(closed, NOW)
    after = decision.incident
    assert after is not None
    assert decision.outcome == "reopened"
    assert (after.state, after.resolved_at, after.resolution, after.manual_hold) == (
        "open",
        None,
        None,
        False,
    )
    assert (after.acknowledged_by, after.respond_by) == (
        "bob",
        closed.respond_by + timedelta(minutes=5),  # type: ignore[operator]  # set by incident()
    )
    assert kinds(decision) == ["reopened_manually"]
    assert effects(decision) == [("github.sync", None)]


def test_reopened_by_a_human_nobody_acknowledged_is_acknowledged_as_them() -> None:
    """Nobody had acknowledged it: the person who reopened it is evidently on it — the
    acknowledgement is theirs (via ``reopened``), after the reopening in the timeline, so
    no response breach or page follows."""
    decision = ack.reopen_manually("erin")(resolved(), NOW)
    after = decision.incident
    assert after is not None
    assert (after.acknowledged_at, after.acknowledged_by, after.acknowledged_via) == (
        NOW,
        "erin",
        "reopened",
    )
    assert kinds(decision) == ["reopened_manually", "acknowledged"]
    assert [event.seq for event in decision.events] == [4, 5]


def test_reopened_by_a_human_after_a_silence_resumes_its_deadlines() -> None:
    """Resolved while a silence paused it (``paused_at`` from an older store), then reopened an
    hour later: no pause survives, and the deadlines not yet missed move an hour later — a
    timer is due again, not never and not at once."""
    closed = resolved(paused_at=T0 + timedelta(minutes=1), resolved_at=T0 + timedelta(minutes=5))
    later = T0 + timedelta(hours=1, minutes=5)
    after = ack.reopen_manually("erin")(closed, later).incident
    assert after is not None
    assert after.paused_at is None
    assert after.resolve_by == T0 + timedelta(hours=5)
    assert after.due_at == T0 + timedelta(hours=5)  # acknowledged: the resolution deadline


def test_reopened_by_a_human_keeps_a_missed_deadline_where_it_was() -> None:
    """A deadline already missed (its breach recorded) stays: it was missed, and moving it
    would only misreport when."""
    breached = T0 + timedelta(minutes=15)
    closed = resolved(response_breached_at=breached, resolution_breached_at=T0 + timedelta(hours=4))
    after = ack.reopen_manually("erin")(closed, T0 + timedelta(hours=6)).incident
    assert after is not None
    assert (after.respond_by, after.resolve_by) == (closed.respond_by, closed.resolve_by)


def test_closed_by_hand_ends_a_silence_pause() -> None:
    """A paused (silenced) incident closed by hand is not paused any more."""
    after = ack.close_manually("dave")(incident(paused_at=T0), NOW).incident
    assert after is not None
    assert (after.state, after.paused_at) == ("resolved", None)


@pytest.mark.parametrize("current", [None, incident(), incident(kind="maint")])
def test_reopening_changes_nothing_unless_closed(current: Incident | None) -> None:
    assert not ack.reopen_manually("erin")(current, NOW).changed


def snapshot(status: str, starts: datetime) -> Notification:
    alert = AlertSnapshot(
        fingerprint="a1",
        status=status,  # type: ignore[arg-type]  # "firing" or "resolved" only
        labels={"alertname": "HighCPU", "service": "checkout"},
        annotations={},
        starts_at=starts,
        ends_at=None if status == "firing" else starts + timedelta(minutes=20),
        generator_url="",
    )
    return Notification(
        receiver="team",
        status=alert.status,
        alerts=(alert,),
        group_labels={"alertname": "HighCPU"},
        common_labels={},
        common_annotations={},
        external_url="",
        group_key="{}:{}",
        truncated_alerts=0,
    )


def test_closed_by_hand_stays_closed_until_an_alert_fires_anew() -> None:
    """The engine after a manual close: the same firing snapshot again changes nothing; a new
    ``startsAt`` reopens the incident."""
    closed = ack.close_manually("dave")(incident(), NOW).incident
    assert closed is not None
    later = NOW + timedelta(minutes=5)

    repeat = apply_notification(closed, snapshot("firing", T0), later, POLICY)
    anew = apply_notification(closed, snapshot("firing", later), later, POLICY)

    assert repeat.outcome == "unchanged"
    assert anew.outcome == "reopened"
    assert anew.incident is not None
    assert anew.incident.manual_hold is False


def test_reopened_by_hand_the_engine_treats_it_as_open() -> None:
    """After a human reopened it, the alerts resolving resolve it as an open incident's do."""
    closed = ack.close_manually("dave")(incident(), NOW).incident
    reopened = ack.reopen_manually("erin")(closed, NOW).incident
    assert reopened is not None

    decision = apply_notification(reopened, snapshot("resolved", T0), NOW, POLICY)

    assert decision.outcome == "resolved"
    assert decision.incident is not None
    assert decision.incident.resolution == "alerts"


# -- reported incidents --------------------------------------------------------------------


def report(*labels: str, title: str = "Checkout returns 500s") -> ack.Report:
    return ack.Report("acme/incidents", 12, title, "alice", frozenset({"incident", *labels}))


@pytest.mark.parametrize(
    ("labels", "priority", "rule"),
    [
        ((), Priority.P2, "reported issue (P2 unless labelled)"),
        (("priority-high",), Priority.P1, "reported issue labelled priority-high"),
        (("Priority-Low", "bug"), Priority.P3, "reported issue labelled Priority-Low"),
        (("priority-low", "priority-critical"), Priority.P0, "labelled priority-critical"),
    ],
)
def test_a_reported_issue_becomes_an_incident(
    labels: tuple[str, ...], priority: Priority, rule: str
) -> None:
    """Adopted with the priority of its priority label (the most urgent of several, compared
    case-insensitively), else P2; deadlines counted from now; a ``reported`` event."""
    decision = ack.report(report(*labels), PRIORITIES, POLICY)(None, NOW)
    adopted = decision.incident
    assert adopted is not None
    assert (decision.outcome, decision.is_new, decision.changed) == ("reported", True, True)
    assert (adopted.kind, adopted.state, adopted.priority) == ("incident", "open", priority)
    assert rule in adopted.priority_rule
    assert adopted.summary == "Checkout returns 500s"
    assert adopted.reported_issue == 12
    assert (adopted.opened_at, adopted.earliest_starts_at) == (NOW, NOW)
    assert adopted.respond_by == POLICY.respond_by(priority, NOW)
    assert adopted.resolve_by == POLICY.resolve_by(priority, NOW)
    [reported] = decision.events
    assert (reported.kind, reported.seq) == ("reported", 1)
    assert reported.data == {"who": "alice", "issue": 12, "priority": str(priority)}
    assert effects(decision) == [("github.sync", None)]


def test_a_reported_issue_is_adopted_once() -> None:
    """A redelivery, a poll or a second label find the incident already there."""
    first = ack.report(report(), PRIORITIES, POLICY)(None, NOW).incident
    assert not ack.report(report(), PRIORITIES, POLICY)(first, NOW).changed


def test_a_reported_issue_without_a_title_gets_one() -> None:
    """Whitespace is collapsed; an empty title still gives a summary."""
    adopted = ack.report(report(title="  \n "), PRIORITIES, POLICY)(None, NOW).incident
    assert adopted is not None
    assert adopted.summary == "Reported issue #12"


@pytest.mark.parametrize(
    ("labels", "body", "author", "expected"),
    [
        ({"incident"}, "Checkout is broken", "alice", True),
        ({"Incident", "bug"}, None, "alice", True),  # labels compare case-insensitively
        ({"bug"}, "Checkout is broken", "alice", False),  # not labelled incident
        ({"incident"}, "x\n<!-- incident-bridge:v1 kind=incident id=INC-001 key=k -->", "a", False),
        ({"incident"}, "Checkout is broken", "incident-bridge[bot]", False),  # the bridge's own
        ({"incident"}, "Checkout is broken", "Incident-Bridge[bot]", False),
        ({"incident"}, "Checkout is broken", None, False),
    ],
)
def test_which_issues_are_reports(
    labels: set[str], body: str | None, author: str | None, expected: bool
) -> None:
    """Only issues labelled ``incident``, without the bridge's marker, opened by someone other
    than the bridge, are reports."""
    assert ack.reportable(labels, body, author, "incident-bridge[bot]") is expected


def test_reported_identity_is_stable_per_issue() -> None:
    assert ack.reported_identity("acme/incidents", 12) == "reported:acme/incidents#12"


@pytest.mark.parametrize(
    ("author", "body", "own", "human"),
    [
        ("alice", "On it", "incident-bridge[bot]", True),
        ("incident-bridge[bot]", "Resolved", "incident-bridge[bot]", False),
        ("INCIDENT-BRIDGE[bot]", "Resolved", "incident-bridge[bot]", False),
        ("ops-bot", "✅ Resolved\n\n<!-- incident-bridge:event=INC-001.4 -->", "x", False),
        ("alice", "On it", None, True),  # no account (dry-run): every author is someone else
        ("", "On it", "incident-bridge[bot]", False),
    ],
)
def test_which_comments_are_a_humans(author: str, body: str, own: str | None, human: bool) -> None:
    """A comment is a human's when its author is not the bridge's account and it carries no
    marker of the bridge's."""
    assert ack.human_comment(author, body, own) is human


@pytest.mark.parametrize(
    ("author", "author_type", "human"),
    [
        ("github-actions[bot]", None, False),  # a welcome workflow: the [bot] login says it
        ("Welcome[BOT]", "User", False),
        ("greeter", "Bot", False),  # GitHub's type says it
        ("greeter", "bot", False),
        ("alice", "User", True),
        ("alice", None, True),
        ("robot-fan", "User", True),  # a person whose login merely mentions bots
    ],
)
def test_a_bots_comment_is_not_a_humans(author: str, author_type: str | None, human: bool) -> None:
    """A comment by a bot (a login ending in ``[bot]``, or GitHub's ``type: "Bot"``) is no
    human's, so a welcome bot's greeting seconds after the issue opens acknowledges nothing."""
    assert ack.human_comment(author, "Thanks!", "incident-bridge[bot]", author_type) is human


@pytest.mark.parametrize(
    ("login", "user_type", "person"),
    [
        ("bob", "User", True),
        ("bob", None, True),
        ("incident-bridge[bot]", None, False),  # the bridge's own account
        ("INCIDENT-BRIDGE[bot]", "Bot", False),
        ("github-actions[bot]", "Bot", False),
        ("dependabot[bot]", None, False),
        ("triage", "Bot", False),
        ("", None, False),
        (None, None, False),
    ],
)
def test_who_is_a_person(login: str | None, user_type: str | None, person: bool) -> None:
    """A person is neither the bridge's own account nor a bot: the one predicate every path
    (webhook, poller) asks before an assignment, label, comment, close or reopening counts."""
    assert ack.is_person(login, "incident-bridge[bot]", user_type) is person


# -- the status page's Identified ----------------------------------------------------------


def steps_of(current: Incident, now: datetime, **kwargs: datetime) -> list[tuple[str, datetime]]:
    return [(p.status, p.posted_at) for p in status_page.posts(current, now, WINDOW, **kwargs)]


def test_the_identified_label_moves_the_status_page_to_identified() -> None:
    """Labelled ``identified``: the page says Identified from that moment (the label's step
    acknowledges then)."""
    labelled = ack.identify("carol")(incident(), NOW).incident
    assert labelled is not None
    assert steps_of(labelled, NOW) == [("Investigating", T0), ("Identified", NOW)]


def test_the_identified_event_counts_even_without_an_acknowledgement() -> None:
    """The timeline's ``identified`` event is Identified by itself; the earlier of it and the
    acknowledgement is when; one after the alerts resolved adds nothing."""
    later = NOW + timedelta(minutes=5)
    open_one = incident()
    acked = incident(acknowledged_at=later)
    gone = resolved()

    assert steps_of(open_one, later, labelled_at=NOW)[-1] == ("Identified", NOW)
    assert steps_of(acked, later, labelled_at=NOW)[-1] == ("Identified", NOW)
    assert steps_of(incident(acknowledged_at=NOW), later, labelled_at=later)[-1] == (
        "Identified",
        NOW,
    )
    assert [s for s, _ in steps_of(gone, later, labelled_at=NOW)] == [
        "Investigating",
        "Monitoring",
    ]


def test_the_same_episode_resumed_keeps_its_identified_and_start() -> None:
    """Alerts of the same episode firing again (``episode: same``) start no new episode: what
    people did before still counts, an ``identified`` label is not recorded twice."""
    events = [
        TimelineEvent(1, T0, "opened", "opened"),
        TimelineEvent(2, T0 + timedelta(minutes=1), "identified", "identified"),
        TimelineEvent(3, T0 + timedelta(minutes=9), "reopened", "again", {"episode": "same"}),
    ]
    assert ack.identified_in_episode(events)
    assert ack.episode_started(incident(), events) == incident().opened_at
    events.append(TimelineEvent(4, T0 + timedelta(hours=2), "reopened", "new"))
    assert not ack.identified_in_episode(events)
    assert ack.episode_started(incident(), events) == T0 + timedelta(hours=2)
