"""The PostgreSQL store with several replicas on one database: migrations, claims, fencing,
per-incident serialization, numbering and failures, against the real server.

Each "replica" is a PostgresStore with its own connection pool, so everything here really runs
concurrently inside PostgreSQL. Where a test needs a transaction held open at a precise point,
it holds it itself on a connection of its own; nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bridge.clock import FakeClock
from bridge.store.base import StoreUnavailable
from bridge.store.postgres import PostgresStore, key_lock
from bridge.store.postgres_schema import MIGRATIONS
from store_support import (
    LEASE,
    alert,
    ingest,
    key_of,
    note,
    numbers,
    opened,
    rebuilt,
    resolved_note,
)
from support import REPO, drop_postgres_schema


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


@pytest.fixture
async def replicas(postgres_db: str, clock: FakeClock) -> AsyncIterator[list[PostgresStore]]:
    """Two bridge replicas on one database."""
    stores = [PostgresStore(postgres_db, clock=clock) for _ in range(2)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_until_blocked(url: str, query_text: str) -> None:
    """Return once a session runs ``query_text`` and waits for a lock (polls the server's own
    view, pg_stat_activity: no timer)."""
    conn = await asyncpg.connect(url)
    try:
        for _ in range(10_000):
            if await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database() AND position($1 in query) > 0",
                query_text,
            ):
                return
        raise AssertionError(f"no session waits for a lock in {query_text!r}")
    finally:
        await conn.close()


# -- migrations ------------------------------------------------------------------------------


async def test_replicas_starting_together_migrate_once(postgres_db: str, clock: FakeClock) -> None:
    """Four replicas open an empty database at once: each migration is applied exactly once
    and every replica ends up on the current schema."""
    drop_postgres_schema(postgres_db)
    stores = [PostgresStore(postgres_db, clock=clock) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        versions = await query(postgres_db, "SELECT version FROM schema_migrations ORDER BY 1")
        assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
        first = await opened(stores[0], clock, "g1")
        assert first.id is not None
        assert await stores[3].load_incident(first.id) == first
    finally:
        for s in stores:
            await s.close()


async def test_reopening_migrates_nothing(postgres_db: str, clock: FakeClock) -> None:
    """Opening an up-to-date database leaves schema_migrations as it was."""
    store = PostgresStore(postgres_db, clock=clock)
    await store.open()
    await store.close()
    before = await query(postgres_db, "SELECT version, applied_at FROM schema_migrations")
    again = PostgresStore(postgres_db, clock=clock)
    await again.open()
    await again.close()
    assert await query(postgres_db, "SELECT version, applied_at FROM schema_migrations") == before


async def test_a_newer_schema_is_refused(postgres_db: str, clock: FakeClock) -> None:
    """A database migrated by a newer bridge is refused with a clear message, not mangled."""
    drop_postgres_schema(postgres_db)
    conn = await asyncpg.connect(postgres_db)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        await conn.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)", len(MIGRATIONS) + 1
        )
    finally:
        await conn.close()
    store = PostgresStore(postgres_db, clock=clock)
    with pytest.raises(StoreUnavailable, match="newer than this bridge knows") as raised:
        await store.open()
    assert "upgrade incident-bridge" in str(raised.value)
    await store.close()
    tables = await query(postgres_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [("schema_migrations",)]


# -- failures and secrets ------------------------------------------------------------------


async def test_an_unreachable_server_is_unavailable_and_the_password_stays_secret(
    clock: FakeClock,
) -> None:
    """Nothing listening: open fails fast with StoreUnavailable; neither the URL nor its
    password appears in the message, and no chained error carries them."""
    url = f"postgresql://bridge:pw-s3cr3t-%2Fx@127.0.0.1:{free_port()}/bridge"
    store = PostgresStore(url, clock=clock)
    with pytest.raises(StoreUnavailable) as raised:
        await store.open()
    message = str(raised.value)
    assert message.startswith("postgresql: ")
    for secret in ("pw-s3cr3t", url):
        assert secret not in message
        assert secret not in repr(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.ping()
    await store.close()


async def test_a_missing_database_is_unavailable(postgres_db: str, clock: FakeClock) -> None:
    """A URL naming no database on a live server: StoreUnavailable, password hidden."""
    url = postgres_db.replace("postgres@", "postgres:hunter2-pw@").rsplit("/", 1)[0]
    store = PostgresStore(f"{url}/ib_no_such_database", clock=clock)
    with pytest.raises(StoreUnavailable, match="ib_no_such_database") as raised:
        await store.open()
    assert "hunter2-pw" not in str(raised.value)


async def test_a_lost_connection_is_unavailable_then_recovers(
    postgres_db: str, clock: FakeClock
) -> None:
    """The server ends the bridge's session in the middle of an ingest (failover, restart):
    that ingest is a StoreUnavailable (a 503, Alertmanager retries), nothing of it is kept,
    and the pool reconnects for the next call."""
    store = PostgresStore(postgres_db, clock=clock, max_size=1)
    await store.open()
    holder = await asyncpg.connect(postgres_db)
    try:
        n = note(alert())
        async with holder.transaction():
            # Park the ingest inside its transaction, waiting for the incident's lock.
            await holder.execute("SELECT pg_advisory_xact_lock($1)", key_lock(key_of(n)))
            parked = asyncio.create_task(ingest(store, clock, n))
            await wait_until_blocked(postgres_db, "pg_advisory_xact_lock")
            await holder.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'incident-bridge' AND datname = current_database()"
            )
            with pytest.raises(StoreUnavailable):
                await parked
        assert await store.incident_count() == 0
        assert (await opened(store, clock, "g1")).number == 1
    finally:
        await holder.close()
        await store.close()


async def test_a_stuck_lock_is_unavailable_not_a_hang(postgres_db: str, clock: FakeClock) -> None:
    """Another session holding the incident's lock past the command timeout makes ingest a
    StoreUnavailable (503, Alertmanager retries) instead of stalling the webhook."""
    store = PostgresStore(postgres_db, clock=clock, timeout=0.2)
    await store.open()
    holder = await asyncpg.connect(postgres_db)
    try:
        n = note(alert())
        async with holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", key_lock(key_of(n)))
            with pytest.raises(StoreUnavailable):
                await ingest(store, clock, n)
        assert (await ingest(store, clock, n)).outcome == "opened"
    finally:
        await holder.close()
        await store.close()


# -- ingest across replicas ----------------------------------------------------------------


async def test_one_group_delivered_to_both_replicas_is_one_incident(
    replicas: list[PostgresStore], postgres_db: str, clock: FakeClock
) -> None:
    """An Alertmanager HA pair sends the same group to both replicas at once, many times: one
    incident, one effect, every other delivery unchanged."""
    decisions = await asyncio.gather(
        *(ingest(replicas[i % 2], clock, note(alert())) for i in range(40))
    )
    assert sorted(d.outcome for d in decisions) == ["opened"] + ["unchanged"] * 39
    assert await query(postgres_db, "SELECT number FROM incidents") == [(1,)]
    assert await query(postgres_db, "SELECT kind, state FROM outbox") == [
        ("github.sync", "pending")
    ]


async def test_new_groups_on_both_replicas_are_numbered_without_gaps(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """50 new groups over two replicas at once: numbers 1..50, none twice, none skipped."""
    decisions = await asyncio.gather(
        *(ingest(replicas[i % 2], clock, note(alert(), group=f"g{i}")) for i in range(50))
    )
    assert numbers([d.incident for d in decisions]) == list(range(1, 51))
    assert await replicas[1].incident_count() == 50


async def test_a_rollback_under_concurrency_leaves_no_gap(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """Some transactions fail after taking their number (an aborted outbox insert); the numbers
    that commit are still 1..N, because the counter rolls back with them."""
    await replicas[0].execute_for_test(
        "CREATE FUNCTION bad_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        ' IF (SELECT data FROM incidents WHERE id = NEW.incident_id) LIKE \'%"group":"bad%\''
        " THEN RAISE EXCEPTION 'io'; END IF; RETURN NEW; END $$;"
        " CREATE TRIGGER bad_outbox BEFORE INSERT ON outbox"
        " FOR EACH ROW EXECUTE FUNCTION bad_outbox()"
    )
    groups = [f"bad{i}" if i % 4 == 0 else f"g{i}" for i in range(40)]
    results = await asyncio.gather(
        *(ingest(replicas[i % 2], clock, note(alert(), group=g)) for i, g in enumerate(groups)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 10
    assert all(isinstance(r, StoreUnavailable) for r in failed)
    rows = await replicas[0].list_incidents(REPO, limit=100)
    assert numbers([r.incident for r in rows]) == list(range(1, 31))


async def test_a_failed_effect_and_an_ingest_on_one_incident_do_not_collide(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """One replica records a permanent failure (an effect_failed event) while the other ingests
    the resolution of the same incident: both land, with distinct, gap-free event numbers."""
    one, two = replicas
    incident = await opened(one, clock)
    assert incident.id is not None
    [sync] = await one.claim_effects(clock(), 10, LEASE)
    failed, decision = await asyncio.gather(
        one.fail_effect(sync, clock(), "422"), ingest(two, clock, resolved_note())
    )
    assert failed
    assert decision.outcome == "resolved"
    events = await two.load_events(incident.id, 100)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert "effect_failed" in {e.kind for e in events}
    loaded = await two.load_incident(incident.id)
    assert loaded is not None
    assert (loaded.state, loaded.event_seq) == ("resolved", events[-1].seq)


async def test_coalescing_waits_for_a_claim_in_progress(
    replicas: list[PostgresStore], postgres_db: str, clock: FakeClock
) -> None:
    """A replica is claiming the pending sync (row locked, not yet committed) when a change
    arrives: the ingest waits for the claim, sees the sync running, and queues a new sync
    rather than trusting a sync that may render the old state."""
    store = replicas[0]
    await opened(store, clock)
    claimer = await asyncpg.connect(postgres_db)
    try:
        tx = claimer.transaction()
        await tx.start()
        await claimer.execute("SELECT id FROM outbox FOR UPDATE")
        change = asyncio.create_task(ingest(store, clock, note(alert(), alert("a2"))))
        await wait_until_blocked(postgres_db, "FOR UPDATE")
        await claimer.execute("UPDATE outbox SET state = 'running', claim = claim + 1")
        await tx.commit()
        assert (await change).outcome == "updated"
    finally:
        await claimer.close()
    assert await query(postgres_db, "SELECT kind, state FROM outbox ORDER BY id") == [
        ("github.sync", "running"),
        ("github.sync", "pending"),
    ]


# -- claims across replicas ----------------------------------------------------------------


async def test_replicas_claiming_at_once_never_claim_the_same_effect(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """Eight claims race over two replicas for 60 due effects: no effect is claimed twice,
    and what is left is claimed afterwards, each exactly once."""
    for i in range(60):
        await opened(replicas[i % 2], clock, f"g{i}")
    rounds = await asyncio.gather(
        *(replicas[i % 2].claim_effects(clock(), 10, LEASE) for i in range(8))
    )
    claimed = [e.id for batch in rounds for e in batch]
    assert len(claimed) == len(set(claimed))
    rest = await replicas[0].claim_effects(clock(), 100, LEASE)
    every = claimed + [e.id for e in rest]
    assert sorted(every) == list(range(1, 61))


async def test_replicas_claim_one_effect_per_incident_between_them(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """An incident with three queued effects: racing replicas claim only its oldest."""
    incident = await opened(replicas[0], clock)
    await ingest(replicas[0], clock, resolved_note())  # sync, comment, sync
    rounds = await asyncio.gather(
        *(replicas[i % 2].claim_effects(clock(), 10, LEASE) for i in range(6))
    )
    [only] = [e for batch in rounds for e in batch]
    assert (only.incident_id, only.kind, only.claim) == (incident.id, "github.sync", 1)


async def test_a_stale_replica_cannot_overwrite_a_newer_claim(
    replicas: list[PostgresStore], postgres_db: str, clock: FakeClock
) -> None:
    """Replica A claims and stalls past its lease; replica B claims the effect again. A's
    late finish, retry and fail all change nothing (fencing); B's finish applies."""
    a, b = replicas
    incident = await opened(a, clock)
    assert incident.id is not None
    [stale] = await a.claim_effects(clock(), 10, LEASE)
    later = clock.advance(LEASE + timedelta(seconds=1))
    [current] = await b.claim_effects(later, 10, LEASE)
    assert (current.id, current.claim, current.outcome_unknown) == (stale.id, stale.claim + 1, True)
    events = await a.load_events(incident.id, 100)

    assert not await a.finish_effect(stale, later)
    assert not await a.retry_effect(stale, later, "late", outcome_unknown=False)
    assert not await a.fail_effect(stale, later, "late")
    assert await a.load_events(incident.id, 100) == events
    assert await query(postgres_db, "SELECT state, claim FROM outbox") == [
        ("running", current.claim)
    ]
    assert await b.finish_effect(current, later)
    assert await query(postgres_db, "SELECT state, attempts FROM outbox") == [("done", 1)]


