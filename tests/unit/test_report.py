"""MTTD / MTTA / MTTR, SLA compliance, noisy groups and availability (bridge/measures.py,
bridge/report.py, bridge/report_render.py): pure, over realistic incident histories.

A month of incidents is played through the real engine, the real SLA timer step and the
flapping settle step with a fake clock, the way the scheduler would fire them; acknowledgements
and silences are recorded as bridge/acknowledge.py and bridge/reconcile.py record them. The
report of that month, and the metrics each committed decision makes, are then read back.

The window is November 2026 up to the 30th: [2026-10-31 00:00, 2026-11-30 00:00) UTC. In it:

- A  checkout P0: fired 11-02 10:00, opened 10:02, acknowledged 10:06, resolved 10:50;
- B  payments P1: fired 11-05 14:00, opened 14:01, never acknowledged (response deadline
     missed 14:16), resolution deadline missed 18:00, resolved 19:00;
- C  search P2, flapping: fired 11-10 08:00, opened 08:00:30, silenced 08:03, fires and resolves
     three times (08:00-08:10, 08:20-08:30, 08:40-08:50), closed when quiet at 09:50;
- D  node-exporter P3 (a ``job``, no ``service``): fired and opened 11-20 09:00 (a Friday),
     never acknowledged: missed at the next business day's end, Monday 17:00; still open;
- E  checkout P0, the same alert group as A: fired 10-30 23:00 (before the window), opened
     23:01, acknowledged 23:03, resolution deadline missed 10-31 00:00, resolved 01:00;
- an incident of October and a maintenance request in November, never counted.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bridge import acknowledge as ack
from bridge import sla
from bridge.app import build_policy, build_sla_policy
from bridge.clock import FakeClock
from bridge.config import load_config
from bridge.engine import Decision, apply_notification, settle_flapping
from bridge.measures import Observation, last_episode_start, observe, services_of
from bridge.metrics import OTHER_SERVICE, SERVICE_SERIES_LIMIT, Metrics
from bridge.model import AlertSnapshot, Incident, Notification, Priority, TimelineEvent
from bridge.report import (
    Compliance,
    Report,
    Stat,
    Targets,
    build,
    episodes,
    meets,
    targets_of,
)
from bridge.report_render import Bar, bar_chart, human, percent, render_html, render_markdown
from bridge.rules import NEXT_BUSINESS_DAY, Rules
from bridge.store.base import IncidentHistory

RULES = Rules.bundled()
CONFIG = load_config(None, env={})
POLICY = build_policy(CONFIG, RULES)
SLA = build_sla_policy(CONFIG, RULES)
TARGETS = targets_of(RULES)

SINCE = datetime(2026, 10, 31, tzinfo=UTC)
UNTIL = datetime(2026, 11, 30, tzinfo=UTC)
WINDOW = (UNTIL - SINCE).total_seconds()
MIN = 60.0
HOUR = 3600.0

Step = Callable[[Incident, datetime], Decision]


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def alert(
    fp: str,
    starts: datetime,
    ends: datetime | None = None,
    /,
    *,
    priority: str,
    name: str = "HighErrorRate",
    **labels: str,
) -> AlertSnapshot:
    return AlertSnapshot(
        fingerprint=fp,
        status="resolved" if ends is not None else "firing",
        labels={"alertname": name, "priority": priority, **labels},
        annotations={"summary": f"{name} on {labels.get('service') or labels.get('job')}"},
        starts_at=starts,
        ends_at=ends,
        generator_url="",
    )


class World:
    """Incidents kept as the store keeps them, decisions committed as the Ingestor commits
    them, timers fired when due as the scheduler fires them, all on a fake clock."""

    def __init__(self, start: datetime) -> None:
        self.clock = FakeClock(start)
        self.incidents: dict[int, Incident] = {}
        self.events: dict[int, list[TimelineEvent]] = {}
        self.latest: dict[str, int] = {}
        self.decisions: list[Decision] = []

    def notify(self, group: str, *alerts: AlertSnapshot) -> Decision:
        note = Notification(
            receiver="team",
            status="firing" if any(a.status == "firing" for a in alerts) else "resolved",
            alerts=alerts,
            group_labels={"alertname": alerts[0].labels["alertname"], "group": group},
            common_labels={},
            common_annotations={},
            external_url="",
            group_key=f'{{}}:{{group="{group}"}}',
            truncated_alerts=0,
        )
        current = self.incidents.get(self.latest[group]) if group in self.latest else None
        return self.commit(group, apply_notification(current, note, self.clock(), POLICY))

    def apply(self, group: str, step: Step) -> Decision:
        return self.commit(group, step(self.incidents[self.latest[group]], self.clock()))

    def commit(self, group: str, decision: Decision) -> Decision:
        incident = decision.incident
        if not decision.changed or incident is None:
            return decision
        if decision.is_new:
            incident.id = incident.number = len(self.incidents) + 1
            incident.key, incident.identity = f"key-{group}", group
        assert incident.id is not None
        self.incidents[incident.id] = incident
        self.events.setdefault(incident.id, []).extend(decision.events)
        self.latest[group] = incident.id
        self.decisions.append(decision)
        return decision

    def run_until(self, moment: datetime) -> None:
        """Fire every timer due up to ``moment`` at its due time, then move to ``moment``."""
        while True:
            due = [
                (i.due_at, group)
                for group, n in self.latest.items()
                if (i := self.incidents[n]).due_at is not None and i.due_at <= moment
            ]
            if not due:
                break
            when, group = min(due)
            assert when is not None
            self.clock.now = max(self.clock.now, when)
            self.apply(group, lambda i, now: sla.step(i, now, SLA))
            self.apply(group, settle_flapping)
        self.clock.now = moment

    def history(self) -> list[IncidentHistory]:
        return [IncidentHistory(i, list(self.events[n])) for n, i in self.incidents.items()]


def acknowledge(who: str) -> Step:
    """What bridge/acknowledge.py records when someone is assigned the issue."""

    def step(current: Incident, now: datetime) -> Decision:
        incident = copy.copy(current)
        incident.acknowledged_at, incident.acknowledged_by = now, who
        incident.acknowledged_via = "assigned"
        incident.event_seq += 1
        event = TimelineEvent(
            incident.event_seq, now, "acknowledged", f"Acknowledged by {who}", {"who": who}
        )
        return Decision("acknowledged", incident=incident, changed=True, events=[event])

    return step


def silence(current: Incident, now: datetime) -> Decision:
    """What bridge/reconcile.py records when every alert is silenced in Alertmanager."""
    incident = copy.copy(current)
    incident.paused_at = now
    if incident.acknowledged_at is None:
        incident.acknowledged_at, incident.acknowledged_by = now, "Alertmanager silence s1"
        incident.acknowledged_via = "silence"
    incident.event_seq += 1
    event = TimelineEvent(incident.event_seq, now, "silenced", "Silenced", {"silences": ["s1"]})
    return Decision("silenced", incident=incident, changed=True, events=[event])


def play_month() -> World:
    """The histories of the module docstring."""
    w = World(at(10, 1, 9))
    # October: an incident long before the window.
    w.notify("old", alert("o1", at(10, 1, 9), priority="P2", service="billing"))
    w.clock.now = at(10, 1, 9, 30)
    w.notify("old", alert("o1", at(10, 1, 9), at(10, 1, 9, 30), priority="P2", service="billing"))
    # E: checkout P0 across the window's start.
    checkout = {"name": "ServiceUnavailable", "service": "checkout"}
    w.run_until(at(10, 30, 23, 1))
    w.notify("checkout", alert("e1", at(10, 30, 23), priority="P0", **checkout))
    w.run_until(at(10, 30, 23, 3))
    w.apply("checkout", acknowledge("alice"))
    w.run_until(at(10, 31, 1))
    w.notify("checkout", alert("e1", at(10, 30, 23), at(10, 31, 1), priority="P0", **checkout))
    # A: checkout P0 again, three days later: a new incident of the same group.
    w.run_until(at(11, 2, 10, 2))
    w.notify("checkout", alert("a1", at(11, 2, 10), priority="P0", **checkout))
    w.run_until(at(11, 2, 10, 6))
    w.apply("checkout", acknowledge("bob"))
    w.run_until(at(11, 2, 10, 51))
    w.notify("checkout", alert("a1", at(11, 2, 10), at(11, 2, 10, 50), priority="P0", **checkout))
    # B: payments P1 nobody answers.
    w.run_until(at(11, 5, 14, 1))
    w.notify("payments", alert("b1", at(11, 5, 14), priority="P1", service="payments"))
    w.run_until(at(11, 5, 19))
    w.notify(
        "payments", alert("b1", at(11, 5, 14), at(11, 5, 19), priority="P1", service="payments")
    )
    # C: search P2 flaps: three episodes, then closed once quiet for the flap window.
    search = {"service": "search", "name": "SlowQueries"}
    w.run_until(at(11, 10, 8, 0, 30))
    w.notify("search", alert("c1", at(11, 10, 8), priority="P2", **search))
    w.run_until(at(11, 10, 8, 3))
    w.apply("search", silence)
    for start in (at(11, 10, 8), at(11, 10, 8, 20), at(11, 10, 8, 40)):
        if start != at(11, 10, 8):
            w.run_until(start)
            w.notify("search", alert("c1", start, priority="P2", **search))
        end = start + timedelta(minutes=10)
        w.run_until(end)
        w.notify("search", alert("c1", start, end, priority="P2", **search))
    # A maintenance request: never an incident.
    w.run_until(at(11, 15, 12))
    w.notify("disk", alert("m1", at(11, 15, 12), priority="P3", kind="maintenance", job="db"))
    # D: a P3 on a Friday morning, no service label but a job; still open at the end.
    w.run_until(at(11, 20, 9))
    w.notify("node", alert("d1", at(11, 20, 9), priority="P3", job="node-exporter"))
    w.run_until(UNTIL)
    return w


@pytest.fixture(scope="module")
def month() -> World:
    return play_month()


@pytest.fixture(scope="module")
def report(month: World) -> Report:
    return build(month.history(), SINCE, UNTIL, TARGETS)


def by_summary(report: Report) -> dict[str, int]:
    return {g.summary: g.episodes for g in report.noisiest}


# -- the month's figures --------------------------------------------------------------------------


def test_the_month_is_what_the_docstring_says(month: World) -> None:
    """The played history: six incidents and a maintenance request, C flapped and reopened
    twice, B and D missed their response deadlines, B and E their resolution deadlines."""
    incidents = [i for i in month.incidents.values() if i.kind == "incident"]
    assert len(incidents) == 6
    assert [i.kind for i in month.incidents.values()].count("maint") == 1
    search = month.incidents[month.latest["search"]]
    assert (search.reopen_count, search.state, search.resolved_at) == (
        2,
        "resolved",
        at(11, 10, 8, 50),
    )
    breaches = sorted(
        (month.incidents[n].summary, e.data["which"])
        for n, events in month.events.items()
        for e in events
        if e.kind == "sla_breached"
    )
    assert breaches == [
        ("HighErrorRate on node-exporter", "response"),
        ("HighErrorRate on payments", "resolution"),
        ("HighErrorRate on payments", "response"),
        ("ServiceUnavailable on checkout", "resolution"),
    ]


def test_incidents_by_priority_count_openings_resolutions_and_open_ones(report: Report) -> None:
    """Opened counts what opened in the window (not E); resolved what resolved in it (E too);
    the October incident and the maintenance request are not there at all."""
    counts = {str(r.priority): (r.opened, r.resolved, r.open_at_end) for r in report.rows}
    assert counts == {"P0": (1, 2, 0), "P1": (1, 1, 0), "P2": (1, 1, 0), "P3": (1, 0, 1)}
    assert (report.overall.opened, report.overall.resolved, report.overall.open_at_end) == (4, 4, 1)
    assert report.incidents == 5


def test_mttd_mtta_mttr_per_priority_and_against_the_targets(report: Report) -> None:
    """MTTD over the openings, MTTA over the acknowledged ones (a silence acknowledges), MTTR
    from the first alert to the last resolution (C: 50 min through its three episodes)."""
    p0, p1, p2, p3 = report.rows
    assert p0.detect == Stat(1, 2 * MIN, 2 * MIN)
    assert p0.acknowledge == Stat(1, 4 * MIN, 4 * MIN)
    assert p0.resolve == Stat(2, (50 * MIN + 2 * HOUR) / 2, 2 * HOUR)  # A and E
    assert meets(p0.resolve, TARGETS[Priority.P0].resolve) is False  # 85 min against < 1 h
    assert p1.detect == Stat(1, MIN, MIN)
    assert p1.acknowledge == Stat(0, None, None)
    assert p1.resolve == Stat(1, 5 * HOUR, 5 * HOUR)
    assert meets(p1.resolve, TARGETS[Priority.P1].resolve) is False
    assert p2.detect == Stat(1, 30, 30)
    assert p2.acknowledge == Stat(1, 150, 150)
    assert p2.resolve == Stat(1, 50 * MIN, 50 * MIN)
    assert meets(p2.resolve, TARGETS[Priority.P2].resolve) is True
    assert p3.detect == Stat(1, 0, 0)
    assert p3.resolve == Stat(0, None, None)
    assert report.overall.detect == Stat(4, (120 + 60 + 30 + 0) / 4, 120)
    assert meets(report.overall.detect, report.mttd_target) is True


def test_sla_compliance_is_the_share_of_openings_without_a_breach(report: Report) -> None:
    """E's resolution breach happened in the window but E opened before it: not counted."""
    compliance = {
        str(r.priority): (r.response, r.resolution) for r in [*report.rows, report.overall]
    }
    assert compliance["P0"] == (Compliance(1, 0), Compliance(1, 0))
    assert compliance["P1"] == (Compliance(1, 1), Compliance(1, 1))
    assert compliance["P2"] == (Compliance(1, 0), Compliance(1, 0))
    assert compliance["P3"] == (Compliance(1, 1), Compliance(1, 0))
    assert compliance["None"] == (Compliance(4, 2), Compliance(4, 1))
    assert report.overall.response.share == 0.5


