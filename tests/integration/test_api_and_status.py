"""The read side: incidents API, status page, health; identity modes; maintenance requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from support import REPO, Harness, github_config, payload


@pytest.fixture
async def locked(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config() + "api:\n  read_token: r34d-token\n")
    await h.start()
    yield h
    await h.stop()


async def test_incidents_api_requires_the_read_token_when_set(locked: Harness) -> None:
    """With api.read_token, GET /api/v1/incidents needs it; the status page never does."""
    await locked.post(payload("15_threshold_critical_error_rate.json"))
    assert (await locked.http.get("/api/v1/incidents")).status == 401
    wrong = await locked.http.get("/api/v1/incidents", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    ok = await locked.http.get("/api/v1/incidents", headers={"Authorization": "Bearer r34d-token"})
    assert ok.status == 200
    [item] = await ok.json()
    for key in (
        "id",
        "issue_number",
        "title",
        "priority",
        "state",
        "opened_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
    ):
        assert key in item
    assert (await locked.http.get("/status.json")).status == 200
    assert (await locked.http.get("/status")).status == 200


async def test_incidents_api_filters_by_state(harness: Harness) -> None:
    """?state=open|resolved filters; anything else is a 400."""
    await harness.post(payload("01_firing_single.json"))
    await harness.post(payload("03_resolved_single.json"))
    await harness.post(payload("04_group_of_3_firing.json"))
    open_ = await (await harness.http.get("/api/v1/incidents?state=open")).json()
    resolved = await (await harness.http.get("/api/v1/incidents?state=resolved")).json()
    assert [i["id"] for i in open_] == ["INC-002"]
    assert [i["id"] for i in resolved] == ["INC-001"]
    assert (await harness.http.get("/api/v1/incidents?state=bogus")).status == 400
    assert (await harness.http.get("/api/v1/incidents?limit=x")).status == 400


async def test_status_page_shows_only_public_text(harness: Harness) -> None:
    """public_summary when present, else "Service disruption: <service>"; never hosts or links."""
    with_public = payload("15_threshold_critical_error_rate.json")
    with_public["alerts"][0]["annotations"]["public_summary"] = "Payments are slow for some users"
    await harness.post(with_public)
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    page = await (await harness.http.get("/status.json")).json()
    titles = sorted(i["title"] for i in page["incidents"])
    assert titles == ["Payments are slow for some users", "Service disruption: checkout"]
    assert page["status"] == "Major outage"
    text = json.dumps(page) + await (await harness.http.get("/status")).text()
    for private in ("checkout-7d9f", "prometheus.example", "runbooks.example", "5xx ratio"):
        assert private not in text


async def test_status_page_moves_from_monitoring_to_resolved_after_a_quiet_window(
    harness: Harness,
) -> None:
    """Resolved alerts show Monitoring first, and Resolved after status_page.monitoring_window."""
    await harness.post(payload("15_threshold_critical_error_rate.json"))
    await harness.post(payload("16_threshold_critical_error_rate_resolved.json"))
    [item] = (await (await harness.http.get("/status.json")).json())["incidents"]
    assert item["status"] == "Monitoring"
    harness.clock.advance(timedelta(minutes=31))
    page = await (await harness.http.get("/status.json")).json()
    assert page["incidents"][0]["status"] == "Resolved"
    assert page["status"] == "All systems operational"
    assert [p["status"] for p in page["incidents"][0]["posts"]] == [
        "Resolved",
        "Monitoring",
        "Investigating",
    ]


async def test_status_page_html_escapes_public_text(harness: Harness) -> None:
    """Even public text is escaped in the HTML page."""
    hostile = payload("15_threshold_critical_error_rate.json")
    hostile["alerts"][0]["annotations"]["public_summary"] = "<script>alert(1)</script>"
    await harness.post(hostile)
    html = await (await harness.http.get("/status")).text()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


async def test_readyz_turns_503_when_shutting_down(harness: Harness) -> None:
    """/readyz is 200 while serving and 503 once shutdown has begun; /healthz stays 200."""
    assert (await harness.http.get("/readyz")).status == 200
    assert harness.app is not None
    harness.app[SERVICES].shutting_down = True
    assert (await harness.http.get("/readyz")).status == 503
    assert (await harness.http.get("/healthz")).status == 200


async def test_metrics_expose_the_first_set(harness: Harness) -> None:
    """/metrics has webhooks by code, incidents opened by priority, GitHub requests, outbox."""
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    text = await (await harness.http.get("/metrics")).text()
    assert 'incident_bridge_incidents_opened_total{priority="P0"} 1.0' in text
    assert "incident_bridge_outbox_pending 1.0" in text
    assert 'incident_bridge_incidents_open{priority="P0"} 1.0' in text
    await harness.drain()
    text = await (await harness.http.get("/metrics")).text()
    assert (
        'incident_bridge_github_requests_total{operation="create_issue",status="201"} 1.0' in text
    )
    assert "incident_bridge_outbox_pending 0.0" in text


async def test_maintenance_alert_opens_a_maintenance_request(harness: Harness) -> None:
    """kind=maintenance: a [MAINT-PERF] issue labelled maintenance-perfective, not an incident."""
    _, answer = await harness.post(payload("14_maintenance_kind_disk_capacity.json"))
    await harness.drain()
    assert answer["incident"] == "MAINT-001"
    [issue] = harness.issues()
    assert issue.title.startswith("[MAINT-PERF] Disk above 85%")
    assert set(issue.label_names) == {"incident-bridge", "maintenance-perfective"}
    assert "kind=maint id=MAINT-001" in (issue.body or "")


async def test_traceability_comes_from_requirement_and_component_labels(harness: Harness) -> None:
    """The guide's Traceability section is filled from the alerts' labels."""
    body = payload("15_threshold_critical_error_rate.json")
    for labels in (body["alerts"][0]["labels"], body["commonLabels"]):
        labels["requirement"] = "#46 REQ-NF-PERF-001"
        labels["component"] = "#79 ARC-C-AUTH"
    await harness.post(body)
    await harness.drain()
    text = harness.issues()[0].body or ""
    # Issue references stay links, as the guide writes them.
    assert "**Original Requirement**: #46 REQ-NF-PERF-001" in text
    assert "**Architecture**: #79 ARC-C-AUTH" in text


@pytest.fixture
async def by_labels(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config() + "identity: group_labels\n")
    await h.start()
    yield h
    await h.stop()


async def test_group_labels_identity_survives_a_route_change(by_labels: Harness) -> None:
    """identity: group_labels — a new groupKey (route edited) with the same labels is the same
    incident; with the default group_key identity it would be a second one."""
    first = payload("01_firing_single.json")
    moved = payload("02_repeat_single.json")
    moved["groupKey"] = '{}/{team="infra"}:{alertname="HighCPU", service="api"}'
    await by_labels.post(first)
    _, answer = await by_labels.post(moved)
    await by_labels.drain()
    assert answer["outcome"] == "unchanged"
    assert len(by_labels.github.issues(REPO)) == 1


async def test_group_key_identity_tells_routes_apart(harness: Harness) -> None:
    """The default identity is receiver + groupKey, like Alertmanager's notification log."""
    moved = payload("01_firing_single.json")
    moved["groupKey"] = '{}/{team="infra"}:{alertname="HighCPU", service="api"}'
    await harness.post(payload("01_firing_single.json"))
    _, answer = await harness.post(moved)
    assert answer["outcome"] == "opened"


