"""Reconciliation's rules, pure: what the Alertmanager peers said and an incident in, the
lifecycle decision out (bridge/reconcile.py). Time is passed in; nothing is read or written."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from bridge.alertmanager import parse_webhook
from bridge.alertmanager_api import (
    AlertGroup,
    AlertmanagerError,
    PeerAlert,
    PeerGroups,
    display_url,
    parse_groups,
)
from bridge.engine import Decision, Policy, apply_notification
from bridge.flapping import FlapPolicy
from bridge.identity import identity_of
from bridge.model import AlertSnapshot, Classification, EffectSpec, Incident, Notification, Priority
from bridge.reconcile import (
    MissedGroup,
    Observation,
    missed_groups,
    notification_of,
    observe,
    reconcile_step,
)
from support import FIXTURES

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
ROUND = T0 + timedelta(minutes=10)  # when the peers were asked
WAIT = timedelta(seconds=30)  # alertmanager.group_wait


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """The ``priority`` label, else P1; ``kind=maintenance`` is a maintenance request."""
    priority = Priority(labels.get("priority", "P1"))
    return Classification(priority, "test", maintenance=labels.get("kind") == "maintenance")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def opened(*fps: str, kind: str = "incident", at: datetime = T0) -> Incident:
    """An open incident (through the engine) whose firing alerts are ``fps``."""
    labels = {"kind": "maintenance"} if kind == "maint" else {}
    notification = Notification(
        receiver="r",
        status="firing",
        alerts=tuple(
            AlertSnapshot(
                fp, "firing", {"alertname": "HighCPU", "fp": fp, **labels}, {}, T0, None, ""
            )
            for fp in fps
        ),
        group_labels={"alertname": "HighCPU"},
        common_labels={"alertname": "HighCPU"},
        common_annotations={},
        external_url="",
        group_key='{}:{alertname="HighCPU"}',
        truncated_alerts=0,
    )
    incident = apply_notification(None, notification, at, POLICY).incident
    assert incident is not None
    assert incident.kind == kind
    incident.id, incident.number = 1, 1
    return incident


def listed(
    fp: str,
    state: str = "active",
    silences: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
) -> PeerAlert:
    """An alert as a peer lists it (``state`` active, suppressed or unprocessed)."""
    return PeerAlert(
        fingerprint=fp,
        labels={"alertname": "HighCPU", "fp": fp, **(labels or {})},
        annotations={},
        starts_at=T0,
        ends_at=None,
        generator_url="",
        state=state,
        silenced_by=silences,
    )


def silenced(fp: str, *ids: str) -> PeerAlert:
    return listed(fp, "suppressed", ids or ("s1",))


def inhibited(fp: str) -> PeerAlert:
    return dataclasses.replace(listed(fp, "suppressed"), inhibited_by=("x",))


def peer(
    *alerts: PeerAlert, name: str = "am-0", labels: Mapping[str, str] | None = None
) -> PeerGroups:
    group = AlertGroup("r", dict(labels or {"alertname": "HighCPU"}), alerts)
    return PeerGroups(name, (group,) if alerts else ())


def down(name: str = "am-1") -> PeerGroups:
    return PeerGroups(name, None, AlertmanagerError(name, "unreachable", retryable=True))


def decide(incident: Incident, *answers: PeerGroups, now: datetime = ROUND) -> Decision:
    return reconcile_step(observe(answers, ROUND), WAIT)(incident, now)


def kinds(decision: Decision) -> list[str]:
    return [event.kind for event in decision.events]


# -- what the peers said -------------------------------------------------------------------


def test_observation_merges_the_peers_that_answered() -> None:
    """Presence and silences are merged by fingerprint across peers; a peer that did not answer
    makes the round incomplete and adds nothing."""
    observation = observe(
        [peer(listed("a1"), silenced("a2", "s1")), peer(silenced("a2", "s2"), name="am-1"), down()],
        ROUND,
    )
    assert observation == Observation(
        at=ROUND,
        complete=False,
        present=frozenset({"a1", "a2"}),
        silences={"a2": frozenset({"s1", "s2"})},
        groups=frozenset({'["r",[["alertname","HighCPU"]]]'}),
    )
    assert observe([peer(listed("a1"))], ROUND).complete


# -- the step, as a table ------------------------------------------------------------------

CASES = [
    ("every alert active", [peer(listed("a1"), listed("a2"))], []),
    ("every alert silenced", [peer(silenced("a1"), silenced("a2"))], ["silenced"]),
    ("partly silenced", [peer(silenced("a1"), listed("a2"))], []),
    ("inhibited is not silenced", [peer(inhibited("a1"), inhibited("a2"))], []),
    (
        "silenced on one peer, active on the other",
        [peer(silenced("a1"), silenced("a2")), peer(listed("a1"), listed("a2"), name="am-1")],
        ["silenced"],
    ),
    ("silenced, the other peer down", [peer(silenced("a1"), silenced("a2")), down()], ["silenced"]),
    ("unprocessed is present", [peer(listed("a1", "unprocessed"))], []),
    ("gone from every peer", [peer(), peer(name="am-1")], ["reconciled"]),
    ("gone from the peers that answered, one down", [peer(), down()], []),
    ("every peer down", [down("am-0"), down()], []),
    ("one gone, the other active", [peer(listed("a2"))], []),
    ("on one peer only", [peer(), peer(listed("a1"), name="am-1")], []),
    ("one gone, the other silenced", [peer(silenced("a2"))], ["silenced"]),
    ("other groups only", [peer(listed("zz"))], ["reconciled"]),
]


@pytest.mark.parametrize(
    ("answers", "events"), [(a, e) for _, a, e in CASES], ids=[name for name, _, _ in CASES]
)
def test_what_a_round_decides_for_an_open_incident(
    answers: list[PeerGroups], events: list[str]
) -> None:
    """An open incident with firing alerts a1 and a2, last changed well before the round."""
    assert kinds(decide(opened("a1", "a2"), *answers)) == events


def test_all_silenced_acknowledges_and_pauses_the_deadlines() -> None:
    """Every firing alert silenced: event ``silenced`` naming the silences, acknowledged by the
    silence, paused — no timer is due while paused."""
    incident = opened("a1", "a2")
    assert incident.due_at == incident.respond_by
    decision = decide(incident, peer(silenced("a1", "s-2"), silenced("a2", "s-1", "s-2")))

    after = decision.incident
    assert after is not None
    assert decision.changed
    assert decision.outcome == "silenced"
    assert (after.paused_at, after.acknowledged_at) == (ROUND, ROUND)
    assert after.acknowledged_by == "Alertmanager silence s-1"
    assert after.acknowledged_via == "silence"
    assert after.due_at is None
    [event] = decision.events
    assert event.kind == "silenced"
    assert event.seq == incident.event_seq + 1
    assert "s-1, s-2" in event.text
    assert event.data == {"silences": ["s-1", "s-2"]}
    assert decision.effects == [EffectSpec("github.sync")]
    assert incident.paused_at is None
    assert incident.acknowledged_at is None


def test_a_silence_keeps_an_earlier_acknowledgement() -> None:
    """Someone already acknowledged: they stay the acknowledger; the deadlines still pause."""
    incident = opened("a1")
    incident.acknowledged_at, incident.acknowledged_by = T0, "alice"
    after = decide(incident, peer(silenced("a1"))).incident
    assert after is not None
    assert (after.acknowledged_at, after.acknowledged_by, after.paused_at) == (T0, "alice", ROUND)


def test_a_paused_incident_still_silenced_is_unchanged() -> None:
    """The decision is idempotent: applying it again (another round, another replica) changes
    nothing."""
    answers = (peer(silenced("a1")),)
    first = decide(opened("a1"), *answers).incident
    assert first is not None
    again = decide(first, *answers, now=ROUND + timedelta(minutes=1))
    assert not again.changed
    assert again.outcome == "unchanged"


def test_silence_ended_moves_the_deadlines_by_the_paused_time() -> None:
    """The silence ends while the alerts still fire: ``unsilenced``, deadlines (and a pending
    escalation round) later by exactly the time paused, no longer paused."""
    incident = opened("a1")
    incident.paused_at = T0 + timedelta(minutes=2)
    incident.next_escalation_at = T0 + timedelta(minutes=20)
    assert incident.respond_by is not None
    assert incident.resolve_by is not None
    decision = decide(incident, peer(listed("a1")), now=ROUND + timedelta(seconds=5))

    after = decision.incident
    paused = ROUND + timedelta(seconds=5) - incident.paused_at
    assert after is not None
    assert kinds(decision) == ["unsilenced"]
    assert after.paused_at is None
    assert after.respond_by == incident.respond_by + paused
    assert after.resolve_by == incident.resolve_by + paused
    assert after.next_escalation_at == incident.next_escalation_at + paused
    assert decision.events[0].data == {"paused_seconds": int(paused.total_seconds())}
    assert "8m 5s later" in decision.events[0].text
    assert decision.effects == [EffectSpec("github.sync")]


def test_silence_ended_is_not_decided_while_a_peer_is_down() -> None:
    """The silence may be on the peer that did not answer: stay paused until every peer says."""
    incident = opened("a1")
    incident.paused_at = T0
    assert kinds(decide(incident, peer(listed("a1")), down())) == []
    assert kinds(decide(incident, peer(listed("a1")), peer(listed("a1"), name="am-1"))) == [
        "unsilenced"
    ]


def test_gone_from_every_peer_resolves_by_reconciliation() -> None:
    """A lost resolution: resolved now, resolution ``reconciled``, its alerts resolved as by
    absence (seen firing again, the same episode revives), a comment then a sync."""
    incident = opened("a1", "a2")
    decision = decide(incident, peer(), peer(name="am-1"))

    after = decision.incident
    assert after is not None
    assert decision.outcome == "reconciled"
    assert (after.state, after.resolution, after.resolved_at) == ("resolved", "reconciled", ROUND)
    assert {a.status for a in after.alerts.values()} == {"resolved"}
    assert all(a.resolved_by_absence and a.ends_at == ROUND for a in after.alerts.values())
    [event] = decision.events
    assert event.kind == "reconciled"
    assert event.text.startswith("Resolved by reconciliation")
    assert event.data == {"duration": "10m"}
    assert decision.effects == [
        EffectSpec("github.comment", event_seq=event.seq),
        EffectSpec("github.sync"),
    ]
    assert incident.state == "open"
    assert incident.alerts["a1"].status == "firing"


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        # The group is still listed (with alerts the bridge never saw): they may still fire.
        ([peer(listed("zz")), peer(name="am-1")], "unchanged"),
        ([peer(), peer(listed("zz"), name="am-1")], "unchanged"),
        # Listed by no peer: the group is gone, and with it every alert it had.
        ([peer(), peer(name="am-1")], "reconciled"),
        ([peer(listed("zz"), labels={"alertname": "Other"}), peer(name="am-1")], "reconciled"),
        # ... but only when every peer answered.
        ([peer(), down()], "unchanged"),
    ],
    ids=["on one peer", "on the other", "gone", "only other groups", "a peer down"],
)
def test_a_group_whose_notifications_left_alerts_out_resolves_only_once_it_is_gone(
    answers: list[PeerGroups], outcome: str
) -> None:
    """With ``truncatedAlerts`` > 0 the bridge does not know every alert of the group: its
    known ones gone from every peer says nothing of the rest while a peer still lists the group
    (CONTRACT.md). Once no peer lists the group at all, its last notification — which may have
    left the last resolutions out — was its last: resolved by reconciliation."""
    incident = opened("a1", "a2")
    incident.truncated_alerts = 40
    assert decide(incident, *answers).outcome == outcome


def test_a_silenced_incident_resolves_when_its_alerts_are_gone() -> None:
    """A silenced group never sends a resolution; its alerts gone is the resolution, and nothing
    stays paused (a reopening counts its deadlines afresh)."""
    incident = opened("a1")
    incident.paused_at = T0
    after = decide(incident, peer()).incident
    assert after is not None
    assert after.state == "resolved"
    assert after.paused_at is None


@pytest.mark.parametrize(
    ("changed", "events"),
    [
        (ROUND - WAIT - timedelta(seconds=1), ["reconciled"]),
        (ROUND - WAIT, ["reconciled"]),
        (ROUND - WAIT + timedelta(seconds=1), []),
        (ROUND + timedelta(seconds=1), []),  # opened while the peers were being asked
    ],
)
def test_young_incidents_are_not_resolved(changed: datetime, events: list[str]) -> None:
    """An incident that changed less than group_wait before the round began is left alone: the
    peers' answer may predate the webhook that opened (or updated) it."""
    assert kinds(decide(opened("a1", at=changed), peer(), now=ROUND + WAIT)) == events
    updated = opened("a1")
    updated.alerts["a1"].updated_at = changed
    assert kinds(decide(updated, peer(), now=ROUND + WAIT)) == events


