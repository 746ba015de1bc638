"""The public status page through the real application: posts as incidents move, the
availability bars, and ``status_page.enabled: false``."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.engine import Decision
from bridge.model import Incident
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from support import REPO, Harness, github_config, payload


async def page(harness: Harness) -> dict[str, Any]:
    response = await harness.http.get("/status.json")
    assert response.status == 200
    data: dict[str, Any] = await response.json()
    return data


async def acknowledge(harness: Harness, display_id: str, at: datetime, by: str) -> None:
    """Record an acknowledgement in the store the way the GitHub side will (who and when), in
    one store transaction like every other incident change."""
    assert harness.app is not None
    store = harness.app[SERVICES].store
    [row] = [r for r in await store.list_incidents(REPO) if r.incident.display_id == display_id]

    def decide(current: Incident | None) -> Decision:
        assert current is not None
        acked = copy.copy(current)
        acked.acknowledged_at, acked.acknowledged_by = at, by
        return Decision(outcome="updated", incident=acked, changed=True)

    await store.ingest(row.incident.key, row.incident.identity, decide)


def iso(at: datetime) -> str:
    return at.isoformat()


async def test_posts_move_through_the_guide_steps_with_their_times(harness: Harness) -> None:
    """Investigating when the alert fires, Identified once acknowledged, Monitoring when the
    alerts resolve, Resolved after the quiet window: each post stamped with its moment."""
    opened = harness.clock()
    await harness.post(payload("15_threshold_critical_error_rate.json"))
    [item] = (await page(harness))["incidents"]
    assert (item["id"], item["status"], item["service"]) == ("INC-001", "Investigating", "payments")
    assert item["posts"] == [
        {
            "status": "Investigating",
            "text": "We are investigating reports of Service disruption: payments.",
            "posted_at": iso(opened),
        }
    ]

    acked = harness.clock.advance(timedelta(minutes=3))
    await acknowledge(harness, "INC-001", acked, "alice")
    data = await page(harness)
    assert data["incidents"][0]["status"] == "Identified"
    assert data["status"] == "Major outage"

    resolved_at = harness.clock.advance(timedelta(minutes=2))
    ended = payload("16_threshold_critical_error_rate_resolved.json")
    ended["alerts"][0]["endsAt"] = "2026-11-26T21:50:00Z"
    await harness.post(ended)
    data = await page(harness)
    assert data["incidents"][0]["status"] == "Monitoring"
    assert data["status"] == "Degraded performance"
    [row] = await harness.incidents()
    assert row["resolved_at"] == iso(resolved_at)

    harness.clock.advance(timedelta(minutes=29))
    assert (await page(harness))["incidents"][0]["status"] == "Monitoring"
    harness.clock.advance(timedelta(minutes=1))
    data = await page(harness)
    assert data["status"] == "All systems operational"
    assert [(p["status"], p["posted_at"]) for p in data["incidents"][0]["posts"]] == [
        ("Resolved", iso(resolved_at + timedelta(minutes=30))),
        ("Monitoring", iso(resolved_at)),
        ("Identified", iso(acked)),
        ("Investigating", iso(opened)),
    ]
    html = await (await harness.http.get("/status")).text()
    for step in ("Investigating", "Identified", "Monitoring", "Resolved"):
        assert f'class="s {step}">{step}</span>' in html
    assert "Past incidents (last 7 days)" in html
    assert "No current incidents." in html


async def test_a_refire_goes_back_to_investigating_on_the_same_incident(harness: Harness) -> None:
    """A new firing of the group within the reopen window reopens the incident: the page
    shows the same INC number back at Investigating, posted at the reopening."""
    await harness.post(payload("15_threshold_critical_error_rate.json"))
    await harness.post(payload("16_threshold_critical_error_rate_resolved.json"))
    harness.clock.advance(timedelta(hours=2))
    assert (await page(harness))["incidents"][0]["status"] == "Resolved"

    refire = payload("15_threshold_critical_error_rate.json")
    refire["alerts"][0]["startsAt"] = "2026-11-26T23:40:00Z"
    reopened_at = harness.clock()
    _, answer = await harness.post(refire)
    assert answer["outcome"] == "reopened"
    harness.clock.advance(timedelta(minutes=5))
    [item] = (await page(harness))["incidents"]
    assert (item["id"], item["status"]) == ("INC-001", "Investigating")
    [post] = item["posts"]
    assert post["posted_at"] == iso(reopened_at)
    assert post["text"].endswith("The issue has come back after it was resolved.")


async def test_availability_bars_come_from_the_incidents(harness: Harness) -> None:
    """One bar per service with a cell per day for 90 days: a P0 is a major outage on the days
    it was open, a P2 degraded; the HTML draws them as inline SVG with a title per cell."""
    await harness.post(payload("13_critical_list_service_unavailable.json"))  # P0, checkout
    await harness.post(payload("10_threshold_warning_latency.json"))  # P2, search
    harness.clock.advance(timedelta(days=1))
    data = await page(harness)
    avail = data["availability"]
    assert [s["service"] for s in avail["services"]] == ["checkout", "search"]
    checkout, search = avail["services"]
    assert len(checkout["days"]) == 90
    assert [d["status"] for d in checkout["days"][-2:]] == ["major", "major"]
    assert checkout["days"][-2] == {
        "date": "2026-11-26",
        "status": "major",
        "incidents": ["INC-001"],
    }
    assert [d["status"] for d in search["days"][-3:]] == ["operational", "degraded", "degraded"]
    assert checkout["uptime_percent"] == pytest.approx(100 * 88 / 90)
    assert search["uptime_percent"] == 100.0
    assert avail["uptime_percent"] == pytest.approx(100 * 88 / 90)

    html = await (await harness.http.get("/status")).text()
    assert html.count("<svg") == 2
    assert html.count("<rect") == 180
    assert "<title>2026-11-26: Major outage (INC-001)</title>" in html
    assert "97.77% of days without a major outage, all services." in html


async def test_a_p0_back_as_a_p3_keeps_its_major_outage_day(harness: Harness) -> None:
    """The checkout P0 resolves the same evening; the next evening its group fires again (a
    new alert, within the reopen window) classed P3, which makes the incident P3: the first
    day stays a major outage, the second is degraded (each stretch at its own priority)."""
    firing = payload("13_critical_list_service_unavailable.json")  # P0, 2026-11-26
    await harness.post(firing)
    resolved = copy.deepcopy(firing)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-26T22:00:00Z"
    harness.clock.advance(timedelta(minutes=30))
    await harness.post(resolved)
    harness.clock.advance(timedelta(hours=22))  # 2026-11-27 20:15, within the 24 h window
    again = copy.deepcopy(firing)
    alert = again["alerts"][0]
    alert["fingerprint"] = "bbbbbbbbbbbbbbbb"
    alert["startsAt"] = "2026-11-27T20:10:00Z"
    alert["labels"] = {**alert["labels"], "instance": "checkout-2:8080", "priority": "P3"}
    status, answer = await harness.post(again)
    assert (status, answer["outcome"], answer["priority"]) == (200, "reopened", "P3")

    [checkout] = (await page(harness))["availability"]["services"]
    assert [d["status"] for d in checkout["days"][-2:]] == ["major", "degraded"]


async def test_status_page_is_public_and_cacheable(harness: Harness) -> None:
    """Served as HTML and JSON with a short public cache lifetime, no token needed."""
    html = await harness.http.get("/status")
    assert html.status == 200
    assert html.content_type == "text/html"
    assert html.headers["Cache-Control"] == "public, max-age=30"
    data = await harness.http.get("/status.json")
    assert data.headers["Cache-Control"] == "public, max-age=30"
    assert (await data.json())["availability"]["services"] == []


@pytest.fixture
async def disabled(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config() + "status_page:\n  enabled: false\n")
    await h.start()
    yield h
    await h.stop()


async def test_a_disabled_status_page_is_not_found(disabled: Harness) -> None:
    """status_page.enabled: false → /status and /status.json answer 404; the rest serves on."""
    await disabled.post(payload("13_critical_list_service_unavailable.json"))
    assert (await disabled.http.get("/status")).status == 404
    assert (await disabled.http.get("/status.json")).status == 404
    assert len(await disabled.incidents()) == 1
