"""The post-incident review issue (bridge/github/pir.py): title, labels, marker, the guide's
template, the timeline, hostile text and size bounds — and the incident issue's link back.

Incidents are made by running the engine on notifications and the acknowledgement step on a
fake clock; the store's part (key, id, number) is filled in by hand.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bridge import acknowledge as ack
from bridge.engine import Decision, Policy, apply_notification
from bridge.github import pir
from bridge.github.render import (
    BEGIN,
    BODY_LIMIT,
    END,
    TITLE_LIMIT,
    PriorityStyle,
    RenderOptions,
    region_of,
    render_issue,
    splice,
)
from bridge.model import (
    AlertSnapshot,
    Classification,
    Incident,
    Notification,
    Priority,
    TimelineEvent,
)
from bridge.store.base import SentNotification

T0 = datetime(2026, 11, 26, 21, 39, 53, tzinfo=UTC)
OPENED = datetime(2026, 11, 26, 21, 45, tzinfo=UTC)
KEY = "0123456789abcdef" * 4
STYLES = {
    Priority.P0: PriorityStyle("priority-critical", "Critical"),
    Priority.P1: PriorityStyle("priority-high", "High"),
    Priority.P2: PriorityStyle("priority-medium", "Medium"),
    Priority.P3: PriorityStyle("priority-low", "Low"),
}
OPTIONS = RenderOptions(styles=STYLES)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    return Classification(Priority(labels.get("priority", "P0")), "critical list")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=5),
    resolve_by=lambda p, t: t + timedelta(hours=1),
)


def note(
    status: str = "firing",
    *,
    alerts: int = 2,
    summary: str = "Checkout is down",
    description: str = "5xx on every request",
    ends: datetime | None = None,
) -> Notification:
    snaps = tuple(
        AlertSnapshot(
            fingerprint=f"f{n}",
            status=status,  # type: ignore[arg-type]  # "firing" | "resolved" only
            labels={
                "alertname": "ServiceUnavailable",
                "service": "checkout",
                "instance": f"web-{n}:8080",
                "priority": "P0",
            },
            annotations={"summary": summary, "description": description},
            starts_at=T0,
            ends_at=ends,
            generator_url="http://prometheus:9090/graph",
        )
        for n in range(alerts)
    )
    return Notification(
        receiver="team",
        status=status,  # type: ignore[arg-type]
        alerts=snaps,
        group_labels={"alertname": "ServiceUnavailable"},
        common_labels={"alertname": "ServiceUnavailable", "service": "checkout"},
        common_annotations={"summary": summary, "description": description},
        external_url="http://alertmanager:9093",
        group_key='{}:{alertname="ServiceUnavailable"}',
        truncated_alerts=0,
    )


def lived(
    summary: str = "Checkout is down", description: str = "5xx on every request"
) -> tuple[Incident, list[TimelineEvent]]:
    """A P0 opened at 21:45, acknowledged by alice at 21:48, resolved at 22:24:53."""
    events: list[TimelineEvent] = []

    def step(decision: Decision) -> Incident:
        assert decision.incident is not None
        events.extend(decision.events)
        return decision.incident

    firing = note(summary=summary, description=description)
    incident = step(apply_notification(None, firing, OPENED, POLICY))
    incident.key, incident.id, incident.number = KEY, 7, 42
    incident = step(ack.acknowledge("alice", "assigned")(incident, OPENED + timedelta(minutes=3)))
    end = T0 + timedelta(minutes=45)
    resolved = note("resolved", ends=end, summary=summary, description=description)
    incident = step(apply_notification(incident, resolved, end, POLICY))
    return incident, events


def told(events: list[TimelineEvent]) -> list[SentNotification]:
    opened = next(e.seq for e in events if e.kind == "opened")
    return [
        SentNotification("notify.slack", "", opened, "done", OPENED + timedelta(seconds=2)),
        SentNotification("notify.sms", "CTO", opened, "done", OPENED + timedelta(seconds=3)),
    ]


def section(body: str, title: str) -> str:
    start = body.index(f"## {title}\n")
    rest = body[start + 3 :]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]


def test_title_labels_marker_and_state() -> None:
    """``[PIR] INC-042 <summary>``, labels incident-bridge and post-incident-review, the pir
    marker last, and open (only people close a review)."""
    incident, events = lived()
    issue = pir.render_review(incident, events, told(events), OPTIONS, incident_issue=12)
    assert issue.title == "[PIR] INC-042 Checkout is down"
    assert issue.labels == frozenset({"incident-bridge", "post-incident-review"})
    assert issue.state == "open"
    assert issue.body.endswith(f"<!-- incident-bridge:v1 kind=pir id=INC-042 key={KEY} -->")


def test_the_guides_header_facts_are_filled_from_the_incident() -> None:
    """Date, severity, duration, impact from the alerts, detection and response, due date and
    the incident's issue, linked (GitHub links it back)."""
    incident, events = lived()
    region = pir.render_review(incident, events, [], OPTIONS, incident_issue=12).region
    assert region.startswith(BEGIN)
    assert region.endswith(END)
    for line in (
        "# Post-Incident Review: Checkout is down",
        "**Incident**: #12 (INC-042)",
        "**Date**: 2026-11-26",
        "**Severity**: Critical (P0)",
        "**Duration**: 45m (first alert 2026-11-26 21:39:53 UTC, resolved 2026-11-26 22:24:53 UTC)",
        "**Impact**: service checkout; instances web-0:8080, web-1:8080; 2 alerts — 5xx on"
        " every request",
        "**Detection and response**: detected 5m 7s after the first alert; acknowledged 3m"
        " after that by alice",
        "**Review due**: 2026-11-28 22:24:53 UTC (within 48 h of the resolution)",
        "**Status**: ✅ Incident resolved at 2026-11-26 22:24:53 UTC (every alert resolved)",
    ):
        assert line in region


