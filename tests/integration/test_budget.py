"""GitHub's write budget through the real bridge: paced writes, P0/P1 first, refusals shrink it.

The fake GitHub shares the test's clock, so its rate-limit windows and the bridge's budget move
together; nothing sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue
from support import REPO, TOKEN, Harness, github_config, payload

BUDGET = "  budget: {per_minute: 10, per_hour: 100, reserve: 0.3}\n"


@pytest.fixture
async def github(clock: FakeClock) -> AsyncIterator[FakeGitHub]:
    """The fake GitHub on the test's clock, enforcing GitHub's real limits."""
    async with FakeGitHub(token=TOKEN, repos=[REPO], clock=clock, enforce_limits=True) as fake:
        yield fake


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The budget lives in the store: both stores."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def harness(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(BUDGET, store_url=store_url))
    await h.start()
    yield h
    await h.stop()


def group(n: int, priority: str) -> dict[str, Any]:
    """A new alert group ``n`` whose alert carries the ``priority`` label."""
    body = payload("01_firing_single.json")
    body["groupKey"] = f'{{}}:{{alertname="HighCPU", service="svc-{n}"}}'
    body["groupLabels"]["service"] = f"svc-{n}"
    alert = body["alerts"][0]
    alert["fingerprint"] = f"{n:016x}"
    alert["labels"].update(service=f"svc-{n}", priority=priority)
    return body


def incident_issues(h: Harness) -> list[FakeIssue]:
    """The incidents' own issues (not storm roll-ups)."""
    return [i for i in h.issues() if not i.has_label("storm")]


async def test_p2_p3_writes_stop_at_their_share_and_resume_as_the_window_moves(
    harness: Harness,
) -> None:
    """With 10 writes a minute and 30 % reserved, P2/P3 make 7 and the other 13 groups are
    listed in a storm roll-up (test_storm.py) whose create waits for the next P2/P3 slot; a
    minute later the roll-up and 6 more issues, then 6, then the last; nothing is refused by
    GitHub and nothing is lost."""
    for n in range(20):
        assert (await harness.post(group(n, "P3")))[0] == 200
    await harness.drain()
    assert len(harness.issues()) == 7
    metrics = await (await harness.http.get("/metrics")).text()
    assert 'incident_bridge_outbox_queue{priority="P3"} 1.0' in metrics  # the roll-up
    assert 'incident_bridge_github_budget_used{window="minute"} 7.0' in metrics
    assert "incident_bridge_github_budget_next_slot_seconds 0.0" not in metrics
    harness.clock.advance(61)
    await harness.drain()
    assert len([i for i in incident_issues(harness) if i.title.startswith("[INC-")]) == 13
    harness.clock.advance(61)
    await harness.drain()
    assert len([i for i in incident_issues(harness) if i.title.startswith("[INC-")]) == 19
    harness.clock.advance(61)
    await harness.drain()
    assert len(incident_issues(harness)) == 20
    assert len(harness.issues()) == 21
    assert harness.github.secondary_limit_hits == 0

    metrics = await (await harness.http.get("/metrics")).text()
    assert 'incident_bridge_github_budget_used{window="hour"} 23.0' in metrics


def created_priorities(h: Harness) -> list[str]:
    """The priority label of each issue created since the log was reset, in order."""
    return [
        next(label for label in r.json["labels"] if label.startswith("priority-"))
        for r in h.github.requests
        if r.method == "POST"
        and r.path.endswith("/issues")
        and r.status == 201
        and "storm" not in r.json["labels"]
    ]


URGENT = {"priority-critical", "priority-high"}


async def test_p0_p1_use_the_reserve_and_go_before_any_waiting_p2_p3(harness: Harness) -> None:
    """P2/P3 spent their share; P0/P1 still get issues at once from the reserve; when the
    window moves, the P0/P1 writes left waiting go before any P2/P3 write."""
    for n in range(10):
        await harness.post(group(n, "P3"))
    await harness.drain()
    assert len(harness.issues()) == 7

    harness.github.reset_log()
    for n in range(100, 105):
        await harness.post(group(n, "P0" if n % 2 else "P1"))
    await harness.drain()
    assert len(created_priorities(harness)) == 3  # the reserve: 3 more writes ...
    assert set(created_priorities(harness)) <= URGENT  # ... all P0/P1

    harness.github.reset_log()
    harness.clock.advance(61)
    await harness.drain()
    order = created_priorities(harness)
    # The two P0/P1 left waiting, then the three P3 (listed in a storm roll-up meanwhile).
    assert len(order) == 5
    assert set(order[:2]) <= URGENT
    assert not set(order[2:]) & URGENT
    assert harness.github.secondary_limit_hits == 0


async def test_a_refusal_by_github_halves_the_budget_and_waits_it_out(harness: Harness) -> None:
    """Someone else on the token spent GitHub's allowance: the bridge's write is refused (403,
    Retry-After); the budget halves for every replica, the write waits out the window and is
    made once; the budget grows back."""
    harness.github.enforce_limits(content_per_minute=3, count_human_actions=True)
    for n in range(3):
        harness.github.human_create_issue(REPO, f"someone else's issue {n}")
    await harness.post(group(1, "P2"))
    await harness.drain()
    assert harness.github.secondary_limit_hits == 1
    assert harness.app is not None
    store = harness.app[SERVICES].store
    factor, _ = await store.budget_factor()
    assert factor == 0.5
    metrics = await (await harness.http.get("/metrics")).text()
    assert "incident_bridge_github_budget_factor 0.5" in metrics

    await harness.drain()  # still inside Retry-After: nothing is sent
    assert harness.github.secondary_limit_hits == 1
    harness.clock.advance(61)
    await harness.drain()
    assert len([i for i in incident_issues(harness) if i.title.startswith("[INC-")]) == 1
    assert harness.github.secondary_limit_hits == 1

    # Half an hour without a refusal: grown back to the whole budget, and the gauge says so.
    harness.clock.advance(30 * 60)
    await harness.post(group(2, "P2"))
    await harness.drain()
    metrics = await (await harness.http.get("/metrics")).text()
    assert "incident_bridge_github_budget_factor 1.0" in metrics


async def test_a_store_failing_to_charge_a_sent_write_does_not_hide_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """The create went out and GitHub made the issue, then the store could not record the
    charge: the effect still finishes with what GitHub answered (it does not wait for its
    lease and look for its marker), the issue exists once, and the uncounted write is logged."""
    store = harness.app[SERVICES].store if harness.app is not None else None
    assert isinstance(store, SqliteStore | PostgresStore)
    if isinstance(store, SqliteStore):
        fault = "BEFORE INSERT ON github_writes BEGIN SELECT RAISE(ABORT, 'disk I/O'); END"
        await store.execute_for_test(f"CREATE TRIGGER no_charge {fault}")
    else:
        await store.execute_for_test(
            "CREATE FUNCTION no_charge() RETURNS trigger AS $$ BEGIN"
            " RAISE EXCEPTION 'disk I/O'; END $$ LANGUAGE plpgsql"
        )
        await store.execute_for_test(
            "CREATE TRIGGER no_charge BEFORE INSERT ON github_writes"
            " FOR EACH ROW EXECUTE FUNCTION no_charge()"
        )
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    assert len(incident_issues(harness)) == 1
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running) == (0, 0)
    assert "github_budget_not_charged" in capsys.readouterr().out
