"""Flapping, pure: flips counted in a sliding window, the close deferred until quiet, and the
timer step that closes a flapping incident once it has been quiet for the window.

The engine is driven with snapshots and a clock reading per step; ``flapping`` is the default
configuration (more than 3 flips within 1h) unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bridge.engine import Decision, Policy, apply_notification, settle_flapping
from bridge.flapping import FlapPolicy, flapping_text, recent_flips, record_flip
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    priority = Priority(labels.get("priority", "P2"))
    return Classification(
        priority, f"test {priority}", maintenance=labels.get("kind") == "maintenance"
    )


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=5 * (p.rank + 1)),
    resolve_by=lambda p, t: t + timedelta(hours=p.rank + 1),
    reopen_window=timedelta(hours=24),
    flapping=FlapPolicy(max_flips=3, window=HOUR),
)


def note(
    status: str, starts: datetime, ends: datetime | None, labels: Mapping[str, str]
) -> Notification:
    alert = AlertSnapshot(
        fingerprint="a1",
        status=status,  # type: ignore[arg-type]  # tests pass only "firing" / "resolved"
        labels={"alertname": "LinkFlaps", "instance": "sw-1", **labels},
        annotations={"summary": "Link flaps on sw-1"},
        starts_at=starts,
        ends_at=ends,
        generator_url="",
    )
    return Notification(
        receiver="r",
        status=alert.status,
        alerts=(alert,),
        group_labels={"alertname": "LinkFlaps"},
        common_labels={"alertname": "LinkFlaps"},
        common_annotations={},
        external_url="",
        group_key='{}:{alertname="LinkFlaps"}',
        truncated_alerts=0,
    )


class Group:
    """One alert group driven through the engine; each call is one notification at ``at``."""

    def __init__(self, policy: Policy = POLICY, **labels: str) -> None:
        self.policy = policy
        self.labels = labels
        self.incident: Incident | None = None
        self.decisions: list[Decision] = []
        self.starts: datetime = T0

    def _apply(self, notification: Notification, at: datetime) -> Decision:
        decision = apply_notification(self.incident, notification, at, self.policy)
        if decision.is_new and decision.incident is not None:
            decision.incident.id, decision.incident.number = len(self.decisions) + 1, 1
        if decision.incident is not None:
            self.incident = decision.incident
        self.decisions.append(decision)
        return decision

    def fire(self, at: datetime, **labels: str) -> Decision:
        """A new episode of the alert starts firing at ``at``."""
        self.starts = at
        return self._apply(note("firing", at, None, {**self.labels, **labels}), at)

    def resolve(self, at: datetime, heard: datetime | None = None) -> Decision:
        """The current episode ends at ``at`` (the bridge hears of it at ``heard``)."""
        return self._apply(note("resolved", self.starts, at, self.labels), heard or at)

    def settle(self, at: datetime) -> Decision:
        """The scheduler's timer step at ``at``."""
        assert self.incident is not None
        decision = settle_flapping(self.incident, at)
        if decision.changed and decision.incident is not None:
            self.incident = decision.incident
        self.decisions.append(decision)
        return decision

    def flap(self, times: int, start: datetime = T0, every: timedelta = 5 * MIN) -> datetime:
        """Fire, then alternate resolve / fire: ``times`` flips after the opening; returns the
        moment of the last one."""
        at = start
        self.fire(at)
        for flip in range(times):
            at += every
            if flip % 2 == 0:
                self.resolve(at)
            else:
                self.fire(at)
        return at


def event_kinds(decision: Decision) -> list[str]:
    return [e.kind for e in decision.events]


def effect_kinds(decision: Decision) -> list[str]:
    return [e.kind for e in decision.effects]


# -- the window and the count ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "counted"),
    [
        (timedelta(0), True),
        (HOUR - timedelta(seconds=1), True),
        (HOUR, False),  # exactly one window old: it has left the window
        (HOUR + timedelta(seconds=1), False),
    ],
)
def test_a_flip_counts_while_younger_than_the_window(age: timedelta, counted: bool) -> None:
    """The window is the last ``flapping.window`` up to now, its far edge excluded."""
    now = T0 + 2 * HOUR
    assert recent_flips([now - age], now, HOUR) == ([now - age] if counted else [])


