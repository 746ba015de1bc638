"""The SLA timer step (bridge/sla.py): missed deadlines, escalation rounds and their channels.

Pure: every test builds an incident, picks "now" and reads the decision. The bundled rules give
P0 5m/1h (SMS at any hour, every 5m, 3 rounds), P1 15m/4h (SMS in business hours, every 15m,
3 rounds), P2 2h/24h (email, every 2h, 2 rounds), P3 next business day/14d (email, 1 round).
Business hours: the default calendar, UTC Monday to Friday 09:00-17:00.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge import acknowledge as ack
from bridge import sla
from bridge.business_hours import BusinessHours
from bridge.engine import Decision, Policy, apply_notification
from bridge.model import (
    AlertSnapshot,
    AlertState,
    Classification,
    EffectSpec,
    Incident,
    IncidentKind,
    Notification,
    Priority,
    TimelineEvent,
)
from bridge.notify.policy import Audience, Recipient, notifications
from bridge.rules import Rules, RulesError, bundled_directory

RULES = Rules.bundled()
HOURS = BusinessHours()
ON_CALL = sla.Contact("On-call", email=True, sms=True)

THURSDAY_NIGHT = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
THURSDAY_MORNING = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SATURDAY_MORNING = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def policy(contacts: tuple[sla.Contact, ...] = (ON_CALL,), rules: Rules = RULES) -> sla.SlaPolicy:
    """The policy ``bridge.app.build_sla_policy`` builds from these rules."""
    return sla.SlaPolicy(
        escalation={
            p: sla.Escalation(
                page=rules.policy(p).page,
                every=rules.policy(p).escalation_interval,
                rounds=rules.policy(p).escalate_max,
            )
            for p in Priority
        },
        in_business_hours=HOURS.is_open,
        contacts=contacts,
    )


def incident(
    priority: Priority, opened_at: datetime = THURSDAY_NIGHT, kind: IncidentKind = "incident"
) -> Incident:
    """An open, unacknowledged incident with the bundled deadlines of ``priority``."""
    rule = RULES.policy(priority)
    deadlines = kind == "incident"
    respond = rule.respond if isinstance(rule.respond, timedelta) else None
    return Incident(
        key="k",
        identity="i",
        kind=kind,
        receiver="team",
        group_key="{}:{}",
        group_labels={},
        state="open",
        priority=priority,
        priority_rule="test",
        summary="Checkout is down",
        opened_at=opened_at,
        earliest_starts_at=opened_at,
        respond_by=(
            (opened_at + respond if respond else HOURS.next_business_day_end(opened_at))
            if deadlines
            else None
        ),
        resolve_by=opened_at + rule.resolve if deadlines else None,  # type: ignore[operator]
        event_seq=3,
        id=7,
        number=42,
    )


def fire(current: Incident, now: datetime, the_policy: sla.SlaPolicy | None = None) -> Decision:
    return sla.step(current, now, the_policy or policy())


def kinds(decision: Decision) -> list[str]:
    return [event.kind for event in decision.events]


# ---------------------------------------------------------------------------------------------
# Nothing due


def test_nothing_due_before_the_response_deadline() -> None:
    """A second before respond_by the step changes nothing and returns the same object."""
    inc = incident(Priority.P0)
    assert inc.respond_by is not None
    decision = fire(inc, inc.respond_by - timedelta(seconds=1))
    assert decision.outcome == "unchanged"
    assert not decision.changed
    assert decision.incident is inc
    assert inc.due_at == inc.respond_by


@pytest.mark.parametrize(
    ("kind", "state"),
    [("maint", "open"), ("storm", "open"), ("incident", "resolved")],
)
def test_no_deadlines_for_maintenance_storms_and_resolved(kind: IncidentKind, state: str) -> None:
    """Maintenance requests and storm roll-ups have no deadlines; a resolved incident's
    deadlines no longer run."""
    inc = incident(Priority.P0, kind=kind)
    inc.state = state  # type: ignore[assignment]
    if kind == "incident":
        inc.resolved_at = THURSDAY_NIGHT + timedelta(minutes=1)
    later = THURSDAY_NIGHT + timedelta(days=30)
    assert not fire(inc, later).changed
    assert inc.due_at is None


# ---------------------------------------------------------------------------------------------
# The response deadline and the first escalation round


def test_response_breach_comments_labels_and_pages() -> None:
    """An unacknowledged P0 at its deadline: the breach recorded, a comment for it, the issue
    synced (the sla-breached label comes from the breach), and escalation round 1 by SMS."""
    inc = incident(Priority.P0)
    now = THURSDAY_NIGHT + timedelta(minutes=5)
    decision = fire(inc, now)

    assert decision.changed
    assert decision.outcome == "timer"
    after = decision.incident
    assert after is not None
    assert after is not inc
    assert inc.response_breached_at is None
    assert inc.event_seq == 3
    assert after.response_breached_at == now
    assert after.escalations == 1
    assert after.next_escalation_at == now + timedelta(minutes=5)
    assert after.due_at == now + timedelta(minutes=5)

    breach, escalated = decision.events
    assert (breach.seq, escalated.seq) == (4, 5)
    assert after.event_seq == 5
    assert breach.kind == "sla_breached"
    assert breach.data == {"which": "response", "deadline": now.isoformat()}
    assert breach.text == (
        "Response deadline missed: not acknowledged by 2026-11-26 21:05 UTC (P0);"
        " paging On-call by SMS"
    )
    assert escalated.kind == "escalated"
    assert escalated.data == {"round": 1, "channels": ["sms"]}
    assert escalated.text == (
        "Escalation 1 of 3: paged On-call by SMS; next at 2026-11-26 21:10 UTC unless acknowledged"
    )
    assert decision.effects == [
        EffectSpec("github.comment", event_seq=breach.seq),
        EffectSpec("github.sync"),
    ]


@pytest.mark.parametrize(
    ("priority", "opened_at", "channels"),
    [
        (Priority.P0, THURSDAY_NIGHT, ["sms"]),
        (Priority.P0, SATURDAY_MORNING, ["sms"]),
        (Priority.P0, THURSDAY_MORNING, ["sms"]),
        (Priority.P1, THURSDAY_MORNING, ["sms"]),
        (Priority.P1, THURSDAY_NIGHT, ["email"]),
        (Priority.P1, SATURDAY_MORNING, ["email"]),
        (Priority.P2, THURSDAY_MORNING, ["email"]),
        (Priority.P2, THURSDAY_NIGHT, ["email"]),
        (Priority.P3, THURSDAY_MORNING, ["email"]),
    ],
)
def test_first_round_channels(priority: Priority, opened_at: datetime, channels: list[str]) -> None:
    """SMS for P0 at any hour and for P1 in business hours; email otherwise (and for P2/P3).
    The hour that counts is the breach's, not the opening's."""
    inc = incident(priority, opened_at)
    assert inc.respond_by is not None
    if priority is Priority.P3:  # next business day: judge at a business-hours breach
        inc.respond_by = THURSDAY_MORNING + timedelta(hours=1)
    decision = fire(inc, max(inc.respond_by, opened_at))
    escalated = decision.events[-1]
    assert escalated.kind == "escalated"
    assert escalated.data["channels"] == channels


def test_p1_paged_by_sms_when_the_breach_falls_in_business_hours() -> None:
    """A P1 opened at 08:50 breaches at 09:05, inside business hours: SMS."""
    opened = datetime(2026, 11, 26, 8, 50, tzinfo=UTC)
    decision = fire(incident(Priority.P1, opened), opened + timedelta(minutes=15))
    assert decision.events[-1].data["channels"] == ["sms"]


@pytest.mark.parametrize(
    ("contacts", "paging"),
    [
        ((ON_CALL,), "paging On-call by SMS"),
        ((sla.Contact("On-call", email=True, sms=False),), "paging On-call by email"),
        (
            (ON_CALL, sla.Contact("Ops lead", email=True, sms=False)),
            "paging On-call by SMS, Ops lead by email",
        ),
        (
            (sla.Contact("On-call", email=False, sms=False),),
            "nobody to page: no escalation contact is reachable (see `escalation`)",
        ),
        ((), "nobody to page: no escalation contact is reachable (see `escalation`)"),
    ],
)
def test_breach_text_names_who_is_paged(contacts: tuple[sla.Contact, ...], paging: str) -> None:
    """The comment says who is paged and how — by name, never an address or number — falling
    to email for a contact without SMS, as the notify policy does."""
    decision = fire(incident(Priority.P0), THURSDAY_NIGHT + timedelta(minutes=5), policy(contacts))
    assert decision.events[0].text.endswith(f"(P0); {paging}")
    assert decision.events[1].kind == "escalated"  # the round is recorded all the same


# ---------------------------------------------------------------------------------------------
# Repeats


def run_timers(inc: Incident, until: datetime, the_policy: sla.SlaPolicy) -> list[Decision]:
    """Fire the step whenever ``due_at`` comes, as the scheduler does, until ``until``."""
    decisions = []
    while inc.due_at is not None and inc.due_at <= until:
        now = inc.due_at
        decision = sla.step(inc, now, the_policy)
        assert decision.changed, "due_at came but the step had nothing to do"
        assert decision.incident is not None
        inc = decision.incident
        # The incident's own due_at agrees with the step: nothing left due at this moment.
        assert inc.due_at is None or inc.due_at > now
        decisions.append(decision)
    return decisions


def test_rounds_repeat_at_the_interval_until_the_max() -> None:
    """An unacknowledged P0 is paged at +5, +10 and +15 minutes, then no more; the resolution
    deadline still comes at +1h. Later rounds only sync the issue (its timeline), no comment."""
    inc = incident(Priority.P0)
    decisions = run_timers(inc, THURSDAY_NIGHT + timedelta(days=1), policy())

    rounds = [
        (d.events[-1].at - THURSDAY_NIGHT, d.events[-1].data["round"])
        for d in decisions
        if d.events[-1].kind == "escalated"
    ]
    assert rounds == [(timedelta(minutes=m), n) for m, n in ((5, 1), (10, 2), (15, 3))]
    assert [kinds(d) for d in decisions] == [
        ["sla_breached", "escalated"],
        ["escalated"],
        ["escalated"],
        ["sla_breached"],
    ]
    assert decisions[1].effects == [EffectSpec("github.sync")]
    assert (
        decisions[2].events[0].text == "Escalation 3 of 3: paged On-call by SMS; no further pages"
    )
    last = decisions[-1].incident
    assert last is not None
    assert last.escalations == 3
    assert last.next_escalation_at is None
    assert last.resolution_breached_at == THURSDAY_NIGHT + timedelta(hours=1)
    assert last.due_at is None


def test_each_round_pages_on_the_channel_of_its_own_hour() -> None:
    """A P1 breached at 16:45 is texted; its rounds at 17:00 and 17:15 are emailed."""
    opened = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    decisions = run_timers(incident(Priority.P1, opened), opened + timedelta(hours=1), policy())
    channels = [d.events[-1].data["channels"] for d in decisions]
    assert channels == [["sms"], ["email"], ["email"]]


def test_a_late_scheduler_pages_once_and_counts_the_interval_from_now() -> None:
    """Fired late (the bridge was down), a round pages once and the next one is an interval
    after it — no burst of missed rounds."""
    inc = incident(Priority.P0)
    first = fire(inc, THURSDAY_NIGHT + timedelta(minutes=5)).incident
    assert first is not None
    late = THURSDAY_NIGHT + timedelta(minutes=40)
    decision = fire(first, late)
    assert kinds(decision) == ["escalated"]
    assert decision.incident is not None
    assert decision.incident.escalations == 2
    assert decision.incident.next_escalation_at == late + timedelta(minutes=5)


def test_escalate_max_zero_comments_and_pages_nobody() -> None:
    """``escalate_max: 0``: the breach is commented and labelled, nobody is paged."""
    the_policy = policy()
    quiet = dict(the_policy.escalation)
    quiet[Priority.P2] = sla.Escalation(page="never", every=timedelta(hours=2), rounds=0)
    the_policy = sla.SlaPolicy(quiet, the_policy.in_business_hours, the_policy.contacts)
    decision = fire(incident(Priority.P2), THURSDAY_NIGHT + timedelta(hours=2), the_policy)
    assert kinds(decision) == ["sla_breached"]
    assert decision.events[0].text.endswith("(P2); no escalation for P2 (escalate_max: 0)")
    assert decision.incident is not None
    assert decision.incident.next_escalation_at is None
    assert decision.incident.escalations == 0


def test_a_round_beyond_the_max_only_clears_the_timer() -> None:
    """Rounds already spent (the rules lowered escalate_max since): nothing is paged and the
    timer is cleared, so the scheduler does not find it due again."""
    inc = incident(Priority.P3)
    inc.response_breached_at = THURSDAY_NIGHT
    inc.escalations = 1
    inc.next_escalation_at = THURSDAY_NIGHT + timedelta(hours=1)
    decision = fire(inc, THURSDAY_NIGHT + timedelta(hours=1))
    assert decision.changed
    assert decision.events == []
    assert decision.effects == []
    assert decision.incident is not None
    assert decision.incident.next_escalation_at is None


# ---------------------------------------------------------------------------------------------
# What stops the timers


def test_acknowledgement_stops_the_rounds() -> None:
    """Acknowledged after round 1: no round 2 — neither due nor fired if asked anyway."""
    first = fire(incident(Priority.P0), THURSDAY_NIGHT + timedelta(minutes=6)).incident
    assert first is not None
    acked = copy.copy(first)
    acked.acknowledged_at = THURSDAY_NIGHT + timedelta(minutes=7)
    acked.acknowledged_by = "alice"
    assert acked.due_at == acked.resolve_by  # only the resolution deadline is left
    assert not fire(acked, THURSDAY_NIGHT + timedelta(minutes=11)).changed


def test_acknowledged_before_the_deadline_never_breaches_the_response() -> None:
    """Acknowledged in time: no response breach, but the resolution deadline still counts."""
    inc = incident(Priority.P0)
    inc.acknowledged_at = THURSDAY_NIGHT + timedelta(minutes=2)
    assert not fire(inc, THURSDAY_NIGHT + timedelta(minutes=30)).changed
    decision = fire(inc, THURSDAY_NIGHT + timedelta(hours=1))
    assert kinds(decision) == ["sla_breached"]
    assert decision.events[0].data["which"] == "resolution"


def test_paused_deadlines_do_not_fire() -> None:
    """Every alert silenced (paused_at): no breach, no round, no resolution breach; due_at
    has no SLA timer, only a flapping quiet period if there is one."""
    inc = incident(Priority.P0)
    inc.paused_at = THURSDAY_NIGHT + timedelta(minutes=1)
    assert not fire(inc, THURSDAY_NIGHT + timedelta(days=1)).changed
    assert inc.due_at is None
    inc.quiet_until = THURSDAY_NIGHT + timedelta(minutes=3)
    assert inc.due_at == inc.quiet_until


# ---------------------------------------------------------------------------------------------
# The resolution deadline


def test_resolution_breach_is_recorded_labelled_and_commented() -> None:
    """Still open at resolve_by: recorded, a comment and a sync (the label)."""
    inc = incident(Priority.P2)
    inc.acknowledged_at = THURSDAY_NIGHT + timedelta(minutes=30)
    now = THURSDAY_NIGHT + timedelta(hours=24)
    decision = fire(inc, now)
    [event] = decision.events
    assert event.kind == "sla_breached"
    assert event.data == {"which": "resolution", "deadline": now.isoformat()}
    assert event.text == "Resolution deadline missed: still open at 2026-11-27 21:00 UTC (P2)"
    assert decision.effects == [
        EffectSpec("github.comment", event_seq=event.seq),
        EffectSpec("github.sync"),
    ]
    assert decision.incident is not None
    assert decision.incident.resolution_breached_at == now
    assert decision.incident.due_at is None


def test_both_deadlines_missed_at_once() -> None:
    """Fired after both deadlines (the bridge was down): both breaches, one round, two
    comments and one sync."""
    decision = fire(incident(Priority.P0), THURSDAY_NIGHT + timedelta(hours=2))
    assert kinds(decision) == ["sla_breached", "escalated", "sla_breached"]
    assert [e.kind for e in decision.effects] == ["github.comment", "github.comment", "github.sync"]


# ---------------------------------------------------------------------------------------------
# A reopening is a new episode


def _notification(status: str, starts_at: datetime) -> Notification:
    alert = AlertSnapshot(
        fingerprint="f1",
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "ServiceUnavailable"},
        annotations={},
        starts_at=starts_at,
        ends_at=None if status == "firing" else starts_at + timedelta(minutes=1),
        generator_url="",
    )
    return Notification(
        receiver="team",
        status=status,  # type: ignore[arg-type]
        alerts=(alert,),
        group_labels={},
        common_labels={},
        common_annotations={},
        external_url="",
        group_key="{}:{}",
        truncated_alerts=0,
    )


def test_reopening_starts_a_new_episode_without_breach_or_rounds() -> None:
    """Breached, paged three times, acknowledged, resolved — then the alert fires anew: the
    reopened incident has no breach, no round, no acknowledgement, and its new deadline."""
    engine_policy = Policy(
        classify=lambda labels, annotations: Classification(Priority.P0, "test"),
        respond_by=lambda p, start: start + timedelta(minutes=5),
        resolve_by=lambda p, start: start + timedelta(hours=1),
    )
    opened = apply_notification(None, _notification("firing", THURSDAY_NIGHT), THURSDAY_NIGHT,
                                engine_policy).incident  # fmt: skip
    assert opened is not None
    opened.id, opened.number = 1, 1
    [*_, last] = run_timers(opened, THURSDAY_NIGHT + timedelta(minutes=30), policy())
    paged = last.incident
    assert paged is not None
    assert paged.escalations == 3
    paged.acknowledged_at, paged.acknowledged_by = THURSDAY_NIGHT, "alice"
    paged.acknowledged_via = "comment"
    resolved_at = THURSDAY_NIGHT + timedelta(minutes=40)
    resolved = apply_notification(
        paged, _notification("resolved", THURSDAY_NIGHT), resolved_at, engine_policy
    ).incident
    assert resolved is not None
    assert resolved.state == "resolved"
    again = resolved_at + timedelta(minutes=10)
    reopened = apply_notification(
        resolved, _notification("firing", again), again, engine_policy
    ).incident

    assert reopened is not None
    assert reopened.state == "open"
    assert reopened.response_breached_at is None
    assert reopened.resolution_breached_at is None
    assert reopened.escalations == 0
    assert reopened.next_escalation_at is None
    assert (reopened.acknowledged_at, reopened.acknowledged_by, reopened.acknowledged_via) == (
        None,
        None,
        None,
    )
    assert reopened.due_at == again + timedelta(minutes=5)
    assert kinds(fire(reopened, again + timedelta(minutes=5))) == ["sla_breached", "escalated"]


# ---------------------------------------------------------------------------------------------
# The rules: escalate_every and escalate_max in priorities.yaml


def test_bundled_escalation_rules() -> None:
    """The bundled pace: the guide's response target again, fewer rounds as urgency falls."""
    got = {p: (RULES.policy(p).escalation_interval, RULES.policy(p).escalate_max) for p in Priority}
    assert got == {
        Priority.P0: (timedelta(minutes=5), 3),
        Priority.P1: (timedelta(minutes=15), 3),
        Priority.P2: (timedelta(hours=2), 2),
        Priority.P3: (timedelta(days=1), 1),
    }