def test_unacknowledged_incidents_are_listed_most_urgent_first(report: Report) -> None:
    """B and D: nobody answered them; C counts as acknowledged by its silence."""
    listed = [
        (u.display_id, str(u.priority), u.resolved_at, u.response_breached)
        for u in report.unacknowledged
    ]
    assert listed == [("INC-004", "P1", at(11, 5, 19), True), ("INC-007", "P3", None, True)]


def test_the_noisiest_group_is_the_flapping_one(report: Report) -> None:
    """C's three episodes put it first; checkout's two incidents (one opened before the window)
    rank it above the single-episode groups."""
    first, second, *rest = report.noisiest
    assert (first.summary, first.episodes, first.alerts_fired, first.flapping) == (
        "SlowQueries on search",
        3,
        3,
        True,
    )
    assert (second.summary, second.incidents, second.episodes, second.latest) == (
        "ServiceUnavailable on checkout",
        2,
        1,
        "INC-003",
    )
    assert [g.summary for g in rest] == [
        "HighErrorRate on node-exporter",
        "HighErrorRate on payments",
    ]
    assert second.group_labels == {"alertname": "ServiceUnavailable", "group": "checkout"}


def test_incident_minutes_and_availability_per_service(report: Report) -> None:
    """checkout was down 50 min (A) plus E's hour inside the window: below 99.9 %; payments was
    degraded (P1) 5 h, available; search's three 10-minute episodes are 30 min; node-exporter is
    a job; the maintenance request's service is not there."""
    services = {s.service: s for s in report.services}
    assert list(services) == ["checkout", "node-exporter", "payments", "search"]
    checkout = services["checkout"]
    assert (checkout.incidents, checkout.down_seconds, checkout.degraded_seconds) == (
        2,
        110 * MIN,
        0,
    )
    assert checkout.availability == pytest.approx(1 - 110 * MIN / WINDOW)
    assert not checkout.meets_target
    payments = services["payments"]
    assert (payments.down_seconds, payments.degraded_seconds, payments.availability) == (
        0,
        5 * HOUR,
        1.0,
    )
    assert services["search"].incident_seconds == 30 * MIN
    assert services["node-exporter"].incident_seconds == (UNTIL - at(11, 20, 9)).total_seconds()


