"""The public status page, pure: posts and their times, public text, availability cells, HTML."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from bridge.heartbeat import RULE as HEARTBEAT_RULE
from bridge.model import AlertState, Incident, Priority
from bridge.status_page import (
    Step,
    availability,
    bar_svg,
    build_page,
    format_percent,
    page_json,
    posts,
    public_text,
    render_html,
    service_of,
)

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
MIN = timedelta(minutes=1)


def alert(
    fp: str = "a1",
    status: str = "firing",
    starts: datetime = T0,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> AlertState:
    return AlertState(
        fingerprint=fp,
        status="firing" if status == "firing" else "resolved",
        labels=labels if labels is not None else {"alertname": "HighErrorRate"},
        annotations=annotations or {},
        starts_at=starts,
        ends_at=None,
        generator_url="http://prometheus.internal:9090/graph",
        priority=Priority.P1,
        rule="test",
        updated_at=starts,
    )


def incident(
    *,
    number: int = 1,
    priority: Priority = Priority.P1,
    opened: datetime = T0,
    resolved: datetime | None = None,
    acknowledged: datetime | None = None,
    reopen_count: int = 0,
    labels: dict[str, str] | None = None,
    alerts: list[AlertState] | None = None,
    kind: str = "incident",
) -> Incident:
    common = labels if labels is not None else {"alertname": "HighErrorRate", "service": "api"}
    found = alerts if alerts is not None else [alert(labels=dict(common))]
    return Incident(
        key=f"k{number}",
        identity=f"id{number}",
        kind="maint" if kind == "maint" else "incident",
        receiver="r",
        group_key="{}:{}",
        group_labels={},
        state="resolved" if resolved is not None else "open",
        priority=priority,
        priority_rule="test",
        summary="internal summary on db-7.prod.internal",
        opened_at=opened,
        earliest_starts_at=opened,
        respond_by=None,
        resolve_by=None,
        alerts={a.fingerprint: a for a in found},
        common_labels=common,
        resolved_at=resolved,
        acknowledged_at=acknowledged,
        acknowledged_by="alice" if acknowledged else None,
        reopen_count=reopen_count,
        number=number,
    )


@dataclass(frozen=True)
class Edge:
    name: str
    incident: Incident
    now: datetime
    expected: list[tuple[Step, datetime]]
    reopened_at: datetime | None = None


EDGES = [
    Edge("open", incident(), T0 + 5 * MIN, [("Investigating", T0)]),
    Edge(
        "acknowledged",
        incident(acknowledged=T0 + 4 * MIN),
        T0 + 5 * MIN,
        [("Investigating", T0), ("Identified", T0 + 4 * MIN)],
    ),
    Edge(
        "resolved inside the window",
        incident(resolved=T0 + 20 * MIN),
        T0 + 49 * MIN,
        [("Investigating", T0), ("Monitoring", T0 + 20 * MIN)],
    ),
    Edge(
        "acknowledged, then resolved inside the window",
        incident(acknowledged=T0 + 4 * MIN, resolved=T0 + 20 * MIN),
        T0 + 21 * MIN,
        [("Investigating", T0), ("Identified", T0 + 4 * MIN), ("Monitoring", T0 + 20 * MIN)],
    ),
    Edge(
        "resolved, the window just over",
        incident(resolved=T0 + 20 * MIN),
        T0 + 50 * MIN,
        [("Investigating", T0), ("Monitoring", T0 + 20 * MIN), ("Resolved", T0 + 50 * MIN)],
    ),
    Edge(
        "resolved long after the window",
        incident(acknowledged=T0 + 4 * MIN, resolved=T0 + 20 * MIN),
        T0 + timedelta(days=2),
        [
            ("Investigating", T0),
            ("Identified", T0 + 4 * MIN),
            ("Monitoring", T0 + 20 * MIN),
            ("Resolved", T0 + 50 * MIN),
        ],
    ),
    Edge(
        "acknowledged only after the resolution: no Identified post",
        incident(acknowledged=T0 + 25 * MIN, resolved=T0 + 20 * MIN),
        T0 + 26 * MIN,
        [("Investigating", T0), ("Monitoring", T0 + 20 * MIN)],
    ),
    Edge(
        "reopened: back to Investigating from the reopening (timeline)",
        incident(reopen_count=1),
        T0 + 3 * timedelta(hours=1),
        [("Investigating", T0 + 2 * timedelta(hours=1))],
        reopened_at=T0 + 2 * timedelta(hours=1),
    ),
    Edge(
        "reopened: without the timeline, from the newest alert start",
        incident(
            reopen_count=1,
            alerts=[
                alert("a1", "resolved", T0),
                alert("a2", "firing", T0 + timedelta(hours=1)),
            ],
        ),
        T0 + 2 * timedelta(hours=1),
        [("Investigating", T0 + timedelta(hours=1))],
    ),
    Edge(
        "reopened, acknowledged and resolved again",
        incident(
            reopen_count=2,
            acknowledged=T0 + 65 * MIN,
            resolved=T0 + 80 * MIN,
        ),
        T0 + 111 * MIN,
        [
            ("Investigating", T0 + 60 * MIN),
            ("Identified", T0 + 65 * MIN),
            ("Monitoring", T0 + 80 * MIN),
            ("Resolved", T0 + 110 * MIN),
        ],
        reopened_at=T0 + 60 * MIN,
    ),
]


@pytest.mark.parametrize("edge", EDGES, ids=[e.name for e in EDGES])
def test_posts_follow_the_guide_from_investigating_to_resolved(edge: Edge) -> None:
    """Investigating (open) → Identified (acknowledged) → Monitoring (alerts resolved) →
    Resolved (after the quiet window); a reopening starts again at Investigating. Each post's
    time comes from the incident's fields."""
    got = posts(edge.incident, edge.now, WINDOW, reopened_at=edge.reopened_at)
    assert [(p.status, p.posted_at) for p in got] == edge.expected