def _rules_with(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(bundled_directory(), directory)
    path = directory / "priorities.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= count
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return directory


def test_escalation_keys_default_to_the_respond_target(tmp_path: Path) -> None:
    """Without escalate_every a round repeats at the respond target (a day for
    next_business_day); without escalate_max there are 3 rounds."""
    directory = tmp_path / "plain"
    shutil.copytree(bundled_directory(), directory)
    path = directory / "priorities.yaml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.lstrip().startswith("escalate_")))
    rules = Rules.load(directory)
    got = {p: (rules.policy(p).escalation_interval, rules.policy(p).escalate_max) for p in Priority}
    assert got == {
        Priority.P0: (timedelta(minutes=5), 3),
        Priority.P1: (timedelta(minutes=15), 3),
        Priority.P2: (timedelta(hours=2), 3),
        Priority.P3: (timedelta(days=1), 3),
    }


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("escalate_every: 5m", "escalate_every: soon",
         "priorities.P0.escalate_every: expected a duration such as 5m, got 'soon'"),
        ("escalate_every: 5m", "escalate_every: 0s",
         "priorities.P0.escalate_every: must be longer than zero"),
        ("escalate_every: 5m", "escalate_every: 300",
         "priorities.P0.escalate_every: expected a duration such as 5m"),
        ("escalate_max: 3", "escalate_max: -1",
         "priorities.P0.escalate_max: Input should be greater than or equal to 0"),
        ("escalate_max: 3", "escalate_max: three",
         "priorities.P0.escalate_max: Input should be a valid integer"),
    ],
)  # fmt: skip
def test_bad_escalation_keys(tmp_path: Path, old: str, new: str, message: str) -> None:
    """Bad escalation keys are reported with file, line and key."""
    directory = _rules_with(tmp_path, old, new)
    with pytest.raises(RulesError) as info:
        Rules.load(directory)
    [problem] = info.value.problems
    assert problem.startswith(f"{directory}/priorities.yaml:")
    assert problem.endswith(message)


