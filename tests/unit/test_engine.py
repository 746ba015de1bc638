"""The incident state machine, pure: snapshots in, state and effects out, time from a fake clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from bridge.engine import Decision, Policy, apply_notification, summary_of
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label, else P3; ``kind=maintenance``."""
    priority = Priority(labels.get("priority", "P3"))
    return Classification(
        priority, f"test {priority}", maintenance=labels.get("kind") == "maintenance"
    )


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=5 * (p.rank + 1)),
    resolve_by=lambda p, t: t + timedelta(hours=p.rank + 1),
    reopen_window=timedelta(hours=24),
)


def alert(
    fp: str = "a1",
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    **labels: str,
) -> AlertSnapshot:
    return AlertSnapshot(
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]  # tests pass only "firing" / "resolved"
        labels={"alertname": "HighCPU", "instance": f"{fp}:9100", **labels},
        annotations={"summary": f"HighCPU on {fp}"},
        starts_at=starts,
        ends_at=ends,
        generator_url="",
    )


def note(*alerts: AlertSnapshot, truncated: int = 0, summary: str | None = None) -> Notification:
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        receiver="r",
        status="firing" if firing else "resolved",
        alerts=alerts,
        group_labels={"alertname": "HighCPU"},
        common_labels={"alertname": "HighCPU"},
        common_annotations={"summary": summary} if summary else {},
        external_url="",
        group_key='{}:{alertname="HighCPU"}',
        truncated_alerts=truncated,
    )


def step(current: Incident | None, n: Notification, now: datetime = T0) -> Decision:
    decision = apply_notification(current, n, now, POLICY)
    if decision.is_new and decision.incident is not None:
        decision.incident.id, decision.incident.number = 1, 1
    return decision


def kinds(decision: Decision) -> list[str]:
    return [e.kind for e in decision.effects]


def test_first_firing_notification_opens_an_incident() -> None:
    """A firing group with no incident opens one: priority, deadlines, a timeline, one sync."""
    d = step(None, note(alert(priority="P1")), T0 + timedelta(minutes=1))
    assert d.outcome == "opened"
    assert d.is_new
    inc = d.incident
    assert inc is not None
    assert (inc.state, inc.priority) == ("open", Priority.P1)
    assert inc.opened_at == T0 + timedelta(minutes=1)
    assert inc.respond_by == T0 + timedelta(minutes=11)  # from opened_at
    assert inc.resolve_by == T0 + timedelta(hours=2)  # from the earliest startsAt
    assert [e.kind for e in d.events] == ["alert_firing", "opened"]
    assert kinds(d) == ["github.sync"]


def test_identical_repeat_changes_nothing() -> None:
    """The same snapshot again is a no-op: no write, no effect."""
    inc = step(None, note(alert())).incident
    d = step(inc, note(alert()), T0 + timedelta(hours=4))
    assert (d.outcome, d.changed, d.effects) == ("unchanged", False, [])


def test_resolved_for_unknown_group_opens_nothing() -> None:
    """A resolved notification for a group never seen firing is ignored."""
    d = step(None, note(alert(status="resolved", ends=T0)))
    assert (d.outcome, d.incident, d.changed) == ("unknown_resolved", None, False)


def test_heartbeat_alerts_are_never_incidents() -> None:
    """Alerts named heartbeat.alertname are dropped before anything else."""
    watchdog = dataclasses.replace(alert(), labels={"alertname": "Watchdog"})
    d = step(None, note(watchdog))
    assert (d.outcome, d.incident) == ("heartbeat", None)


def test_resolution_comments_then_syncs() -> None:
    """All alerts resolved: state resolved at the last endsAt, a comment, then a sync."""
    inc = step(None, note(alert())).incident
    ended = T0 + timedelta(minutes=7)
    d = step(inc, note(alert(status="resolved", ends=ended)), T0 + timedelta(minutes=8))
    assert d.outcome == "resolved"
    assert d.incident is not None
    assert (d.incident.state, d.incident.resolved_at) == ("resolved", ended)
    assert kinds(d) == ["github.comment", "github.sync"]
    assert d.effects[0].event_seq == d.events[-1].seq
    assert d.events[-1].data["duration"] == "7m"


def test_stale_firing_snapshot_never_reopens_a_resolved_alert() -> None:
    """Out of order: the resolved snapshot arrived first; the older firing one changes nothing."""
    inc = step(None, note(alert(), alert("a2"))).incident
    inc = step(
        inc, note(alert(status="resolved", ends=T0 + timedelta(minutes=1)), alert("a2"))
    ).incident
    d = step(inc, note(alert(), alert("a2")), T0 + timedelta(minutes=2))
    assert d.outcome == "unchanged"
    assert inc is not None
    assert inc.alerts["a1"].status == "resolved"


