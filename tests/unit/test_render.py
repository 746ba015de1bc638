"""The issue renderer: title, body template, markers, labels, state, comments, hostile text.

Incidents are made the way production makes them, by running the engine on notifications; the
store's part (key, row id, number) is filled in by hand.
"""

from __future__ import annotations

import base64
import dataclasses
import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import snapshot
from bridge.engine import Policy, apply_notification
from bridge.github.render import (
    BEGIN,
    BODY_LIMIT,
    END,
    TITLE_LIMIT,
    PriorityStyle,
    RenderOptions,
    Runbook,
    desired_labels,
    desired_state,
    marker,
    render_comment,
    render_issue,
    splice,
    title_of,
)
from bridge.model import (
    AlertSnapshot,
    Classification,
    Incident,
    Notification,
    Priority,
    TimelineEvent,
)

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
KEY = "0123456789abcdef" * 4  # a sha256 hex, as the store sets it
P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3
STYLES = {
    P0: PriorityStyle("priority-critical", "Critical"),
    P1: PriorityStyle("priority-high", "High"),
    P2: PriorityStyle("priority-medium", "Medium"),
    P3: PriorityStyle("priority-low", "Low"),
}
OPTIONS = RenderOptions(styles=STYLES)
_MAINT_TYPES = ("perfective", "adaptive", "preventive")


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label (else P3); ``kind=maintenance``."""
    wanted = labels.get("priority", "P3")
    priority = Priority(wanted) if wanted in {"P0", "P1", "P2", "P3"} else P3
    mtype = labels.get("maintenance_type", "perfective")
    return Classification(
        priority,
        f"test {priority}",
        maintenance=labels.get("kind") == "maintenance",
        maintenance_type=mtype if mtype in _MAINT_TYPES else "perfective",
    )


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def alert(
    fp: str = "a1",
    *,
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    url: str = "http://prometheus.example:9090/graph?g0.expr=up",
) -> AlertSnapshot:
    """One alert; ``labels`` and ``annotations`` replace the defaults key by key."""
    return AlertSnapshot(
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]  # tests pass only "firing" / "resolved"
        labels={"alertname": "HighCPU", "instance": f"{fp}:9100", **(labels or {})},
        annotations={"summary": f"HighCPU on {fp}", **(annotations or {})},
        starts_at=starts,
        ends_at=ends,
        generator_url=url,
    )


def note(
    *alerts: AlertSnapshot,
    truncated: int = 0,
    common_labels: Mapping[str, str] | None = None,
    common_annotations: Mapping[str, str] | None = None,
) -> Notification:
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        receiver="r",
        status="firing" if firing else "resolved",
        alerts=alerts,
        group_labels={"alertname": "HighCPU"},
        common_labels=dict(common_labels or {"alertname": "HighCPU"}),
        common_annotations=dict(common_annotations or {}),
        external_url="http://alertmanager.example:9093",
        group_key='{}:{alertname="HighCPU"}',
        truncated_alerts=truncated,
    )


def opened(n: Notification, number: int = 1) -> tuple[Incident, list[TimelineEvent]]:
    """The incident the engine opens for ``n``, numbered as the store would number it."""
    decision = apply_notification(None, n, T0, POLICY)
    assert decision.outcome == "opened"
    incident = decision.incident
    assert incident is not None
    incident.key, incident.identity, incident.id, incident.number = KEY, "r", 1, number
    return incident, list(decision.events)


def resolved(
    incident: Incident, events: list[TimelineEvent]
) -> tuple[Incident, list[TimelineEvent]]:
    """The same incident after all its alerts resolved 7 minutes after T0."""
    ended = T0 + timedelta(minutes=7)
    snaps = [
        alert(fp, status="resolved", ends=ended, labels=a.labels, annotations=a.annotations)
        for fp, a in incident.alerts.items()
    ]
    decision = apply_notification(incident, note(*snaps), ended, POLICY)
    assert decision.outcome == "resolved"
    assert decision.incident is not None
    return decision.incident, events + decision.events


def section(body: str, heading: str) -> str:
    """The text of one ``## heading`` section, up to the next heading or marker."""
    start = body.index(f"## {heading}\n")
    rest = body[start + len(heading) + 4 :]
    stops = [i for i in (rest.find("\n## "), rest.find("\n<!--")) if i >= 0]
    return rest[: min(stops)] if stops else rest


# -- title ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "title"),
    [
        (1, "[INC-001] HighCPU on a1"),
        (42, "[INC-042] HighCPU on a1"),
        (1234, "[INC-1234] HighCPU on a1"),
    ],
)
def test_incident_title_is_the_number_then_the_summary(number: int, title: str) -> None:
    """Incident titles are ``[INC-NNN] <summary>`` with at least three digits."""
    incident, _ = opened(note(alert()), number)
    assert title_of(incident) == title