# ---------------------------------------------------------------------------------------------
# The breach comment and the notify policy agree on who is paged how


@pytest.mark.parametrize("channels", [("sms",), ("email",)])
@pytest.mark.parametrize("email_configured", [True, False])
@pytest.mark.parametrize("sms_configured", [True, False])
@pytest.mark.parametrize(
    ("address", "phone"), [("oncall@example.com", "+15551230009"), ("oncall@example.com", None),
                           (None, "+15551230009")]
)  # fmt: skip
def test_contact_reach_matches_the_notify_policy(
    channels: tuple[sla.Channel, ...],
    email_configured: bool,
    sms_configured: bool,
    address: str | None,
    phone: str | None,
) -> None:
    """What the comment says ("paging On-call by SMS") is what the notify policy sends, for
    every channel configured or not and every contact with or without an address or a phone."""
    person = Recipient("On-call", address, phone)
    audience = Audience(
        slack=False,
        email=email_configured,
        sms=sms_configured,
        stakeholders=(),
        channels=dict.fromkeys(Priority, frozenset[str]()),
        escalation=(person,),
    )
    inc = incident(Priority.P0)
    event = TimelineEvent(4, THURSDAY_NIGHT, "escalated", "", {"round": 1, "channels": channels})
    sent = notifications(Decision("timer", inc, changed=True, events=[event]), audience)
    contact = sla.Contact(
        "On-call",
        email=email_configured and address is not None,
        sms=sms_configured and bool(phone),
    )
    assert [e.kind.removeprefix("notify.") for e in sent] == contact.reached_by(channels)


