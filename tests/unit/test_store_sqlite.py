"""The SQLite store on a real file: schema, ingest transactions, the outbox and durability.

Faults are real SQLite faults (a trigger that aborts an insert), never patched internals; time
comes from a fake clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.engine import Decision, Policy, apply_notification
from bridge.identity import identity_key, identity_of
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority
from bridge.store.base import ClaimedEffect, IssueRecord, StoreUnavailable
from bridge.store.sqlite import CLAIM_DUE, CLAIM_LAPSED, SqliteStore
from bridge.store.sqlite_schema import MIGRATIONS

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
REPO = "acme/incidents"


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label, else P3; ``kind=maintenance``."""
    priority = Priority(labels.get("priority", "P3"))
    return Classification(
        priority, f"test {priority}", maintenance=labels.get("kind") == "maintenance"
    )


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def alert(
    fp: str = "a1",
    status: str = "firing",
    ends: datetime | None = None,
    labels: Mapping[str, str] | None = None,
) -> AlertSnapshot:
    return AlertSnapshot(
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]  # tests pass only "firing" / "resolved"
        labels={"alertname": "HighCPU", "instance": f"{fp}:9100", **(labels or {})},
        annotations={"summary": f"HighCPU on {fp}"},
        starts_at=T0,
        ends_at=ends,
        generator_url="",
    )


def note(*alerts: AlertSnapshot, group: str = "g1") -> Notification:
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        receiver="r",
        status="firing" if firing else "resolved",
        alerts=alerts,
        group_labels={"group": group},
        common_labels={"alertname": "HighCPU"},
        common_annotations={},
        external_url="",
        group_key=f'{{}}:{{group="{group}"}}',
        truncated_alerts=0,
    )


def resolved_note(group: str = "g1") -> Notification:
    return note(alert(status="resolved", ends=T0 + timedelta(minutes=5)), group=group)


async def ingest(store: SqliteStore, clock: FakeClock, n: Notification) -> Decision:
    """What the Ingestor does: identity → key → engine inside the store's transaction."""
    identity = identity_of(n, "group_key")
    return await store.ingest(
        identity_key(identity),
        identity,
        lambda current: apply_notification(current, n, clock(), POLICY),
    )


async def opened(
    store: SqliteStore, clock: FakeClock, group: str = "g1", **labels: str
) -> Incident:
    decision = await ingest(store, clock, note(alert(labels=labels), group=group))
    assert decision.outcome == "opened"
    assert decision.incident is not None
    return decision.incident


def numbers(incidents: list[Incident | None]) -> list[int]:
    """The incident numbers, sorted; every incident must have one."""
    found = [i.number for i in incidents if i is not None]
    assert None not in found
    return sorted(n for n in found if n is not None)


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


# -- ingest --------------------------------------------------------------------------------