# -- episodes and edges ----------------------------------------------------------------------------


def test_episodes_follow_the_timeline(month: World) -> None:
    """C's episodes start at each new startsAt (its alert_firing events before the reopening)
    and end at each resolution; the last one when the quiet period closed it."""
    search = month.latest["search"]
    found = episodes(month.incidents[search], month.events[search])
    assert [(e.start, e.end) for e in found] == [
        (at(11, 10, 8), at(11, 10, 8, 10)),
        (at(11, 10, 8, 20), at(11, 10, 8, 30)),
        (at(11, 10, 8, 40), at(11, 10, 8, 50)),
    ]
    assert {e.priority for e in found} == {Priority.P2}


def test_a_report_ending_earlier_sees_the_state_of_then(month: World) -> None:
    """Until 11-05 16:00, B is open (its resolution comes later), unacknowledged, with its
    response deadline missed but not yet its resolution deadline."""
    until = at(11, 5, 16)
    early = build(month.history(), until - timedelta(days=7), until, TARGETS)
    p1 = early.row(Priority.P1)
    assert (p1.opened, p1.resolved, p1.open_at_end) == (1, 0, 1)
    assert (p1.response, p1.resolution) == (Compliance(1, 1), Compliance(1, 0))
    payments = next(s for s in early.services if s.service == "payments")
    assert payments.degraded_seconds == 2 * HOUR


