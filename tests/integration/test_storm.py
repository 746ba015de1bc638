"""Storm mode through the real bridge: when new groups outrun the GitHub write budget, P0/P1
still get their own issues at once, the rest are listed in one roll-up issue whose checklist
tells the truth and is edited at most once a minute.

The fake GitHub shares the test's clock and enforces GitHub's limits; nothing sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.github import render
from bridge.model import Incident
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue
from support import REPO, TOKEN, Harness, github_config, payload

SMALL = "  budget: {per_minute: 10, per_hour: 100, reserve: 0.3}\n"
LINE = re.compile(
    r"^- \[(?P<check>[ x])\] (?P<id>INC-\d{3,}) · (?P<priority>P[0-3]) · (?P<state>firing|resolved)"
    r"(?: · #(?P<issue>\d+))?(?: · .*)?$"
)
URGENT = {"priority-critical", "priority-high"}


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock, enforce_limits=True) as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


async def started(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, extra: str, url: str
) -> Harness:
    h = Harness(tmp_path, github, clock, github_config(extra, store_url=url))
    await h.start()
    return h


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    h = await started(tmp_path, github, clock, SMALL, store_url)
    yield h
    await h.stop()


def group(n: int, priority: str, *, resolved_at: datetime | None = None) -> dict[str, Any]:
    """Alert group ``n`` (summary "HighCPU on svc-<n>") at ``priority``; resolved if given."""
    body = payload("01_firing_single.json")
    body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="svc-{n}"}}'
    body["groupLabels"]["service"] = f"svc-{n}"
    body["commonLabels"].update(service=f"svc-{n}", priority=priority)
    body["commonAnnotations"]["summary"] = f"HighCPU on svc-{n}"
    alert = body["alerts"][0]
    alert["fingerprint"] = f"{n:016x}"
    alert["labels"].update(service=f"svc-{n}", priority=priority)
    alert["annotations"]["summary"] = f"HighCPU on svc-{n}"
    if resolved_at is not None:
        body["status"] = alert["status"] = "resolved"
        alert["endsAt"] = resolved_at.isoformat().replace("+00:00", "Z")
    return body


@dataclass
class Listed:
    check: str
    priority: str
    state: str
    issue: int | None


def rollups(h: Harness) -> list[FakeIssue]:
    return [i for i in h.issues() if i.has_label("storm")]


def own_issues(h: Harness) -> dict[str, FakeIssue]:
    """INC id → its own issue (not roll-ups)."""
    found = {}
    for issue in h.issues():
        if not issue.has_label("storm"):
            match = re.match(r"^\[(INC-\d+)\]", issue.title)
            assert match
            found[match.group(1)] = issue
    return found


def checklist(issue: FakeIssue) -> dict[str, Listed]:
    lines = {}
    for line in (issue.body or "").splitlines():
        match = LINE.match(line)
        if match:
            issue_number = match["issue"]
            lines[match["id"]] = Listed(
                match["check"],
                match["priority"],
                match["state"],
                int(issue_number) if issue_number else None,
            )
    return lines


class Watch:
    """Advances the fake clock, drains the outbox and records when the roll-up was edited."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.edits: list[datetime] = []
        self.seen = 0

    async def step(self, seconds: float = 0) -> None:
        self.h.clock.advance(seconds)
        await self.h.drain()
        self.collect()

    def collect(self) -> None:
        numbers = {i.number for i in rollups(self.h)}
        requests = self.h.github.requests
        for request in requests[self.seen :]:
            match = re.search(r"/issues/(\d+)$", request.path)
            if request.method == "PATCH" and match and int(match.group(1)) in numbers:
                self.edits.append(self.h.clock())
        self.seen = len(requests)

    def assert_paced(self) -> None:
        gaps = [b - a for a, b in zip(self.edits, self.edits[1:], strict=False)]
        assert all(gap >= timedelta(seconds=60) for gap in gaps), self.edits


async def incidents(h: Harness) -> list[dict[str, Any]]:
    """Every incident (not roll-ups) the API lists."""
    response = await h.http.get("/api/v1/incidents", params={"limit": "1000"})
    assert response.status == 200
    return [i for i in await response.json() if i["kind"] == "incident"]