def test_stale_firing_snapshot_after_resolution_does_not_reopen() -> None:
    """A late firing snapshot of the same episode after the incident resolved is ignored."""
    inc = step(None, note(alert())).incident
    inc = step(inc, note(alert(status="resolved", ends=T0 + timedelta(minutes=1)))).incident
    d = step(inc, note(alert()), T0 + timedelta(minutes=5))
    assert d.outcome == "unchanged"
    assert not d.effects


def test_snapshot_of_an_older_episode_is_ignored() -> None:
    """An alert with an earlier startsAt than the one we know is from a past episode."""
    inc = step(None, note(alert(starts=T0 + timedelta(hours=1)))).incident
    d = step(inc, note(alert(status="resolved", starts=T0, ends=T0 + timedelta(minutes=1))))
    assert d.outcome == "unchanged"
    assert inc is not None
    assert inc.state == "open"


def test_missing_alert_in_a_complete_snapshot_has_ended() -> None:
    """truncatedAlerts = 0: the snapshot is the whole group, so an absent firing alert resolved."""
    inc = step(None, note(alert(), alert("a2"))).incident
    d = step(inc, note(alert()), T0 + timedelta(minutes=3))
    assert d.outcome == "updated"
    assert d.incident is not None
    assert d.incident.alerts["a2"].status == "resolved"
    assert d.incident.alerts["a2"].resolved_by_absence


def test_missing_alert_in_a_truncated_snapshot_means_nothing() -> None:
    """truncatedAlerts > 0: Alertmanager left alerts out; absence says nothing about them."""
    inc = step(None, note(alert(), alert("a2"))).incident
    d = step(inc, note(alert(), truncated=4), T0 + timedelta(minutes=3))
    assert d.incident is not None
    assert d.incident.alerts["a2"].status == "firing"
    assert d.incident.truncated_alerts == 4


def test_absent_alert_comes_back_when_seen_firing_again() -> None:
    """An alert resolved only by absence revives when a snapshot shows it firing again."""
    inc = step(None, note(alert(), alert("a2"))).incident
    inc = step(inc, note(alert())).incident
    d = step(inc, note(alert(), alert("a2")))
    assert d.incident is not None
    assert d.incident.alerts["a2"].status == "firing"


@pytest.mark.parametrize(
    ("after", "outcome", "new"),
    [
        (timedelta(hours=23, minutes=59), "reopened", False),
        (timedelta(hours=24), "reopened", False),
        (timedelta(hours=24, seconds=1), "opened", True),
    ],
)
def test_reopen_window_edges(after: timedelta, outcome: str, new: bool) -> None:
    """A new startsAt within reopen_window of the resolution reopens; later it is a new incident."""
    ended = T0 + timedelta(minutes=10)
    inc = step(None, note(alert())).incident
    inc = step(inc, note(alert(status="resolved", ends=ended)), ended).incident
    refire_at = ended + after
    d = step(inc, note(alert(starts=refire_at)), refire_at)
    assert (d.outcome, d.is_new) == (outcome, new)
    if outcome == "reopened":
        assert kinds(d) == ["github.comment", "github.sync"]
        assert d.incident is not None
        assert d.incident.reopen_count == 1


def test_priority_only_rises_while_open() -> None:
    """P3 → P1 raises (deadlines from the rise, never later); a later P3-only snapshot keeps P1."""
    inc = step(None, note(alert(priority="P3"))).incident
    assert inc is not None
    old_respond = inc.respond_by
    rise_at = T0 + timedelta(minutes=1)
    d = step(inc, note(alert(priority="P3"), alert("a2", priority="P1")), rise_at)
    assert d.incident is not None
    assert d.incident.priority == Priority.P1
    assert d.incident.respond_by == min(old_respond or rise_at, rise_at + timedelta(minutes=10))
    assert d.events[-1].kind == "priority_raised"
    d2 = step(d.incident, note(alert(priority="P3"), alert("a2", priority="P3")), rise_at)
    assert d2.incident is not None
    assert d2.incident.priority == Priority.P1