@pytest.mark.parametrize(
    ("mtype", "prefix"),
    [
        ("perfective", "[MAINT-PERF] "),
        ("adaptive", "[MAINT-ADAPT] "),
        ("preventive", "[MAINT-PREV] "),
        (None, "[MAINT-PERF] "),  # no maintenance_type label: perfective
    ],
)
def test_maintenance_title_names_the_maintenance_type(mtype: str | None, prefix: str) -> None:
    """Maintenance requests are titled by type: MAINT-PERF (default), MAINT-ADAPT, MAINT-PREV."""
    labels = {"kind": "maintenance", **({"maintenance_type": mtype} if mtype else {})}
    incident, _ = opened(note(alert(labels=labels), common_annotations={"summary": "Disk 87%"}))
    assert incident.kind == "maint"
    assert title_of(incident) == f"{prefix}Disk 87%"


@pytest.mark.parametrize(
    "summary",
    [
        "x" * 1000,
        "@" * 1000,  # every "@" grows by a word joiner
        "word " * 300,
        "é" * 300,
        "a" * 247 + "@team",
        "a" * 246 + "@team",
        "a" * 245 + "@team",
    ],
    ids=["long", "all-at", "words", "non-ascii", "at-edge-1", "at-edge-2", "at-edge-3"],
)
def test_long_titles_are_cut_to_githubs_limit(summary: str) -> None:
    """Titles never exceed 256 characters, keep the id prefix and never mention anyone."""
    incident, _ = opened(note(alert(), common_annotations={"summary": summary}))
    title = title_of(incident)
    assert len(title) <= TITLE_LIMIT
    assert title.startswith("[INC-001] ")
    assert not re.search(r"@\w", title)


def test_title_is_one_line_without_code_spans_or_mentions() -> None:
    """Newlines collapse, backticks become quotes and ``@team`` cannot ping in the title."""
    summary = "Disk full\r\non db-1 @acme/ops `rm -rf /`\u202e"
    incident, _ = opened(note(alert(), common_annotations={"summary": summary}))
    title = title_of(incident)
    assert "\n" not in title
    assert "\r" not in title
    assert "`" not in title
    assert "\u202e" not in title
    assert not re.search(r"@\w", title)
    assert title.startswith("[INC-001] Disk full on db-1 @")


# -- body template -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "line"),
    [
        ("P0", "**Severity**: Critical (P0)"),
        ("P1", "**Severity**: High (P1)"),
        ("P2", "**Severity**: Medium (P2)"),
        ("P3", "**Severity**: Low (P3)"),
    ],
)
def test_severity_line_names_the_priority(priority: str, line: str) -> None:
    """The body opens with the guide's severity line: the style name and the priority."""
    incident, events = opened(note(alert(labels={"priority": priority})))
    body = render_issue(incident, events, OPTIONS).body
    assert body.startswith(f"{BEGIN}\n{line}\n")


def test_body_follows_the_incident_template() -> None:
    """Sections in the guide's order; the bridge region once; people's sections after it."""
    incident, events = opened(note(alert(labels={"priority": "P1"})))
    issue = render_issue(incident, events, OPTIONS)
    body = issue.body
    assert body.count(BEGIN) == 1
    assert body.count(END) == 1
    region, outside = body.split(END)
    headings = re.findall(r"^## (.+)$", body, flags=re.MULTILINE)
    assert headings == [
        "Impact",
        "Alerts",
        "Runbook",
        "Traceability",
        "Timeline",
        "Root Cause Analysis",
        "Resolution",
    ]
    assert "## Root Cause Analysis" in outside
    assert "## Resolution" in outside
    assert "## Root Cause Analysis" not in region
    assert issue.region == region + END
    assert body.startswith(issue.region)


def test_body_ends_with_the_incident_marker() -> None:
    """The last line is the marker naming kind, id and the identity's key; nothing follows."""
    incident, events = opened(note(alert()))
    body = render_issue(incident, events, OPTIONS).body
    expected = f"<!-- incident-bridge:v1 kind=incident id=INC-001 key={KEY} -->"
    assert marker(incident) == expected
    assert body.endswith("\n" + expected)
    assert body.count("<!-- incident-bridge:v1") == 1