def test_a_priority_rise_counts_as_the_higher_priority_from_the_rise() -> None:
    """An incident opened P2 and raised to P0 is a P0 incident; it is down only after the rise."""
    w = World(at(11, 3, 12))
    w.notify("api", alert("x1", at(11, 3, 12), priority="P2", service="api"))
    w.run_until(at(11, 3, 12, 30))
    w.notify(
        "api",
        alert("x1", at(11, 3, 12), priority="P2", service="api"),
        alert("x2", at(11, 3, 12, 30), priority="P0", service="api"),
    )
    report = build(w.history(), SINCE, UNTIL, TARGETS)
    assert report.row(Priority.P0).opened == 1
    (api,) = report.services
    # The episode is P0 as a whole (its highest): down from the first alert to the window's end.
    assert api.down_seconds == (UNTIL - at(11, 3, 12)).total_seconds()


def test_overlapping_outages_of_a_service_count_once() -> None:
    """Two P0 incidents of one service at the same time: incident minutes add up, the time
    down does not."""
    w = World(at(11, 3, 12))
    w.notify("db", alert("p1", at(11, 3, 12), priority="P0", service="shop"))
    w.notify("web", alert("p2", at(11, 3, 12, 30), priority="P0", service="shop"))
    w.run_until(at(11, 3, 13))
    w.notify("db", alert("p1", at(11, 3, 12), at(11, 3, 13), priority="P0", service="shop"))
    w.notify("web", alert("p2", at(11, 3, 12, 30), at(11, 3, 13), priority="P0", service="shop"))
    (shop,) = build(w.history(), SINCE, UNTIL, TARGETS).services
    assert (shop.incident_seconds, shop.down_seconds, shop.incidents) == (90 * MIN, HOUR, 2)


