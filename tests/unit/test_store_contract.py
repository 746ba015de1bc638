"""The store contract: every test here runs on SQLite (a real file) and on PostgreSQL (this run's
own database), so both backends behave alike for ingest, the outbox, reads, prune and restore.

Faults are real database faults (a trigger that aborts an insert), never patched internals; time
comes from a fake clock. Backend-specific behaviour lives in test_store_sqlite.py and
test_store_postgres.py.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.clock import FakeClock
from bridge.engine import Decision
from bridge.identity import identity_key
from bridge.model import EffectSpec, Incident, Priority
from bridge.store import codec
from bridge.store.base import (
    ClaimedEffect,
    IssueRecord,
    PruneResult,
    StoreUnavailable,
    bundle_payload,
)
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from store_support import (
    LEASE,
    T0,
    alert,
    ingest,
    key_of,
    note,
    numbers,
    opened,
    rebuilt,
    resolved_note,
)
from support import REPO

AnyStore = SqliteStore | PostgresStore

# A trigger that makes every outbox insert fail, and the statements that remove it.
_FAULTS = {
    "sqlite": (
        "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk'); END",
        "DROP TRIGGER no_outbox",
    ),
    "postgres": (
        "CREATE FUNCTION no_outbox() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'disk'; END $$;"
        " CREATE TRIGGER no_outbox BEFORE INSERT ON outbox"
        " FOR EACH ROW EXECUTE FUNCTION no_outbox()",
        "DROP TRIGGER no_outbox ON outbox; DROP FUNCTION no_outbox()",
    ),
}


@dataclasses.dataclass
class Backend:
    """One backend under test: how to make a store on its database and read it directly."""

    name: str
    clock: FakeClock
    path: Path | None = None  # SQLite
    url: str | None = None  # PostgreSQL

    def new_store(self) -> AnyStore:
        if self.path is not None:
            return SqliteStore(self.path, clock=self.clock)
        assert self.url is not None
        return PostgresStore(self.url, clock=self.clock)

    async def reopened(self) -> AnyStore:
        store = self.new_store()
        await store.open()
        return store

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read through a connection of our own, as an operator with sqlite3 or psql would."""
        if self.path is not None:
            with closing(sqlite3.connect(self.path)) as conn:
                return [tuple(row) for row in conn.execute(sql).fetchall()]
        pg = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await pg.fetch(sql)]
        finally:
            await pg.close()

    async def outbox(self) -> list[tuple[Any, ...]]:
        """(incident_id, kind, state, attempts, outcome_unknown) per row, oldest first."""
        return await self.query(
            "SELECT incident_id, kind, state, attempts, outcome_unknown FROM outbox ORDER BY id"
        )

    @property
    def faults(self) -> tuple[str, str]:
        return _FAULTS[self.name]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", clock, path=tmp_path / "state" / "bridge.db")
    url: str = request.getfixturevalue("postgres_db")
    return Backend("postgres", clock, url=url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[AnyStore]:
    s = await backend.reopened()
    yield s
    await s.close()


# -- lifecycle -----------------------------------------------------------------------------


async def test_reopening_keeps_data_and_numbering(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Opening an up-to-date database migrates nothing; its data and the numbering carry on."""
    first = await opened(store, clock, "g1")
    await store.close()

    again = await backend.reopened()
    try:
        assert first.id is not None
        assert await again.load_incident(first.id) == first
        second = await opened(again, clock, "g2")
        assert second.number == 2
    finally:
        await again.close()


async def test_a_closed_store_is_unavailable(store: AnyStore, clock: FakeClock) -> None:
    """After close every call says StoreUnavailable rather than hanging or crashing."""
    await store.close()
    with pytest.raises(StoreUnavailable):
        await ingest(store, clock, note(alert()))
    with pytest.raises(StoreUnavailable):
        await store.claim_effects(clock(), 1, LEASE)


async def test_reads_on_a_closed_store_are_unavailable(store: AnyStore) -> None:
    """Reads after close (a late /readyz or /status during shutdown) say StoreUnavailable too."""
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.next_due()


# -- ingest --------------------------------------------------------------------------------


async def test_ingest_persists_incident_events_and_effects(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """One ingest stores the incident (numbered), its timeline and its outbox row."""
    decision = await ingest(store, clock, note(alert()))
    incident = decision.incident
    assert incident is not None
    assert (incident.number, incident.display_id) == (1, "INC-001")
    assert incident.id is not None
    assert incident.key == identity_key(incident.identity)
    assert await store.load_incident(incident.id) == incident
    assert await store.load_events(incident.id, 100) == decision.events
    last = decision.events[-1]
    assert await store.load_event(incident.id, last.seq) == last
    assert await store.load_event(incident.id, 999) is None
    assert await store.load_incident(incident.id + 1000) is None
    assert await backend.outbox() == [(incident.id, "github.sync", "pending", 0, 0)]


async def test_unchanged_notification_writes_nothing(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """A repeat of the same snapshot adds no event and no effect."""
    incident = await opened(store, clock)
    assert incident.id is not None
    events = await store.load_events(incident.id, 100)
    decision = await ingest(store, clock, note(alert()))
    assert decision.outcome == "unchanged"
    assert await store.load_events(incident.id, 100) == events
    assert len(await backend.outbox()) == 1


async def test_load_events_returns_the_latest_oldest_first(
    store: AnyStore, clock: FakeClock
) -> None:
    """``load_events(limit)`` gives the most recent events, in timeline order."""
    incident = await opened(store, clock)
    assert incident.id is not None
    await ingest(store, clock, resolved_note())
    every = await store.load_events(incident.id, 100)
    assert [e.seq for e in every] == list(range(1, len(every) + 1))
    assert await store.load_events(incident.id, 2) == every[-2:]


async def test_ingest_is_one_transaction(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """When storing the effects fails, the incident, its events and its number are not kept."""
    fail, repair = backend.faults
    await store.execute_for_test(fail)
    with pytest.raises(StoreUnavailable):
        await ingest(store, clock, note(alert()))
    assert await backend.query("SELECT COUNT(*) FROM incidents") == [(0,)]
    assert await backend.query("SELECT COUNT(*) FROM events") == [(0,)]
    assert await backend.query("SELECT COUNT(*) FROM counters") == [(0,)]

    await store.execute_for_test(repair)
    incident = await opened(store, clock)
    assert incident.number == 1  # the failed attempt left no gap


async def test_a_failing_decide_propagates_and_stores_nothing(
    store: AnyStore, clock: FakeClock
) -> None:
    """An exception from the engine reaches the caller as it is; nothing is written."""

    class Boom(Exception):
        pass

    def decide(current: object) -> Any:
        raise Boom("engine bug")

    with pytest.raises(Boom):
        await store.ingest("k", "identity", decide)
    assert await store.incident_count() == 0
    assert (await opened(store, clock)).number == 1


async def test_concurrent_ingests_of_distinct_groups_number_without_gaps(
    store: AnyStore, clock: FakeClock
) -> None:
    """50 new groups at once: 50 incidents numbered 1..50, no gap, no duplicate."""
    decisions = await asyncio.gather(
        *(ingest(store, clock, note(alert(), group=f"g{i}")) for i in range(50))
    )
    assert numbers([d.incident for d in decisions]) == list(range(1, 51))
    assert len(await store.list_incidents(REPO, limit=1000)) == 50
    assert await store.incident_count() == 50


async def test_concurrent_ingests_of_one_group_make_one_incident(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """50 deliveries of the same group at once (HA pairs, retries): one incident, one effect."""
    decisions = await asyncio.gather(*(ingest(store, clock, note(alert())) for _ in range(50)))
    outcomes = sorted(d.outcome for d in decisions)
    assert outcomes == ["opened"] + ["unchanged"] * 49
    [row] = await store.list_incidents(REPO)
    assert row.incident.number == 1
    assert len(await backend.outbox()) == 1


async def test_maintenance_requests_are_numbered_apart(store: AnyStore, clock: FakeClock) -> None:
    """Incidents and maintenance requests each count from 1."""
    one = await opened(store, clock, "g1")
    maint = await opened(store, clock, "g2", kind="maintenance")
    two = await opened(store, clock, "g3")
    assert [i.display_id for i in (one, maint, two)] == ["INC-001", "MAINT-001", "INC-002"]


# -- sync coalescing -----------------------------------------------------------------------


async def test_a_second_sync_while_one_is_pending_adds_no_row(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """A pending sync will render the latest state, so another change adds no sync."""
    await opened(store, clock)
    decision = await ingest(store, clock, note(alert(), alert("a2")))
    assert decision.outcome == "updated"
    assert [row[1:3] for row in await backend.outbox()] == [("github.sync", "pending")]


async def test_a_sync_after_a_pending_comment_is_added(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Resolution: the comment is queued after the sync, and a new sync after the comment."""
    await opened(store, clock)
    await ingest(store, clock, resolved_note())
    assert [row[1] for row in await backend.outbox()] == [
        "github.sync",
        "github.comment",
        "github.sync",
    ]


async def test_a_sync_while_one_is_running_is_added(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """A running sync may have rendered the old state: a change queues a new sync."""
    await opened(store, clock)
    [_] = await store.claim_effects(clock(), 10, LEASE)
    await ingest(store, clock, note(alert(), alert("a2")))
    assert [row[1:3] for row in await backend.outbox()] == [
        ("github.sync", "running"),
        ("github.sync", "pending"),
    ]


# -- claiming ------------------------------------------------------------------------------


async def test_claim_gives_at_most_one_effect_per_incident(
    store: AnyStore, clock: FakeClock
) -> None:
    """Each incident's oldest unfinished effect, and only that one, is claimed."""
    one = await opened(store, clock, "g1")
    await ingest(store, clock, resolved_note("g1"))  # g1 now has sync, comment, sync
    two = await opened(store, clock, "g2")
    claimed = await store.claim_effects(clock(), 10, LEASE)
    assert [(e.incident_id, e.kind, e.attempts, e.claim) for e in claimed] == [
        (one.id, "github.sync", 0, 1),
        (two.id, "github.sync", 0, 1),
    ]
    assert [e.incident_label for e in claimed] == ["INC-001", "INC-002"]
    assert [e.created_at for e in claimed] == [clock(), clock()]
    assert await store.claim_effects(clock(), 10, LEASE) == []


async def test_claim_respects_the_limit(store: AnyStore, clock: FakeClock) -> None:
    """No more than ``limit`` effects are claimed at once; the rest wait for the next claim."""
    for i in range(3):
        await opened(store, clock, f"g{i}")
    assert len(await store.claim_effects(clock(), 2, LEASE)) == 2
    assert len(await store.claim_effects(clock(), 2, LEASE)) == 1


async def test_a_claimed_effect_blocks_the_incidents_later_effects(
    store: AnyStore, clock: FakeClock
) -> None:
    """Effects of one incident run in order: the next is claimable only when one finishes."""
    await opened(store, clock)
    [sync] = await store.claim_effects(clock(), 10, LEASE)
    await ingest(store, clock, resolved_note())
    assert await store.claim_effects(clock(), 10, LEASE) == []
    assert await store.finish_effect(sync, clock())
    [comment] = await store.claim_effects(clock(), 10, LEASE)
    assert comment.kind == "github.comment"
    assert comment.payload["event_seq"] > 0
    assert await store.finish_effect(comment, clock())
    [last] = await store.claim_effects(clock(), 10, LEASE)
    assert last.kind == "github.sync"


async def test_claim_respects_next_attempt_at(store: AnyStore, clock: FakeClock) -> None:
    """An effect is not claimed before it is due."""
    await opened(store, clock)
    assert await store.claim_effects(clock() - timedelta(seconds=1), 10, LEASE) == []
    assert len(await store.claim_effects(clock(), 10, LEASE)) == 1


async def test_an_effect_whose_lease_ran_out_is_claimed_again(
    store: AnyStore, clock: FakeClock
) -> None:
    """A claim is a lease: when it runs out the effect is claimed again, with a new token."""
    await opened(store, clock)
    [first] = await store.claim_effects(clock(), 10, LEASE)
    assert not first.outcome_unknown
    assert await store.claim_effects(clock() + LEASE - timedelta(seconds=1), 10, LEASE) == []
    later = clock.advance(LEASE + timedelta(seconds=1))
    [again] = await store.claim_effects(later, 10, LEASE)
    assert again.id == first.id
    assert again.claim > first.claim
    assert again.outcome_unknown
    assert not await store.finish_effect(first, later)
    assert await store.finish_effect(again, later)


# -- results: finish, retry, fail, fencing -------------------------------------------------


async def test_finish_marks_done_once(store: AnyStore, backend: Backend, clock: FakeClock) -> None:
    """Finishing records the attempt; finishing the same claim again changes nothing."""
    await opened(store, clock)
    [effect] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.finish_effect(effect, clock())
    assert not await store.finish_effect(effect, clock())
    assert [row[2:4] for row in await backend.outbox()] == [("done", 1)]


async def test_retry_reschedules_and_counts_attempts(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """A retry puts the effect back, due later, with its attempt counted and the error kept."""
    await opened(store, clock)
    [effect] = await store.claim_effects(clock(), 10, LEASE)
    at = clock() + timedelta(seconds=30)
    assert await store.retry_effect(effect, at, "502 Bad Gateway", outcome_unknown=True)
    assert await store.next_due() == at
    assert await store.claim_effects(clock(), 10, LEASE) == []
    [again] = await store.claim_effects(at, 10, LEASE)
    assert (again.id, again.attempts, again.claim, again.outcome_unknown) == (
        effect.id,
        1,
        2,
        True,
    )
    assert await backend.query("SELECT last_error FROM outbox") == [("502 Bad Gateway",)]
    assert await store.retry_effect(again, at, "x" * 5000, outcome_unknown=False)
    [(error,)] = await backend.query("SELECT last_error FROM outbox")
    assert len(error) == 2000  # capped
    [third] = await store.claim_effects(at, 10, LEASE)
    assert (third.attempts, third.outcome_unknown) == (2, False)


async def test_fail_records_the_failure_and_unblocks_the_next_effect(
    store: AnyStore, clock: FakeClock
) -> None:
    """A permanent failure is in the timeline and the incident's next effect can run."""
    incident = await opened(store, clock)
    assert incident.id is not None
    await ingest(store, clock, resolved_note())
    seq_before = (await store.load_events(incident.id, 1))[0].seq
    [sync] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.fail_effect(sync, clock(), "422 Validation Failed")

    [event] = await store.load_events(incident.id, 1)
    assert (event.seq, event.kind) == (seq_before + 1, "effect_failed")
    assert event.text == "github.sync failed permanently: 422 Validation Failed"
    assert event.data == {"effect": "github.sync", "effect_id": sync.id}
    loaded = await store.load_incident(incident.id)
    assert loaded is not None
    assert loaded.event_seq == event.seq
    assert (await store.outbox_stats()).failed == 1
    [comment] = await store.claim_effects(clock(), 10, LEASE)
    assert comment.kind == "github.comment"


async def test_events_after_a_failed_effect_continue_the_numbering(
    store: AnyStore, clock: FakeClock
) -> None:
    """The engine numbers new events after the effect_failed one, without a collision."""
    incident = await opened(store, clock)
    assert incident.id is not None
    [sync] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.fail_effect(sync, clock(), "boom")
    decision = await ingest(store, clock, resolved_note())
    assert decision.outcome == "resolved"
    seqs = [e.seq for e in await store.load_events(incident.id, 100)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_stale_claims_change_nothing(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Once an effect was claimed again, the old claim can neither finish, retry nor fail it."""
    incident = await opened(store, clock)
    assert incident.id is not None
    [stale] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.retry_effect(stale, clock(), "timeout", outcome_unknown=True)
    [current] = await store.claim_effects(clock(), 10, LEASE)
    assert current.claim == stale.claim + 1
    before = await backend.query("SELECT * FROM outbox")
    events = await store.load_events(incident.id, 100)

    assert not await store.finish_effect(stale, clock())
    assert not await store.retry_effect(stale, clock(), "late", outcome_unknown=False)
    assert not await store.fail_effect(stale, clock(), "late")
    forged = dataclasses.replace(current, claim=current.claim + 1)
    assert not await store.finish_effect(forged, clock())

    assert await backend.query("SELECT * FROM outbox") == before
    assert await store.load_events(incident.id, 100) == events
    assert await store.finish_effect(current, clock())


# -- reads ---------------------------------------------------------------------------------


async def test_outbox_stats_and_next_due(store: AnyStore, clock: FakeClock) -> None:
    """Stats count pending, running and failed rows and date the oldest pending one."""
    empty = await store.outbox_stats()
    assert (empty.pending, empty.running, empty.failed, empty.oldest_pending) == (0, 0, 0, None)
    assert await store.next_due() is None

    created = clock()
    await opened(store, clock, "g1")
    clock.advance(10)
    await opened(store, clock, "g2")
    await opened(store, clock, "g3")
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running, stats.failed, stats.oldest_pending) == (3, 0, 0, created)
    assert await store.next_due() == created

    claimed: list[ClaimedEffect] = await store.claim_effects(clock(), 2, LEASE)
    assert await store.fail_effect(claimed[1], clock(), "gone")
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running, stats.failed) == (1, 1, 1)
    assert stats.oldest_pending == clock()
    assert await store.next_due() == clock()
    assert await store.finish_effect(claimed[0], clock())
    [last] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.finish_effect(last, clock())
    stats = await store.outbox_stats()
    assert (stats.pending, stats.running, stats.failed) == (0, 0, 1)
    assert await store.next_due() is None


async def test_open_counts_count_open_incidents_by_priority(
    store: AnyStore, clock: FakeClock
) -> None:
    """Only open incidents count, by priority; resolved ones and maintenance do not."""
    await opened(store, clock, "g1", priority="P1")
    await opened(store, clock, "g2", priority="P1")
    await opened(store, clock, "g3", priority="P3")
    await opened(store, clock, "g4", priority="P0")
    await ingest(store, clock, resolved_note("g4"))
    maint = await opened(store, clock, "g5", kind="maintenance")
    assert maint.kind == "maint"
    assert await store.open_counts() == {"P1": 2, "P3": 1}
    assert await store.incident_count() == 5


async def test_list_incidents_filters_by_state_newest_first(
    store: AnyStore, clock: FakeClock
) -> None:
    """Listing is newest first, filtered by state when asked, with the issue number if any."""
    one = await opened(store, clock, "g1")
    two = await opened(store, clock, "g2")
    three = await opened(store, clock, "g3")
    await ingest(store, clock, resolved_note("g2"))
    assert two.id is not None
    await store.save_issue_record(
        IssueRecord(
            two.id, REPO, 7, "https://github.example/acme/incidents/issues/7", "t", "b", "r"
        )
    )

    every = await store.list_incidents(REPO)
    assert [r.incident.number for r in every] == [3, 2, 1]
    assert [r.issue_number for r in every] == [None, 7, None]
    open_rows = await store.list_incidents(REPO, state="open")
    assert [r.incident.id for r in open_rows] == [three.id, one.id]
    [done] = await store.list_incidents(REPO, state="resolved")
    assert (done.incident.id, done.incident.state, done.issue_number) == (two.id, "resolved", 7)
    assert done.issue_url == "https://github.example/acme/incidents/issues/7"
    [other_repo] = await store.list_incidents("acme/other", state="resolved")
    assert other_repo.issue_number is None
    assert len(await store.list_incidents(REPO, limit=2)) == 2


async def test_watched_issues_are_the_incidents_with_an_issue(
    store: AnyStore, clock: FakeClock
) -> None:
    """What the poller reads: the issues in the repository of open incidents, newest first,
    then of those resolved since the given moment — never a maintenance request's, an
    incident's without an issue, or another repository's; P0/P1 open ones urgent."""

    async def with_issue(group: str, number: int, repository: str = REPO, **labels: str) -> int:
        incident = await opened(store, clock, group, **labels)
        assert incident.id is not None
        url = f"https://github.example/{repository}/issues/{number}"
        await store.save_issue_record(
            IssueRecord(incident.id, repository, number, url, "t", "b", "r")
        )
        return incident.id

    long_ago = await with_issue("g-old", 15)
    await ingest(store, clock, resolved_note("g-old"))
    clock.advance(timedelta(hours=2))
    p2 = await with_issue("g1", 11)
    p1 = await with_issue("g2", 12, priority="P1")
    await opened(store, clock, "g3")  # no issue yet
    resolved = await with_issue("g4", 14)
    await ingest(store, clock, note(alert(status="resolved", ends=clock()), group="g4"))
    await with_issue("g5", 16, kind="maintenance")
    await with_issue("g6", 17, repository="acme/other")

    watched = await store.watched_issues(
        REPO, resolved_since=clock() - timedelta(hours=1), open_limit=10, resolved_limit=10
    )
    assert [(w.incident_id, w.issue_number, w.priority, w.open) for w in watched] == [
        (p1, 12, Priority.P1, True),
        (p2, 11, Priority.P3, True),
        (resolved, 14, Priority.P3, False),
    ]
    assert [w.urgent for w in watched] == [True, False, False]
    assert long_ago not in {w.incident_id for w in watched}
    newest = await store.watched_issues(
        REPO, resolved_since=clock() - timedelta(days=30), open_limit=1, resolved_limit=1
    )
    assert [w.issue_number for w in newest] == [12, 14]


async def test_issue_record_round_trip(store: AnyStore, clock: FakeClock) -> None:
    """An issue record reads back as written; saving again replaces it; others stay apart."""
    incident = await opened(store, clock)
    assert incident.id is not None
    assert await store.issue_record(incident.id, REPO) is None
    record = IssueRecord(
        incident_id=incident.id,
        repository=REPO,
        number=12,
        url="https://github.example/acme/incidents/issues/12",
        title="[INC-001] HighCPU on a1:9100",
        body="body ✅ with unicode",
        region="region",
        labels={"incident-bridge", "priority-low"},
        state="open",
        etag='W/"abc"',
    )
    await store.save_issue_record(record)
    assert await store.issue_record(incident.id, REPO) == record

    changed = dataclasses.replace(record, labels={"incident-bridge"}, state="closed", etag=None)
    await store.save_issue_record(changed)
    assert await store.issue_record(incident.id, REPO) == changed
    assert await store.issue_record(incident.id, "acme/other") is None


async def test_unusual_text_round_trips(store: AnyStore, clock: FakeClock) -> None:
    """Labels with quotes, backslashes, NUL and non-ASCII come back exactly, in their order."""
    labels = {"zeta": 'say "hi"\\n', "alpha": "naïve \x00 ✅", "instance": "x:1"}
    decision = await ingest(store, clock, note(alert(labels=labels)))
    incident = decision.incident
    assert incident is not None
    assert incident.id is not None
    loaded = await store.load_incident(incident.id)
    assert loaded == incident
    assert list(loaded.alerts["a1"].labels) == list(incident.alerts["a1"].labels)


# -- retention: prune ----------------------------------------------------------------------


async def run_all(store: AnyStore, clock: FakeClock, *, fail_kind: str = "") -> None:
    """Claim and finish every due effect (failing those of ``fail_kind``)."""
    while claimed := await store.claim_effects(clock(), 10, LEASE):
        for effect in claimed:
            if effect.kind == fail_kind:
                assert await store.fail_effect(effect, clock(), "gone")
            else:
                assert await store.finish_effect(effect, clock())


async def test_prune_deletes_old_history_of_resolved_incidents_only(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Prune removes the old events of long-resolved incidents and old finished effects; open
    incidents' events, recent events and unfinished effects stay, whatever their age."""
    old = await opened(store, clock, "old")
    await ingest(store, clock, resolved_note("old"))
    await run_all(store, clock, fail_kind="github.comment")  # done, failed, done
    still_open = await opened(store, clock, "open")  # opened as long ago, never resolved
    [stuck] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.retry_effect(stuck, clock(), "503", outcome_unknown=False)
    assert old.id is not None
    assert still_open.id is not None
    old_events = await store.load_events(old.id, 100)
    open_events = await store.load_events(still_open.id, 100)

    clock.advance(timedelta(days=100))
    recent = await opened(store, clock, "recent")
    recently = note(alert(status="resolved", ends=clock()), group="recent")
    assert (await ingest(store, clock, recently)).outcome == "resolved"
    assert recent.id is not None
    recent_events = await store.load_events(recent.id, 100)
    before = clock() - timedelta(days=90)

    assert await store.prune(before) == PruneResult(events=len(old_events), effects=3)
    assert await store.load_events(old.id, 100) == []
    assert await store.load_events(still_open.id, 100) == open_events
    assert await store.load_events(recent.id, 100) == recent_events
    assert await store.load_incident(old.id) is not None  # the incident itself stays
    assert await store.incident_count() == 3
    assert [(row[0], row[2]) for row in await backend.outbox()] == [
        (still_open.id, "pending"),
        (recent.id, "pending"),
        (recent.id, "pending"),
        (recent.id, "pending"),
    ]
    assert (await store.outbox_stats()).failed == 0
    assert await store.prune(before) == PruneResult(events=0, effects=0)


async def test_prune_keeps_what_can_still_be_needed(store: AnyStore, clock: FakeClock) -> None:
    """Long resolved, two timelines stay: a maintenance request's (it reopens whenever its
    condition fires anew, however long after) and an incident's whose resolution comment is
    still waiting to be posted (GitHub down all along: the comment needs its event)."""
    maint = await opened(store, clock, "maint", kind="maintenance")
    gone = alert(status="resolved", ends=T0 + timedelta(minutes=5), labels={"kind": "maintenance"})
    assert (await ingest(store, clock, note(gone, group="maint"))).outcome == "resolved"
    await run_all(store, clock)
    waiting = await opened(store, clock, "waiting")
    await ingest(store, clock, resolved_note("waiting"))  # its sync and comment never ran
    assert maint.id is not None
    assert waiting.id is not None
    maint_events = await store.load_events(maint.id, 100)
    waiting_events = await store.load_events(waiting.id, 100)

    clock.advance(timedelta(days=100))
    assert (await store.prune(clock() - timedelta(days=90))).events == 0
    assert await store.load_events(maint.id, 100) == maint_events
    assert await store.load_events(waiting.id, 100) == waiting_events


async def test_prune_works_in_batches(store: AnyStore, clock: FakeClock) -> None:
    """With a batch smaller than the work, prune loops until everything due is gone."""
    ids = []
    for i in range(4):
        incident = await opened(store, clock, f"g{i}")
        assert incident.id is not None
        ids.append(incident.id)
        await ingest(store, clock, resolved_note(f"g{i}"))
    await run_all(store, clock)
    total = sum([len(await store.load_events(i, 100)) for i in ids])
    clock.advance(timedelta(days=100))
    result = await store.prune(clock(), batch=3)
    assert result == PruneResult(events=total, effects=12)
    assert await store.prune(clock(), batch=3) == PruneResult(events=0, effects=0)


# -- rebuild: restore ----------------------------------------------------------------------


async def test_restore_keeps_the_number_and_numbering_continues_after_it(
    store: AnyStore, clock: FakeClock
) -> None:
    """A rebuilt incident is stored under its own number with its issue record, and new
    incidents are numbered after the highest restored one."""
    incident = rebuilt(clock, "g7", 7)
    record = IssueRecord(
        0, REPO, 41, "https://github.example/acme/incidents/issues/41", "t", "b", "r"
    )
    assert await store.restore(incident, record)
    assert incident.id is not None
    assert record.incident_id == incident.id
    assert await store.load_incident(incident.id) == incident
    assert await store.issue_record(incident.id, REPO) == record
    [row] = await store.list_incidents(REPO)
    assert (row.incident.display_id, row.issue_number) == ("INC-007", 41)

    assert (await opened(store, clock, "new")).number == 8
    assert await store.restore(rebuilt(clock, "g3", 3), None)  # below the counter: kept as is
    assert (await opened(store, clock, "newer")).number == 9
    assert await store.incident_count() == 4


async def test_restore_of_a_number_already_stored_changes_nothing(
    store: AnyStore, clock: FakeClock
) -> None:
    """An incident of the same kind and number exists: restore says False and writes nothing,
    neither the incident, nor its record, nor the counter."""
    existing = await opened(store, clock, "g1")
    duplicate = rebuilt(clock, "other", 1)
    record = IssueRecord(0, REPO, 5, "u", "t", "b", "r")
    assert not await store.restore(duplicate, record)
    assert duplicate.id is None
    assert record.incident_id == 0
    assert await store.incident_count() == 1
    [row] = await store.list_incidents(REPO)
    assert (row.incident.id, row.issue_number) == (existing.id, None)
    assert (await opened(store, clock, "g2")).number == 2


async def test_restore_numbers_each_kind_apart(store: AnyStore, clock: FakeClock) -> None:
    """MAINT-005 restored raises only the maintenance counter."""
    maint = rebuilt(clock, "m", 5, kind="maintenance")
    assert maint.kind == "maint"
    assert await store.restore(maint, None)
    assert (await opened(store, clock, "g1")).display_id == "INC-001"
    assert (await opened(store, clock, "m2", kind="maintenance")).display_id == "MAINT-006"


async def test_a_restored_incident_is_what_its_group_meets_next(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """After a rebuild, the next notification of the group updates the restored incident
    instead of opening another."""
    incident = rebuilt(clock, "g1", 12)
    assert await store.restore(incident, None)
    assert await backend.outbox() == []  # restore queues no effect: the issue exists
    repeat = await ingest(store, clock, note(alert(), group="g1"))
    assert repeat.outcome == "unchanged"
    resolved = await ingest(store, clock, resolved_note("g1"))
    assert resolved.outcome == "resolved"
    assert resolved.incident is not None
    assert (resolved.incident.id, resolved.incident.number) == (incident.id, 12)
    assert key_of(resolved_note("g1")) == incident.key


# -- storm mode ----------------------------------------------------------------------------


async def test_a_member_of_a_storm_that_is_over_joins_the_active_one(
    store: AnyStore, clock: FakeClock
) -> None:
    """Listed in a storm, resolved, and the storm over; firing again while the budget is still
    spent, the group joins the storm going on (or a new one), never the one that is over —
    whose "storm over" would then be untrue."""
    member = await opened(store, clock, "m")
    assert member.id is not None
    await drain_all(store, clock)
    first = await store.join_storm(member.id, clock())
    await ingest(store, clock, resolved_note("m"))
    assert await store.storm_over(first, REPO, clock())
    second = await store.join_storm(member.id, clock())
    assert second != first
    assert await store.storm_of(member.id) == second
    again = await store.join_storm(member.id, clock())
    assert again == second  # a member of the active storm stays where it is


async def test_a_storm_is_numbered_like_incidents_and_lists_what_joins(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """The first join starts a storm numbered from the incident counter (no gap, no second
    storm for later joins); joining twice lists once; the roll-up's edit is queued once, due
    now the first time and no earlier than a minute after its last write afterwards."""
    first = await opened(store, clock, "g1")
    second = await opened(store, clock, "g2")
    assert first.id is not None
    assert second.id is not None
    await drain_all(store, clock)
    storm_id = await store.join_storm(first.id, clock())
    assert await store.join_storm(second.id, clock()) == storm_id
    assert await store.join_storm(second.id, clock()) == storm_id
    assert await store.storm_of(first.id) == storm_id
    assert await store.storm_of(storm_id) is None
    third = await opened(store, clock, "g3")
    assert third.number == 4  # INC-003 is the storm

    storm = await store.load_storm(storm_id, REPO)
    assert storm is not None
    assert storm.incident.kind == "storm"
    assert storm.incident.display_id == "INC-003"
    assert [m.incident.display_id for m in storm.members] == ["INC-001", "INC-002"]
    assert all(m.waiting and m.issue_number is None for m in storm.members)
    assert (storm.edited_at, storm.over_at, storm.announced_at) == (None, None, None)
    rows = [(kind, state) for i, kind, state, *_ in await backend.outbox() if i == storm_id]
    assert rows == [("github.storm", "pending")]  # coalesced

    claimed = (await store.claim_effects(clock(), 10, LEASE))[0]  # claimed first: urgent
    assert claimed.kind == "github.storm"
    assert claimed.incident_label == "INC-003"
    await store.record_storm_write(storm_id, clock(), priority=Priority.P2, resolved=False)
    await store.finish_effect(claimed, clock())
    await store.queue_storm(storm_id, clock())
    (due,) = [
        at
        for i, state, at in await backend.query(
            "SELECT incident_id, state, next_attempt_at FROM outbox ORDER BY id"
        )
        if i == storm_id and state == "pending"
    ]
    due_at = due if backend.name == "postgres" else codec.from_epoch(due)
    assert due_at == clock() + timedelta(minutes=1)
    row = await store.load_incident(storm_id)
    assert row is not None
    assert row.priority == Priority.P2
    assert row.state == "open"


async def test_a_storm_is_over_only_when_no_listed_group_waits(
    store: AnyStore, clock: FakeClock
) -> None:
    """Over once every listed group has resolved or has its own issue; then a new join starts
    a new storm; recording the roll-up resolved resolves its row."""
    first = await opened(store, clock, "g1")
    second = await opened(store, clock, "g2")
    assert first.id is not None
    assert second.id is not None
    storm_id = await store.join_storm(first.id, clock())
    await store.join_storm(second.id, clock())
    assert not await store.storm_over(storm_id, REPO, clock())
    await store.save_issue_record(
        IssueRecord(first.id, REPO, 7, "https://x/7", "t", "b", "r", {"incident"})
    )
    await ingest(store, clock, resolved_note("g2"))
    storm = await store.load_storm(storm_id, REPO)
    assert storm is not None
    assert [(m.issue_number, m.waiting) for m in storm.members] == [(7, False), (None, False)]
    assert await store.storm_over(storm_id, REPO, clock())
    assert not await store.storm_over(storm_id, REPO, clock())  # once
    await store.storm_announced(storm_id, clock())
    await store.record_storm_write(storm_id, clock(), priority=Priority.P3, resolved=True)
    storm = await store.load_storm(storm_id, REPO)
    assert storm is not None
    assert storm.over_at == clock()
    assert storm.announced_at == clock()
    assert storm.incident.state == "resolved"

    third = await opened(store, clock, "g3")
    assert third.id is not None
    assert await store.join_storm(third.id, clock()) != storm_id


async def test_queue_syncs_coalesces_with_a_pending_sync(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    incident = await opened(store, clock, "g1")
    assert incident.id is not None
    await store.queue_syncs([incident.id], clock())  # a sync is pending: nothing added
    await drain_all(store, clock)
    await store.queue_syncs([incident.id], clock())
    await store.queue_syncs([incident.id], clock())
    rows = [(kind, state) for i, kind, state, *_ in await backend.outbox() if i == incident.id]
    assert rows == [("github.sync", "done"), ("github.sync", "pending")]


async def test_queue_syncs_coalesces_past_messages_queued_after_the_sync(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """A Slack message queued after the pending sync (another lane) does not stop a new sync
    from joining it: coalescing looks at the incident's GitHub effects only."""
    incident = await opened(store, clock, "g1")
    assert incident.id is not None
    await queue(store, incident, EffectSpec("notify.slack", {"event_seq": 1}))
    await store.queue_syncs([incident.id], clock())
    rows = [(kind, state) for i, kind, state, *_ in await backend.outbox() if i == incident.id]
    assert rows == [("github.sync", "pending"), ("notify.slack", "pending")]


async def drain_all(store: AnyStore, clock: FakeClock) -> None:
    """Finish every due effect, as a worker whose GitHub calls all succeed would."""
    while claimed := await store.claim_effects(clock(), 100, LEASE):
        for effect in claimed:
            await store.finish_effect(effect, clock())


async def test_only_a_claimable_urgent_effect_holds_p2_p3_writes_back(
    store: AnyStore, clock: FakeClock
) -> None:
    """A due P0/P1 effect makes P2/P3 writes wait; one stuck behind its incident's older effect
    (in backoff) is not waiting for the budget, so it holds nothing back."""
    assert not await store.urgent_waiting(clock())
    await opened(store, clock, group="urgent", priority="P0")
    assert await store.urgent_waiting(clock())

    [sync] = await store.claim_effects(clock(), 10, LEASE)
    await ingest(store, clock, resolved_note("urgent"))  # queues a comment behind the sync
    await store.retry_effect(
        sync, clock() + timedelta(minutes=5), "GitHub 502", outcome_unknown=False
    )
    assert not await store.urgent_waiting(clock())
    clock.advance(301)
    assert await store.urgent_waiting(clock())


async def test_a_permanent_failure_queues_its_fallback_in_the_same_transaction(
    store: AnyStore, clock: FakeClock
) -> None:
    """A message that fails for good is failed, the timeline names who is told instead (by
    name, never by address), and the fallback waits in its own lane for the same event."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    [effect] = await store.claim_effects(clock(), 10, LEASE)
    fallback = [
        EffectSpec(
            "notify.sms",
            {"to": "+15550001111", "name": "Alice", "fallback_for": "alice@example.com"},
            event_seq=1,
        )
    ]
    assert await store.fail_effect(effect, clock(), "550 no such user", fallback)
    events = await store.load_events(incident.id, 50)
    [failed] = [e for e in events if e.kind == "effect_failed"]
    assert "told instead: sms to Alice" in failed.text
    assert "+1555" not in failed.text
    [sms] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert sms.kind == "notify.sms"
    assert sms.payload["to"] == "+15550001111"
    assert sms.payload["event_seq"] == 1
    assert await store.claim_effects(clock(), 10, LEASE) == []  # nothing in the GitHub lane


# -- storm control per person (notify_or_hold, bundle_slot, bundle_told) ----------------------

PER = timedelta(minutes=15)
ALICE = "+15550001111"


def message(incident_id: int, effect_id: int, to: str = ALICE, seq: int = 1) -> ClaimedEffect:
    """A claimed ``notify.sms`` effect as the runner sees it (only its identity matters here)."""
    return ClaimedEffect(
        id=effect_id,
        incident_id=incident_id,
        kind="notify.sms",
        payload={"to": to, "name": "Alice", "event": "opened", "event_seq": seq},
        attempts=0,
        claim=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_at_the_bound_messages_are_held_for_one_bundle_due_when_a_slot_frees(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Two slots per window: the first two messages go, the next ones are held for one pending
    bundle effect in the channel's lane, due when the oldest slot leaves the window; asking
    again for a sent or a held message changes nothing."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    first_at = clock()
    assert await store.notify_or_hold(message(incident.id, 1001), "sms", ALICE, clock(), 2, PER)
    clock.advance(60)
    assert await store.notify_or_hold(message(incident.id, 1002), "sms", ALICE, clock(), 2, PER)
    assert await store.notify_or_hold(message(incident.id, 1002), "sms", ALICE, clock(), 2, PER)
    for effect_id in (1003, 1004, 1004):
        held = message(incident.id, effect_id)
        assert not await store.notify_or_hold(held, "sms", ALICE, clock(), 2, PER)
    rows = await backend.query(
        "SELECT kind, state, lane, payload FROM outbox WHERE lane = 'sms' ORDER BY id"
    )
    assert [(k, s, lane) for k, s, lane, _ in rows] == [("notify.sms", "pending", "sms")]
    assert codec.loads(rows[0][3]) == {"to": ALICE, "name": "Alice", "bundle": True}
    assert await store.next_due("sms") == first_at + PER
    assert await backend.query("SELECT COUNT(*) FROM notify_held") == [(2,)]
    # Someone else, and Alice by email, have their own windows.
    other = message(incident.id, 1005, to="+15550002222")
    assert await store.notify_or_hold(other, "sms", "+15550002222", clock(), 2, PER)
    assert await store.notify_or_hold(message(incident.id, 1006), "email", ALICE, clock(), 2, PER)


async def test_a_bundle_tells_what_was_held_taking_one_slot_once(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """The bundle, claimed when due, gets the held messages oldest first and takes one slot
    (asking again takes no other); once told they are gone, and a later bundle with nothing
    held takes no slot."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    assert await store.notify_or_hold(message(incident.id, 1001), "sms", ALICE, clock(), 1, PER)
    assert not await store.notify_or_hold(
        message(incident.id, 1002, seq=1), "sms", ALICE, clock(), 1, PER
    )
    clock.advance(30)
    assert not await store.notify_or_hold(
        message(incident.id, 1003, seq=2), "sms", ALICE, clock(), 1, PER
    )
    assert await store.claim_effects(clock(), 10, LEASE, "sms") == []  # not due yet
    clock.advance(PER.total_seconds())
    [bundle] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert bundle.payload["bundle"] is True
    slot = await store.bundle_slot(bundle, "sms", ALICE, clock(), 1, PER)
    assert slot.wait_until is None
    assert [(h.incident_id, h.event_seq) for h in slot.held] == [(incident.id, 1), (incident.id, 2)]
    again = await store.bundle_slot(bundle, "sms", ALICE, clock(), 1, PER)
    assert len(again.held) == 2
    assert again.wait_until is None
    await store.bundle_told(bundle.id)
    assert await backend.query("SELECT COUNT(*) FROM notify_held") == [(0,)]
    assert (await store.bundle_slot(bundle, "sms", ALICE, clock(), 1, PER)).held == []
    # The bundle's slot counts: the next message within the window is held again.
    assert not await store.notify_or_hold(message(incident.id, 1004), "sms", ALICE, clock(), 1, PER)


async def test_a_bundle_waits_while_the_window_is_full(store: AnyStore, clock: FakeClock) -> None:
    """Run before a slot frees (another replica's message took it), a bundle gets nothing and
    the time a slot frees."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    sent_at = clock()
    assert await store.notify_or_hold(message(incident.id, 1001), "sms", ALICE, clock(), 1, PER)
    assert not await store.notify_or_hold(message(incident.id, 1002), "sms", ALICE, clock(), 1, PER)
    [bundle] = await store.claim_effects(clock() + PER, 10, LEASE, "sms")
    clock.advance(60)
    slot = await store.bundle_slot(bundle, "sms", ALICE, clock(), 1, PER)
    assert slot.held == []
    assert slot.wait_until == sent_at + PER


async def test_a_message_held_while_the_bundle_runs_gets_a_bundle_of_its_own(
    store: AnyStore, clock: FakeClock
) -> None:
    """A running bundle takes nothing more: a message held meanwhile goes to a new pending
    bundle, so it is told too."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    assert await store.notify_or_hold(message(incident.id, 1001), "sms", ALICE, clock(), 1, PER)
    assert not await store.notify_or_hold(message(incident.id, 1002), "sms", ALICE, clock(), 1, PER)
    clock.advance(PER.total_seconds())
    [bundle] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert not await store.notify_or_hold(
        message(incident.id, 1003, seq=2), "sms", ALICE, clock(), 1, PER
    )
    slot = await store.bundle_slot(bundle, "sms", ALICE, clock(), 1, PER)
    assert [h.event_seq for h in slot.held] == [1]
    await store.bundle_told(bundle.id)
    assert await store.finish_effect(bundle, clock())
    clock.advance(PER.total_seconds())
    [second] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert second.id != bundle.id
    later = await store.bundle_slot(second, "sms", ALICE, clock(), 1, PER)
    assert [h.event_seq for h in later.held] == [2]


# -- notifications: order per recipient, bundles apart, deadlines, failed bundles --------------

MAIL = "alice@example.com"


async def queue(store: AnyStore, incident: Incident, *specs: EffectSpec) -> None:
    """Add ``specs`` to the incident's outbox in one ingest, as the notify policy does."""

    def decide(current: Incident | None) -> Decision:
        assert current is not None
        return Decision("updated", incident=copy.copy(current), changed=True, effects=list(specs))

    await store.ingest(incident.key, incident.identity, decide)


def text_to(phone: str, seq: int = 1, **extra: Any) -> EffectSpec:
    return EffectSpec("notify.sms", {"to": phone, "name": "Someone", **extra}, event_seq=seq)


async def test_an_incidents_messages_keep_their_order_per_person_only(
    store: AnyStore, clock: FakeClock
) -> None:
    """One person's messages about an incident go one at a time, in order; another person's
    do not wait for them (one failing mailbox or number holds back nobody else)."""
    incident = await opened(store, clock, group="g", priority="P0")
    await queue(store, incident, text_to(ALICE), text_to("+15550002222"), text_to(ALICE, seq=2))
    claimed = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert sorted((e.payload["to"], e.payload["event_seq"]) for e in claimed) == [
        (ALICE, 1),
        ("+15550002222", 1),
    ]
    alice, other = sorted(claimed, key=lambda e: e.payload["to"] != ALICE)
    assert await store.finish_effect(other, clock())
    await store.retry_effect(
        alice, clock() + timedelta(minutes=5), "Twilio 503", outcome_unknown=True
    )
    assert await store.claim_effects(clock(), 10, LEASE, "sms") == []  # Alice's 2nd waits
    # ... and is not due either: nothing a claim could take before her first's retry (a lane
    # worker told "due now" would spin on claims that take nothing).
    assert await store.next_due("sms") == clock() + timedelta(minutes=5)
    clock.advance(301)
    [again] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert (again.id, again.outcome_unknown) == (alice.id, True)
    assert await store.finish_effect(again, clock())
    [second] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert (second.payload["to"], second.payload["event_seq"]) == (ALICE, 2)


async def test_a_bundle_neither_waits_for_nor_holds_back_its_incidents_messages(
    store: AnyStore, clock: FakeClock
) -> None:
    """Storm control queues Alice's bundle on the incident whose message was held first. The
    bundle is claimed when due even while an older message of that incident waits in backoff,
    and a newer message of the incident is claimed while the bundle waits or runs: a bundle
    stands apart from its incident's order."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    await queue(store, incident, text_to(BOB_PHONE))
    [bob] = await store.claim_effects(clock(), 10, LEASE, "sms")
    bob_due = clock() + timedelta(hours=1)
    await store.retry_effect(bob, bob_due, "Twilio 503", outcome_unknown=True)
    assert await store.notify_or_hold(message(incident.id, 1001), "sms", ALICE, clock(), 1, PER)
    assert not await store.notify_or_hold(message(incident.id, 1002), "sms", ALICE, clock(), 1, PER)
    await queue(store, incident, text_to(CAROL_PHONE))  # newer than the bundle, due now
    [carol] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert carol.payload["to"] == CAROL_PHONE  # not held back by the bundle (due in 15 min)
    assert await store.finish_effect(carol, clock())

    clock.advance(PER.total_seconds())
    [bundle] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert bundle.payload["bundle"] is True  # not waiting for Bob's text (due in 45 min)
    await queue(store, incident, text_to(CAROL_PHONE, seq=2))
    [later] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert later.payload["to"] == CAROL_PHONE  # not held back by the running bundle either
    assert await store.next_due("sms") == bob_due


BOB_PHONE, CAROL_PHONE = "+15550003333", "+15550004444"


async def test_a_message_failing_at_its_deadline_falls_back_once_and_keeps_retrying(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Retried with a fallback (its deadline passed): in one transaction the message is
    rescheduled and marked, the person's text is queued and the timeline says who is told
    instead (by name). Retried with a fallback again, by this claim or a stale one, nothing
    more is queued or written; the email itself is still retried until it goes."""
    incident = await opened(store, clock, group="g", priority="P1")
    assert incident.id is not None
    await queue(store, incident, EffectSpec("notify.email", {"to": MAIL, "name": "Alice"}, 1))
    [email] = await store.claim_effects(clock(), 10, LEASE, "email")
    instead = [text_to(ALICE, name="Alice", fallback_for=MAIL)]
    later = clock() + timedelta(seconds=30)
    assert await store.retry_effect(
        email, later, "SMTP 451: try later", outcome_unknown=False, fallback=instead
    )
    [line] = [e for e in await store.load_events(incident.id, 50) if e.kind == "effect_failed"]
    assert line.text == (
        "notify.email still failing at the response deadline, retrying: SMTP 451: try later;"
        " told instead: sms to Alice"
    )
    assert line.data["late"] is True
    [sms] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert (sms.payload["to"], sms.payload["event_seq"]) == (ALICE, 1)
    assert not await store.retry_effect(  # a stale claim (another replica's) changes nothing
        email, later, "SMTP 451", outcome_unknown=False, fallback=instead
    )

    clock.advance(30)
    [again] = await store.claim_effects(clock(), 10, LEASE, "email")
    assert again.payload["late"] is True
    assert await store.retry_effect(
        again, clock() + timedelta(seconds=30), "SMTP 451", outcome_unknown=False, fallback=instead
    )
    events = await store.load_events(incident.id, 50)
    assert [e.kind for e in events].count("effect_failed") == 1
    assert await backend.query("SELECT COUNT(*) FROM outbox WHERE lane = 'sms'") == [(1,)]
    clock.advance(30)
    [third] = await store.claim_effects(clock(), 10, LEASE, "email")
    assert await store.finish_effect(third, clock())
    rows = await backend.query("SELECT state, attempts FROM outbox WHERE lane = 'email'")
    assert rows == [("done", 3)]


async def test_a_deadline_with_nobody_else_to_tell_is_still_in_the_timeline(
    store: AnyStore, clock: FakeClock
) -> None:
    """Late, but the person has no other channel: the timeline says so, once."""
    incident = await opened(store, clock, group="g", priority="P1")
    assert incident.id is not None
    await queue(store, incident, EffectSpec("notify.email", {"to": MAIL, "name": "Bob"}, 1))
    [email] = await store.claim_effects(clock(), 10, LEASE, "email")
    assert await store.retry_effect(email, clock(), "SMTP down", outcome_unknown=False, fallback=[])
    [line] = [e for e in await store.load_events(incident.id, 50) if e.kind == "effect_failed"]
    assert line.text.endswith("SMTP down; nobody else to tell")


async def held_bundle(
    store: AnyStore, clock: FakeClock, incident_id: int, first_id: int = 1001
) -> ClaimedEffect:
    """Alice's email window (one slot) is full and two messages are held: her bundle,
    claimed when due, with its slot taken."""
    sent = message(incident_id, first_id, to=MAIL)
    assert await store.notify_or_hold(sent, "email", MAIL, clock(), 1, PER)
    for effect_id, seq in ((first_id + 1, 1), (first_id + 2, 2)):
        held = message(incident_id, effect_id, to=MAIL, seq=seq)
        assert not await store.notify_or_hold(held, "email", MAIL, clock(), 1, PER)
    clock.advance(PER.total_seconds())
    [bundle] = await store.claim_effects(clock(), 10, LEASE, "email")
    assert len((await store.bundle_slot(bundle, "email", MAIL, clock(), 1, PER)).held) == 2
    return bundle


async def test_a_failed_bundle_is_taken_over_by_the_persons_bundle_on_their_next_channel(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Alice's email bundle fails for good: what it held moves to a new SMS bundle of hers,
    due now, told in one text within her SMS window; the timeline names her, by name."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    bundle = await held_bundle(store, clock, incident.id)
    instead = EffectSpec("notify.sms", {**bundle_payload(ALICE, "Alice"), "fallback_for": MAIL})
    assert await store.fail_effect(bundle, clock(), "SMTP 550: mailbox gone", [instead])
    [line] = [e for e in await store.load_events(incident.id, 50) if e.kind == "effect_failed"]
    assert line.text.endswith("told instead: sms summary to Alice")
    assert await backend.query(
        "SELECT channel, recipient, event_seq FROM notify_held ORDER BY effect_id"
    ) == [("sms", ALICE, 1), ("sms", ALICE, 2)]
    [text] = await store.claim_effects(clock(), 10, LEASE, "sms")
    assert text.payload == {**bundle_payload(ALICE, "Alice"), "fallback_for": MAIL}
    slot = await store.bundle_slot(text, "sms", ALICE, clock(), 5, PER)
    assert [h.event_seq for h in slot.held] == [1, 2]


async def test_a_failed_bundle_joins_the_persons_pending_bundle_or_is_forgotten(
    store: AnyStore, backend: Backend, clock: FakeClock
) -> None:
    """Alice already has an SMS bundle waiting: the failed email bundle's messages join it (no
    second text). A failed bundle with nobody to take it over leaves nothing held behind."""
    incident = await opened(store, clock, group="g", priority="P0")
    assert incident.id is not None
    assert await store.notify_or_hold(message(incident.id, 2001), "sms", ALICE, clock(), 1, PER)
    assert not await store.notify_or_hold(message(incident.id, 2002), "sms", ALICE, clock(), 1, PER)
    bundle = await held_bundle(store, clock, incident.id)
    sms_bundles = "SELECT id FROM outbox WHERE lane = 'sms' AND bundle"
    [(pending,)] = await backend.query(sms_bundles)
    instead = EffectSpec("notify.sms", {**bundle_payload(ALICE, "Alice"), "fallback_for": MAIL})
    assert await store.fail_effect(bundle, clock(), "SMTP 550", [instead])
    assert await backend.query(sms_bundles) == [(pending,)]
    assert await backend.query("SELECT DISTINCT bundle_id FROM notify_held") == [(pending,)]
    assert await backend.query("SELECT COUNT(*) FROM notify_held") == [(3,)]

    other = await opened(store, clock, group="other", priority="P0")
    assert other.id is not None
    clock.advance(PER.total_seconds())
    lonely = await held_bundle(store, clock, other.id, first_id=3001)
    assert await store.fail_effect(lonely, clock(), "SMTP 550", [])
    assert await backend.query("SELECT DISTINCT bundle_id FROM notify_held") == [(pending,)]


# -- the on-call lifecycle -------------------------------------------------------------------


async def test_an_open_incidents_next_timer_is_found_by_due_at(
    store: AnyStore, clock: FakeClock
) -> None:
    """Saving an incident keeps its next timer in the store: due incidents are listed once their
    time comes, earliest first, and an acknowledged incident with nothing else pending has none."""
    decision = await ingest(store, clock, note(alert()))
    incident = decision.incident
    assert incident is not None
    assert incident.id is not None
    assert incident.respond_by is not None
    assert await store.next_timer() == incident.due_at == incident.respond_by
    assert await store.due_incidents(incident.respond_by - timedelta(seconds=1), 10) == []
    (due,) = await store.due_incidents(incident.respond_by, 10)
    assert (due.id, due.key, due.identity, due.due_at) == (
        incident.id,
        incident.key,
        incident.identity,
        incident.respond_by,
    )

    def acknowledge(current: Any) -> Any:
        from bridge.engine import Decision

        acked = dataclasses.replace(current, acknowledged_at=clock(), acknowledged_by="alice")
        acked.resolve_by = None
        return Decision(outcome="updated", incident=acked, changed=True)

    await store.ingest(incident.key, incident.identity, acknowledge)
    assert await store.next_timer() is None
    assert await store.due_incidents(clock() + timedelta(days=30), 10) == []


async def test_marks_keep_the_latest_moment(store: AnyStore, clock: FakeClock) -> None:
    """A mark remembers a moment by name; an earlier moment never replaces a later one."""
    assert await store.mark("heartbeat") is None
    await store.set_mark("heartbeat", clock())
    await store.set_mark("heartbeat", clock() - timedelta(minutes=5))
    assert await store.mark("heartbeat") == clock()
    await store.set_mark("heartbeat", clock() + timedelta(minutes=1))
    assert await store.mark("heartbeat") == clock() + timedelta(minutes=1)


async def test_a_github_delivery_is_first_only_once(store: AnyStore, clock: FakeClock) -> None:
    """Deliveries are remembered, so a replay or a redelivery is recognised; prune forgets
    those older than the cut-off."""
    assert not await store.delivery_seen("d-1")
    assert await store.first_delivery("d-1", clock())
    assert await store.delivery_seen("d-1")
    assert not await store.first_delivery("d-1", clock())
    assert await store.first_delivery("d-2", clock())
    await store.prune(clock() + timedelta(seconds=1))
    assert await store.first_delivery("d-1", clock())


async def test_an_incident_is_found_by_its_issue(store: AnyStore, clock: FakeClock) -> None:
    """GitHub events name an issue; the store maps it back to its incident."""
    incident = (await ingest(store, clock, note(alert()))).incident
    assert incident is not None
    assert incident.id is not None
    await store.save_issue_record(
        IssueRecord(incident.id, REPO, 17, "https://x/17", "t", "b", "r", {"incident"})
    )
    found = await store.incident_by_issue(REPO, 17)
    assert found is not None
    assert found.id == incident.id
    assert await store.incident_by_issue(REPO, 18) is None
    assert await store.incident_by_issue("other/repo", 17) is None


# -- reports ---------------------------------------------------------------------------------


async def test_incidents_between_are_those_open_in_the_window_with_their_timelines(
    store: AnyStore, clock: FakeClock
) -> None:
    """``incident-bridge report`` reads the incidents open at some moment of its window —
    opened before its end, not resolved before its start — each with its whole timeline;
    maintenance requests are no incidents."""
    at = clock()  # 21:45; the alerts started at 21:00
    first = await opened(store, clock, "g1")
    await ingest(store, clock, resolved_note("g1"))  # resolved as of its alert's end, 21:05
    clock.advance(timedelta(hours=1))
    second = await opened(store, clock, "g2")  # 22:45, still open
    await opened(store, clock, "m1", kind="maintenance")
    assert first.id is not None
    assert second.id is not None
    resolved = await store.load_incident(first.id)
    assert resolved is not None
    assert resolved.resolved_at == at - timedelta(minutes=40)

    async def between(since: datetime, until: datetime) -> list[int | None]:
        return [h.incident.id for h in await store.incidents_between(since, until)]

    both = await store.incidents_between(resolved.resolved_at, at + timedelta(hours=2))
    assert [h.incident for h in both] == [resolved, await store.load_incident(second.id)]
    assert [h.events for h in both] == [
        await store.load_events(first.id, 100),
        await store.load_events(second.id, 100),
    ]
    assert [e.kind for e in both[0].events] == [
        "alert_firing",
        "opened",
        "alert_resolved",
        "resolved",
    ]
    # Resolved a second before the window: not in it.
    after = resolved.resolved_at + timedelta(seconds=1)
    assert await between(after, at + timedelta(hours=2)) == [second.id]
    # Opened at the window's end: not in it.
    assert await between(at - timedelta(hours=2), at + timedelta(hours=1)) == [first.id]
    assert await between(at + timedelta(hours=2), at + timedelta(hours=3)) == [second.id]
    assert await between(at - timedelta(days=2), at - timedelta(days=1)) == []


async def test_open_incidents_are_paged_by_id(store: AnyStore, clock: FakeClock) -> None:
    """Reconciliation walks every open incident a page at a time: by id, after the last one
    seen; resolved incidents are not listed."""
    first = await opened(store, clock, "g1")
    second = await opened(store, clock, "g2")
    third = await opened(store, clock, "g3")
    await ingest(store, clock, resolved_note("g2"))
    assert first.id is not None
    assert third.id is not None

    page = await store.open_incidents(0, 1)
    assert [i.id for i in page] == [first.id]
    assert page[0] == await store.load_incident(first.id)
    assert [i.id for i in await store.open_incidents(first.id, 10)] == [third.id]
    assert [i.display_id for i in await store.open_incidents(0, 10)] == ["INC-001", "INC-003"]
    assert await store.open_incidents(third.id, 10) == []
    assert second.id not in {i.id for i in await store.open_incidents(0, 10)}