@pytest.mark.parametrize(
    ("max_flips", "flips", "flapping"),
    [(3, 3, False), (3, 4, True), (1, 1, False), (1, 2, True), (5, 5, False), (5, 6, True)],
)
def test_more_than_max_flips_in_the_window_is_flapping(
    max_flips: int, flips: int, flapping: bool
) -> None:
    """``max_flips`` flips are allowed; one more within the window makes the group flapping,
    and only that flip reports the change."""
    group = Group(replace(POLICY, flapping=FlapPolicy(max_flips=max_flips, window=HOUR)))
    group.flap(flips)
    assert group.incident is not None
    assert group.incident.flapping is flapping
    assert len(group.incident.flips) == flips
    started = [d for d in group.decisions if "flapping" in event_kinds(d)]
    assert len(started) == (1 if flapping else 0)


def test_record_flip_reports_only_the_flip_that_starts_flapping() -> None:
    """The fourth flip in the window starts flapping; the fifth changes nothing more."""
    group = Group()
    group.fire(T0)
    incident = group.incident
    assert incident is not None
    policy = FlapPolicy(max_flips=3, window=HOUR)
    results = [record_flip(incident, T0 + n * MIN, policy) for n in range(1, 6)]
    assert results == [False, False, False, True, False]
    assert incident.flapping


def test_flips_that_left_the_window_are_forgotten() -> None:
    """Four flips spread over more than the window never make the group flapping, and the
    incident keeps only the flips still in the window."""
    group = Group()
    last = group.flap(4, every=25 * MIN)  # flips at 25, 50, 75 and 100 minutes
    assert group.incident is not None
    assert not group.incident.flapping
    assert group.incident.flips == [last - 50 * MIN, last - 25 * MIN, last]


def test_a_resolution_and_a_reopening_are_flips() -> None:
    """Both directions count: the resolution, then the reopening of the same incident."""
    group = Group()
    group.fire(T0)
    group.resolve(T0 + MIN)
    assert group.incident is not None
    assert group.incident.flips == [T0 + MIN]
    reopened = group.fire(T0 + 2 * MIN)
    assert reopened.outcome == "reopened"
    assert group.incident.flips == [T0 + MIN, T0 + 2 * MIN]
    assert group.incident.id == 1  # the same incident


def test_the_summary_says_how_often_and_for_how_long() -> None:
    """One line: the flips, the window, and that notifications wait until quiet."""
    assert flapping_text(4, FlapPolicy(3, HOUR)) == (
        "Flapping: fired and resolved 4 times in 1h; notifications damped until quiet for 1h"
    )


# -- becoming flapping ---------------------------------------------------------------------------


def test_the_fourth_flip_a_reopening_makes_it_flapping_with_one_event() -> None:
    """resolve, fire, resolve, fire: the reopening that is the fourth flip says so once, with
    the ``flapping`` event after the reopening (the issue gets its label from the sync)."""
    group = Group()
    group.flap(4)
    last = group.decisions[-1]
    assert last.outcome == "reopened"
    assert event_kinds(last) == ["alert_firing", "reopened", "flapping"]
    assert last.events[-1].text.startswith("Flapping: fired and resolved 4 times in 1h")
    assert last.events[-1].data == {"flips": 4}
    assert effect_kinds(last) == ["github.comment", "github.sync"]
    assert group.incident is not None
    assert (group.incident.state, group.incident.flapping) == ("open", True)


def test_flapping_that_starts_on_a_resolution_keeps_the_incident_open() -> None:
    """With ``max_flips: 2`` the third flip is a resolution: it starts flapping and, instead of
    resolving, the incident waits for quiet — no resolution comment, no close."""
    group = Group(replace(POLICY, flapping=FlapPolicy(max_flips=2, window=HOUR)))
    last = group.flap(3)
    decision = group.decisions[-1]
    assert decision.outcome == "updated"
    assert event_kinds(decision) == ["alert_resolved", "flapping"]
    assert effect_kinds(decision) == ["github.sync"]
    assert group.incident is not None
    assert group.incident.state == "open"
    assert group.incident.resolved_at is None
    assert group.incident.quiet_until == last + HOUR