def test_manual_close_holds_until_an_alert_fires_anew() -> None:
    """Closed by a human: the same alerts firing keep it closed; a new startsAt reopens it."""
    inc = step(None, note(alert())).incident
    assert inc is not None
    inc.state, inc.resolution, inc.manual_hold = "resolved", "manual", True
    inc.resolved_at = T0 + timedelta(minutes=5)
    held = step(inc, note(alert()), T0 + timedelta(minutes=6))
    assert (held.outcome, held.effects) == ("unchanged", [])
    again = step(inc, note(alert(starts=T0 + timedelta(minutes=7))), T0 + timedelta(minutes=8))
    assert again.outcome == "reopened"
    assert again.incident is not None
    assert not again.incident.manual_hold


def test_maintenance_alerts_open_a_maintenance_request() -> None:
    """kind=maintenance alerts are not an incident: a maintenance request, no deadlines."""
    d = step(None, note(alert(kind="maintenance")))
    assert d.incident is not None
    assert d.incident.kind == "maint"
    assert d.incident.respond_by is None


def test_summary_prefers_common_annotation_then_first_alert_then_alertname() -> None:
    """The title's summary: common summary, else the first alert's, else the alertname."""
    assert summary_of(note(alert(), summary="Common"), [alert()]) == "Common"
    assert summary_of(note(alert()), [alert()]) == "HighCPU on a1"
    bare = dataclasses.replace(alert(), annotations={})
    assert summary_of(note(bare), [bare]) == "HighCPU"
    nameless = dataclasses.replace(alert(), annotations={}, labels={})
    empty = dataclasses.replace(note(nameless), common_labels={})
    assert summary_of(empty, [nameless]) == "alert group"


def test_many_alerts_changing_at_once_make_one_timeline_line() -> None:
    """A group of 50 alerts firing is one timeline entry, not fifty."""
    d = step(None, note(*(alert(f"a{i}") for i in range(50))))
    assert [e.text for e in d.events if e.kind == "alert_firing"] == ["50 alerts fired"]


# -- the same episode firing again after a resolution by absence -------------------------------


def _resolved_by_absence_p0() -> Incident:
    """A P0 ``a1`` acknowledged by alice, then left out of a complete snapshot (a peer that
    answered an empty group), so resolved by absence — ``a2`` is all that is left, resolved."""
    inc = step(None, note(alert(priority="P0"), alert("a2", priority="P0"))).incident
    assert inc is not None
    inc.acknowledged_at = T0 + timedelta(minutes=1)
    inc.acknowledged_by, inc.acknowledged_via = "alice", "assigned"
    inc.response_breached_at = None
    inc.resolution_breached_at = T0 + timedelta(hours=1)
    inc.escalations, inc.next_escalation_at = 2, T0 + timedelta(minutes=30)
    ended = T0 + timedelta(minutes=2)
    gone = step(inc, note(alert("a2", "resolved", ends=ended, priority="P0")), ended)
    assert gone.outcome == "resolved"
    assert gone.incident is not None
    assert gone.incident.alerts["a1"].resolved_by_absence
    return gone.incident


def test_the_same_episode_firing_again_keeps_the_acknowledgement_and_deadlines() -> None:
    """``a1`` back with its same startsAt (revived, nothing new): open again, still alice's,
    same deadlines, breaches and escalation state — nobody is paged anew — with a reopened
    event saying why (its comment) and a flip."""
    before = _resolved_by_absence_p0()
    back_at = T0 + timedelta(minutes=3)
    d = step(before, note(alert(priority="P0"), alert("a2", "resolved", priority="P0")), back_at)
    assert d.outcome == "reopened"
    inc = d.incident
    assert inc is not None
    assert inc.state == "open"
    assert (inc.resolved_at, inc.resolution, inc.paused_at) == (None, None, None)
    assert (inc.acknowledged_at, inc.acknowledged_by, inc.acknowledged_via) == (
        before.acknowledged_at,
        "alice",
        "assigned",
    )
    assert (inc.respond_by, inc.resolve_by) == (before.respond_by, before.resolve_by)
    assert (inc.response_breached_at, inc.resolution_breached_at) == (
        before.response_breached_at,
        before.resolution_breached_at,
    )
    assert (inc.escalations, inc.next_escalation_at) == (2, before.next_escalation_at)
    assert inc.reopen_count == 1
    assert len(inc.flips) == len(before.flips) + 1
    reopened = [e for e in d.events if e.kind == "reopened"]
    assert len(reopened) == 1
    assert reopened[0].data["episode"] == "same"
    assert reopened[0].data["why"] == "alerts of the same episode fire again"
    assert kinds(d) == ["github.comment", "github.sync"]