def test_posts_use_the_operations_guide_wording() -> None:
    """The guide's status page template, with the public text as the issue description."""
    done = incident(acknowledged=T0 + MIN, resolved=T0 + 2 * MIN)
    texts = {p.status: p.text for p in posts(done, T0 + timedelta(hours=1), WINDOW)}
    assert texts == {
        "Investigating": "We are investigating reports of Service disruption: api.",
        "Identified": "The issue has been identified. We are working on a fix.",
        "Monitoring": "A fix has been implemented and deployed. We are monitoring the situation.",
        "Resolved": "The issue has been resolved. All systems operational.",
    }
    [again] = posts(incident(reopen_count=1), T0 + MIN, WINDOW)
    assert again.text.endswith("The issue has come back after it was resolved.")


def test_a_zero_window_resolves_at_once() -> None:
    """monitoring_window 0s: Monitoring and Resolved are posted at the same moment."""
    done = incident(resolved=T0 + 10 * MIN)
    got = posts(done, T0 + 10 * MIN, timedelta(0))
    assert [p.status for p in got] == ["Investigating", "Monitoring", "Resolved"]


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({"service": "checkout", "instance": "db-7:9100"}, {}, "Service disruption: checkout"),
        ({"alertname": "DatabaseDown", "host": "db-7"}, {}, "Service disruption: DatabaseDown"),
        ({"instance": "db-7.prod.internal"}, {}, "Service disruption"),
        (
            {"service": "checkout"},
            {"public_summary": " Payments are slow ", "description": "db-7 pool exhausted"},
            "Payments are slow",
        ),
    ],
)
def test_public_text_is_the_public_summary_or_the_service(
    labels: dict[str, str], annotations: dict[str, str], expected: str
) -> None:
    """public_summary when present, else "Service disruption: <service>" where the service is
    the ``service`` label, else the alertname; no other label ever."""
    found = incident(labels=labels, alerts=[alert(labels=labels, annotations=annotations)])
    assert public_text(found) == expected


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({}, {"public_summary": "Pay\u202ements slow"}, "Payments slow"),
        ({}, {"public_summary": "line one\nline\x00 two\x1b[31m"}, "line one line two[31m"),
        ({"service": "check\u200bout\u2066"}, {}, "Service disruption: checkout"),
        ({}, {"public_summary": "x" * 400}, "x" * 299 + "\u2026"),
    ],
)
def test_public_text_keeps_no_control_or_bidi_characters(
    labels: dict[str, str], annotations: dict[str, str], expected: str
) -> None:
    """The public page shows alert text on one line without control, zero-width or bidi
    characters: a right-to-left override in a ``public_summary`` would reorder the page."""
    found = incident(labels=labels, alerts=[alert(labels=labels, annotations=annotations)])
    assert public_text(found) == expected


def test_service_comes_from_the_alerts_when_the_group_has_no_common_label() -> None:
    """Without a common ``service`` label, a firing alert's ``service`` label names it."""
    found = incident(labels={}, alerts=[alert(labels={"alertname": "X", "service": "search"})])
    assert service_of(found) == "search"