def test_a_maintenance_request_is_reconciled_but_never_silenced() -> None:
    """Maintenance requests have no deadlines to pause; their condition gone is reconciled."""
    request = opened("a1", kind="maint")
    assert kinds(decide(request, peer(silenced("a1")))) == []
    assert kinds(decide(request, peer())) == ["reconciled"]


def test_only_open_incidents_with_firing_alerts_are_stepped() -> None:
    """Nothing to contradict: no incident, a resolved one, one with no firing alert left."""
    step = reconcile_step(observe([peer()], ROUND), WAIT)
    assert step(None, ROUND).outcome == "unchanged"
    resolved = decide(opened("a1"), peer()).incident
    assert resolved is not None
    assert not step(resolved, ROUND).changed
    quiet = opened("a1")
    quiet.alerts["a1"].status = "resolved"
    assert not step(quiet, ROUND).changed


# -- groups Alertmanager has and the bridge does not -----------------------------------------


def group_of(*alerts: PeerAlert, name: str = "am-0", **labels: str) -> PeerGroups:
    return peer(*alerts, name=name, labels=labels or {"alertname": "Other"})


def old(fp: str, age: timedelta = timedelta(minutes=5), **labels: str) -> PeerAlert:
    return dataclasses.replace(listed(fp, labels=labels), starts_at=ROUND - age)