def test_without_a_timeline_the_incidents_fields_stand_in(month: World) -> None:
    """A pruned or rebuilt incident (no events) counts as one episode from its fields, with its
    recorded acknowledgement and breaches; the report says how many were counted so."""
    payments = month.latest["payments"]
    bare = [IncidentHistory(month.incidents[payments], [])]
    report = build(bare, SINCE, UNTIL, TARGETS)
    p1 = report.row(Priority.P1)
    assert (p1.opened, p1.resolved, p1.resolve) == (1, 1, Stat(1, 5 * HOUR, 5 * HOUR))
    assert (p1.response, p1.resolution) == (Compliance(1, 1), Compliance(1, 1))
    assert report.notes == (
        "1 incident(s) without a timeline (pruned or rebuilt): counted from their own fields,"
        " one episode each.",
    )


def test_an_empty_window_reports_nothing_and_never_divides_by_zero() -> None:
    report = build([], SINCE, UNTIL, TARGETS)
    assert report.overall.detect == Stat(0, None, None)
    assert report.overall.response.share is None
    assert report.services == ()
    assert report.noisiest == ()
    assert "Every incident opened in the window was acknowledged." in render_markdown(report)
    assert render_html(report).count("<svg") == 3


def test_a_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        build([], UNTIL, SINCE, TARGETS)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], Stat(0, None, None)),
        ([5.0], Stat(1, 5.0, 5.0)),
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], Stat(10, 5.5, 9.0)),
        ([10.0, 1.0, 100.0], Stat(3, 37.0, 100.0)),  # ceil(2.7) = 3rd of 3
        ([float(n) for n in range(1, 12)], Stat(11, 6.0, 10.0)),  # ceil(9.9) = 10th
    ],
)
def test_p90_is_the_nearest_rank(values: list[float], expected: Stat) -> None:
    assert Stat.of(values) == expected


def test_a_next_business_day_target_is_judged_by_breaches_only() -> None:
    """P3's respond target has no length: meets() cannot judge a mean against it."""
    assert TARGETS[Priority.P3].respond == NEXT_BUSINESS_DAY
    assert meets(Stat(1, 60.0, 60.0), NEXT_BUSINESS_DAY) is None
    assert meets(Stat(1, 60.0, 60.0), timedelta(minutes=1)) is False
    assert meets(Stat(1, 59.0, 59.0), timedelta(minutes=1)) is True
    assert meets(Stat(0, None, None), timedelta(minutes=1)) is None


# -- the metrics' view: one committed decision at a time ------------------------------------------


def observations(w: World) -> list[tuple[str, Observation]]:
    found = []
    for decision in w.decisions:
        seen = observe(decision)
        if seen is not None:
            assert decision.incident is not None
            found.append((decision.incident.display_id, seen))
    return found


def test_each_decision_observes_what_it_changed(month: World) -> None:
    """Openings give TTD, first acknowledgements TTA (C's through its silence), every
    resolution TTR from the first alert (C three times) and its episode's incident time."""
    seen = observations(month)
    detect = [(n, o.detect) for n, o in seen if o.detect is not None]
    assert detect == [
        ("INC-001", 0.0),
        ("INC-002", 60.0),
        ("INC-003", 120.0),
        ("INC-004", 60.0),
        ("INC-005", 30.0),
        ("INC-007", 0.0),
    ]
    assert [(n, o.acknowledge) for n, o in seen if o.acknowledge is not None] == [
        ("INC-002", 120.0),
        ("INC-003", 240.0),
        ("INC-005", 150.0),
    ]
    resolve = [(n, o.resolve, o.incident_time, o.services) for n, o in seen if o.resolve]
    assert resolve == [
        ("INC-001", 30 * MIN, 30 * MIN, ("billing",)),
        ("INC-002", 2 * HOUR, 2 * HOUR, ("checkout",)),
        ("INC-003", 50 * MIN, 50 * MIN, ("checkout",)),
        ("INC-004", 5 * HOUR, 5 * HOUR, ("payments",)),
        ("INC-005", 10 * MIN, 10 * MIN, ("search",)),
        ("INC-005", 30 * MIN, 10 * MIN, ("search",)),
        ("INC-005", 50 * MIN, 10 * MIN, ("search",)),
    ]
    assert {o.priority for n, o in seen if n == "INC-004"} == {Priority.P1}


