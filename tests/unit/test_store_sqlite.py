"""The SQLite store on a real file: what only SQLite has — the file's schema and durability
settings, the writer's batches, the reset of running effects at start-up, the query plans.

Everything both backends share is in test_store_contract.py (run on SQLite there too). Faults
are real SQLite faults (a trigger that aborts an insert), never patched internals; time comes
from a fake clock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.engine import Decision
from bridge.identity import identity_key, identity_of
from bridge.model import Incident
from bridge.store.base import StoreUnavailable
from bridge.store.sqlite import CLAIM_DUE, CLAIM_LAPSED, SqliteStore, _KnownKeys
from bridge.store.sqlite_schema import MIGRATIONS
from store_support import LEASE, alert, ingest, note, numbers, opened, resolved_note
from support import REPO


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Read the file through a connection of our own, as an operator with sqlite3 would."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def outbox(path: Path) -> list[tuple[Any, ...]]:
    return query(
        path,
        "SELECT incident_id, kind, state, attempts, outcome_unknown FROM outbox ORDER BY id",
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bridge.db"


@pytest.fixture
async def store(db: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db, clock=clock)
    await s.open()
    yield s
    await s.close()


async def reopened(db: Path, clock: FakeClock) -> SqliteStore:
    s = SqliteStore(db, clock=clock)
    await s.open()
    return s


# -- schema --------------------------------------------------------------------------------


async def test_open_creates_the_schema(store: SqliteStore, db: Path) -> None:
    """A new file gets every table and the schema version of the last migration."""
    assert query(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    tables = {row[0] for row in query(db, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"counters", "incidents", "events", "outbox", "github_issues"} <= tables


async def test_reopening_keeps_schema_and_data(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """Opening an up-to-date file migrates nothing; its data and the numbering carry on."""
    first = await opened(store, clock, "g1")
    await store.close()
    schema = query(db, "SELECT sql FROM sqlite_master ORDER BY name")

    again = await reopened(db, clock)
    try:
        assert query(db, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert query(db, "SELECT sql FROM sqlite_master ORDER BY name") == schema
        assert first.id is not None
        assert await again.load_incident(first.id) == first
        second = await opened(again, clock, "g2")
        assert second.number == 2
    finally:
        await again.close()


async def test_a_newer_schema_is_refused(db: Path, clock: FakeClock) -> None:
    """A file written by a newer bridge (higher user_version) is refused, not mangled."""
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    s = SqliteStore(db, clock=clock)
    with pytest.raises(StoreUnavailable, match="newer"):
        await s.open()
    await s.close()
    assert query(db, "PRAGMA user_version") == [(len(MIGRATIONS) + 1,)]
    assert query(db, "SELECT name FROM sqlite_master") == []


async def test_durability_settings_are_real(store: SqliteStore, db: Path) -> None:
    """The file is in WAL mode and the writer commits with synchronous=FULL (2)."""
    assert query(db, "PRAGMA journal_mode") == [("wal",)]  # persistent: any connection sees it
    # synchronous is per connection: ask the writer itself. The private ``_write`` runs one
    # unit on the writer's connection; this is the only test that reaches inside.
    synchronous = await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert synchronous == 2


# -- the writer: batches -------------------------------------------------------------------


async def batch_after_gate(
    store: SqliteStore, *jobs: Any, statements: list[str] | None = None
) -> list[Any]:
    """Run ``jobs`` (coroutines that each submit one unit) as one writer batch.

    The jobs start in the same loop turn, so every unit is queued before the writer's flusher
    runs; the writer connection's statement trace shows they committed in one transaction (a
    failing unit makes the batch run again, isolated, before that one COMMIT).
    """
    writer = store._writer  # the batch boundary is what is under test
    assert writer is not None
    statements = [] if statements is None else statements
    writer.conn.set_trace_callback(statements.append)
    try:
        tasks = [asyncio.create_task(job) for job in jobs]
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        writer.conn.set_trace_callback(None)
    assert statements.count("COMMIT") == 1, statements
    return results


class Boom(Exception):
    """A decide that fails."""


async def test_a_batch_that_succeeds_runs_no_savepoints(
    store: SqliteStore, clock: FakeClock
) -> None:
    """Savepoints cost two statements per unit; a batch needs them only to undo a failing
    unit alone, so a batch in which every unit succeeds runs without them."""
    statements: list[str] = []
    results = await batch_after_gate(
        store,
        ingest(store, clock, note(alert(), group="g1")),
        ingest(store, clock, note(alert(), group="g2")),
        statements=statements,
    )
    assert [r.outcome for r in results] == ["opened", "opened"]
    assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]


def failing_decide(current: Incident | None) -> Decision:
    raise Boom("engine bug")


async def test_a_failing_decide_rolls_back_only_its_own_unit(
    store: SqliteStore, clock: FakeClock
) -> None:
    """In one batch, the unit whose decide raises fails alone; its neighbours commit."""
    results = await batch_after_gate(
        store,
        ingest(store, clock, note(alert(), group="g1")),
        store.ingest("bad", "bad", failing_decide),
        ingest(store, clock, note(alert(), group="g2")),
    )
    first, bad, second = results
    assert isinstance(bad, Boom)
    assert isinstance(first, Decision)
    assert isinstance(second, Decision)
    assert (first.outcome, second.outcome) == ("opened", "opened")
    rows = await store.list_incidents(REPO)
    assert numbers([r.incident for r in rows]) == [1, 2]


async def test_a_unit_failing_after_its_writes_rolls_them_back_alone(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """A unit that fails halfway (incident and events written, outbox insert aborted) leaves
    nothing behind, and the units around it in the same batch keep gap-free numbers."""
    bad = note(alert(), group="bad")
    bad_key = identity_key(identity_of(bad, "group_key"))
    await store.execute_for_test(
        "CREATE TRIGGER bad_outbox BEFORE INSERT ON outbox WHEN (SELECT json_extract(data,"
        " '$.group_labels.group') FROM incidents WHERE id = NEW.incident_id) = 'bad'"
        " BEGIN SELECT RAISE(ABORT, 'io'); END"
    )
    results = await batch_after_gate(
        store,
        ingest(store, clock, note(alert(), group="g1")),
        ingest(store, clock, bad),
        ingest(store, clock, note(alert(), group="g2")),
    )
    assert isinstance(results[1], StoreUnavailable)
    rows = await store.list_incidents(REPO)
    assert numbers([r.incident for r in rows]) == [1, 2]
    assert query(db, "SELECT COUNT(*) FROM incidents WHERE key = ?", (bad_key,)) == [(0,)]
    assert query(db, "SELECT COUNT(DISTINCT incident_id) FROM events") == [(2,)]
    assert len(outbox(db)) == 2


async def test_a_batch_is_answered_before_the_next_batch_runs(store: SqliteStore) -> None:
    """Units queued while a batch commits form the next batch, but the callers of the committed
    batch are answered first: their responses are not held back by the next batch's
    statements (and webhooks arriving meanwhile still join the next batch)."""
    writer = store._writer  # the order of the writer's turns is what is under test
    assert writer is not None
    order: list[str] = []
    committing = asyncio.Event()  # the first batch has run its unit and is committing

    def unit(name: str) -> None:
        order.append(f"{name} ran")
        committing.set()

    async def call(name: str) -> None:
        await writer.submit(lambda _conn: unit(name))
        order.append(f"{name} answered")

    first = asyncio.create_task(call("first"))
    await committing.wait()
    second = asyncio.create_task(call("second"))
    await asyncio.gather(first, second)
    assert order == ["first ran", "first answered", "second ran", "second answered"]


# -- the look-ahead: keys it need not read ---------------------------------------------------


def ahead_statements(store: SqliteStore) -> list[str]:
    """The statements the look-ahead connection runs from now on."""
    statements: list[str] = []
    assert store._ahead is not None  # which connection reads is what is under test
    store._ahead.set_trace_callback(statements.append)
    return statements


async def test_a_new_group_is_decided_ahead_without_a_read(
    store: SqliteStore, clock: FakeClock
) -> None:
    """No incident has a new group's key, and the store knows it without asking the database:
    the look-ahead decides without a read (the writer still reads the key in its
    transaction). A repeat of a known group is read, and answered from that read."""
    statements = ahead_statements(store)
    first = await ingest(store, clock, note(alert()))
    assert first.outcome == "opened"
    assert statements == []
    repeat = await ingest(store, clock, note(alert()))
    assert repeat.outcome == "unchanged"
    assert len(statements) == 1
    assert statements[0].startswith("SELECT id, number, data FROM incidents WHERE key")


async def test_the_known_keys_come_back_with_a_restart(db: Path, clock: FakeClock) -> None:
    """The keys are read from the database at open: after a restart, a repeat of an incident
    opened before is read ahead (and not taken for a new group)."""
    store = await reopened(db, clock)
    await opened(store, clock, "g1")
    await store.close()
    store = await reopened(db, clock)
    try:
        statements = ahead_statements(store)
        assert (await ingest(store, clock, note(alert()))).outcome == "unchanged"
        assert len(statements) == 1
    finally:
        await store.close()


async def test_an_incident_the_known_keys_missed_is_still_found(
    store: SqliteStore, clock: FakeClock, db: Path
) -> None:
    """The known keys never decide alone. Were an incident's key missing from them, a repeat
    would be decided ahead as a new incident — and decided again by the writer, which reads
    the key: no second incident. A resolution, which changes nothing when no incident exists,
    is only taken on a read: the incident resolves."""
    await opened(store, clock, "g1")
    store._known = _KnownKeys([])  # as if the insert had not been heard of
    assert (await ingest(store, clock, note(alert()))).outcome == "unchanged"
    assert query(db, "SELECT COUNT(*) FROM incidents") == [(1,)]
    assert (await ingest(store, clock, resolved_note())).outcome == "resolved"
    assert query(db, "SELECT state FROM incidents") == [("resolved",)]


def test_the_known_keys_stop_answering_past_their_limit() -> None:
    """Past the limit the keys are dropped, not grown: every key may then exist (the
    look-ahead reads each, as without them)."""
    known = _KnownKeys(["a", "b"], limit=3)
    assert known.absent("c")
    assert not known.absent("a")
    known.add("c")
    assert not known.absent("c")
    known.add("d")  # the fourth key: over the limit
    assert not known.absent("z")
    assert not known.absent("d")


# -- restart: a single process -------------------------------------------------------------


async def test_running_effects_come_back_pending_after_a_restart(
    db: Path, clock: FakeClock
) -> None:
    """Effects running when the store closed were interrupted: pending again, outcome unknown."""
    first = await reopened(db, clock)
    await opened(first, clock)
    [effect] = await first.claim_effects(clock(), 10, LEASE)
    await first.close()

    second = await reopened(db, clock)
    try:
        assert (await second.outbox_stats()).pending == 1
        [again] = await second.claim_effects(clock(), 10, LEASE)
        assert (again.id, again.outcome_unknown, again.attempts) == (effect.id, True, 0)
        assert again.claim > effect.claim
        assert not await second.finish_effect(effect, clock())
        assert await second.finish_effect(again, clock())
    finally:
        await second.close()


# -- query plans ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", [CLAIM_LAPSED, CLAIM_DUE], ids=["lapsed", "due"])
def test_claim_queries_walk_an_index_instead_of_sorting_the_backlog(
    tmp_path: Path, query: str
) -> None:
    """Claiming stays cheap behind a storm's backlog: each claim query reads its partial index
    in order and stops at the limit, never sorting every candidate (no temp B-tree)."""
    conn = sqlite3.connect(tmp_path / "plan.db")
    for script in MIGRATIONS:
        conn.executescript(script)
    plan = " | ".join(
        row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", (0.0, "github", 32))
    )
    conn.close()
    assert "TEMP B-TREE" not in plan, plan
    assert "USING INDEX outbox_" in plan, plan


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (
            "SELECT e.incident_id, e.seq FROM incidents i JOIN events e ON e.incident_id = i.id"
            " WHERE i.state != 'open' AND i.resolved_at < ? AND e.at < ? LIMIT 5000",
            "incidents_resolved",
        ),
        (
            "SELECT id FROM outbox WHERE state IN ('done', 'failed') AND finished_at < ?"
            " AND 1 = ? LIMIT 5000",
            "outbox_finished",
        ),
    ],
)
def test_retention_finds_its_rows_by_index(tmp_path: Path, query: str, index: str) -> None:
    """The hourly prune reads only old finished rows (migration 2's indexes), never scanning
    every incident or the whole outbox history."""
    conn = sqlite3.connect(tmp_path / "plan.db")
    for script in MIGRATIONS:
        conn.executescript(script)
    plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", (0.0, 1)))
    conn.close()
    assert f"USING INDEX {index}" in plan, plan
