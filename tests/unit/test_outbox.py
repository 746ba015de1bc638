"""The outbox worker against a real store: claims, leases and releases.

The runner is a plain function that records what it ran; slowness is the fake clock moving
while it runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.metrics import Metrics
from bridge.outbox import Outbox
from bridge.store.base import ClaimedEffect
from bridge.store.sqlite import SqliteStore
from store_support import T0, opened


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