DAY = timedelta(days=1)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def test_availability_marks_each_day_an_incident_was_open() -> None:
    """P0/P1 make a major outage, P2/P3 degraded, on every UTC day from opening to resolution;
    the worst incident of a day decides it; an open incident counts through today."""
    found = [
        incident(
            number=1,
            priority=Priority.P1,
            opened=NOW - 3 * DAY,
            resolved=NOW - 2 * DAY,
            labels={"service": "api"},
        ),
        incident(
            number=2, priority=Priority.P3, opened=NOW - 2 * DAY, resolved=NOW - 2 * DAY + MIN
        ),
        incident(number=3, priority=Priority.P2, opened=NOW - 10 * DAY, labels={"service": "db"}),
    ]
    result = availability(found, NOW)
    api, db = result.services
    assert (api.service, db.service) == ("api", "db")
    assert len(api.days) == 90
    assert api.days[0].day == TODAY - timedelta(days=89)
    assert api.days[-1].day == TODAY
    levels = {c.day: c.level for c in api.days if c.level != "operational"}
    assert levels == {TODAY - timedelta(days=3): "major", TODAY - timedelta(days=2): "major"}
    assert api.days[-3].incidents == ("INC-001", "INC-002")
    assert api.days[-3].label == f"{TODAY - timedelta(days=2)}: Major outage (INC-001, INC-002)"
    assert [c.level for c in db.days[-12:]] == ["operational"] + ["degraded"] * 11
    assert api.uptime_percent == pytest.approx(100 * 88 / 90)
    assert db.uptime_percent == 100.0
    assert result.uptime_percent == pytest.approx(100 * 88 / 90)
    assert [c.level for c in result.overall[-4:]] == ["major", "major", "degraded", "degraded"]


def test_a_reopened_incident_counts_each_stretch_at_its_own_priority() -> None:
    """A P0 outage three days ago, resolved, back two days later as a P3 (reopened: the
    incident's priority is P3 now): the P0 day is a major outage, the P3 day degraded, the day
    between operational — not the whole span at P3 (which showed 100 % uptime)."""
    back = incident(
        priority=Priority.P3, opened=NOW - 3 * DAY, resolved=NOW - DAY + MIN, reopen_count=1
    )
    stretches = {
        back.key: [
            (NOW - 3 * DAY, NOW - 3 * DAY + 60 * MIN, Priority.P0),
            (NOW - DAY, NOW - DAY + MIN, Priority.P3),
        ]
    }
    [api] = availability([back], NOW, stretches=stretches).services
    assert [c.level for c in api.days[-4:]] == ["major", "operational", "degraded", "operational"]
    assert api.uptime_percent == pytest.approx(100 * 89 / 90)
    [without] = availability([back], NOW).services  # no timeline: the whole span, as it is now
    assert [c.level for c in without.days[-4:]] == ["degraded"] * 3 + ["operational"]


def test_availability_keeps_to_the_last_90_days() -> None:
    """An incident older than the window is left out; one that began before it counts from
    its first day; maintenance requests never count."""
    found = [
        incident(number=1, opened=NOW - 200 * DAY, resolved=NOW - 100 * DAY),
        incident(
            number=2,
            opened=NOW - 120 * DAY,
            resolved=NOW - 88 * DAY,
            labels={"service": "db"},
        ),
        incident(number=3, opened=NOW - DAY, kind="maint", labels={"service": "disk"}),
    ]
    [db] = availability(found, NOW).services
    assert [c.level for c in db.days[:3]] == ["major", "major", "operational"]


def test_days_before_what_was_read_are_no_data() -> None:
    """When the store read was cut short, the days before the oldest incident read are shown
    as no data, not as good days, and are left out of the percentage."""
    found = [incident(opened=NOW - 5 * DAY, resolved=NOW - 5 * DAY + MIN)]
    [api] = availability(found, NOW, covered_from=NOW - 5 * DAY).services
    assert [c.level for c in api.days[-8:]] == ["no_data", "no_data", "major"] + ["operational"] * 5
    assert api.uptime_percent == pytest.approx(100 * 5 / 6)


