"""WAL checkpoints off the request path: the SQLite store's checkpointer thread.

SQLite's own automatic checkpoint runs inside the COMMIT that crosses its threshold, so one batch
of webhooks a few times a second waited for pages to be copied into the database file and for its
fsync. The store instead checkpoints on a thread and connection of its own (PASSIVE: it never
blocks the writer or a reader) and keeps the automatic checkpoint only as a far larger backstop.
These tests use a real file and the real thread; they wait on what the file shows, bounded.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
import structlog

from bridge.clock import FakeClock
from bridge.store.sqlite import _AUTOCHECKPOINT_BACKSTOP, SqliteStore, _Checkpointer
from store_support import opened
from support import eventually


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "bridge.db", clock=clock)
    await s.open()
    yield s
    await s.close()


def checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint" and t.is_alive()]


async def test_commits_leave_checkpoints_to_the_checkpointer(
    store: SqliteStore, tmp_path: Path, clock: FakeClock
) -> None:
    """The writer's automatic checkpoint is only the backstop, far above what these writes
    fill, yet the committed pages reach the database file: the checkpointer copied them."""
    writer = store._writer  # the writer connection's own setting is what is under test
    assert writer is not None
    backstop = await store._write(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    assert backstop == _AUTOCHECKPOINT_BACKSTOP
    db = tmp_path / "bridge.db"
    with closing(sqlite3.connect(db)) as conn:  # the schema's pages: in the file already
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    before = db.stat().st_size

    for n in range(40):
        await opened(store, clock, f"group-{n}")
    wal_pages = (tmp_path / "bridge.db-wal").stat().st_size // 4096
    assert wal_pages < _AUTOCHECKPOINT_BACKSTOP  # the writer never reached its own checkpoint

    await eventually(lambda: db.stat().st_size > before, "the pages reach the file", 10)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM incidents").fetchone() == (40,)


async def test_closing_the_store_stops_the_checkpointer(tmp_path: Path, clock: FakeClock) -> None:
    """The thread belongs to the open store: closing it stops and joins the thread."""
    s = SqliteStore(tmp_path / "bridge.db", clock=clock)
    await s.open()
    assert len(checkpointer_threads()) == 1
    await s.close()
    assert checkpointer_threads() == []


async def test_a_failing_checkpoint_is_logged_once_and_tried_again(tmp_path: Path) -> None:
    """A file SQLite cannot checkpoint (here: not a database at all) is one warning for the
    whole failing spell, not one per turn, and the thread keeps trying until stopped."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an sqlite database" * 200)
    checkpointer = _Checkpointer(junk, interval=0.01)
    with structlog.testing.capture_logs() as logs:
        checkpointer.start()
        await asyncio.sleep(0.3)  # some thirty turns, every one failing
        await asyncio.to_thread(checkpointer.stop)
    failures = [entry for entry in logs if entry["event"] == "store_checkpoint_failed"]
    assert len(failures) == 1
    assert "not a database" in str(failures[0]["error"])
    assert checkpointer_threads() == []
