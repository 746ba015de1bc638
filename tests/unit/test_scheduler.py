"""The scheduler (bridge/scheduler.py): timer steps chained into one decision, due incidents
fired through the Ingestor once, the loop's pacing, and a store that goes away.

The store is real (a SQLite file; the firing test runs on PostgreSQL too), time is a fake clock;
the loop is driven pass by pass (``next_pass``), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge import sla
from bridge.business_hours import BusinessHours
from bridge.clock import FakeClock
from bridge.engine import Decision
from bridge.ingest import Ingestor
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Incident, Priority, TimelineEvent
from bridge.scheduler import Scheduler, TimerStep, chain
from bridge.store.base import Store, StoreUnavailable
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from store_support import LEASE, POLICY, opened

IDLE = 30.0  # the loop's idle poll in these tests (seconds)


def sla_policy() -> sla.SlaPolicy:
    """Every priority: SMS at any hour, every 5 minutes, 2 rounds."""
    rule = sla.Escalation(page="always", every=timedelta(minutes=5), rounds=2)
    return sla.SlaPolicy(
        escalation=dict.fromkeys(Priority, rule),
        in_business_hours=BusinessHours().is_open,
        contacts=(sla.Contact("On-call", email=True, sms=True),),
    )


def noting(text: str, *effects: EffectSpec) -> TimerStep:
    """A step that always adds one event ``text`` with ``effects`` (github.comment effects
    refer to the event)."""

    def step(current: Incident, now: datetime) -> Decision:
        incident = copy.copy(current)
        incident.event_seq += 1
        event = TimelineEvent(incident.event_seq, now, "flapping", text)
        specs = [
            EffectSpec(e.kind, event_seq=event.seq) if e.kind == "github.comment" else e
            for e in effects
        ]
        return Decision("timer", incident, changed=True, events=[event], effects=specs)

    return step


def idle_step(current: Incident, now: datetime) -> Decision:
    return Decision(outcome="unchanged", incident=current)


# ---------------------------------------------------------------------------------------------
# chain: pure


def test_chain_merges_steps_in_order(clock: FakeClock) -> None:
    """Each step sees the incident the previous one left: events numbered on, effects merged,
    one github.sync for all of them, after every comment."""
    first = noting("first", EffectSpec("github.sync"), EffectSpec("notify.slack"))
    second = noting("second", EffectSpec("github.comment"), EffectSpec("github.sync"))
    incident = _incident(clock)

    decision = chain([first, idle_step, second])(incident, clock())

    assert decision.changed
    assert decision.outcome == "timer"
    assert [(e.seq, e.text) for e in decision.events] == [(1, "first"), (2, "second")]
    assert decision.incident is not None
    assert decision.incident.event_seq == 2
    assert incident.event_seq == 0  # the stored incident is never changed in place
    assert [e.kind for e in decision.effects] == ["github.comment", "github.sync", "notify.slack"]
    assert decision.effects[0].event_seq == 2


def test_chain_of_idle_steps_is_unchanged(clock: FakeClock) -> None:
    """No step had anything to do (or no incident): unchanged, the same object, no effects."""
    incident = _incident(clock)
    decision = chain([idle_step, idle_step])(incident, clock())
    assert not decision.changed
    assert decision.outcome == "unchanged"
    assert decision.incident is incident
    assert decision.effects == []
    assert not chain([noting("x")])(None, clock()).changed


def _incident(clock: FakeClock) -> Incident:
    return Incident(
        key="k",
        identity="i",
        kind="incident",
        receiver="r",
        group_key="g",
        group_labels={},
        state="open",
        priority=Priority.P0,
        priority_rule="test",
        summary="s",
        opened_at=clock(),
        earliest_starts_at=clock(),
        respond_by=clock() + timedelta(minutes=5),
        resolve_by=clock() + timedelta(hours=1),
        id=1,
        number=1,
    )


# ---------------------------------------------------------------------------------------------
# The scheduler over a real store


@pytest.fixture(params=["sqlite", "postgres"])
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    store: Store
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "bridge.db", clock=clock)
    else:
        store = PostgresStore(request.getfixturevalue("postgres_db"), clock=clock)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "bridge.db", clock=clock)
    await store.open()
    yield store
    await store.close()


def scheduler_for(
    store: Store,
    clock: FakeClock,
    steps: list[TimerStep],
    metrics: Metrics | None = None,
    woken: list[int] | None = None,
) -> Scheduler:
    ingestor = Ingestor(
        store,
        POLICY,
        "group_key",
        clock,
        metrics or Metrics(),
        on_effects=lambda: woken.append(1) if woken is not None else None,
    )
    return Scheduler(store, ingestor, clock, steps, metrics=metrics, idle_poll=IDLE)


async def test_due_incident_fires_once(any_store: Store, clock: FakeClock) -> None:
    """At respond_by the SLA step fires through the Ingestor: breach, round 1, effects in the
    outbox, the breach counted; a second pass (or a second replica) finds nothing due."""
    metrics = Metrics()
    woken: list[int] = []
    scheduler = scheduler_for(any_store, clock, [sla.timer(sla_policy())], metrics, woken)
    incident = await opened(any_store, clock, priority="P0")  # respond by +15m (store_support)
    assert incident.id is not None
    assert await scheduler.run_once() == 0  # nothing due yet

    clock.advance(timedelta(minutes=15))
    assert await scheduler.run_once() == 1
    assert await scheduler.run_once() == 0

    stored = await any_store.load_incident(incident.id)
    assert stored is not None
    assert stored.response_breached_at == clock()
    assert stored.escalations == 1
    assert await any_store.next_timer() == clock() + timedelta(minutes=5)
    events = await any_store.load_events(incident.id, 10)
    assert [e.kind for e in events][-2:] == ["sla_breached", "escalated"]
    github = await any_store.claim_effects(clock(), 10, LEASE)
    assert github[0].kind == "github.sync"  # the opening's sync, then the breach's
    assert woken == [1]
    sample = metrics.registry.get_sample_value
    assert sample("incident_bridge_sla_breaches_total", {"priority": "P0", "kind": "response"}) == 1
    assert (
        sample("incident_bridge_sla_breaches_total", {"priority": "P0", "kind": "resolution"}) == 0
    )


async def test_an_incident_no_step_handles_does_not_spin(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """Due, yet no step does anything (a bug): the pass fires nothing and the loop waits its
    idle poll instead of coming straight back."""
    scheduler = scheduler_for(sqlite_store, clock, [idle_step])
    await opened(sqlite_store, clock, priority="P0")
    clock.advance(timedelta(minutes=20))

    assert await scheduler.run_once() == 0
    assert await scheduler.next_pass() == IDLE


async def test_the_loop_waits_until_the_next_timer(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """The wait is the time to the next due timer, at most the idle poll; none: the idle poll."""
    scheduler = scheduler_for(sqlite_store, clock, [sla.timer(sla_policy())])
    assert await scheduler.next_pass() == IDLE
    await opened(sqlite_store, clock, priority="P0")
    clock.advance(timedelta(minutes=15) - timedelta(seconds=10))
    assert await scheduler.next_pass() == 10.0
    clock.advance(timedelta(seconds=10))
    # Fired round 1: the next round is 5 minutes away, longer than the idle poll.
    assert await scheduler.next_pass() == IDLE


async def test_more_due_than_a_batch_goes_straight_on(tmp_path: Path, clock: FakeClock) -> None:
    """Timers beyond one batch: the next pass comes without waiting."""
    store = SqliteStore(tmp_path / "bridge.db", clock=clock)
    await store.open()
    try:
        ingestor = Ingestor(store, POLICY, "group_key", clock, Metrics())
        scheduler = Scheduler(
            store, ingestor, clock, [sla.timer(sla_policy())], batch=2, idle_poll=IDLE
        )
        for group in ("g1", "g2", "g3"):
            await opened(store, clock, group, priority="P0")
        clock.advance(timedelta(minutes=15))
        assert await scheduler.next_pass() == 0.0
        assert await scheduler.next_pass() == IDLE  # the third, then round 2 is 5 min away
        assert await store.due_incidents(clock(), 10) == []
    finally:
        await store.close()


async def test_store_unavailable_waits_and_recovers(tmp_path: Path, clock: FakeClock) -> None:
    """The store failing (a real database fault: its incidents table gone for a while): the
    pass logs and waits the idle poll, it does not crash the loop; the store back, the due
    timer fires."""
    path = tmp_path / "bridge.db"
    store = SqliteStore(path, clock=clock)
    await store.open()
    try:
        scheduler = scheduler_for(store, clock, [sla.timer(sla_policy())])
        incident = await opened(store, clock, priority="P0")
        assert incident.id is not None
        clock.advance(timedelta(minutes=15))
        _sql(path, "ALTER TABLE incidents RENAME TO incidents_away")

        with pytest.raises(StoreUnavailable):
            await scheduler.run_once()
        assert await scheduler.next_pass() == IDLE

        _sql(path, "ALTER TABLE incidents_away RENAME TO incidents")
        assert await scheduler.run_once() == 1
        stored = await store.load_incident(incident.id)
        assert stored is not None
        assert stored.response_breached_at == clock()
    finally:
        await store.close()


def _sql(path: Path, statement: str) -> None:
    """A change made behind the store's back, as an operator with sqlite3 would."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(statement)
        conn.commit()