def test_maintenance_body_has_a_type_line_and_a_maint_marker() -> None:
    """A maintenance request says its type instead of a severity; its marker is kind=maint."""
    labels = {"kind": "maintenance", "maintenance_type": "adaptive"}
    incident, events = opened(note(alert(labels=labels)))
    body = render_issue(incident, events, OPTIONS).body
    assert "**Type**: Adaptive Maintenance" in body
    assert "**Severity**" not in body
    assert "**Respond by**" not in body
    assert body.endswith(f"<!-- incident-bridge:v1 kind=maint id=MAINT-001 key={KEY} -->")


def test_impact_names_service_instances_description_and_deadlines() -> None:
    """Impact: the service, the firing instances, how many fire, and the response deadlines."""
    common = {"alertname": "HighCPU", "service": "checkout"}
    incident, events = opened(
        note(
            alert("a1", annotations={"description": "CPU above 90%"}),
            alert("a2"),
            common_labels=common,
        )
    )
    impact = section(render_issue(incident, events, OPTIONS).body, "Impact")
    assert "- **Affects**: service checkout" in impact
    assert "- **Instances**: a1:9100, a2:9100" in impact
    assert "- **Alerts firing**: 2 of 2" in impact
    assert "- **Description**: CPU above 90%" in impact
    assert "- **Respond by**: 2026-11-26 21:15:00 UTC" in impact
    assert "- **Resolve by**: 2026-11-27 01:00:00 UTC" in impact


def test_alerts_table_has_one_row_per_alert_with_a_graph_link() -> None:
    """Each alert is a row: status, name, instance, value, start and a link to the graph."""
    incident, events = opened(note(alert(annotations={"value": "93.5"})))
    table = section(render_issue(incident, events, OPTIONS).body, "Alerts")
    assert "| Status | Alert | Instance | Value | Started | Source |" in table
    assert (
        "| 🔥 firing | HighCPU | a1:9100 | 93.5 | 2026-11-26 21:00:00 UTC |"
        " [graph](http://prometheus.example:9090/graph?g0.expr=up) |"
    ) in table


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://files.example/x", "//no-scheme.example/x", "http://", ""],
)
def test_unsafe_generator_urls_are_not_linked(url: str) -> None:
    """Only http(s) URLs with a host become links; anything else shows a dash."""
    incident, events = opened(note(alert(url=url)))
    table = section(render_issue(incident, events, OPTIONS).body, "Alerts")
    assert "[graph]" not in table
    assert "javascript" not in table
    assert table.rstrip().endswith("| 2026-11-26 21:00:00 UTC | — |")


def test_runbook_lists_runbook_url_annotations() -> None:
    """Every distinct runbook_url becomes a link; a URL cannot break out of its parentheses."""
    incident, events = opened(
        note(
            alert("a1", annotations={"runbook_url": "https://runbooks.example.com/highcpu"}),
            alert("a2", annotations={"runbook_url": "https://runbooks.example.com/highcpu"}),
            alert("a3", annotations={"runbook_url": "https://runbooks.example.com/x) <b>|y"}),
        )
    )
    runbook = section(render_issue(incident, events, OPTIONS).body, "Runbook")
    links = re.findall(r"^- \[.*\]\((.*)\)$", runbook, flags=re.MULTILINE)
    assert links == [
        "https://runbooks.example.com/highcpu",
        "https://runbooks.example.com/x%29%20%3Cb%3E%7Cy",
    ]
    assert "No runbook linked" not in runbook


def test_runbook_says_how_to_link_one_when_there_is_none() -> None:
    """Without runbook_url (or a bundled runbook) the section says how to add one."""
    incident, events = opened(note(alert()))
    runbook = section(render_issue(incident, events, OPTIONS).body, "Runbook")
    assert "_No runbook linked: add a `runbook_url` annotation to the alert rule._" in runbook


def test_bundled_runbook_is_folded_into_details() -> None:
    """A bundled runbook appears in a <details> block under its (escaped) title."""
    options = dataclasses.replace(
        OPTIONS, runbook=lambda _i: Runbook("High CPU <fix>", "1. Check `top`.")
    )
    incident, events = opened(note(alert()))
    runbook = section(render_issue(incident, events, options).body, "Runbook")
    assert "<details><summary>High CPU &lt;fix&gt;</summary>" in runbook
    assert "1. Check `top`." in runbook
    assert "</details>" in runbook
    assert "No runbook linked" not in runbook


