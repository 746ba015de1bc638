"""An incident's whole life on GitHub, driven through the real webhook and the fake GitHub."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bridge.github.render import BEGIN, END
from support import REPO, Harness, payload


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every lifecycle test runs on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


def writes(h: Harness) -> list[str]:
    return [f"{r.method} {r.path}" for r in h.github.requests if r.is_write]


async def test_firing_opens_one_issue_with_labels_in_one_request(harness: Harness) -> None:
    """A new alert group costs exactly one GitHub write: the issue, labels included."""
    status, answer = await harness.post(payload("01_firing_single.json"))
    assert status == 200
    assert answer["outcome"] == "opened"
    assert answer["incident"] == "INC-001"
    assert answer["priority"] == "P1"
    harness.github.reset_log()
    await harness.drain()

    assert writes(harness) == [f"POST /repos/{REPO}/issues"]
    [issue] = harness.issues()
    assert issue.title == "[INC-001] HighCPU on api-1:9100"
    assert set(issue.label_names) == {
        "incident-bridge",
        "incident",
        "priority-high",
        "maintenance-corrective",
        "phase-09",
    }
    body = issue.body or ""
    assert "**Severity**: High (P1)" in body
    assert body.rstrip().endswith("-->")
    assert "<!-- incident-bridge:v1 kind=incident id=INC-001 key=" in body
    assert "## Root Cause Analysis" in body.split(END)[1]
    assert "[graph](http://127.0.0.1:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D)" in body
    [row] = await harness.incidents()
    assert row["id"] == "INC-001"
    assert row["issue_number"] == issue.number
    assert row["state"] == "open"


async def test_unchanged_repeat_costs_no_github_call(harness: Harness) -> None:
    """Alertmanager repeats a notification every repeat_interval; that changes nothing."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.github.reset_log()

    status, answer = await harness.post(payload("02_repeat_single.json"))
    await harness.drain()

    assert status == 200
    assert answer["outcome"] == "unchanged"
    assert harness.github.requests == []


async def test_resolution_comments_then_closes_in_one_edit(harness: Harness) -> None:
    """Resolved: two writes — the comment with the duration, then one PATCH closing the issue
    (and linking the post-incident review a P1 gets, whose create is its own write)."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    harness.github.reset_log()

    status, answer = await harness.post(payload("03_resolved_single.json"))
    assert status == 200
    assert answer["outcome"] == "resolved"
    await harness.drain()

    assert writes(harness) == [
        f"POST /repos/{REPO}/issues/1/comments",
        f"POST /repos/{REPO}/issues",  # the post-incident review
        f"PATCH /repos/{REPO}/issues/1",
    ]
    [issue] = harness.issues()
    assert issue.state == "closed"
    assert issue.state_reason == "completed"
    [comment] = harness.github.comments(REPO, 1)
    assert "Resolved" in comment.body
    assert "1m 11s" in comment.body  # startsAt 21:21:57.36 → endsAt 21:23:08.58
    assert "<!-- incident-bridge:event=INC-001." in comment.body
    assert "✅ Resolved" in (issue.body or "")
    [row] = await harness.incidents()
    assert row["state"] == "resolved"
    assert row["resolved_at"].startswith("2026-11-26T21:23:08")


async def test_refire_within_reopen_window_reopens_the_same_issue(harness: Harness) -> None:
    """A new startsAt within 24 h of the resolution reopens the issue with a comment."""
    await harness.post(payload("01_firing_single.json"))
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    harness.clock.advance(timedelta(hours=2))
    refire = payload("01_firing_single.json")
    refire["alerts"][0]["startsAt"] = "2026-11-26T23:30:00Z"

    status, answer = await harness.post(refire)
    await harness.drain()

    assert (status, answer["outcome"], answer["incident"]) == (200, "reopened", "INC-001")
    [issue] = harness.issues()
    assert issue.state == "open"
    assert len(harness.github.comments(REPO, 1)) == 2
    assert "Reopened" in harness.github.comments(REPO, 1)[1].body


async def test_refire_after_reopen_window_is_a_new_incident(harness: Harness) -> None:
    """Past the reopen window the same group becomes a new incident with a new number and issue."""
    await harness.post(payload("01_firing_single.json"))
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    harness.clock.advance(timedelta(days=2))
    refire = payload("01_firing_single.json")
    refire["alerts"][0]["startsAt"] = "2026-11-28T23:30:00Z"

    _, answer = await harness.post(refire)
    await harness.drain()

    assert answer["incident"] == "INC-002"
    assert [i.number for i in harness.issues()] == [1, 3]  # #2: INC-001's review (a P1)
    assert harness.github.issue(REPO, 1).state == "closed"
    assert harness.github.issue(REPO, 3).state == "open"


async def test_resolved_notification_for_unknown_group_opens_nothing(harness: Harness) -> None:
    """A resolved notification the bridge never saw firing is acknowledged and ignored."""
    status, answer = await harness.post(payload("03_resolved_single.json"))
    await harness.drain()

    assert (status, answer["outcome"]) == (200, "unknown_resolved")
    assert harness.issues() == []
    assert await harness.incidents() == []


async def test_watchdog_heartbeat_is_never_an_incident(harness: Harness) -> None:
    """The always-firing Watchdog proves the pipeline works; it must not open an issue."""
    status, answer = await harness.post(payload("11_watchdog_heartbeat.json"))
    await harness.drain()

    assert (status, answer["outcome"]) == (200, "heartbeat")
    assert harness.issues() == []


async def test_same_payload_three_times_at_once_makes_one_issue(harness: Harness) -> None:
    """Alertmanager HA pairs and retries deliver duplicates concurrently: one incident."""
    results = await asyncio.gather(
        *(harness.post(payload("04_group_of_3_firing.json")) for _ in range(3))
    )
    await harness.drain()

    assert [status for status, _ in results] == [200, 200, 200]
    assert sorted(answer["outcome"] for _, answer in results) == [
        "opened",
        "unchanged",
        "unchanged",
    ]
    assert len(harness.issues()) == 1
    assert len(await harness.incidents()) == 1


async def test_restart_keeps_the_state(harness: Harness) -> None:
    """After a restart the bridge knows its incidents: a repeat is a no-op, a resolve closes."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    await harness.restart()
    harness.github.reset_log()

    _, again = await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    assert again["outcome"] == "unchanged"
    assert harness.github.requests == []

    resolved = payload("04_group_of_3_firing.json")
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-26T21:30:00Z"
    resolved["status"] = "resolved"
    _, answer = await harness.post(resolved)
    await harness.drain()
    assert answer["outcome"] == "resolved"
    assert harness.issues()[0].state == "closed"