def test_maintenance_and_unchanged_decisions_observe_nothing(month: World) -> None:
    maint = next(
        d for d in month.decisions if d.incident is not None and d.incident.kind == "maint"
    )
    assert observe(maint) is None
    assert observe(Decision("unchanged", incident=month.incidents[1])) is None
    assert observe(Decision("unchanged")) is None


def test_a_silence_on_an_acknowledged_incident_is_no_second_acknowledgement() -> None:
    w = World(at(11, 3, 12))
    w.notify("x", alert("x1", at(11, 3, 12), priority="P1", service="x"))
    w.clock.now = at(11, 3, 12, 5)
    first = w.apply("x", acknowledge("carol"))
    w.clock.now = at(11, 3, 12, 9)
    again = w.apply("x", silence)
    assert observe(first) == Observation(Priority.P1, acknowledge=300.0)
    assert observe(again) is None


def test_a_reacknowledged_reopening_is_not_observed() -> None:
    """A reopened incident is acknowledged afresh, but its opened_at is the first opening's:
    the metric keeps to the first episode (the report reads the first acknowledgement)."""
    w = World(at(11, 3, 12))
    w.notify("x", alert("x1", at(11, 3, 12), priority="P1", service="x"))
    w.clock.now = at(11, 3, 12, 10)
    w.notify("x", alert("x1", at(11, 3, 12), at(11, 3, 12, 10), priority="P1", service="x"))
    w.clock.now = at(11, 3, 13)
    w.notify("x", alert("x1", at(11, 3, 13), priority="P1", service="x"))
    ack = w.apply("x", acknowledge("dave"))
    assert ack.incident is not None
    assert ack.incident.reopen_count == 1
    assert observe(ack) is None


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([{"service": "checkout"}], ("checkout",)),
        ([{"job": "node"}], ("node",)),
        ([{"service": "checkout", "job": "node"}], ("checkout",)),
        ([{"service": "b"}, {"service": "a"}, {"job": "a"}], ("a", "b")),
        ([{"service": "  spaced   out "}], ("spaced out",)),
        ([{}], ("unknown",)),
        ([{"service": ""}, {"instance": "x"}], ("unknown",)),
        ([{"service": "s" * 300}], ("s" * 100,)),
    ],
)
def test_services_of_an_incident(labels: list[dict[str, str]], expected: tuple[str, ...]) -> None:
    """Each alert's service label, else its job; "unknown" when none has either; capped."""
    w = World(at(11, 3, 12))
    w.notify(
        "g",
        *(alert(f"f{n}", at(11, 3, 12), priority="P2", **extra) for n, extra in enumerate(labels)),
    )
    assert services_of(w.incidents[1]) == expected


def test_the_last_episode_starts_after_the_last_gap_in_firing() -> None:
    """A reopened incident's current episode starts where its alerts' last unbroken stretch of
    firing does: an alert of an earlier episode that never fired again is not in it, an alert
    overlapping the new one is."""
    w = World(at(11, 3, 12))
    w.notify(
        "g",
        alert("a", at(11, 3, 12), priority="P2", service="s"),
        alert("b", at(11, 3, 12, 5), priority="P2", service="s"),
    )
    w.clock.now = at(11, 3, 12, 30)
    w.notify(
        "g",
        alert("a", at(11, 3, 12), at(11, 3, 12, 20), priority="P2", service="s"),
        alert("b", at(11, 3, 12, 5), at(11, 3, 12, 30), priority="P2", service="s"),
    )
    w.clock.now = at(11, 3, 14)
    w.notify("g", alert("a", at(11, 3, 14), priority="P2", service="s"))
    w.clock.now = at(11, 3, 14, 10)
    w.notify("g", alert("c", at(11, 3, 14, 5), priority="P2", service="s"))
    incident = w.incidents[1]
    assert (incident.reopen_count, incident.state) == (1, "open")
    assert last_episode_start(incident) == at(11, 3, 14)


# -- rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0.4, "0s"),
        (45, "45s"),
        (60, "1m"),
        (250, "4m 10s"),
        (3600, "1h 00m"),
        (3900, "1h 05m"),
        (86400, "1d"),
        (2 * 86400 + 3 * 3600 + 59, "2d 3h"),
    ],
)
def test_human_durations(value: float | None, text: str) -> None:
    assert human(value) == text