MISSED = [
    ("an old active group", [group_of(old("b1"))], ["b1"]),
    ("known by a fingerprint", [group_of(old("a1"), old("b1"))], []),
    ("known by a suppressed alert", [group_of(silenced("a1"), old("b1"))], []),
    ("every alert silenced", [group_of(silenced("b1"))], []),
    ("only the heartbeat", [group_of(old("w1", alertname="Watchdog"))], []),
    ("the heartbeat left out", [group_of(old("w1", alertname="Watchdog"), old("b1"))], ["b1"]),
    ("young", [group_of(old("b1", WAIT - timedelta(seconds=1)))], []),
    ("exactly group_wait old", [group_of(old("b1", WAIT))], ["b1"]),
    (
        "young and old: the oldest counts",
        [group_of(old("b1"), old("b2", timedelta(0)))],
        ["b1", "b2"],
    ),
    ("on two peers: one group", [group_of(old("b1")), group_of(old("b1"), name="am-1")], ["b1"]),
    (
        "active on one peer, silenced on the other",
        [group_of(silenced("b1")), group_of(old("b1"), name="am-1")],
        ["b1"],
    ),
    ("a peer down: what answered", [group_of(old("b1")), down()], ["b1"]),
]


@pytest.mark.parametrize(
    ("answers", "fps"), [(a, f) for _, a, f in MISSED], ids=[name for name, _, _ in MISSED]
)
def test_missed_groups(answers: list[PeerGroups], fps: list[str]) -> None:
    """The open incidents hold a1; which active groups were never heard of (lost webhooks)?"""
    found = missed_groups(answers, {"a1"}, ROUND, WAIT, "Watchdog")
    assert [[a.fingerprint for a in group.alerts] for group in found] == ([fps] if fps else [])