async def test_a_failing_step_holds_up_no_other_timer(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """A step raising on one incident (a bug) is logged and that incident skipped: the other
    due incident fires in the same pass, and the loop does not spin on the broken one."""
    sla_step = sla.timer(sla_policy())
    broken = await opened(sqlite_store, clock, "g1", priority="P0")  # due first
    clock.advance(1)
    healthy = await opened(sqlite_store, clock, "g2", priority="P0")

    def step(current: Incident, now: datetime) -> Decision:
        if current.id == broken.id:
            raise RuntimeError("bug")
        return sla_step(current, now)

    scheduler = scheduler_for(sqlite_store, clock, [step])
    clock.advance(timedelta(minutes=15))
    assert await scheduler.run_once() == 1
    assert healthy.id is not None
    stored = await sqlite_store.load_incident(healthy.id)
    assert stored is not None
    assert stored.response_breached_at == clock()
    assert await scheduler.next_pass() == IDLE


async def test_ticks_run_every_pass_and_one_failing_spares_the_others(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """Ticks get the current time on every pass; one raising does not keep the next from
    running."""
    seen: list[datetime] = []

    async def failing(now: datetime) -> None:
        raise RuntimeError("bug")

    async def heartbeat(now: datetime) -> None:
        seen.append(now)

    ingestor = Ingestor(sqlite_store, POLICY, "group_key", clock, Metrics())
    scheduler = Scheduler(sqlite_store, ingestor, clock, [], [failing, heartbeat], idle_poll=IDLE)
    await scheduler.run_once()
    clock.advance(60)
    assert await scheduler.next_pass() == IDLE
    assert seen == [clock() - timedelta(seconds=60), clock()]


async def test_run_forever_wakes_and_stops(sqlite_store: SqliteStore, clock: FakeClock) -> None:
    """The loop sleeps its idle poll (here 30 s) but a wake-up makes it look at once, and
    stop() ends it at once."""
    passes = asyncio.Queue[datetime]()

    async def tick(now: datetime) -> None:
        passes.put_nowait(now)

    ingestor = Ingestor(sqlite_store, POLICY, "group_key", clock, Metrics())
    scheduler = Scheduler(sqlite_store, ingestor, clock, [], [tick], idle_poll=IDLE)
    task = asyncio.create_task(scheduler.run_forever())
    await asyncio.wait_for(passes.get(), 5)
    scheduler.wake()
    await asyncio.wait_for(passes.get(), 5)
    scheduler.stop()
    await asyncio.wait_for(task, 5)


async def test_only_a_timer_earlier_than_the_next_look_wakes_the_loop(
    sqlite_store: SqliteStore, clock: FakeClock
) -> None:
    """A storm of new incidents, each due in minutes, wakes nothing while the loop sleeps its
    idle poll (here 30 s); a timer due before that wakes it at once."""
    passes = asyncio.Queue[datetime]()

    async def tick(now: datetime) -> None:
        passes.put_nowait(now)

    ingestor = Ingestor(sqlite_store, POLICY, "group_key", clock, Metrics())
    scheduler = Scheduler(sqlite_store, ingestor, clock, [], [tick], idle_poll=IDLE)
    task = asyncio.create_task(scheduler.run_forever())
    await asyncio.wait_for(passes.get(), 5)
    for _ in range(500):  # the pass ends with a read of the next timer, then the loop sleeps
        if scheduler.asleep_until is not None:
            break
        await asyncio.sleep(0.01)
    assert scheduler.asleep_until == clock() + timedelta(seconds=IDLE)
    scheduler.wake_for(clock() + timedelta(minutes=5))
    scheduler.wake_for(None)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(passes.get(), 0.3)
    scheduler.wake_for(clock() + timedelta(seconds=1))
    await asyncio.wait_for(passes.get(), 5)
    scheduler.stop()
    await asyncio.wait_for(task, 5)