@pytest.mark.parametrize(
    ("share", "text"),
    [
        (None, "—"),
        (1.0, "100.00%"),
        (0.99999, "99.99%"),
        (0.998999, "99.89%"),
        (0.0, "0.00%"),
        (57 / 100, "57.00%"),  # 0.57 times 10,000 is 5,699.999… in floating point
        (69 / 100, "69.00%"),
        (43 / 125, "34.40%"),
        (2 / 3, "66.66%"),
    ],
)
def test_percentages_are_cut_so_a_miss_never_shows_as_the_target(
    share: float | None, text: str
) -> None:
    assert percent(share) == text


def test_the_markdown_report_has_every_section_with_the_figures(report: Report) -> None:
    text = render_markdown(report)
    assert text.startswith(
        "# Incident report: 2026-10-31 00:00 UTC to 2026-11-30 00:00 UTC (30 days)\n"
    )
    for heading in (
        "## Summary",
        "## Incidents by priority",
        "## SLA compliance",
        "## Unacknowledged incidents",
        "## Noisiest alert groups (top 10)",
        "## Incident minutes and availability per service",
    ):
        assert f"\n{heading}\n" in text
    assert "- ✅ MTTD 52s (p90 2m), target < 5m: met." in text
    assert "- ❌ MTTR P0 1h 25m over 2 resolved, target < 1h: missed." in text
    p1 = "| P1 | 1 | 1 | 0 | 1m / 1m | ✅ met | — | < 15m ❌ missed | 5h 00m / 5h 00m | < 4h"
    assert f"{p1} ❌ missed |" in text
    assert "| P3 | < 15m" not in text
    assert "| P3 | next business day | 0.00% (0 of 1) | 1 |" in text
    assert "| checkout | 2 | 110 | 1h 50m | 0s | 99.74% | ❌ missed |" in text
    assert (
        "- INC-004 (P1) HighErrorRate on payments — opened 2026-11-05 14:01 UTC, resolved" in text
    )


def test_the_html_report_is_self_contained_with_three_charts(report: Report) -> None:
    page = render_html(report)
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3
    assert 'aria-label="Incidents opened per priority"' in page
    assert "Mean time to resolve against each priority&#x27;s target" in page
    assert "prefers-color-scheme:dark" in page
    for external in ("<script", "src=", "href=", "url(", "@import", "http://", "https://"):
        assert external not in page, external


def test_hostile_alert_text_is_inert_in_both_formats() -> None:
    """Summaries, group labels and services come from alerts: no HTML, no table break, no
    mention, in Markdown, in the page and inside the SVG."""
    w = World(at(11, 3, 12))
    evil = "<script>alert(1)</script> | @oncall </svg><img src=x onerror=1>"
    snapshot = alert("x", at(11, 3, 12), priority="P0", service=evil)
    w.notify("g", dataclasses.replace(snapshot, annotations={"summary": evil}))
    report = build(w.history(), SINCE, UNTIL, TARGETS)
    markdown = render_markdown(report)
    page = render_html(report)
    for text in (markdown, page):
        assert "<script>" not in text
        assert "<img" not in text
        assert "</svg><img" not in text
    assert "@oncall" not in markdown  # a zero-width joiner keeps it from pinging anyone
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| @\u2060oncall" in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | @oncall &lt;/svg&gt;&lt;img" in page
    assert page.count("<svg") == page.count("</svg>") == 3


def test_a_resumed_episode_is_not_counted_twice() -> None:
    """a and b fire at 10:00; a notification at 11:00 lists only b, resolved (a resolved by
    absence: the incident resolves); a fires again at 11:30 with its old startsAt (the same
    episode resumes); it resolves at 12:00. Two hours of impact, not three: the resumed
    stretch starts where the last one ended, not at a's old startsAt."""
    w = World(at(11, 3, 10))
    a = alert("a", at(11, 3, 10), priority="P2", service="shop")
    b = alert("b", at(11, 3, 10), priority="P2", service="shop")
    w.notify("g", a, b)
    w.clock.now = at(11, 3, 11)
    w.notify("g", alert("b", at(11, 3, 10), at(11, 3, 11), priority="P2", service="shop"))
    w.clock.now = at(11, 3, 11, 30)
    assert w.notify("g", a).outcome == "reopened"
    w.clock.now = at(11, 3, 12)
    w.notify("g", alert("a", at(11, 3, 10), at(11, 3, 12), priority="P2", service="shop"))
    [incident] = w.incidents.values()
    assert incident.id is not None
    spans = episodes(incident, w.events[incident.id])
    assert sum(((e.end or e.start) - e.start for e in spans), timedelta()) == timedelta(hours=2)