def test_two_groups_of_two_receivers_are_two() -> None:
    """Groups are told apart by receiver and group labels, in a stable order."""
    answers = [
        group_of(old("b1"), service="api"),
        group_of(old("b2"), service="db"),
        PeerGroups("am-0", (AlertGroup("other", {"service": "api"}, (old("b3"),)),)),
    ]
    found = missed_groups(answers, set(), ROUND, WAIT, "Watchdog")
    assert [(g.receiver, g.labels) for g in found] == [
        ("other", {"service": "api"}),
        ("r", {"service": "api"}),
        ("r", {"service": "db"}),
    ]


def test_a_missed_group_becomes_the_notification_alertmanager_would_have_sent() -> None:
    """Built from the API group, the notification has the webhook's identity under
    ``identity: group_labels`` — the webhook arriving later meets the same incident."""
    webhook = parse_webhook((FIXTURES / "07_from_real_prometheus.json").read_bytes())
    [sent] = webhook.alerts
    group = MissedGroup(
        receiver=webhook.receiver,
        labels=dict(webhook.group_labels),
        alerts=(
            PeerAlert(
                sent.fingerprint,
                dict(sent.labels),
                dict(sent.annotations),
                sent.starts_at,
                T0 + timedelta(hours=1),
                sent.generator_url,
                "active",
            ),
        ),
        peer="http://127.0.0.1:19093",
    )
    built = notification_of(group)
    assert identity_of(built, "group_labels") == identity_of(webhook, "group_labels")
    assert built.status == "firing"
    assert built.group_key == ""
    assert built.truncated_alerts == 0
    assert built.common_labels == webhook.common_labels
    assert built.common_annotations == webhook.common_annotations
    assert built.external_url == webhook.external_url
    [alert] = built.alerts
    assert (alert.fingerprint, alert.status, alert.starts_at) == (
        sent.fingerprint,
        "firing",
        sent.starts_at,
    )