def test_a_reopening_at_a_lower_priority_keeps_the_reviews_severity_and_breaches() -> None:
    """The P0 missed its response deadline, resolved, then its group fired again (a new
    episode) as P3, which resets the incident's priority and breaches: the review is of the
    whole incident — still Critical (P0), the missed deadline still named."""
    incident, events = lived()
    breach = TimelineEvent(
        seq=incident.event_seq + 1,
        at=OPENED + timedelta(minutes=5),
        kind="sla_breached",
        text="Response deadline missed",
        data={"which": "response"},
    )
    events.append(breach)
    incident.event_seq += 1
    incident.priority, incident.response_breached_at = Priority.P3, None
    reopened = TimelineEvent(
        seq=incident.event_seq + 1,
        at=OPENED + timedelta(hours=2),
        kind="reopened",
        text="Reopened as P3: alerts fire again",
        data={"priority": "P3"},
    )
    events.append(reopened)
    region = pir.render_review(incident, events, [], OPTIONS, incident_issue=12).region
    assert "**Severity**: Critical (P0)" in region
    assert "response deadline missed" in region


def test_the_timeline_is_in_the_region_and_the_peoples_sections_outside_it() -> None:
    """Timeline lines in the bridge's region; Root Cause, Resolution, What Went Well, What Went
    Wrong, Action Items and Prevention after it, left for people."""
    incident, events = lived()
    issue = pir.render_review(incident, events, told(events), OPTIONS, incident_issue=12)
    timeline = section(issue.region, "Timeline")
    assert "- 2026-11-26 21:39:53 UTC — 2 alerts fired" not in timeline  # each named
    assert "- 2026-11-26 21:39:53 UTC — Alert fired: ServiceUnavailable on web-0:8080" in timeline
    assert "- 2026-11-26 21:45:00 UTC — Detected: Incident opened as P0 \\(critical list\\)" in (
        timeline
    )
    assert "- 2026-11-26 21:45:02 UTC — Notified: Slack; SMS to CTO" in timeline
    assert "- 2026-11-26 21:48:00 UTC — Acknowledged by alice \\(assigned the issue\\)" in timeline
    assert "- 2026-11-26 22:24:53 UTC — Resolved: every alert resolved after 45m" in timeline
    people = issue.body[issue.body.index(END) :]
    for title in (
        "Root Cause",
        "Resolution",
        "What Went Well",
        "What Went Wrong",
        "Action Items",
        "Prevention",
    ):
        assert f"\n## {title}\n" in people
        assert f"## {title}" not in issue.region