# ---------------------------------------------------------------------------------------------
# A priority rise, a silence of an earlier episode, a flapping incident's quiet period


def _raising_policy(priority: dict[str, Priority]) -> Policy:
    """The engine's policy with the bundled deadlines; the alert's priority read from a dict
    the test changes between notifications."""
    return Policy(
        classify=lambda labels, annotations: Classification(priority["now"], "test"),
        respond_by=lambda p, start: start + RULES.policy(p).respond,  # type: ignore[operator]
        resolve_by=lambda p, start: start + RULES.policy(p).resolve,  # type: ignore[operator]
    )


def test_a_rise_after_the_response_breach_pages_at_once_at_the_new_pace() -> None:
    """A P2 nobody acknowledged breaches at +2h and pages by email, next round in 2h; at
    +2h10m it rises to P0: the next round is due at once, by SMS, then every 5 minutes."""
    level = {"now": Priority.P2}
    engine_policy = _raising_policy(level)
    opened = apply_notification(
        None, _notification("firing", THURSDAY_NIGHT), THURSDAY_NIGHT, engine_policy
    ).incident
    assert opened is not None
    opened.id, opened.number = 1, 1
    [breach] = run_timers(opened, THURSDAY_NIGHT + timedelta(hours=2), policy())
    assert kinds(breach) == ["sla_breached", "escalated"]
    late = breach.incident
    assert late is not None
    assert late.next_escalation_at == THURSDAY_NIGHT + timedelta(hours=4)

    level["now"] = Priority.P0
    rise_at = THURSDAY_NIGHT + timedelta(hours=2, minutes=10)
    same_episode = _relabelled(_notification("firing", THURSDAY_NIGHT))
    raised = apply_notification(late, same_episode, rise_at, engine_policy).incident
    assert raised is not None
    assert raised.priority == Priority.P0
    assert raised.due_at == rise_at
    round_two = fire(raised, rise_at)
    assert kinds(round_two) == ["escalated"]
    assert round_two.events[0].data["channels"] == ["sms"]
    assert round_two.incident is not None
    assert round_two.incident.next_escalation_at == rise_at + timedelta(minutes=5)