def test_bar_svg_has_one_titled_coloured_cell_per_day() -> None:
    """90 rects, each with a colour class and fill and a <title>; the whole bar is labelled;
    the service name is escaped."""
    found = [incident(opened=NOW - DAY, resolved=NOW - DAY + MIN, labels={"service": "a<b>"})]
    [bar] = availability(found, NOW).services
    svg = bar_svg(bar)
    rects = re.findall(r'<rect class="(\w+)"[^>]*fill="(#[0-9a-f]{6})"><title>([^<]*)</title>', svg)
    assert len(rects) == 90
    assert rects[-2] == ("major", "#cf222e", f"{TODAY - DAY}: Major outage (INC-001)")
    assert rects[-1] == ("operational", "#2da44e", f"{TODAY}: No incidents")
    assert 'aria-label="a&lt;b&gt;: 98.88% of the last 90 days without a major outage"' in svg
    assert "<b>" not in svg


@pytest.mark.parametrize(
    ("value", "text"),
    [(100.0, "100.00%"), (100 * 89 / 90, "98.88%"), (99.999, "99.99%"), (None, "no data")],
)
def test_percent_is_cut_not_rounded(value: float | None, text: str) -> None:
    """A bad day never shows as 100%."""
    assert format_percent(value) == text


def test_page_lists_open_and_recently_resolved_incidents_with_a_banner() -> None:
    """Open incidents and those resolved in the last 7 days; the banner is a major outage while
    a P0/P1 is not yet fixed, degraded while anything else is still moving."""
    old = incident(number=1, opened=NOW - 10 * DAY, resolved=NOW - 8 * DAY)
    minor = incident(number=2, priority=Priority.P3, opened=NOW - DAY)
    major = incident(number=3, opened=NOW - MIN, acknowledged=NOW)
    page = build_page("Acme", [major, minor, old], NOW, WINDOW)
    assert [i.id for i in page.incidents] == ["INC-003", "INC-002"]
    assert page.overall == "Major outage"
    assert build_page("Acme", [minor], NOW, WINDOW).overall == "Degraded performance"
    assert build_page("Acme", [old], NOW, WINDOW).overall == "All systems operational"
    data = page_json(page)
    assert data["incidents"][0]["status"] == "Identified"
    assert [p["status"] for p in data["incidents"][0]["posts"]] == ["Identified", "Investigating"]
    assert data["availability"]["from"] == str(TODAY - timedelta(days=89))


def test_the_pipeline_down_incident_is_not_public() -> None:
    """The bridge's own "Alerting pipeline is down" (the heartbeat) is our monitoring, not the
    public's service: neither listed nor counted in the availability bars."""
    pipeline = incident(number=4, priority=Priority.P0, opened=NOW - MIN, labels={})
    pipeline.priority_rule = HEARTBEAT_RULE
    page = build_page("Acme", [pipeline], NOW, WINDOW)
    assert page.incidents == ()
    assert page.overall == "All systems operational"
    bars = availability([pipeline], NOW)
    assert bars.services == ()
    assert {cell.level for cell in bars.overall} == {"operational"}


def test_html_is_self_contained_phone_friendly_and_public() -> None:
    """Inline CSS only, no script or external asset, a viewport, a dark scheme; only public
    text: no hostnames, other labels, summaries or links from the incidents."""
    hostile = incident(
        opened=NOW - MIN,
        labels={"service": "api", "instance": "db-7.prod.internal"},
        alerts=[
            alert(
                labels={"service": "api", "instance": "db-7.prod.internal"},
                annotations={"public_summary": "<img src=x> slow", "runbook": "http://wiki/x"},
            )
        ],
    )
    text = render_html(build_page("Acme <status>", [hostile], NOW, WINDOW))
    assert '<meta name=viewport content="width=device-width, initial-scale=1">' in text
    assert "@media (prefers-color-scheme:dark)" in text
    assert "<script" not in text
    assert "<link" not in text
    assert "src=" not in text.replace("&lt;img src=x&gt;", "")
    assert "http" not in text
    for private in ("db-7", "prod.internal", "internal summary", "wiki"):
        assert private not in text
    assert "<title>Acme &lt;status&gt;</title>" in text
    assert "&lt;img src=x&gt; slow" in text
    assert text.count("<svg") == 1
    assert "Posted 26 Nov 2026, 11:59 UTC" in text


def test_html_without_incidents_says_so() -> None:
    """An empty store: all systems operational, no bars, 100% of days."""
    text = render_html(build_page("Acme", [], NOW, WINDOW))
    assert "All systems operational" in text
    assert "No current incidents." in text
    assert "No incidents in the last 90 days." in text
    assert "100.00% of days without a major outage" in text
    assert date(2026, 11, 26).isoformat() in text