@pytest.mark.parametrize(
    ("labels", "expected", "placeholder"),
    [
        (
            {"requirement": "REQ-12", "component": "checkout-api"},
            ["- **Original Requirement**: REQ-12", "- **Architecture**: checkout-api"],
            False,
        ),
        ({"requirement": "REQ-12"}, ["- **Original Requirement**: REQ-12"], False),
        ({"component": "checkout-api"}, ["- **Architecture**: checkout-api"], False),
        ({}, [], True),
    ],
    ids=["both", "requirement", "component", "neither"],
)
def test_traceability_comes_from_requirement_and_component_labels(
    labels: dict[str, str], expected: list[str], placeholder: bool
) -> None:
    """Traceability shows the requirement and component labels, else asks for them."""
    common = {"alertname": "HighCPU", **labels}
    incident, events = opened(note(alert(labels=labels), common_labels=common))
    trace = section(render_issue(incident, events, OPTIONS).body, "Traceability")
    for line in expected:
        assert line in trace
    assert ("No `requirement` or `component` label" in trace) is placeholder


def test_timeline_lists_events_with_their_time() -> None:
    """The timeline table shows each event: when, and what happened."""
    incident, events = resolved(*opened(note(alert())))
    timeline = section(render_issue(incident, events, OPTIONS).body, "Timeline")
    assert "| Time | Event |" in timeline
    assert "| 2026-11-26 21:00:00 UTC | Alert fired: HighCPU on a1:9100 |" in timeline
    assert "| 2026-11-26 21:00:00 UTC | Incident opened as P3 \\(test P3\\) |" in timeline
    assert "| 2026-11-26 21:07:00 UTC | Resolved: every alert resolved after 7m |" in timeline


def test_timeline_shows_the_latest_thirty_events() -> None:
    """A long timeline keeps only its latest 30 rows."""
    incident, _ = opened(note(alert()))
    events = [TimelineEvent(i, T0, "alert_firing", f"event number {i}") for i in range(1, 41)]
    timeline = section(render_issue(incident, events, OPTIONS).body, "Timeline")
    rows = [line for line in timeline.split("\n") if line.startswith("| 2026")]
    assert len(rows) == 30
    assert "event number 11 |" in rows[0]
    assert "event number 40 |" in rows[-1]


def test_resolved_incident_says_when_and_how() -> None:
    """After resolution the status line shows the time and that every alert resolved."""
    incident, events = resolved(*opened(note(alert())))
    body = render_issue(incident, events, OPTIONS).body
    assert "**Status**: ✅ Resolved at 2026-11-26 21:07:00 UTC (every alert resolved)" in body


@pytest.mark.parametrize(
    ("resolution", "how"),
    [
        ("alerts", "every alert resolved"),
        ("manual", "closed by hand"),
        ("reconciled", "resolved by reconciliation: Alertmanager no longer has its alerts"),
        ("heartbeat", "the heartbeat arrives again"),
    ],
)
def test_the_status_line_says_how_it_was_resolved(resolution: str, how: str) -> None:
    """Each way an incident resolves has its own words on the status line."""
    incident, events = resolved(*opened(note(alert())))
    incident.resolution = resolution
    body = render_issue(incident, events, OPTIONS).body
    assert f"**Status**: ✅ Resolved at 2026-11-26 21:07:00 UTC ({how})" in body


# -- left-out alerts and size --------------------------------------------------------------


def test_rows_beyond_fifty_are_counted_not_shown() -> None:
    """60 alerts: 50 rows and a line saying 10 more alerts are not shown."""
    incident, events = opened(note(*(alert(f"a{i:02d}") for i in range(60))))
    table = section(render_issue(incident, events, OPTIONS).body, "Alerts")
    assert len(re.findall(r"^\| 🔥 firing", table, flags=re.MULTILINE)) == 50
    assert "_10 more alerts not shown here._" in table


def test_truncated_alerts_are_reported() -> None:
    """Alerts Alertmanager left out (truncatedAlerts) are counted in the table and the impact."""
    incident, events = opened(note(alert("a1"), alert("a2"), truncated=3))
    body = render_issue(incident, events, OPTIONS).body
    assert "_3 alerts left out by Alertmanager (truncatedAlerts)._" in section(body, "Alerts")
    assert "- **Alerts firing**: 2 of 5" in section(body, "Impact")


def test_hidden_rows_and_truncated_alerts_are_reported_together() -> None:
    """Both reasons for missing rows appear on one line, singular where it is one."""
    incident, events = opened(note(*(alert(f"a{i:02d}") for i in range(51)), truncated=1))
    table = section(render_issue(incident, events, OPTIONS).body, "Alerts")
    assert (
        "_1 more alert not shown here; 1 alert left out by Alertmanager (truncatedAlerts)._"
        in table
    )