async def test_a_restart_leaves_running_effects_to_their_lease(
    postgres_db: str, clock: FakeClock
) -> None:
    """Opening does not take back running effects (another replica may be running them);
    once the lease lapses, any replica reclaims it with outcome_unknown and a new token."""
    first = PostgresStore(postgres_db, clock=clock)
    await first.open()
    await opened(first, clock)
    [effect] = await first.claim_effects(clock(), 10, LEASE)
    await first.close()  # a crash, as far as the database can tell

    second = PostgresStore(postgres_db, clock=clock)
    await second.open()
    try:
        stats = await second.outbox_stats()
        assert (stats.pending, stats.running) == (0, 1)
        assert await second.claim_effects(clock(), 10, LEASE) == []
        later = clock.advance(LEASE)
        [again] = await second.claim_effects(later, 10, LEASE)
        assert (again.id, again.outcome_unknown, again.attempts) == (effect.id, True, 0)
        assert again.claim == effect.claim + 1
        assert not await second.finish_effect(effect, later)
        assert await second.finish_effect(again, later)
    finally:
        await second.close()


async def test_effects_waiting_behind_another_replicas_effect_are_not_due(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """While replica A runs an incident's sync, the comment queued behind it is not due for
    replica B (its worker would otherwise spin on claims that take nothing); once A finishes,
    the comment is due."""
    a, b = replicas
    await opened(a, clock)
    [sync] = await a.claim_effects(clock(), 10, LEASE)
    clock.advance(5)
    await ingest(a, clock, resolved_note())  # a comment and a sync, behind the running sync
    assert await b.next_due() is None
    assert await b.claim_effects(clock(), 10, LEASE) == []
    assert (await b.outbox_stats()).pending == 2
    assert await a.finish_effect(sync, clock())
    assert await b.next_due() == clock()


# -- restore across replicas ---------------------------------------------------------------


async def test_two_replicas_restoring_one_number_store_it_once(
    replicas: list[PostgresStore], clock: FakeClock
) -> None:
    """Two rebuilds racing on the same INC-number: one stores it, the other changes nothing."""
    results = await asyncio.gather(
        *(r.restore(rebuilt(clock, f"g{i}", 9), None) for i, r in enumerate(replicas))
    )
    assert sorted(results) == [False, True]
    assert await replicas[0].incident_count() == 1
    assert (await opened(replicas[1], clock, "next")).number == 10