def _relabelled(notification: Notification) -> Notification:
    """The same alert with a changed label, so the engine classifies it again."""
    (alert,) = notification.alerts
    changed = AlertSnapshot(
        fingerprint=alert.fingerprint,
        status=alert.status,
        labels={**alert.labels, "severity": "critical"},
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
    )
    return Notification(
        receiver=notification.receiver,
        status=notification.status,
        alerts=(changed,),
        group_labels=notification.group_labels,
        common_labels=notification.common_labels,
        common_annotations=notification.common_annotations,
        external_url=notification.external_url,
        group_key=notification.group_key,
        truncated_alerts=notification.truncated_alerts,
    )


def test_a_reopened_episode_is_not_paused_by_the_last_ones_silence() -> None:
    """Silenced (paused), then resolved, then firing anew: the new episode's deadlines run."""
    level = {"now": Priority.P0}
    engine_policy = _raising_policy(level)
    opened = apply_notification(
        None, _notification("firing", THURSDAY_NIGHT), THURSDAY_NIGHT, engine_policy
    ).incident
    assert opened is not None
    opened.paused_at = THURSDAY_NIGHT + timedelta(minutes=1)
    resolved_at = THURSDAY_NIGHT + timedelta(minutes=20)
    resolved = apply_notification(
        opened, _notification("resolved", THURSDAY_NIGHT), resolved_at, engine_policy
    ).incident
    assert resolved is not None
    assert resolved.state == "resolved"
    again = resolved_at + timedelta(minutes=5)
    reopened = apply_notification(
        resolved, _notification("firing", again), again, engine_policy
    ).incident
    assert reopened is not None
    assert reopened.state == "open"
    assert reopened.paused_at is None
    assert reopened.due_at == again + timedelta(minutes=5)


