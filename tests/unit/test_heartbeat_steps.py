"""The dead man's switch's two steps, pure: the pipeline-down incident opened, left alone,
reopened or made anew for an outage, and resolved when the heartbeat returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge.engine import Decision, Policy
from bridge.heartbeat import RULE, outage_step, return_step
from bridge.model import Classification, Incident, Priority

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    raise AssertionError("the heartbeat incident is P0 without classifying anything")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=5 * (p.rank + 1)),
    resolve_by=lambda p, t: t + timedelta(hours=p.rank + 1),
    reopen_window=timedelta(hours=24),
)


def outage(current: Incident | None, last_seen: datetime, now: datetime) -> Decision:
    decision = outage_step("Watchdog", TIMEOUT, last_seen, POLICY)(current, now)
    if decision.is_new and decision.incident is not None:
        decision.incident.id, decision.incident.number = 1, 1
    return decision


def opened(last_seen: datetime = T0, now: datetime = T0 + timedelta(minutes=11)) -> Incident:
    incident = outage(None, last_seen, now).incident
    assert incident is not None
    return incident


def test_an_outage_opens_a_p0_incident_with_its_deadlines() -> None:
    """P0 by the heartbeat rule, the summary naming the alert and the timeout, the outage's
    start as the earliest start, deadlines from the policy, an ``opened`` event and a sync."""
    now = T0 + timedelta(minutes=11, seconds=1)
    decision = outage(None, T0, now)
    assert (decision.outcome, decision.is_new, decision.changed) == ("opened", True, True)
    incident = decision.incident
    assert incident is not None
    assert (incident.kind, incident.state, incident.priority) == ("incident", "open", Priority.P0)
    assert incident.priority_rule == RULE
    assert incident.summary == "Alerting pipeline is down: no Watchdog for 10m"
    assert (incident.opened_at, incident.earliest_starts_at) == (now, T0)
    assert incident.respond_by == now + timedelta(minutes=5)
    assert incident.resolve_by == T0 + timedelta(hours=1)
    assert incident.alerts == {}  # nothing in Alertmanager stands for it
    assert "since 2026-11-26 21:00:00 UTC" in incident.common_annotations["description"]
    assert [e.kind for e in decision.events] == ["opened"]
    assert [e.kind for e in decision.effects] == ["github.sync"]


def test_an_outage_already_open_changes_nothing() -> None:
    """Every later pass (every replica) meets the open incident: no second page."""
    incident = opened()
    for last_seen in (T0, T0 - timedelta(minutes=5)):
        decision = outage(incident, last_seen, T0 + timedelta(minutes=30))
        assert (decision.outcome, decision.changed) == ("unchanged", False)


def closed(incident: Incident, at: datetime, resolution: str) -> Incident:
    return replace(
        incident,
        state="resolved",
        resolution=resolution,
        resolved_at=at,
        manual_hold=resolution == "manual",
        acknowledged_at=at - timedelta(minutes=1),
        acknowledged_by="alice",
        response_breached_at=at - timedelta(minutes=2),
        escalations=1,
    )


def test_an_outage_closed_by_hand_stays_closed() -> None:
    """People closed the issue while the heartbeat is still missing: the same outage does not
    reopen it, however often the switch looks."""
    incident = closed(opened(), T0 + timedelta(minutes=20), "manual")
    decision = outage(incident, T0, T0 + timedelta(minutes=30))
    assert (decision.outcome, decision.changed) == ("unchanged", False)


@pytest.mark.parametrize("resolution", ["heartbeat", "manual"])
def test_a_new_outage_within_the_reopen_window_reopens(resolution: str) -> None:
    """After the heartbeat's return (or a close by hand), a new outage reopens the same
    incident like any incident: unacknowledged, fresh deadlines, no breach, a comment."""
    incident = closed(opened(), T0 + timedelta(minutes=20), resolution)
    later = T0 + timedelta(hours=3)
    now = later + timedelta(minutes=11, seconds=1)
    decision = outage(incident, later, now)
    assert decision.outcome == "reopened"
    reopened = decision.incident
    assert reopened is not None
    assert (reopened.id, reopened.state, reopened.reopen_count) == (1, "open", 1)
    assert (reopened.acknowledged_at, reopened.response_breached_at) == (None, None)
    assert (reopened.escalations, reopened.manual_hold) == (0, False)
    assert reopened.earliest_starts_at == later
    assert reopened.respond_by == now + timedelta(minutes=5)
    assert reopened.resolve_by == later + timedelta(hours=1)
    assert [e.kind for e in decision.events] == ["reopened"]
    assert decision.events[0].data["why"] == "no Watchdog since 2026-11-27 00:00:00 UTC"
    assert [e.kind for e in decision.effects] == ["github.comment", "github.sync"]


def test_a_new_outage_after_the_reopen_window_is_a_new_incident() -> None:
    """Past ``reopen_window`` from the resolution: a new incident (a new number and issue)."""
    incident = closed(opened(), T0 + timedelta(minutes=20), "heartbeat")
    later = T0 + timedelta(days=2)
    decision = outage(incident, later, later + timedelta(minutes=12))
    assert (decision.outcome, decision.is_new) == ("opened", True)


def test_the_return_resolves_as_of_the_heartbeat() -> None:
    """The heartbeat back: resolved at its return, the duration of the outage in the comment's
    event, the comment then the sync."""
    incident = opened()
    returned = T0 + timedelta(minutes=25)
    decision = return_step("Watchdog", returned)(incident, returned + timedelta(seconds=3))
    assert decision.outcome == "resolved"
    resolved = decision.incident
    assert resolved is not None
    assert (resolved.state, resolved.resolution, resolved.resolved_at) == (
        "resolved",
        "heartbeat",
        returned,
    )
    [event] = decision.events
    assert (event.kind, event.at) == ("resolved", returned)
    assert event.data["why"] == "Watchdog arrives again after 25m without it"
    assert [e.kind for e in decision.effects] == ["github.comment", "github.sync"]


def test_the_return_changes_nothing_without_an_open_incident() -> None:
    """No incident, or one already resolved: nothing to do."""
    step = return_step("Watchdog", T0 + timedelta(hours=1))
    assert not step(None, T0 + timedelta(hours=1)).changed
    done = closed(opened(), T0 + timedelta(minutes=20), "heartbeat")
    assert not step(done, T0 + timedelta(hours=1)).changed
