"""The outbox worker against a real store: claims, leases and releases.

The runner is a plain function that records what it ran; slowness is the fake clock moving
while it runs.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.app import _writer_gate
from bridge.clock import FakeClock
from bridge.github.client import GitHubError
from bridge.metrics import Metrics
from bridge.outbox import Outbox, backoff
from bridge.store.base import ClaimedEffect, Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from store_support import LEASE, T0, opened


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.db", clock=FakeClock(T0))
    await s.open()
    yield s
    await s.close()


async def test_a_slow_batch_releases_what_it_has_not_started_by_half_the_lease(
    store: SqliteStore,
) -> None:
    """Each effect takes 20 s of a 60 s lease: the third would start past half the lease, so it
    and the rest go back to pending (not run, not failed) and the next pass runs them."""
    clock = FakeClock(T0)
    for n in range(5):
        await opened(store, clock, group=f"g{n}")
    ran: list[int] = []

    async def slow(effect: ClaimedEffect) -> None:
        ran.append(effect.incident_id)
        clock.advance(20)

    outbox = Outbox(store, slow, clock, Metrics(), lease=timedelta(seconds=60))
    assert await outbox.run_once() == 5
    assert len(ran) == 2
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running) == (3, 0)
    await outbox.drain()
    assert sorted(ran) == sorted(set(ran))
    assert len(ran) == 5
    assert (await store.outbox_stats()).pending == 0


async def test_a_stopping_worker_releases_its_batch(store: SqliteStore) -> None:
    """stop() during a batch: the effect in hand finishes, the rest are released, none lost."""
    clock = FakeClock(T0)
    for n in range(3):
        await opened(store, clock, group=f"g{n}")
    outbox: Outbox | None = None
    ran: list[int] = []

    async def stopping(effect: ClaimedEffect) -> None:
        ran.append(effect.incident_id)
        assert outbox is not None
        outbox.stop()

    outbox = Outbox(store, stopping, clock, Metrics())
    await outbox.run_once()
    assert len(ran) == 1
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running) == (2, 0)


async def test_a_batch_renews_the_writer_lease_and_stops_when_it_is_lost(
    store: SqliteStore,
) -> None:
    """Each effect of a batch starts only with the GitHub writer lease in hand: the gate is
    asked again before each (renewing it on a long batch); once another replica has it, the
    rest of the batch goes back to pending instead of running beside that replica's."""
    clock = FakeClock(T0)
    for n in range(4):
        await opened(store, clock, group=f"g{n}")
    asked: list[bool] = []
    answers = iter([True, True, False])

    async def gate(release: bool) -> bool:
        asked.append(release)
        return next(answers)

    ran: list[int] = []

    async def run(effect: ClaimedEffect) -> None:
        ran.append(effect.incident_id)

    outbox = Outbox(store, run, clock, Metrics(), gate=gate)
    assert await outbox.run_once() == 4
    assert len(ran) == 2  # the pass's own check, then the second effect's; the third lost it
    assert asked == [False, False, False]
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running) == (2, 0)


@pytest.fixture(params=["sqlite", "postgres"])
async def shared(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, FakeClock]]:
    """A store on either backend, and the fake clock it and the worker share."""
    clock = FakeClock(T0)
    s: Store
    if request.param == "postgres":
        s = PostgresStore(request.getfixturevalue("postgres_db"), clock=clock)
    else:
        s = SqliteStore(tmp_path / "s.db", clock=clock)
    await s.open()
    yield s, clock
    await s.close()


async def test_a_taken_over_claim_released_at_half_the_lease_stays_unknown(
    shared: tuple[Store, FakeClock],
) -> None:
    """A replica claims three effects and dies mid-request: once the lease lapses another
    worker takes them over with the outcome unknown. It is slow and releases the two it has not
    started at half its lease; they must come back still unknown, so that whoever runs them
    looks for the dead replica's issue or comment before creating one again."""
    store, clock = shared
    for n in range(3):
        await opened(store, clock, group=f"g{n}")
    assert len(await store.claim_effects(clock(), 10, LEASE)) == 3  # the replica that dies
    clock.advance(LEASE.total_seconds() + 1)
    seen: list[tuple[int, bool]] = []

    async def slow(effect: ClaimedEffect) -> None:
        seen.append((effect.incident_id, effect.outcome_unknown))
        clock.advance(40)

    outbox = Outbox(store, slow, clock, Metrics(), lease=LEASE)
    assert await outbox.run_once() == 3
    assert len(seen) == 1  # the other two were released
    await outbox.drain()
    assert len({incident for incident, _ in seen}) == len(seen) == 3
    assert all(unknown for _, unknown in seen)


async def test_a_retry_after_an_unknown_outcome_stays_unknown(
    shared: tuple[Store, FakeClock],
) -> None:
    """The first attempt timed out (GitHub may have made the issue); the second is refused
    before it sends anything (rate limited). The third must still look for the first one's
    issue: a later attempt failing says nothing about what an earlier one did."""
    store, clock = shared
    await opened(store, clock)
    errors = [
        GitHubError("timed out", retryable=True, outcome_unknown=True),
        GitHubError("rate limited", retryable=True, status=429, retry_after=10.0),
    ]
    seen: list[bool] = []

    async def flaky(effect: ClaimedEffect) -> None:
        seen.append(effect.outcome_unknown)
        if errors:
            raise errors.pop(0)

    outbox = Outbox(store, flaky, clock, Metrics())
    for _ in range(3):
        assert await outbox.run_once() == 1
        clock.advance(400)  # past any backoff
    assert seen == [False, True, True]
    assert (await store.outbox_stats()).pending == 0


async def test_the_writer_lease_is_renewed_only_once_a_quarter_of_it_has_passed(
    tmp_path: Path,
) -> None:
    """Every outbox pass asks for the GitHub writer lease; a pass within a quarter of the lease
    of the last renewal needs no store write (three quarters of it are still left), a later one
    renews it, and a release hands it over at once."""
    clock = FakeClock(T0)
    store = SqliteStore(tmp_path / "s.db", clock=clock)
    await store.open()
    try:
        gate = _writer_gate(store, clock, timedelta(seconds=60))

        def until() -> float:
            with closing(sqlite3.connect(tmp_path / "s.db")) as conn:
                (value,) = conn.execute("SELECT until FROM leases").fetchone()
                return float(value)

        assert await gate(False)
        first = until()
        clock.advance(14)
        assert await gate(False)
        assert until() == first
        clock.advance(2)
        assert await gate(False)
        assert until() == first + 16
        assert await gate(True)
        assert until() == first + 16 - 60  # released: until = now
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        (30.0, 30.0, 31.0),  # honoured, a little later so replicas do not stampede
        (86_400.0, 3600.0, 3601.0),  # a day: an hour at most
        (float("inf"), 3600.0, 3601.0),  # an infinite one too (it overflowed timedelta)
        (float("nan"), 0.0, 2.0),  # not a number: the ordinary backoff
        (-5.0, 0.0, 2.0),
    ],
)
def test_retry_after_is_honoured_up_to_an_hour(retry_after: float, low: float, high: float) -> None:
    """The one retry mechanism honours ``Retry-After`` — but not a proxy's day-long or
    unreadable one, which would park the work for good or crash the lane's worker."""
    delay = backoff(1, retry_after, random.Random(7))  # noqa: S311 -- jitter, not secrets
    assert low <= delay <= high