async def truth(h: Harness, rollup: FakeIssue) -> dict[str, Listed]:
    """The roll-up's checklist, checked against the bridge's incidents: every listed group
    with its priority and state, and its own issue where it has one."""
    listed = checklist(rollup)
    by_id = {i["id"]: i for i in await incidents(h)}
    for inc_id, line in listed.items():
        incident = by_id[inc_id]
        assert line.priority == incident["priority"], inc_id
        state = "firing" if incident["state"] == "open" else "resolved"
        assert line.state == state, inc_id
        assert line.check == ("x" if state == "resolved" else " "), inc_id
        if line.issue is not None:
            assert line.issue == incident["issue_number"], inc_id
    return listed


async def nothing_pending(h: Harness) -> None:
    assert h.app is not None
    stats = await h.app[SERVICES].store.outbox_stats()
    assert (stats.pending, stats.running, stats.failed) == (0, 0, 0)


async def test_a_storm_is_rolled_up_truthfully_and_ends(harness: Harness) -> None:
    h, watch = harness, Watch(harness)
    start = h.clock()
    # 20 new groups at once, every fifth P2, the rest P3: 7 writes a minute for P2/P3.
    for n in range(20):
        assert (await h.post(group(n, "P2" if n % 5 == 0 else "P3")))[0] == 200
    await watch.step()
    assert len(own_issues(h)) == 7  # INC-001..007; INC-008..020 are listed in the storm
    assert rollups(h) == []  # its create waits for the next P2/P3 slot

    # P0/P1 arriving during the storm get their own issues at once, from the reserve.
    await h.post(group(100, "P0"))
    await h.post(group(101, "P1"))
    await watch.step()
    issues = own_issues(h)
    assert {label for i in issues.values() for label in i.label_names} & URGENT == URGENT
    assert len(issues) == 9

    # Three listed groups resolve before they got an issue: no comment, no issue of their own.
    for n in (7, 8, 9):
        await h.post(group(n, "P3", resolved_at=start))
    await watch.step()
    assert len(own_issues(h)) == 9

    # The window moves: the roll-up is created and lists all 13 with the truth.
    await watch.step(61)
    (rollup,) = rollups(h)
    assert rollup.title == "[INC-021] Alert storm: 13 alert groups"
    assert set(rollup.label_names) == {"incident-bridge", "incident", "storm", "priority-medium"}
    assert "<!-- incident-bridge:v1 kind=storm id=INC-021 key=" in (rollup.body or "")
    listed = await truth(h, rollup)
    assert sorted(listed) == [f"INC-{n:03d}" for n in range(8, 21)]
    assert {i for i, line in listed.items() if line.state == "resolved"} == {
        "INC-008",
        "INC-009",
        "INC-010",
    }
    assert listed["INC-011"].priority == "P2"  # group 10
    # ... and the groups still firing start getting their own issues as the budget allows.
    assert len(own_issues(h)) > 9

    for _ in range(4):
        await watch.step(61)
        await truth(h, rollup)
    issues = own_issues(h)
    # Every listed group still firing has its own issue now, linked; resolved ones never did.
    assert {f"INC-{n:03d}" for n in range(11, 21)} <= set(issues)
    assert not {"INC-008", "INC-009", "INC-010"} & set(issues)
    listed = await truth(h, h.github.issue(REPO, rollup.number))
    assert all(line.issue is not None for i, line in listed.items() if line.state == "firing")
    over = [c for c in h.github.comments(REPO, rollup.number) if "Storm over" in c.body]
    assert len(over) == 1
    assert h.github.issue(REPO, rollup.number).state == "open"  # ten groups still fire

    # Every group resolves: their issues close, the roll-up ticks them and closes last.
    for n in range(20):
        await h.post(group(n, "P2" if n % 5 == 0 else "P3", resolved_at=h.clock()))
    # 20 resolution writes (comment, close) at 7 a minute, then the roll-up's last edit.
    for _ in range(30):
        await watch.step(20)
        if h.github.issue(REPO, rollup.number).state == "closed":
            break
    rollup = h.github.issue(REPO, rollup.number)
    listed = await truth(h, rollup)
    assert all(line.check == "x" for line in listed.values())
    assert rollup.state == "closed"
    assert len([c for c in h.github.comments(REPO, rollup.number) if "Storm over" in c.body]) == 1
    watch.assert_paced()
    assert len(watch.edits) >= 3
    assert h.github.secondary_limit_hits == 0
    await h.post(group(100, "P0", resolved_at=h.clock()))
    await h.post(group(101, "P1", resolved_at=h.clock()))
    for _ in range(5):
        await watch.step(61)
    await nothing_pending(h)
    assert all(issue.state == "closed" for issue in h.issues())
    watch.assert_paced()
    assert h.github.secondary_limit_hits == 0