def test_common_labels_are_those_every_alert_shares() -> None:
    group = MissedGroup(
        "r", {"alertname": "X"}, (old("b1", zone="a", team="x"), old("b2", zone="b", team="x")), "p"
    )
    assert notification_of(group).common_labels == {"alertname": "HighCPU", "team": "x"}


# -- the API's JSON --------------------------------------------------------------------------

# As Alertmanager 0.25 answers GET /api/v2/alerts/groups (one silenced alert), with a field a
# newer version might add.
REAL_GROUPS = b"""[{"alerts":[{"annotations":{"summary":"cpu"},"endsAt":"2026-11-27T03:07:51.000Z",
"fingerprint":"e0c6fc6f0b677ffc","receivers":[{"name":"bridge"}],"startsAt":"2026-01-01T00:00:00.000Z",
"status":{"inhibitedBy":[],"silencedBy":["3dbaa51c-6bab-49f7-b6b8-50a10c30b832"],
"state":"suppressed","mutedBy":[]},"updatedAt":"2026-11-27T03:02:51.440Z",
"generatorURL":"http://x/graph","labels":{"alertname":"HighCPU","service":"api"}}],
"labels":{"alertname":"HighCPU","service":"api"},"receiver":{"name":"bridge"}}]"""


def test_the_api_answer_is_read_and_unknown_fields_ignored() -> None:
    [group] = parse_groups(REAL_GROUPS, "am-0")
    assert (group.receiver, group.labels) == ("bridge", {"alertname": "HighCPU", "service": "api"})
    [alert] = group.alerts
    assert alert.fingerprint == "e0c6fc6f0b677ffc"
    assert alert.suppressed
    assert alert.silenced_by == ("3dbaa51c-6bab-49f7-b6b8-50a10c30b832",)
    assert alert.starts_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert alert.ends_at == datetime(2026, 11, 27, 3, 7, 51, tzinfo=UTC)
    assert parse_groups(b"[]", "am-0") == ()


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"alerts": []}',
        b'[{"labels": {}, "receiver": {"name": "r"}, "alerts": [{"fingerprint": 1}]}]',
        b'[{"labels": {}, "receiver": {"name": "r"}, "alerts": [{"fingerprint": "f",'
        b' "labels": {}, "startsAt": 1700000000, "status": {"state": "active"}}]}]',
    ],
    ids=["html", "an object", "a number for a fingerprint", "a number for a time"],
)
def test_anything_else_is_a_permanent_error_naming_the_peer(body: bytes) -> None:
    with pytest.raises(AlertmanagerError) as caught:
        parse_groups(body, "http://am-0:9093")
    assert not caught.value.retryable
    assert str(caught.value).startswith("http://am-0:9093: not an Alertmanager alert groups answer")