def test_body_stays_under_githubs_limit_with_5000_large_alerts() -> None:
    """5,000 alerts with 1,000-character annotations: the body fits and says what it left out."""
    text = ("&<@|`_" * 200)[:1000]  # characters that grow the most when escaped
    alerts = [
        alert(
            f"{i:05d}",
            labels={"alertname": "Big" + text[:200], "instance": f"host-{i}" + text[:200]},
            annotations={
                "summary": text,
                "description": text,
                "value": text,
                "runbook_url": f"https://runbooks.example.com/{i}/" + "x" * 960,
            },
        )
        for i in range(5000)
    ]
    incident, events = opened(note(*alerts, common_labels={"service": text}))
    body = render_issue(incident, events, OPTIONS).body
    assert len(body) <= BODY_LIMIT
    table = section(body, "Alerts")
    shown = len(re.findall(r"^\| 🔥 firing", table, flags=re.MULTILINE))
    match = re.search(r"_(\d+) more alerts not shown here\._", table)
    assert match is not None
    assert shown + int(match.group(1)) == 5000
    assert body.endswith(marker(incident))


def test_body_stays_under_githubs_limit_with_long_non_ascii_runbook_urls() -> None:
    """Five 2,000-character runbook URLs of emoji still leave the body under GitHub's limit."""
    alerts = [
        alert(f"a{i}", annotations={"runbook_url": f"https://x.example/{i}/" + "😀" * 1970})
        for i in range(5)
    ]
    incident, events = opened(note(*alerts))
    assert len(render_issue(incident, events, OPTIONS).body) <= BODY_LIMIT


@pytest.mark.parametrize("where", ["annotation", "label"])
def test_body_stays_under_githubs_limit_with_a_huge_common_annotation_or_label(
    where: str,
) -> None:
    """One alert whose description (or a label) is 150,000 characters that do not compress:
    the visible text is clipped as always, and the hidden state line clips the group's text
    too, so GitHub never refuses the issue as too long (a 422 no retry could mend)."""
    seeded = random.Random(7)  # noqa: S311 -- test data, not a secret
    big = base64.urlsafe_b64encode(seeded.randbytes(150_000)).decode()[:150_000]
    if where == "annotation":
        n = note(alert(annotations={"description": big}), common_annotations={"description": big})
    else:
        n = note(alert(labels={"team": big}), common_labels={"alertname": "HighCPU", "team": big})
    incident, events = opened(n)
    body = render_issue(incident, events, OPTIONS).body
    assert len(body) <= BODY_LIMIT
    assert body.endswith(marker(incident))
    line = snapshot.find_state_line(body)
    assert line is not None
    assert snapshot.read_state_line(line, updated_at=T0).key == KEY


# -- splice --------------------------------------------------------------------------------


def test_splice_replaces_only_the_bridge_region() -> None:
    """What people wrote before and after the region survives a re-render untouched."""
    incident, events = opened(note(alert()))
    body = render_issue(incident, events, OPTIONS).body
    edited = "Pinned note by @alice\n\n" + body.replace(
        "_Responders: describe the cause here. The bridge never edits this section._",
        "The cache node ran out of memory.",
    )
    later, later_events = resolved(incident, events)
    region = render_issue(later, later_events, OPTIONS).region
    spliced = splice(edited, region)
    assert spliced.startswith("Pinned note by @alice\n\n" + region)
    assert "The cache node ran out of memory." in spliced
    assert spliced.count(BEGIN) == 1
    assert "Resolved at" in spliced
    assert spliced.endswith(marker(incident))


def test_splice_with_the_same_region_changes_nothing() -> None:
    """Re-rendering an unchanged incident leaves the body byte for byte as it was."""
    incident, events = opened(note(alert()))
    issue = render_issue(incident, events, OPTIONS)
    assert splice(issue.body, issue.region) == issue.body


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body.replace(BEGIN, ""),
        lambda body: body.replace(END, ""),
        lambda body: "",
        lambda body: "Only what a person wrote.",
    ],
    ids=["begin-deleted", "end-deleted", "empty-body", "region-deleted"],
)
def test_splice_puts_a_deleted_region_back_first(damage: object) -> None:
    """Without a complete region, the new region goes first and everything else is kept."""
    assert callable(damage)
    incident, events = opened(note(alert()))
    issue = render_issue(incident, events, OPTIONS)
    damaged = damage(issue.body)
    spliced = splice(damaged, issue.region)
    assert spliced.startswith(issue.region)
    assert spliced.endswith(damaged)