async def test_ingest_persists_incident_events_and_effects(
    store: SqliteStore, db: Path, clock: FakeClock
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
    assert outbox(db) == [(incident.id, "github.sync", "pending", 0, 0)]


async def test_unchanged_notification_writes_nothing(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """A repeat of the same snapshot adds no event and no effect."""
    incident = await opened(store, clock)
    assert incident.id is not None
    events = await store.load_events(incident.id, 100)
    decision = await ingest(store, clock, note(alert()))
    assert decision.outcome == "unchanged"
    assert await store.load_events(incident.id, 100) == events
    assert len(outbox(db)) == 1


async def test_load_events_returns_the_latest_oldest_first(
    store: SqliteStore, clock: FakeClock
) -> None:
    """``load_events(limit)`` gives the most recent events, in timeline order."""
    incident = await opened(store, clock)
    assert incident.id is not None
    await ingest(store, clock, resolved_note())
    every = await store.load_events(incident.id, 100)
    assert [e.seq for e in every] == list(range(1, len(every) + 1))
    assert await store.load_events(incident.id, 2) == every[-2:]


async def test_ingest_is_one_transaction(store: SqliteStore, db: Path, clock: FakeClock) -> None:
    """When storing the effects fails, the incident, its events and its number are not kept."""
    await store.execute_for_test(
        "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk'); END"
    )
    with pytest.raises(StoreUnavailable):
        await ingest(store, clock, note(alert()))
    assert query(db, "SELECT COUNT(*) FROM incidents") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM events") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM counters") == [(0,)]

    await store.execute_for_test("DROP TRIGGER no_outbox")
    incident = await opened(store, clock)
    assert incident.number == 1  # the failed attempt left no gap


async def test_concurrent_ingests_of_distinct_groups_number_without_gaps(
    store: SqliteStore, clock: FakeClock
) -> None:
    """50 new groups at once: 50 incidents numbered 1..50, no gap, no duplicate."""
    decisions = await asyncio.gather(
        *(ingest(store, clock, note(alert(), group=f"g{i}")) for i in range(50))
    )
    assert numbers([d.incident for d in decisions]) == list(range(1, 51))
    assert len(await store.list_incidents(REPO, limit=1000)) == 50


async def test_concurrent_ingests_of_one_group_make_one_incident(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """50 deliveries of the same group at once (HA pairs, retries): one incident, one effect."""
    decisions = await asyncio.gather(*(ingest(store, clock, note(alert())) for _ in range(50)))
    outcomes = sorted(d.outcome for d in decisions)
    assert outcomes == ["opened"] + ["unchanged"] * 49
    [row] = await store.list_incidents(REPO)
    assert row.incident.number == 1
    assert len(outbox(db)) == 1


class Gate:
    """A ``decide`` that holds the writer thread until released, so that units submitted
    meanwhile are queued and run together as the next batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def decide(self, current: Incident | None) -> Decision:
        self.entered.set()
        self.release.wait(timeout=10)
        return Decision(outcome="unchanged", incident=current)


async def batch_after_gate(store: SqliteStore, *jobs: Any) -> list[Any]:
    """Run ``jobs`` (coroutines that each submit one unit) as one writer batch."""
    gate = Gate()
    blocker = asyncio.create_task(store.ingest("gate", "gate", gate.decide))
    assert await asyncio.to_thread(gate.entered.wait, 10)
    tasks = [asyncio.create_task(job) for job in jobs]
    await asyncio.sleep(0)  # one loop turn: every task queues its unit behind the gate
    gate.release.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


class Boom(Exception):
    """A decide that fails."""


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


# -- sync coalescing -----------------------------------------------------------------------


async def test_a_second_sync_while_one_is_pending_adds_no_row(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """A pending sync will render the latest state, so another change adds no sync."""
    await opened(store, clock)
    decision = await ingest(store, clock, note(alert(), alert("a2")))
    assert decision.outcome == "updated"
    assert [row[1:3] for row in outbox(db)] == [("github.sync", "pending")]


async def test_a_sync_after_a_pending_comment_is_added(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """Resolution: the comment is queued after the sync, and a new sync after the comment."""
    await opened(store, clock)
    await ingest(store, clock, resolved_note())
    assert [row[1] for row in outbox(db)] == ["github.sync", "github.comment", "github.sync"]


async def test_a_sync_while_one_is_running_is_added(
    store: SqliteStore, db: Path, clock: FakeClock
) -> None:
    """A running sync may have rendered the old state: a change queues a new sync."""
    await opened(store, clock)
    [_] = await store.claim_effects(clock(), 10, LEASE)
    await ingest(store, clock, note(alert(), alert("a2")))
    assert [row[1:3] for row in outbox(db)] == [
        ("github.sync", "running"),
        ("github.sync", "pending"),
    ]


# -- claiming ------------------------------------------------------------------------------


async def test_claim_gives_at_most_one_effect_per_incident(
    store: SqliteStore, clock: FakeClock
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
    assert await store.claim_effects(clock(), 10, LEASE) == []


async def test_claim_respects_the_limit(store: SqliteStore, clock: FakeClock) -> None:
    """No more than ``limit`` effects are claimed at once; the rest wait for the next claim."""
    for i in range(3):
        await opened(store, clock, f"g{i}")
    assert len(await store.claim_effects(clock(), 2, LEASE)) == 2
    assert len(await store.claim_effects(clock(), 2, LEASE)) == 1


async def test_a_claimed_effect_blocks_the_incidents_later_effects(
    store: SqliteStore, clock: FakeClock
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


async def test_claim_respects_next_attempt_at(store: SqliteStore, clock: FakeClock) -> None:
    """An effect is not claimed before it is due."""
    await opened(store, clock)
    assert await store.claim_effects(clock() - timedelta(seconds=1), 10, LEASE) == []
    assert len(await store.claim_effects(clock(), 10, LEASE)) == 1


async def test_an_effect_whose_lease_ran_out_is_claimed_again(
    store: SqliteStore, clock: FakeClock
) -> None:
    """A claim is a lease: when it runs out the effect is claimed again, with a new token."""
    await opened(store, clock)
    [first] = await store.claim_effects(clock(), 10, LEASE)
    later = clock.advance(LEASE + timedelta(seconds=1))
    [again] = await store.claim_effects(later, 10, LEASE)
    assert again.id == first.id
    assert again.claim > first.claim
    assert again.outcome_unknown
    assert not await store.finish_effect(first, later)


# -- results: finish, retry, fail, fencing -------------------------------------------------


async def test_finish_marks_done_once(store: SqliteStore, db: Path, clock: FakeClock) -> None:
    """Finishing records the attempt; finishing the same claim again changes nothing."""
    await opened(store, clock)
    [effect] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.finish_effect(effect, clock())
    assert not await store.finish_effect(effect, clock())
    assert [row[2:4] for row in outbox(db)] == [("done", 1)]


async def test_retry_reschedules_and_counts_attempts(
    store: SqliteStore, db: Path, clock: FakeClock
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
    assert query(db, "SELECT last_error FROM outbox") == [("502 Bad Gateway",)]
    assert await store.retry_effect(again, at, "x" * 5000, outcome_unknown=False)
    [(error,)] = query(db, "SELECT last_error FROM outbox")
    assert len(error) == 2000  # capped
    [third] = await store.claim_effects(at, 10, LEASE)
    assert (third.attempts, third.outcome_unknown) == (2, False)


async def test_fail_records_the_failure_and_unblocks_the_next_effect(
    store: SqliteStore, clock: FakeClock
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
    store: SqliteStore, clock: FakeClock
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


async def test_stale_claims_change_nothing(store: SqliteStore, db: Path, clock: FakeClock) -> None:
    """Once an effect was claimed again, the old claim can neither finish, retry nor fail it."""
    incident = await opened(store, clock)
    assert incident.id is not None
    [stale] = await store.claim_effects(clock(), 10, LEASE)
    assert await store.retry_effect(stale, clock(), "timeout", outcome_unknown=True)
    [current] = await store.claim_effects(clock(), 10, LEASE)
    assert current.claim == stale.claim + 1
    before = query(db, "SELECT * FROM outbox")
    events = await store.load_events(incident.id, 100)

    assert not await store.finish_effect(stale, clock())
    assert not await store.retry_effect(stale, clock(), "late", outcome_unknown=False)
    assert not await store.fail_effect(stale, clock(), "late")
    forged = dataclasses.replace(current, claim=current.claim + 1)
    assert not await store.finish_effect(forged, clock())

    assert query(db, "SELECT * FROM outbox") == before
    assert await store.load_events(incident.id, 100) == events
    assert await store.finish_effect(current, clock())


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


# -- reads ---------------------------------------------------------------------------------


async def test_outbox_stats_and_next_due(store: SqliteStore, clock: FakeClock) -> None:
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
    store: SqliteStore, clock: FakeClock
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


async def test_list_incidents_filters_by_state_newest_first(
    store: SqliteStore, clock: FakeClock
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


async def test_issue_record_round_trip(store: SqliteStore, clock: FakeClock) -> None:
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


async def test_a_closed_store_is_unavailable(db: Path, clock: FakeClock) -> None:
    """After close every call says StoreUnavailable rather than hanging or crashing."""
    s = await reopened(db, clock)
    await s.close()
    with pytest.raises(StoreUnavailable):
        await ingest(s, clock, note(alert()))
    with pytest.raises(StoreUnavailable):
        await s.claim_effects(clock(), 1, LEASE)


async def test_reads_on_a_closed_store_are_unavailable(db: Path, clock: FakeClock) -> None:
    """Reads after close (a late /readyz or /status during shutdown) say StoreUnavailable too."""
    s = await reopened(db, clock)
    await s.close()
    with pytest.raises(StoreUnavailable):
        await s.ping()
    with pytest.raises(StoreUnavailable):
        await s.next_due()


@pytest.mark.parametrize("query", [CLAIM_LAPSED, CLAIM_DUE], ids=["lapsed", "due"])
def test_claim_queries_walk_an_index_instead_of_sorting_the_backlog(
    tmp_path: Path, query: str
) -> None:
    """Claiming stays cheap behind a storm's backlog: each claim query reads its partial index
    in order and stops at the limit, never sorting every candidate (no temp B-tree)."""
    conn = sqlite3.connect(tmp_path / "plan.db")
    for script in MIGRATIONS:
        conn.executescript(script)
    plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", (0.0, 32)))
    conn.close()
    assert "TEMP B-TREE" not in plan, plan
    assert "USING INDEX outbox_" in plan, plan