def test_an_update_keeps_what_people_wrote() -> None:
    """Re-rendered after a reopening, only the region changes: people's text stays."""
    incident, events = lived()
    first = pir.render_review(incident, events, [], OPTIONS, incident_issue=12)
    written = first.body.replace("## What Went Well\n\n- ", "## What Went Well\n\n- Fast paging")
    reopened = copy.copy(incident)
    reopened.state, reopened.resolved_at, reopened.reopen_count = "open", None, 1
    later = pir.render_review(reopened, events, [], OPTIONS, incident_issue=12)
    body = splice(written, later.region)
    assert "- Fast paging" in body
    assert "**Status**: 🔴 The incident is open again" in region_of(body)
    assert "**Duration**: ongoing (first alert 2026-11-26 21:39:53 UTC); reopened once" in body
    assert "**Review due**: 48 h after the incident resolves" in body


def test_without_an_issue_of_its_own_the_incident_is_named_not_linked() -> None:
    """An incident without an issue (only listed in a storm roll-up): its id, no link."""
    incident, events = lived()
    region = pir.render_review(incident, events, [], OPTIONS, incident_issue=None).region
    assert "**Incident**: INC-042\n" in region


def test_hostile_alert_text_cannot_ping_inject_or_forge() -> None:
    """Summary, description and event text are escaped: no mention, no HTML, no marker."""
    hostile = "@security <img src=x onerror=alert(1)> <!-- incident-bridge:v1 kind=pir -->"
    incident, events = lived(summary=hostile, description=hostile)
    issue = pir.render_review(incident, events, [], OPTIONS, incident_issue=12)
    assert "@security" not in issue.body
    assert "@\u2060security" in issue.body
    assert "<img" not in issue.body
    assert issue.body.count("<!-- incident-bridge:v1") == 1
    assert "@security" not in issue.title
    assert issue.title.startswith("[PIR] INC-042 ")


def test_the_template_itself_mentions_nobody() -> None:
    """The people's sections are a template to fill in: no ``@owner`` that would ping a GitHub
    account of that name, no ``<placeholder>`` GitHub's sanitiser would swallow."""
    incident, events = lived()
    body = pir.render_review(incident, events, [], OPTIONS, incident_issue=12).body
    assert re.search(r"(?<![\w`])@[A-Za-z0-9]", body) is None
    assert "<action>" not in body


def test_the_title_is_cut_to_githubs_limit() -> None:
    """A 1,000-character summary: the title stays within 256 characters."""
    incident, events = lived(summary="x" * 1000)
    title = pir.render_review(incident, events, [], OPTIONS, incident_issue=12).title
    assert len(title) <= TITLE_LIMIT
    assert title.startswith("[PIR] INC-042 xxx")


def test_a_huge_history_stays_under_githubs_body_limit_and_says_what_it_left_out() -> None:
    """Thousands of long, hostile events: the body fits, keeping the first and last lines."""
    incident, events = lived()
    flood = [
        TimelineEvent(
            seq=100 + n,
            at=OPENED + timedelta(milliseconds=400 * n),  # before the resolution
            kind="alert_firing",
            text=f"Alert fired: {'<&>' * 200} #{n}",
        )
        for n in range(5000)
    ]
    history = [*events[:3], *flood, *events[3:]]
    issue = pir.render_review(incident, history, [], OPTIONS, incident_issue=12)
    assert len(issue.body) <= BODY_LIMIT
    assert "more entries not shown here" in issue.region
    assert "Alert fired: ServiceUnavailable on web-0:8080" in issue.region  # the start
    assert "Resolved: every alert resolved after 45m" in issue.region  # the end


def test_the_reminder_says_it_is_due_and_carries_its_marker() -> None:
    """The one reminder comment: when it was due, what to fill in, its own comment marker."""
    incident, _ = lived()
    due = T0 + timedelta(minutes=45, hours=48)
    text = pir.render_reminder(incident, due, due + timedelta(seconds=5))
    assert text.startswith("⏰ **Post-incident review due** at 2026-11-28 22:24:53 UTC")
    assert "What Went Well, What Went Wrong, Action Items and Prevention" in text
    assert text.endswith("<!-- incident-bridge:event=INC-042.review-due -->")


def test_the_incident_issue_links_its_review_in_the_bridge_region() -> None:
    """Linked both ways: the incident issue's region names the review's issue once it has one."""
    incident, events = lived()
    assert "Post-incident review" not in render_issue(incident, events, OPTIONS).region
    region = render_issue(incident, events, OPTIONS, review_issue=57).region
    assert "**Post-incident review**: #57" in region