# -- labels and state ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "resolve", "close_on_resolve", "extra"),
    [
        ("P0", False, True, {"priority-critical"}),
        ("P1", False, True, {"priority-high"}),
        ("P2", False, False, {"priority-medium"}),
        ("P3", True, True, {"priority-low"}),
        ("P1", True, False, {"priority-high", "resolved"}),
        ("P1", False, False, {"priority-high"}),
    ],
)
def test_incident_labels(
    priority: str, resolve: bool, close_on_resolve: bool, extra: set[str]
) -> None:
    """Base labels, the priority label, and ``resolved`` only when the issue is not closed."""
    incident, events = opened(note(alert(labels={"priority": priority})))
    if resolve:
        incident, events = resolved(incident, events)
    options = dataclasses.replace(
        OPTIONS, close_on_resolve=close_on_resolve, extra_labels=("phase-09",)
    )
    base = {"incident-bridge", "incident", "maintenance-corrective", "phase-09"}
    assert desired_labels(incident, options) == frozenset(base | extra)
    assert render_issue(incident, events, options).labels == frozenset(base | extra)


@pytest.mark.parametrize("mtype", _MAINT_TYPES)
def test_maintenance_labels(mtype: str) -> None:
    """A maintenance request has only the bridge label and its maintenance type."""
    labels = {"kind": "maintenance", "maintenance_type": mtype}
    incident, _ = opened(note(alert(labels=labels)))
    options = dataclasses.replace(OPTIONS, extra_labels=("phase-09",))
    assert desired_labels(incident, options) == {"incident-bridge", f"maintenance-{mtype}"}


@pytest.mark.parametrize(
    ("kind_labels", "resolve", "resolution", "close_on_resolve", "state"),
    [
        ({}, False, None, True, "open"),
        ({}, True, "alerts", True, "closed"),
        ({}, True, "alerts", False, "open"),
        ({}, True, "manual", False, "closed"),  # a person closed it: keep it closed
        ({"kind": "maintenance"}, False, None, True, "open"),
        ({"kind": "maintenance"}, True, "alerts", True, "open"),  # maintenance stays open
        ({"kind": "maintenance"}, True, "manual", True, "closed"),  # until people close it
    ],
)
def test_desired_state(
    kind_labels: dict[str, str],
    resolve: bool,
    resolution: str | None,
    close_on_resolve: bool,
    state: str,
) -> None:
    """Closed when resolved (or closed by hand); a maintenance request stays open."""
    incident, events = opened(note(alert(labels=kind_labels)))
    if resolve:
        incident, events = resolved(incident, events)
        incident.resolution = resolution
        incident.manual_hold = resolution == "manual"
    options = dataclasses.replace(OPTIONS, close_on_resolve=close_on_resolve)
    assert desired_state(incident, options) == state
    assert render_issue(incident, events, options).state == state


# -- comments ------------------------------------------------------------------------------


def test_a_reconciliation_comment_says_why_the_incident_resolved() -> None:
    """Resolved by reconciliation: the comment says so, how long it lasted, and why no
    resolved notification came."""
    incident, _ = opened(note(alert()))
    event = TimelineEvent(9, T0 + timedelta(hours=1), "reconciled", "...", {"duration": "1h"})
    comment = render_comment(incident, event)
    assert comment.startswith(
        "✅ **Resolved by reconciliation** at 2026-11-26 22:00:00 UTC: none of its alerts is"
        " active in Alertmanager any more (after 1h)."
    )
    assert comment.endswith(f"<!-- incident-bridge:event={event.event_id(incident)} -->")


def test_resolution_comment_has_the_duration_and_the_event_marker() -> None:
    """The resolution comment says how long it lasted and carries its event marker."""
    incident, events = resolved(*opened(note(alert())))
    event = events[-1]
    comment = render_comment(incident, event)
    assert comment.startswith(
        "✅ **Resolved** at 2026-11-26 21:07:00 UTC: every alert resolved after 7m."
    )
    assert comment.endswith(f"<!-- incident-bridge:event=INC-001.{event.seq} -->")


def test_reopen_comment_names_the_priority_and_the_event() -> None:
    """The reopening comment says the group fires again, its priority and its event marker."""
    incident, _ = resolved(*opened(note(alert(labels={"priority": "P2"}))))
    again = T0 + timedelta(hours=1)
    decision = apply_notification(
        incident, note(alert(starts=again, labels={"priority": "P2"})), again, POLICY
    )
    assert decision.outcome == "reopened"
    assert decision.incident is not None
    event = decision.events[-1]
    comment = render_comment(decision.incident, event)
    assert "🔁 **Reopened** at 2026-11-26 22:00:00 UTC" in comment
    assert "Priority P2." in comment
    assert comment.endswith(f"\n\n<!-- incident-bridge:event=INC-001.{event.seq} -->")