def test_a_flapping_incident_whose_alerts_ended_in_time_does_not_breach_while_quiet() -> None:
    """Waiting out its quiet period, nothing firing, every alert ended before resolve_by: it
    will resolve as of that end, so the wait past resolve_by is no breach and no timer."""
    inc = incident(Priority.P0)
    inc.acknowledged_at, inc.acknowledged_by = THURSDAY_NIGHT, "alice"
    assert inc.resolve_by is not None
    ended = inc.resolve_by - timedelta(minutes=10)
    inc.alerts = {
        "f1": _state("f1", "resolved", THURSDAY_NIGHT, ended),
    }
    inc.flapping, inc.quiet_until = True, ended + timedelta(hours=1)
    assert inc.due_at == inc.quiet_until
    assert kinds(fire(inc, inc.resolve_by + timedelta(minutes=1))) == []

    inc.alerts = {"f1": _state("f1", "resolved", THURSDAY_NIGHT, inc.resolve_by + timedelta(1))}
    assert inc.due_at == inc.resolve_by  # it ended too late: the breach stands
    assert kinds(fire(inc, inc.resolve_by)) == ["sla_breached"]


def test_a_flapping_incident_whose_alerts_ended_in_time_is_not_paged_while_quiet() -> None:
    """Unacknowledged, waiting out its quiet period, every alert ended before respond_by: it
    will resolve as of that end, so the response deadline is not missed and nobody is paged
    (it would never have paged but for the flapping wait); ended too late, it is."""
    inc = incident(Priority.P0)
    assert inc.respond_by is not None
    ended = inc.respond_by - timedelta(minutes=2)
    inc.alerts = {"f1": _state("f1", "resolved", THURSDAY_NIGHT, ended)}
    inc.flapping, inc.quiet_until = True, ended + timedelta(hours=1)
    assert inc.due_at == inc.quiet_until
    assert kinds(fire(inc, inc.respond_by + timedelta(minutes=1))) == []

    # Breached before the alerts ended (a round is due): the rounds stop once all ended.
    inc.response_breached_at = inc.respond_by
    inc.next_escalation_at = ended + timedelta(minutes=1)
    assert inc.due_at == inc.quiet_until
    assert kinds(fire(inc, inc.next_escalation_at)) == []

    inc.response_breached_at, inc.next_escalation_at = None, None
    inc.alerts = {"f1": _state("f1", "resolved", THURSDAY_NIGHT, inc.respond_by + timedelta(1))}
    assert inc.due_at == inc.respond_by  # it ended too late: the breach stands
    assert kinds(fire(inc, inc.respond_by))[0] == "sla_breached"