def test_a_new_starts_at_after_a_resolution_by_absence_is_a_new_episode() -> None:
    """Alongside a revived alert, one with a new startsAt: a new episode as before — the
    acknowledgement reset, fresh deadlines from now, no breach or round carried over."""
    before = _resolved_by_absence_p0()
    back_at = T0 + timedelta(minutes=3)
    snapshot = note(alert(priority="P0"), alert("a2", starts=back_at, priority="P0"))
    d = step(before, snapshot, back_at)
    assert d.outcome == "reopened"
    inc = d.incident
    assert inc is not None
    assert (inc.acknowledged_at, inc.acknowledged_by, inc.acknowledged_via) == (None, None, None)
    assert inc.respond_by == back_at + timedelta(minutes=5)
    assert (inc.resolution_breached_at, inc.escalations, inc.next_escalation_at) == (None, 0, None)
    assert "episode" not in d.events[-1].data


def test_the_same_episode_firing_again_only_raises_the_priority() -> None:
    """Reclassified higher meanwhile (the rules changed): the priority rises, its deadlines
    never later than before, and the reopened event names the priority it rose from (the
    notify policy sends what the new one adds); a lower classification would leave the
    priority as it was, and an unchanged one names none."""
    inc = step(None, note(alert(priority="P2"), alert("a2", priority="P2"))).incident
    ended = T0 + timedelta(minutes=2)
    inc = step(inc, note(alert("a2", "resolved", ends=ended, priority="P2")), ended).incident
    assert inc is not None
    assert inc.state == "resolved"
    back_at = T0 + timedelta(minutes=3)
    d = step(inc, note(alert(priority="P0"), alert("a2", "resolved", priority="P2")), back_at)
    assert d.incident is not None
    assert d.incident.priority == Priority.P0
    assert d.incident.respond_by == back_at + timedelta(minutes=5)
    assert d.incident.resolve_by == min(inc.resolve_by or back_at, back_at + timedelta(hours=1))
    [reopened] = [e for e in d.events if e.kind == "reopened"]
    assert (reopened.data["episode"], reopened.data["raised_from"]) == ("same", "P2")
    same = note(alert(priority="P2"), alert("a2", "resolved", priority="P2"))
    unraised = step(inc, same, back_at)
    [plain] = [e for e in unraised.events if e.kind == "reopened"]
    assert "raised_from" not in plain.data


def test_every_resolution_by_alerts_ends_a_silence_pause() -> None:
    """A silenced (paused) incident whose alerts resolve is no longer paused: a reopening
    (by alerts or by hand) never inherits a pause nobody will end."""
    inc = step(None, note(alert())).incident
    assert inc is not None
    inc.paused_at = T0 + timedelta(minutes=1)
    ended = T0 + timedelta(minutes=5)
    d = step(inc, note(alert(status="resolved", ends=ended)), ended)
    assert d.outcome == "resolved"
    assert d.incident is not None
    assert d.incident.paused_at is None


@pytest.mark.parametrize(
    ("listed", "state"),
    [
        # the newest episode counts, in whatever order the copies come
        (("firing", T0 + timedelta(minutes=5)), ("resolved", T0)),
        (("resolved", T0), ("firing", T0 + timedelta(minutes=5))),
    ],
)
def test_one_fingerprint_listed_twice_counts_its_newest_episode(
    listed: tuple[str, datetime], state: tuple[str, datetime]
) -> None:
    """Alertmanager never lists an alert twice, but a sender may (two alerts with equal labels
    and no fingerprint). The copy of the newest episode counts, not the last one listed: an
    older episode's resolution listed after a new start must not resolve the incident while the
    new episode fires (it would flip back at the next repeat, comments and pages included)."""
    opened = step(None, note(alert()), T0 + timedelta(minutes=1))
    assert opened.incident is not None
    copies = [
        alert(
            status=status,
            starts=starts,
            ends=starts + timedelta(minutes=1) if status == "resolved" else None,
        )
        for status, starts in (listed, state)
    ]
    d = step(opened.incident, note(*copies), T0 + timedelta(minutes=6))
    assert d.incident is not None
    assert d.incident.state == "open"
    assert d.incident.alerts["a1"].starts_at == T0 + timedelta(minutes=5)


def test_within_one_episode_a_listed_resolution_wins() -> None:
    """Firing and resolved copies of the same episode: the resolution is the later state."""
    opened = step(None, note(alert()), T0 + timedelta(minutes=1))
    assert opened.incident is not None
    ended = alert(status="resolved", ends=T0 + timedelta(minutes=2))
    d = step(opened.incident, note(ended, alert()), T0 + timedelta(minutes=3))
    assert d.outcome == "resolved"