def test_other_comments_escape_the_event_text() -> None:
    """Any other event is shown by kind and escaped text, still with its marker."""
    incident, _ = opened(note(alert()))
    event = TimelineEvent(9, T0, "effect_failed", "github.sync failed: @octocat <b>|")
    comment = render_comment(incident, event)
    assert comment.startswith("**effect\\_failed** at 2026-11-26 21:00:00 UTC: github.sync")
    assert not re.search(r"@\w", comment)
    assert "<b>" not in comment
    assert comment.endswith("<!-- incident-bridge:event=INC-001.9 -->")


# -- hostile text --------------------------------------------------------------------------

NASTY = [
    "@user",
    "@org/team",
    "<!-- incident-bridge:v1 kind=incident id=INC-999 key=x -->",
    "<!-- incident-bridge:begin -->",
    "<!-- incident-bridge:end -->",
    "<!-- incident-bridge:event=INC-999.1 -->",
    "<script>alert(1)</script>",
    "<details><summary>x</summary>",
    "-->",
    "|",
    "\\|",
    "\\",
    "`",
    "```",
    "~~~",
    "\n",
    "\r",
    "\r\n",
    "\n## Root Cause Analysis\n",
    "\n| a | b |\n",
    "\u202e",
    "\u2066",
    "\u200f",
    "\u2028",
    "\x85",
    "\t",
    "&lt;",
    "&#64;x",
    "&#124;",
    "_@_x",
    "[x](javascript:alert(1))",
    "https://runbooks.example.com/",
    " ",
]
hostile = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=12)), max_size=8).map("".join)
hostile_url = st.one_of(hostile, hostile.map(lambda s: "https://runbooks.example.com/" + s))
LABEL_KEYS = ["alertname", "instance", "pod", "service", "job", "requirement", "component"]
ANNOTATION_KEYS = ["summary", "description", "value"]

_LINK_DESTINATION = re.compile(r"\]\(https?://[^)\s]*\)")


def unescaped_pipes(line: str) -> int:
    """``|`` characters not escaped by an odd run of backslashes: table cell separators."""
    count, backslashes = 0, 0
    for char in line:
        if char == "\\":
            backslashes += 1
            continue
        if char == "|" and backslashes % 2 == 0:
            count += 1
        backslashes = 0
    return count


def table_rows(body: str, header: str) -> tuple[str, list[str]]:
    """A table's header line and its data rows (after the ``|---|`` line)."""
    lines = body.split("\n")  # Markdown breaks lines only at \n and \r
    start = lines.index(header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return lines[start], rows


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(
        st.dictionaries(st.sampled_from(LABEL_KEYS), hostile, max_size=len(LABEL_KEYS)),
        min_size=1,
        max_size=3,
    ),
    annotations=st.dictionaries(st.sampled_from(ANNOTATION_KEYS), hostile),
    runbook_url=hostile_url,
    generator_url=hostile_url,
    common=st.dictionaries(st.sampled_from(LABEL_KEYS), hostile),
    summary=hostile,
    runbook_title=hostile,
    resolve=st.booleans(),
)
def test_hostile_alert_text_cannot_ping_inject_forge_or_break_tables(
    labels: list[dict[str, str]],
    annotations: dict[str, str],
    runbook_url: str,
    generator_url: str,
    common: dict[str, str],
    summary: str,
    runbook_title: str,
    resolve: bool,
) -> None:
    """Whatever the alert text, the body has no mentions, no HTML, no forged markers and
    every table row keeps its column count; the title has no mention either."""
    snaps = [
        alert(
            f"a{i}",
            labels=lab,
            annotations={**annotations, "runbook_url": runbook_url},
            url=generator_url,
        )
        for i, lab in enumerate(labels)
    ]
    n = note(*snaps, common_labels=common, common_annotations={"summary": summary, **annotations})
    incident, events = opened(n)
    if resolve:
        incident, events = resolved(incident, events)
    options = dataclasses.replace(
        OPTIONS, runbook=lambda _i: Runbook(runbook_title, "Restart the service.")
    )
    issue = render_issue(incident, events, options)
    body = issue.body

    # No mentions: "@" is never followed by a word character (link targets are not text).
    assert not re.search(r"@\w", _LINK_DESTINATION.sub("](…)", body))
    assert not re.search(r"@\w", issue.title)
    assert "\n" not in issue.title
    assert len(issue.title) <= TITLE_LIMIT
    # No HTML: the only "<" are the bridge's markers and its own details block.
    # (The bundled runbook's details block appears only when no alert links a runbook_url.)
    own = [BEGIN, END, snapshot.state_line(incident), marker(incident)]
    if "<details><summary>" in body:
        own += ["<details><summary>", "</summary>", "</details>"]
    rest = body
    for tag in own:
        assert rest.count(tag) == 1
        rest = rest.replace(tag, "")
    assert "<" not in rest
    # Only the real markers (and the hidden state line, which is base64).
    assert body.count("<!--") == 4
    assert body.count("-->") == 4
    assert body.endswith(marker(incident))
    # Tables keep their shape: one row per alert / event, each with the header's cell count.
    header, rows = table_rows(body, "| Status | Alert | Instance | Value | Started | Source |")
    assert len(rows) == len(incident.alerts)
    assert all(unescaped_pipes(row) == unescaped_pipes(header) for row in rows)
    header, rows = table_rows(body, "| Time | Event |")
    assert len(rows) == len(events)
    assert all(unescaped_pipes(row) == unescaped_pipes(header) for row in rows)
    assert len(body) <= BODY_LIMIT
    for event in events:
        comment = render_comment(incident, event)
        assert not re.search(r"@\w", comment)
        assert comment.count("<") == 1