def test_a_reported_incident_has_a_timeline() -> None:
    """An issue people opened (``reported``), closed at 11:00, reopened by hand two days later
    and closed an hour after: two episodes, two hours — not one stretch of fifty."""
    w = World(at(11, 3, 10))
    issue = ack.Report("acme/incidents", 7, "Checkout hangs", "alice", frozenset({"incident"}))
    w.commit("r", ack.report(issue, {}, POLICY)(None, w.clock()))
    w.clock.now = at(11, 3, 11)
    w.apply("r", ack.close_manually("alice"))
    w.clock.now = at(11, 5, 11)
    w.apply("r", ack.reopen_manually("bob"))
    w.clock.now = at(11, 5, 12)
    w.apply("r", ack.close_manually("bob"))
    [incident] = w.incidents.values()
    assert incident.id is not None
    spans = episodes(incident, w.events[incident.id])
    assert [(e.start, e.end) for e in spans] == [
        (at(11, 3, 10), at(11, 3, 11)),
        (at(11, 5, 11), at(11, 5, 12)),
    ]


def test_control_and_bidi_characters_never_reach_the_page() -> None:
    """A service label or summary carrying a right-to-left override, NUL or ESC: left out of
    both formats (an override would reorder the rest of a line or an SVG label)."""
    w = World(at(11, 3, 12))
    evil = "pay\u202ements\x00\x1b[31m"
    snapshot = alert("x", at(11, 3, 12), priority="P0", service=evil)
    w.notify("g", dataclasses.replace(snapshot, annotations={"summary": f"down {evil}"}))
    report = build(w.history(), SINCE, UNTIL, TARGETS)
    for text in (render_markdown(report), render_html(report)):
        for invisible in ("\u202e", "\x00", "\x1b"):
            assert invisible not in text
        assert "payments" in text


def test_bar_charts_clamp_their_bars_and_escape_their_labels() -> None:
    svg = bar_chart(
        "A <chart>",
        [
            bar("over", 3.0),
            bar("under", -1.0),
            bar("a-very-long-service-name", 0.5),
        ],
        (0.5, "target"),
    )
    assert svg.startswith('<svg class="chart" viewBox="0 0 400 ')
    assert 'aria-label="A &lt;chart&gt;"' in svg
    assert 'width="180.0" height="18" rx="3" class="bar ok"' in svg  # clamped at the full width
    assert 'width="0.0" height="18" rx="3" class="bar ok"' in svg
    assert ">a-very-long-se…<" in svg
    assert "<title>a-very-long-service-name</title>" in svg


def bar(label: str, fraction: float) -> Bar:
    return Bar(label=label, fraction=fraction, value="v", tone="ok", title=label)


def test_the_targets_come_from_the_rules() -> None:
    assert TARGETS[Priority.P0] == Targets(
        name="Critical",
        respond=timedelta(minutes=5),
        resolve=timedelta(hours=1),
        respond_text="Immediate (acknowledged within 5 min, else escalate), any hour",
        resolve_text="< 1 hour",
    )


def test_long_alert_text_is_cut_in_the_page_and_in_markdown_tables() -> None:
    """A summary of thousands of characters takes one capped line, not the page."""
    w = World(at(11, 3, 12))
    long = "disk " * 1000
    snapshot = alert("x", at(11, 3, 12), priority="P2", service="db")
    w.notify("g", dataclasses.replace(snapshot, annotations={"summary": long}))
    report = build(w.history(), SINCE, UNTIL, TARGETS)
    page = render_html(report)
    assert f"{'disk ' * 39}disk…" in page
    assert "disk " * 41 not in page
    row = next(line for line in render_markdown(report).splitlines() if "<br>" in line)
    assert len(row) < 300


def test_the_service_label_has_a_bounded_number_of_values() -> None:
    """Services come from alert labels: past SERVICE_SERIES_LIMIT distinct ones a process
    counts the rest as "other"; a service it already exports keeps its own series."""
    metrics = Metrics()
    for n in range(SERVICE_SERIES_LIMIT):
        metrics.count_incident_time(f"svc-{n}", "P1", 60.0)
    metrics.count_incident_time("one-too-many", "P0", 30.0)
    metrics.count_incident_time("svc-0", "P0", 10.0)
    metrics.count_incident_time("another", "P2", 5.0)
    value = metrics.registry.get_sample_value
    name = "incident_bridge_incident_seconds_total"
    assert value(name, {"service": OTHER_SERVICE, "priority": "P0"}) == 30.0
    assert value(name, {"service": OTHER_SERVICE, "priority": "P2"}) == 5.0
    assert value(name, {"service": "one-too-many", "priority": "P0"}) is None
    assert value(name, {"service": "svc-0", "priority": "P0"}) == 10.0
    assert value(name, {"service": "svc-0", "priority": "P1"}) == 60.0