async def test_a_group_listed_in_the_roll_up_is_never_rendered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is asked before an issue is rendered: in a storm, each P2/P3 group it lists
    in the roll-up costs a few store reads and writes, not a render of an issue nobody gets."""
    rendered: list[str] = []
    real = render.render_issue

    def counting(incident: Incident, *args: Any, **kwargs: Any) -> render.DesiredIssue:
        rendered.append(incident.display_id)
        return real(incident, *args, **kwargs)

    monkeypatch.setattr(render, "render_issue", counting)
    h, watch = harness, Watch(harness)
    for n in range(20):
        assert (await h.post(group(n, "P3")))[0] == 200
    await watch.step()
    assert len(own_issues(h)) == 7
    assert sorted(rendered) == sorted(own_issues(h)) == [f"INC-{n:03d}" for n in range(1, 8)]


async def test_a_new_storm_after_the_last_one_is_over(harness: Harness) -> None:
    """Once a storm is over, groups the budget cannot take start a new roll-up (numbered
    from the incident counter), and the old one is left alone."""
    h, watch = harness, Watch(harness)
    for n in range(9):
        await h.post(group(n, "P3"))
    await watch.step()
    for _ in range(3):
        await watch.step(61)
    (first,) = rollups(h)
    assert first.title == "[INC-010] Alert storm: 2 alert groups"
    assert len([c for c in h.github.comments(REPO, first.number) if "Storm over" in c.body]) == 1
    await nothing_pending(h)
    for n in range(20, 29):
        await h.post(group(n, "P3"))
    await watch.step()
    await watch.step(61)
    titles = sorted(i.title for i in rollups(h))
    assert titles == [
        "[INC-010] Alert storm: 2 alert groups",
        "[INC-020] Alert storm: 2 alert groups",
    ]
    assert h.github.secondary_limit_hits == 0


@pytest.fixture
async def default_budget(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    h = await started(tmp_path, github, clock, "", store_url)
    yield h
    await h.stop()


async def test_300_groups_at_once_with_the_default_budget(default_budget: Harness) -> None:
    """The issue's acceptance test: 300 new groups, 5 of them P0/P1 arriving after the first
    150; no P2/P3 write while a P0/P1 waits, every P0/P1 has its issue within a minute, GitHub
    never refuses, and the roll-up lists every group without an issue of its own."""
    h, watch = default_budget, Watch(default_budget)
    urgent = {150 + k: ("P0" if k % 2 else "P1") for k in range(5)}
    for chunk in range(30):
        h.github.reset_log()
        watch.seen = 0
        for n in range(chunk * 10, chunk * 10 + 10):
            assert (await h.post(group(n, urgent.get(n, "P3"))))[0] == 200
        await watch.step()
        if chunk == 15:
            creates = [
                r.json["labels"]
                for r in h.github.requests
                if r.method == "POST" and r.path.endswith("/issues") and r.status == 201
            ]
            writes = [r for r in h.github.requests if r.is_write]
            # The five P0/P1 creates are the first writes after they arrived.
            assert len(creates) >= 5
            assert all(set(labels) & URGENT for labels in creates[:5])
            assert writes[:5] == [w for w in writes if w.method == "POST"][:5]
    by_summary = {i.title.split("] ", 1)[1]: i for i in own_issues(h).values()}
    for n in urgent:
        assert f"HighCPU on svc-{n}" in by_summary  # at fake time 0: within a minute

    for _ in range(3):
        await watch.step(61)
        (rollup,) = rollups(h)
        listed = await truth(h, rollup)
        everything = await incidents(h)
        assert len(everything) == 300
        without = {i["id"] for i in everything if i["issue_number"] is None}
        assert without <= set(listed)
    assert len(listed) == 300 - 45 - 5
    assert h.github.secondary_limit_hits == 0
    assert h.github.primary_limit_hits == 0
    watch.assert_paced()
