"""``incident-bridge rebuild``: the store deleted mid-life and reconstructed from the issues."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge import snapshot
from bridge.app import build_render_options, load_rules, make_store, make_tracker
from bridge.metrics import Metrics
from bridge.rebuild import EVENT_SEQ_FLOOR, RebuildReport, rebuild
from bridge.store.sqlite import StoreInUse
from support import REPO, Harness, drop_postgres_schema, github_config, payload


def writes(h: Harness) -> list[str]:
    return [f"{r.method} {r.path}" for r in h.github.requests if r.is_write]


async def run_rebuild(h: Harness, waits: list[float] | None = None) -> RebuildReport:
    """What the command does, in this event loop (the fake GitHub runs here)."""
    store = make_store(h.config, h.clock)
    tracker = make_tracker(h.config, Metrics(), h.clock)
    options = build_render_options(h.config, load_rules(h.config))

    async def wait(seconds: float) -> None:
        (waits if waits is not None else []).append(seconds)
        h.clock.advance(seconds)

    await store.open()
    try:
        return await rebuild(store, tracker, options, h.clock, wait=wait)
    finally:
        await store.close()
        close = getattr(tracker, "close", None)
        if close is not None:
            await close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Rebuild is tested on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


def delete_store(h: Harness) -> None:
    """The store is lost: the SQLite file deleted, or every PostgreSQL table dropped."""
    if h.config.store.is_postgres:
        drop_postgres_schema(h.config.store.url)
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{h.tmp_path / 'state.db'}{suffix}").unlink(missing_ok=True)


def view(incidents: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What an operator sees of each incident, for before/after comparisons."""
    return sorted(
        (i["id"], i["priority"], i["state"], i["issue_number"], i["title"]) for i in incidents
    )


async def a_life(h: Harness) -> None:
    """Three incidents and a maintenance request; one resolved, its issue closed."""
    for name in (
        "01_firing_single.json",
        "04_group_of_3_firing.json",
        "13_critical_list_service_unavailable.json",
        "14_maintenance_kind_disk_capacity.json",
    ):
        assert (await h.post(payload(name)))[0] == 200
    await h.drain()
    h.clock.advance(600)
    assert (await h.post(payload("03_resolved_single.json")))[0] == 200
    await h.drain()


async def test_a_deleted_store_comes_back_from_the_issues(harness: Harness) -> None:
    """Same numbers, priorities, states and issues after rebuild; then life goes on: a repeat
    costs nothing, a resolution edits the same issue, and numbering continues after the
    highest INC- restored."""
    await a_life(harness)
    before = view(await harness.incidents())
    assert len(before) == 4

    await harness.stop()
    delete_store(harness)
    report = await run_rebuild(harness)
    assert sorted(report.restored) == ["INC-001", "INC-002", "INC-003", "MAINT-001"]
    assert report.from_labels == []
    assert report.skipped == []
    assert report.highest == {"incident": 3, "maint": 1}

    await harness.start()
    assert view(await harness.incidents()) == before

    harness.github.reset_log()
    assert (await harness.post(payload("04_group_of_3_firing.json")))[1]["outcome"] == "unchanged"
    await harness.drain()
    assert writes(harness) == []

    resolved = payload("04_group_of_3_firing.json")
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-26T21:50:00Z"
    harness.clock.advance(600)
    status, answer = await harness.post(resolved)
    assert status == 200
    assert answer["outcome"] == "resolved"
    await harness.drain()
    number = next(i for i in before if i[0] == "INC-002")[3]
    assert writes(harness) == [
        f"POST /repos/{REPO}/issues/{number}/comments",
        f"PATCH /repos/{REPO}/issues/{number}",
    ]
    assert harness.github.issue(REPO, number).state == "closed"

    fresh = payload("01_firing_single.json")
    fresh["groupKey"] = '{}:{alertname="Brand-new"}'
    fresh["alerts"][0]["fingerprint"] = "f00dfeedf00dfeed"
    assert (await harness.post(fresh))[1]["incident"] == "INC-004"