# -- while flapping ------------------------------------------------------------------------------


def flapping_group() -> tuple[Group, datetime]:
    """A group that became flapping on its fourth flip (a reopening) at T0 + 20m."""
    group = Group()
    at = group.flap(4)
    assert group.incident is not None
    assert group.incident.flapping
    return group, at


def test_every_alert_resolving_defers_the_close_by_the_window() -> None:
    """Flapping and every alert resolved: still open, quiet until a window later, only the
    sync (the body shows the resolved alert), no resolution comment."""
    group, at = flapping_group()
    decision = group.resolve(at + MIN)
    assert decision.outcome == "updated"
    assert event_kinds(decision) == ["alert_resolved"]
    assert effect_kinds(decision) == ["github.sync"]
    incident = group.incident
    assert incident is not None
    assert (incident.state, incident.resolution, incident.resolved_at) == ("open", None, None)
    assert incident.quiet_until == at + MIN + HOUR
    assert incident.flips[-1] == at + MIN


def test_a_resolved_repeat_during_the_quiet_period_does_not_extend_it() -> None:
    """Alertmanager repeating the resolved notification is no flip: the quiet period stands."""
    group, at = flapping_group()
    group.resolve(at + MIN)
    assert group.incident is not None
    quiet_until = group.incident.quiet_until
    repeat = group.resolve(at + MIN, heard=at + 10 * MIN)  # the same snapshot again, later
    assert repeat.outcome == "unchanged"
    assert group.incident.quiet_until == quiet_until


def test_a_refire_during_the_quiet_period_cancels_the_close_and_is_a_flip() -> None:
    """Firing again while quiet: the same open incident, quiet_until cleared, one more flip,
    the alert recorded in the timeline (Slack damps it: bridge/notify/policy.py)."""
    group, at = flapping_group()
    group.resolve(at + MIN)
    decision = group.fire(at + 10 * MIN)
    assert decision.outcome == "updated"
    assert event_kinds(decision) == ["alert_firing"]
    incident = group.incident
    assert incident is not None
    assert (incident.state, incident.quiet_until, incident.flapping) == ("open", None, True)
    assert incident.flips[-1] == at + 10 * MIN
    assert incident.reopen_count == 2  # unchanged: it never resolved


def test_a_refire_during_the_quiet_period_may_raise_the_priority() -> None:
    """The priority rules hold while flapping: a P1 re-fire raises the P2 incident."""
    group, at = flapping_group()
    group.resolve(at + MIN)
    decision = group.fire(at + 10 * MIN, priority="P1")
    assert event_kinds(decision) == ["alert_firing", "priority_raised"]
    assert group.incident is not None
    assert group.incident.priority == Priority.P1


def test_deadlines_its_alerts_ended_before_do_not_run_while_quiet() -> None:
    """A flapping incident waiting for quiet, its alerts all ended before its deadlines, will
    resolve as of that end: neither the response deadline nor the resolution deadline is due
    (sla.py exempts both), only the end of the quiet period. A deadline that came before the
    alerts ended is due as before."""
    group, at = flapping_group()
    group.resolve(at + MIN)
    incident = group.incident
    assert incident is not None
    assert incident.respond_by is not None
    assert incident.quiet_until is not None
    assert incident.respond_by > at + MIN
    assert incident.due_at == incident.quiet_until
    incident.acknowledged_at = at  # acknowledged: the resolve deadline and the quiet period
    assert incident.resolve_by is not None
    assert incident.due_at == min(incident.resolve_by, incident.quiet_until)
    incident.acknowledged_at = None
    incident.respond_by = at  # already past when the alerts ended: it still runs
    assert incident.due_at == at