async def test_maintenance_request_is_closed_by_people_not_by_the_alert(harness: Harness) -> None:
    """A maintenance request carries the guide's fields, never pages or gets deadlines, stays
    open when its condition clears, and the condition coming back days later updates the same
    request."""
    body = payload("14_maintenance_kind_disk_capacity.json")
    for notes in (body["alerts"][0]["annotations"], body["commonAnnotations"]):
        notes["proposed_action"] = "Add 200 GiB to the orders-db volume"
        notes["expected_impact"] = "Disk below 70 % for the next quarter"
    await harness.post(body)
    await harness.drain()
    [issue] = harness.issues()
    text = issue.body or ""
    for heading in ("## Justification", "## Proposed Solution", "## Expected Impact"):
        assert heading in text
    assert "Add 200 GiB to the orders-db volume" in text
    assert "**Severity**" not in text
    assert "Respond by" not in text
    [row] = await harness.incidents()
    assert row["respond_by"] is None

    cleared = payload("14_maintenance_kind_disk_capacity.json")
    cleared["status"] = "resolved"
    cleared["alerts"][0]["status"] = "resolved"
    cleared["alerts"][0]["endsAt"] = "2026-11-26T21:40:00Z"
    await harness.post(cleared)
    await harness.drain()
    assert harness.issues()[0].state == "open"
    assert "stays open until people close it" in harness.github.comments(REPO, 1)[0].body

    harness.clock.advance(timedelta(days=3))
    back = payload("14_maintenance_kind_disk_capacity.json")
    back["alerts"][0]["startsAt"] = "2026-11-29T21:00:00Z"
    _, answer = await harness.post(back)
    await harness.drain()
    assert answer["incident"] == "MAINT-001"
    assert len(harness.issues()) == 1