@pytest.mark.parametrize(
    "control",
    [
        "\u200e",  # LEFT-TO-RIGHT MARK
        "\u200f",  # RIGHT-TO-LEFT MARK
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",  # RIGHT-TO-LEFT OVERRIDE
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        pytest.param(
            "\u061c",  # ARABIC LETTER MARK,
        ),
    ],
)
def test_bidi_controls_never_reach_the_issue(control: str) -> None:
    """Unicode bidi controls (Trojan-source reordering) are removed from titles and bodies."""
    text = f"db-1{control}1-bd"
    incident, events = opened(
        note(
            alert(labels={"instance": text}, annotations={"value": text}),
            common_labels={"service": text},
            common_annotations={"summary": text, "description": text},
        )
    )
    issue = render_issue(incident, events, OPTIONS)
    assert control not in issue.title
    assert control not in issue.body


def test_a_runbook_url_annotation_wins_over_the_bundled_runbook() -> None:
    """The rule's own runbook_url is linked and the bundled runbook is left out; without one,
    the bundled runbook is embedded."""
    options = dataclasses.replace(OPTIONS, runbook=lambda _i: Runbook("Bundled", "Restart it."))
    linked, events = opened(
        note(alert(annotations={"runbook_url": "https://runbooks.example.com/cpu"}))
    )
    body = render_issue(linked, events, options).body
    assert "(https://runbooks.example.com/cpu)" in body
    assert "Restart it." not in body
    bare, events = opened(note(alert()))
    assert "Restart it." in render_issue(bare, events, options).body


def test_a_storm_roll_up_lists_its_groups_as_a_checklist_with_inert_summaries() -> None:
    from bridge import storm as storms
    from bridge.github.render import render_storm, render_storm_over
    from bridge.model import StormMember

    def member(number: int, priority: Priority, summary: str, issue: int | None) -> StormMember:
        incident = storms.new_storm(number, T0)  # any incident will do; only these fields show
        incident = dataclasses.replace(incident, kind="incident", priority=priority)
        incident.summary = summary
        if issue is None and number == 9:
            incident.state = "resolved"
        return StormMember(incident=incident, issue_number=issue)

    roll_up = storms.new_storm(12, T0)
    members = [
        member(8, P3, "disk @ops-team <img src=x> [link](http://e)", None),
        member(9, P3, "quiet", None),
        member(10, P1, "api down", 41),
    ]
    desired = render_storm(roll_up, members, OPTIONS, over=False)
    assert desired.title == "[INC-012] Alert storm: 3 alert groups"
    assert desired.labels == {"incident-bridge", "incident", "storm", STYLES[P1].label}
    assert desired.state == "open"
    lines = [line for line in desired.region.splitlines() if line.startswith("- [")]
    assert lines[0] == "- [ ] INC-010 · P1 · firing · #41 · api down"
    assert lines[1].startswith("- [ ] INC-008 · P3 · firing · disk @\u2060ops")
    assert "<img" not in desired.body
    assert "\\[link\\]" in lines[1]
    assert lines[2] == "- [x] INC-009 · P3 · resolved · quiet"
    assert desired.body.endswith(
        f"<!-- incident-bridge:v1 kind=storm id=INC-012 key={roll_up.key} -->"
    )
    for m in members:
        m.incident.state = "resolved"
    assert render_storm(roll_up, members, OPTIONS, over=True).state == "closed"
    assert "<!-- incident-bridge:event=INC-012.over -->" in render_storm_over(roll_up, T0)