# -- settling --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "resolved"),
    [(HOUR - timedelta(seconds=1), False), (HOUR, True), (HOUR + 5 * MIN, True)],
)
def test_quiet_for_the_window_closes_it_once(after: timedelta, resolved: bool) -> None:
    """The timer step closes the incident when the quiet period has passed, not before: as of
    when its last alert ended, with the usual resolution comment and sync, no longer flapping."""
    group, at = flapping_group()
    ended = at + MIN
    group.resolve(ended)
    decision = group.settle(ended + after)
    incident = group.incident
    assert incident is not None
    if not resolved:
        assert (decision.changed, decision.events, incident.state) == (False, [], "open")
        return
    assert decision.outcome == "resolved"
    assert event_kinds(decision) == ["resolved"]
    assert effect_kinds(decision) == ["github.comment", "github.sync"]
    assert (incident.state, incident.resolution) == ("resolved", "alerts")
    assert incident.resolved_at == ended
    assert (incident.flapping, incident.quiet_until, incident.due_at) == (False, None, None)
    assert decision.events[0].at == ended
    again = settle_flapping(incident, ended + 2 * HOUR)
    assert not again.changed


def test_settle_leaves_other_incidents_alone() -> None:
    """Open and firing, or not flapping, or resolved: the step changes nothing."""
    group = Group()
    group.fire(T0)
    assert group.incident is not None
    assert not settle_flapping(group.incident, T0 + 5 * HOUR).changed
    group.resolve(T0 + MIN)
    assert not settle_flapping(group.incident, T0 + 5 * HOUR).changed


def test_settle_never_closes_a_firing_incident() -> None:
    """Should a quiet_until survive beside a firing alert, the step clears it instead of
    closing: the timer is spent and nothing is resolved."""
    group, at = flapping_group()
    assert group.incident is not None
    stale = replace(group.incident, quiet_until=at + MIN)
    decision = settle_flapping(stale, at + 2 * HOUR)
    assert decision.changed
    assert decision.incident is not None
    assert (decision.incident.state, decision.incident.quiet_until) == ("open", None)
    assert decision.events == []


def test_after_settling_a_refire_reopens_the_same_incident() -> None:
    """Within the reopen window a settled incident reopens as itself, counting afresh: one
    flip, not flapping."""
    group, at = flapping_group()
    group.resolve(at + MIN)
    group.settle(at + MIN + HOUR)
    decision = group.fire(at + 2 * HOUR)
    assert decision.outcome == "reopened"
    incident = group.incident
    assert incident is not None
    assert (incident.id, incident.state, incident.flapping) == (1, "open", False)
    assert incident.flips == [at + 2 * HOUR]


def test_a_manual_close_while_flapping_counts_afresh_on_reopening() -> None:
    """Closed by hand while flapping, then firing anew hours later: not flapping any more (its
    old flips left the window), so the reopening is told as usual."""
    group, at = flapping_group()
    assert group.incident is not None
    group.incident = replace(
        group.incident,
        state="resolved",
        resolution="manual",
        resolved_at=at + MIN,
        manual_hold=True,
        alerts={k: replace(a, status="resolved") for k, a in group.incident.alerts.items()},
    )
    decision = group.fire(at + 3 * HOUR)
    assert decision.outcome == "reopened"
    assert "flapping" not in event_kinds(decision)
    assert group.incident.flapping is False


# -- what does not flap ----------------------------------------------------------------------------


def test_an_incident_that_resolves_rarely_behaves_as_before() -> None:
    """Fire and resolve twice an hour apart: plain resolutions with their comment and close."""
    group = Group()
    group.fire(T0)
    first = group.resolve(T0 + 10 * MIN)
    group.fire(T0 + 2 * HOUR)
    second = group.resolve(T0 + 2 * HOUR + 10 * MIN)
    for decision in (first, second):
        assert decision.outcome == "resolved"
        assert effect_kinds(decision) == ["github.comment", "github.sync"]
    assert group.incident is not None
    assert (group.incident.state, group.incident.flapping) == ("resolved", False)
    assert group.incident.quiet_until is None


def test_maintenance_requests_never_flap() -> None:
    """Planned work is not paged: its flips are not counted at all."""
    group = Group(kind="maintenance")
    group.flap(8)
    assert group.incident is not None
    assert group.incident.kind == "maint"
    assert (group.incident.flapping, group.incident.flips) == (False, [])
    assert not any("flapping" in event_kinds(d) for d in group.decisions)
