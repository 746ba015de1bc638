"""One process per SQLite file: the store's process lock.

The SQLite store has a single writer inside one process; a second ``serve`` on the same file
would interleave transactions the design never reasons about, so it is refused at open.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.store.base import StoreUnavailable
from bridge.store.sqlite import SqliteStore, StoreInUse


async def test_a_second_exclusive_open_is_refused_with_the_holders_pid(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The second opener is told which file and which process holds it."""
    first = SqliteStore(tmp_path / "s.db", clock=clock)
    await first.open()
    try:
        second = SqliteStore(tmp_path / "s.db", clock=clock)
        with pytest.raises(StoreInUse, match=r"s\.db is in use .* \(pid \d+\)"):
            await second.open()
    finally:
        await first.close()


async def test_closing_releases_the_file(tmp_path: Path, clock: FakeClock) -> None:
    """After close (a stopped serve) the next exclusive open succeeds."""
    first = SqliteStore(tmp_path / "s.db", clock=clock)
    await first.open()
    await first.close()
    second = SqliteStore(tmp_path / "s.db", clock=clock)
    await second.open()
    await second.close()


async def test_a_refused_open_leaves_the_holder_working(tmp_path: Path, clock: FakeClock) -> None:
    """The refused opener touches nothing: the holder still answers."""
    first = SqliteStore(tmp_path / "s.db", clock=clock)
    await first.open()
    try:
        with pytest.raises(StoreInUse):
            await SqliteStore(tmp_path / "s.db", clock=clock).open()
        await first.ping()
        assert await first.open_counts() == {}
    finally:
        await first.close()


async def test_read_only_users_open_beside_a_serve(tmp_path: Path, clock: FakeClock) -> None:
    """``exclusive=False`` (report and other read-only commands) opens while serve holds it."""
    first = SqliteStore(tmp_path / "s.db", clock=clock)
    await first.open()
    try:
        reader = SqliteStore(tmp_path / "s.db", clock=clock, exclusive=False)
        await reader.open()
        assert await reader.open_counts() == {}
        await reader.close()
    finally:
        await first.close()


async def test_a_lock_file_that_cannot_be_created_is_store_unavailable(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A directory where the lock file should be: a clear StoreUnavailable, not an OSError."""
    (tmp_path / "s.db.lock").mkdir()
    with pytest.raises(StoreUnavailable, match="cannot open"):
        await SqliteStore(tmp_path / "s.db", clock=clock).open()