def test_peer_urls_are_shown_without_credentials() -> None:
    assert display_url("http://ops:hunter2@am-0:9093/am") == "http://am-0:9093/am"
    assert display_url("https://am-1:9093") == "https://am-1:9093"


# -- flapping ----------------------------------------------------------------------------------

FLAP = FlapPolicy(max_flips=3, window=timedelta(hours=1))


def flapping_decision(incident: Incident) -> Decision:
    return reconcile_step(observe([peer()], ROUND), WAIT, FLAP)(incident, ROUND)


def test_a_resolution_by_reconciliation_is_a_flip() -> None:
    """Gone from Alertmanager counts as the group resolving, as a webhook would."""
    incident = opened("a1")
    incident.flips = [ROUND - timedelta(minutes=5)]
    after = flapping_decision(incident).incident
    assert after is not None
    assert after.state == "resolved"
    assert after.flips == [ROUND - timedelta(minutes=5), ROUND]
    assert after.quiet_until is None


def test_the_flip_that_makes_it_flapping_defers_the_close() -> None:
    """The fourth flip within the window: flapping, and the close waits until quiet for the
    window (the engine's settle_flapping timer closes it), its alerts already resolved."""
    incident = opened("a1")
    incident.flips = [ROUND - timedelta(minutes=m) for m in (30, 20, 10)]
    decision = flapping_decision(incident)
    after = decision.incident
    assert after is not None
    assert kinds(decision) == ["flapping", "alert_resolved"]
    assert (after.state, after.flapping, after.quiet_until) == ("open", True, ROUND + FLAP.window)
    assert after.firing_alerts() == []
    assert decision.effects == [EffectSpec("github.sync")]


def test_a_flapping_incident_waits_for_quiet() -> None:
    """Already flapping: no second ``flapping`` event, the close deferred; the next round has
    nothing left to contradict."""
    incident = opened("a1")
    incident.flapping = True
    decision = flapping_decision(incident)
    assert kinds(decision) == ["alert_resolved"]
    assert decision.incident is not None
    assert decision.incident.quiet_until == ROUND + FLAP.window
    assert not flapping_decision(decision.incident).changed


def test_only_the_bridges_receivers_can_miss_a_group() -> None:
    """Alertmanager's API lists every receiver's groups; a group routed to a `null` receiver
    or to another tool was never the bridge's to hear of."""
    answers = [
        group_of(old("b1"), service="api"),
        PeerGroups("am-0", (AlertGroup("null", {"alertname": "InfoInhibitor"}, (old("b2"),)),)),
        PeerGroups("am-0", (AlertGroup("pagerduty", {"service": "db"}, (old("b3"),)),)),
    ]
    found = missed_groups(answers, set(), ROUND, WAIT, "Watchdog", frozenset({"r"}))
    assert [(g.receiver, g.labels) for g in found] == [("r", {"service": "api"})]