async def test_a_group_meets_its_newest_incident_after_rebuild(harness: Harness) -> None:
    """A group fired, resolved, and fired again two days later (past the reopen window: a new
    incident with an issue of its own). Rebuilt, the group's next notification is the newest
    incident's — its resolution closes INC-002 — not a no-op on the older INC-001 (the issues
    are restored oldest first, as the incidents were opened)."""
    assert (await harness.post(payload("01_firing_single.json")))[0] == 200
    await harness.drain()
    assert (await harness.post(payload("03_resolved_single.json")))[0] == 200
    await harness.drain()
    harness.clock.advance(2 * 86_400)
    again = payload("01_firing_single.json")
    again["alerts"][0]["startsAt"] = "2026-11-28T21:00:00Z"
    status, answer = await harness.post(again)
    assert (status, answer["incident"]) == (200, "INC-002")
    await harness.drain()

    await harness.stop()
    delete_store(harness)
    report = await run_rebuild(harness)
    assert report.restored == ["INC-001", "INC-002"]  # oldest first
    await harness.start()

    resolved = payload("03_resolved_single.json")
    resolved["alerts"][0]["startsAt"] = "2026-11-28T21:00:00Z"
    resolved["alerts"][0]["endsAt"] = "2026-11-28T21:50:00Z"
    harness.clock.advance(3600)
    status, answer = await harness.post(resolved)
    assert (status, answer["outcome"], answer["incident"]) == (200, "resolved", "INC-002")
    states = {i["id"]: i["state"] for i in await harness.incidents()}
    assert states == {"INC-001": "resolved", "INC-002": "resolved"}


async def test_rebuild_is_idempotent(harness: Harness) -> None:
    """Run twice, the second run finds everything present and changes nothing."""
    await a_life(harness)
    await harness.stop()
    delete_store(harness)
    first = await run_rebuild(harness)
    second = await run_rebuild(harness)
    assert len(first.restored) == 4
    assert second.restored == []
    assert sorted(second.present) == sorted(first.restored)
    await harness.start()
    assert len(await harness.incidents()) == 4


async def test_what_people_did_after_the_last_write_wins(harness: Harness) -> None:
    """An issue closed by hand comes back manually resolved; one whose state line a person
    deleted comes back from its labels and title, and its alerts return with the next
    notification."""
    await a_life(harness)
    by_id = {i["id"]: i for i in await harness.incidents()}
    closed_by_hand = by_id["INC-003"]["issue_number"]
    edited = by_id["INC-002"]["issue_number"]
    harness.github.human_close(REPO, closed_by_hand)
    body = harness.github.issue(REPO, edited).body or ""
    line = snapshot.find_state_line(body)
    assert line is not None
    harness.github.human_edit_body(REPO, edited, body.replace(line, ""))

    await harness.stop()
    delete_store(harness)
    report = await run_rebuild(harness)
    assert report.from_labels == ["INC-002"]
    await harness.start()
    after = {i["id"]: i for i in await harness.incidents()}
    assert after["INC-003"]["state"] == "resolved"
    assert after["INC-002"]["state"] == "open"
    assert after["INC-002"]["priority"] == by_id["INC-002"]["priority"]
    assert after["INC-002"]["title"] == by_id["INC-002"]["title"]

    # The group's next notification fills the alerts in again, on the same issue.
    status, answer = await harness.post(payload("04_group_of_3_firing.json"))
    assert status == 200
    assert answer["incident"] == "INC-002"
    await harness.drain()
    assert answer["outcome"] == "updated"
    rewritten = harness.github.issue(REPO, edited).body or ""
    assert snapshot.find_state_line(rewritten) is not None
    assert rewritten.count("| 🔥 firing |") == 3