def _state(fingerprint: str, status: str, starts: datetime, ends: datetime | None) -> AlertState:
    return AlertState(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        labels={"alertname": "ServiceUnavailable"},
        annotations={},
        starts_at=starts,
        ends_at=ends,
        generator_url="",
        priority=Priority.P0,
        rule="test",
        updated_at=starts,
    )


def test_the_same_episode_firing_again_is_not_paged_anew() -> None:
    """A P0 acknowledged by alice, resolved by absence (a peer answered an empty group list),
    then the same alert back with its same startsAt a minute later: still alice's, its
    deadlines where they were — no response timer, no page."""
    engine_policy = _raising_policy({"now": Priority.P0})
    opened = apply_notification(
        None, _notification("firing", THURSDAY_NIGHT), THURSDAY_NIGHT, engine_policy
    ).incident
    assert opened is not None
    opened.acknowledged_at, opened.acknowledged_by = THURSDAY_NIGHT, "alice"
    gone_at = THURSDAY_NIGHT + timedelta(minutes=2)
    other = AlertSnapshot("f2", "resolved", {"alertname": "Other"}, {}, THURSDAY_NIGHT, gone_at, "")
    without_f1 = dataclasses.replace(_notification("resolved", THURSDAY_NIGHT), alerts=(other,))
    gone = apply_notification(opened, without_f1, gone_at, engine_policy).incident
    assert gone is not None
    assert gone.state == "resolved"
    assert gone.alerts["f1"].resolved_by_absence
    back_at = gone_at + timedelta(minutes=1)
    back = apply_notification(gone, _notification("firing", THURSDAY_NIGHT), back_at, engine_policy)
    assert back.incident is not None
    assert back.incident.state == "open"
    assert back.incident.acknowledged_by == "alice"
    assert back.incident.respond_by == opened.respond_by
    assert back.incident.due_at == opened.resolve_by
    assert not sla.step(back.incident, back_at + timedelta(minutes=10), policy()).changed


def test_an_unacknowledged_incident_reopened_by_hand_does_not_page_at_once() -> None:
    """An unacknowledged P0 resolved in time and reopened by hand hours later: no instant
    response breach or page (the person who reopened it acknowledged it), and the resolution
    deadline moved by the time it spent resolved."""
    inc = incident(Priority.P0)
    inc.state, inc.resolution = "resolved", "alerts"
    inc.resolved_at = THURSDAY_NIGHT + timedelta(minutes=3)
    inc.paused_at = THURSDAY_NIGHT + timedelta(minutes=1)  # stored before resolutions cleared it
    later = THURSDAY_NIGHT + timedelta(hours=3, minutes=3)
    reopened = ack.reopen_manually("erin")(inc, later).incident
    assert reopened is not None
    assert reopened.acknowledged_by == "erin"
    assert inc.resolve_by is not None
    assert reopened.due_at == inc.resolve_by + timedelta(hours=3)
    assert not sla.step(reopened, later, policy()).changed