async def test_effects_accepted_before_a_restart_still_happen(harness: Harness) -> None:
    """A 200 means the work is durable: effects not yet run when the process stops run after."""
    await harness.post(payload("01_firing_single.json"))
    await harness.restart()  # the outbox never ran before the stop
    await harness.drain()
    assert len(harness.issues()) == 1


async def test_partial_resolution_updates_the_alert_table(harness: Harness) -> None:
    """One alert of three resolving edits the body (one PATCH) and keeps the issue open."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    harness.github.reset_log()

    _, answer = await harness.post(payload("05_group_mixed_one_resolved.json"))
    await harness.drain()

    assert answer["outcome"] == "updated"
    assert [w.split()[0] for w in writes(harness)] == ["PATCH"]
    issue = harness.issues()[0]
    assert issue.state == "open"
    assert "**Alerts firing**: 2 of 3" in (issue.body or "")


async def test_labels_people_add_survive_every_update(harness: Harness) -> None:
    """The bridge removes only labels it manages; a label a human added stays."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    harness.github.human_add_label(REPO, 1, "team-storage")

    await harness.post(payload("05_group_mixed_one_resolved.json"))
    raise_to_p0 = payload("05_group_mixed_one_resolved.json")
    raise_to_p0["alerts"][0]["labels"]["priority"] = "P0"
    await harness.post(raise_to_p0)
    await harness.drain()

    labels = set(harness.issues()[0].label_names)
    assert "team-storage" in labels
    assert "priority-critical" in labels
    assert "priority-medium" not in labels


async def test_text_people_write_outside_the_bridge_region_survives(harness: Harness) -> None:
    """Root Cause Analysis written by a responder is kept when the bridge rewrites its region."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    body = harness.issues()[0].body or ""
    human = body.replace(
        "_Responders: describe the cause here. The bridge never edits this section._",
        "Disk filled by runaway logs on db-2.",
    )
    harness.github.human_edit_body(REPO, 1, human)

    await harness.post(payload("05_group_mixed_one_resolved.json"))
    await harness.drain()

    after = harness.issues()[0].body or ""
    assert "Disk filled by runaway logs on db-2." in after
    assert "**Alerts firing**: 2 of 3" in after
    assert after.count(BEGIN) == 1
    assert after.count(END) == 1


async def test_priority_rise_relabels_and_never_falls_while_open(harness: Harness) -> None:
    """P2 → P0 swaps the priority label; a later lower-priority snapshot keeps P0."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    raised = payload("04_group_of_3_firing.json")
    raised["alerts"][1]["labels"]["priority"] = "P0"
    _, answer = await harness.post(raised)
    await harness.drain()
    assert answer["priority"] == "P0"

    _, answer = await harness.post(payload("04_group_of_3_firing.json"))
    assert answer["priority"] == "P0"
    labels = harness.issues()[0].label_names
    assert "priority-critical" in labels
    assert "priority-medium" not in labels
    body = harness.issues()[0].body or ""
    assert "Priority raised P2 → P0" in body