async def test_a_rebuilt_incident_without_state_never_reuses_comment_markers(
    harness: Harness,
) -> None:
    """Without a state line the old comments' event numbers are unknown: new events are
    numbered from a floor above them, so a new comment's marker never matches an old one."""
    await a_life(harness)
    number = {i["id"]: i for i in await harness.incidents()}["INC-002"]["issue_number"]
    body = harness.github.issue(REPO, number).body or ""
    line = snapshot.find_state_line(body)
    assert line is not None
    harness.github.human_edit_body(REPO, number, body.replace(line, ""))
    await harness.stop()
    delete_store(harness)
    await run_rebuild(harness)
    await harness.start()

    resolved = payload("04_group_of_3_firing.json")
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-26T21:50:00Z"
    assert (await harness.post(resolved))[1]["outcome"] == "resolved"
    await harness.drain()
    markers = [
        c.body
        for c in harness.github.issue(REPO, number).comments
        if "incident-bridge:event" in c.body
    ]
    assert markers
    assert f"INC-002.{EVENT_SEQ_FLOOR + 1}" in markers[-1]


async def test_rebuild_waits_out_a_rate_limit(harness: Harness) -> None:
    """A 403 with Retry-After on the list call: rebuild waits that long and carries on."""
    await a_life(harness)
    await harness.stop()
    delete_store(harness)
    harness.github.inject(
        "GET", r"/issues$", 403, headers={"Retry-After": "30"}, body={"message": "secondary"}
    )
    waits: list[float] = []
    report = await run_rebuild(harness, waits)
    assert len(report.restored) == 4
    assert waits == [30.0]


@pytest.mark.parametrize("store_url", ["sqlite:///state.db"])  # one user per file
async def test_rebuild_refuses_while_serve_holds_the_sqlite_file(harness: Harness) -> None:
    """The SQLite file has one user: rebuild says serve must be stopped."""
    with pytest.raises(StoreInUse, match="in use"):
        await run_rebuild(harness)


@pytest.mark.parametrize("store_url", ["sqlite:///state.db"])  # one user per file
async def test_the_command_prints_a_report_and_needs_serve_stopped(harness: Harness) -> None:
    """`incident-bridge rebuild --format json` as a process: a report; refused while serving."""
    await a_life(harness)
    config = str(harness.tmp_path / "bridge.yaml")
    env = {"GITHUB_URL": harness.github.base_url, "PATH": "/usr/bin:/bin"}

    async def command() -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            "rebuild",
            "--config",
            config,
            "--format",
            "json",
            cwd=harness.tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, _, err = await command()
    assert code == 1
    assert "rebuild needs serve stopped" in err

    await harness.stop()
    delete_store(harness)
    code, out, err = await command()
    assert code == 0, err
    report = json.loads(out.splitlines()[-1])
    assert report["event"] == "rebuild_report"
    assert sorted(report["restored"]) == ["INC-001", "INC-002", "INC-003", "MAINT-001"]


async def test_a_storm_roll_up_keeps_its_number_after_rebuild(
    tmp_path: Path, github: Any, clock: Any, store_url: str
) -> None:
    """A storm's roll-up is numbered with the incidents: after a rebuild its number is never
    given out again, though the store no longer knows its listed groups (it comes back ended)."""
    budget = "  budget: {per_minute: 3, per_hour: 100, reserve: 0.3}\n"
    h = Harness(tmp_path, github, clock, github_config(budget, store_url=store_url))
    await h.start()
    try:
        for n in range(6):
            body = payload("01_firing_single.json")
            body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="s{n}"}}'
            body["alerts"][0]["fingerprint"] = f"{n:016x}"
            body["alerts"][0]["labels"]["priority"] = "P3"
            assert (await h.post(body))[0] == 200
        await h.drain()
        h.clock.advance(61)
        await h.drain()
        roll_ups = [i for i in h.issues() if "Alert storm" in (i.title or "")]
        assert len(roll_ups) == 1
        storm_id = (roll_ups[0].title or "")[1:8]
        assert storm_id == "INC-007"
    finally:
        await h.stop()

    delete_store(h)
    report = await run_rebuild(h)
    assert "INC-007" in report.restored
    await h.start()
    try:
        fresh = payload("04_group_of_3_firing.json")
        assert (await h.post(fresh))[1]["incident"] == "INC-008"
    finally:
        await h.stop()
