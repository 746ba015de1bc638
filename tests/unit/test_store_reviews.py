"""The store's part of post-incident reviews, on SQLite and PostgreSQL alike: an incident's
notifications read back by name (the review's timeline), and the reviews' reminders — due,
taken once with their ``github.pir_reminder`` effect queued in the same transaction, never
twice, not even by two replicas at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.engine import Decision, apply_notification
from bridge.identity import identity_key, identity_of
from bridge.model import EffectSpec, Incident
from bridge.review import slot
from bridge.store.base import IssueRecord, SentNotification, Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from store_support import LEASE, POLICY, alert, note, opened
from support import REPO


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    made: SqliteStore | PostgresStore
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "bridge.db", clock=clock)
    else:
        made = PostgresStore(request.getfixturevalue("postgres_db"), clock=clock)
    await made.open()
    yield made
    await made.close()


async def told_of(store: Store, clock: FakeClock) -> int:
    """A P0 incident opened with its sync, a Slack message, two emails and a summary."""
    n = note(alert(labels={"priority": "P0"}))
    identity = identity_of(n, "group_key")

    def decide(current: Incident | None) -> Decision:
        decision = apply_notification(None, n, clock(), POLICY)
        seq = decision.events[-1].seq
        decision.effects += [
            EffectSpec("notify.slack", {"event": "opened"}, event_seq=seq),
            EffectSpec("notify.email", {"to": "lead@example.com", "name": "Ops lead"}, seq),
            EffectSpec("notify.email", {"to": "cto@example.com", "name": "CTO"}, seq),
            EffectSpec("notify.email", {"to": "cto@example.com", "name": "CTO", "bundle": True}),
        ]
        return decision

    decision = await store.ingest(identity_key(identity), identity, decide)
    assert decision.incident is not None
    assert decision.incident.id is not None
    return decision.incident.id


async def test_notifications_are_read_back_by_name_with_their_state(
    store: Store, clock: FakeClock
) -> None:
    """Every notification effect of the incident, in order, by name (never the address), with
    its event, state and when it finished; GitHub effects are not notifications."""
    incident_id = await told_of(store, clock)
    [slack] = await store.claim_effects(clock(), 10, LEASE, lane="slack")
    clock.advance(2)
    await store.finish_effect(slack, clock())
    emails = await store.claim_effects(clock(), 10, LEASE, lane="email")
    lead = next(e for e in emails if e.payload.get("name") == "Ops lead")
    await store.fail_effect(lead, clock(), "550 no such user")
    sent = await store.notifications(incident_id)
    seq = sent[0].event_seq
    assert seq is not None
    assert sent == [
        SentNotification("notify.slack", "", seq, "done", clock()),
        SentNotification("notify.email", "Ops lead", seq, "failed", clock()),
        SentNotification("notify.email", "CTO", seq, "running", None),  # being sent
        SentNotification("notify.email", "CTO", None, "pending", None),  # a summary
    ]
    assert await store.notifications(incident_id + 1000) == []


async def outbox_of(store: Store, incident_id: int, clock: FakeClock) -> list[tuple[str, bool]]:
    """The GitHub lane's claimable effects of the incident: (kind, urgent)."""
    claimed = await store.claim_effects(clock(), 100, LEASE)
    mine: list[tuple[str, bool]] = [
        (e.kind, e.urgent) for e in claimed if e.incident_id == incident_id
    ]
    for effect in claimed:
        await store.finish_effect(effect, clock())
    return mine


async def test_a_review_is_reminded_of_once_when_due(store: Store, clock: FakeClock) -> None:
    """Not before its moment; at it, taken once with its effect (urgent for a P0); never again,
    whatever is scheduled after."""
    incident = await opened(store, clock, priority="P0")
    assert incident.id is not None
    await outbox_of(store, incident.id, clock)  # its sync, out of the way
    due = clock() + timedelta(hours=48)
    await store.schedule_review(incident.id, due)
    clock.advance(timedelta(hours=48) - timedelta(seconds=1))
    assert await store.remind_reviews(clock(), 10) == []
    clock.advance(1)
    assert await store.remind_reviews(clock(), 10) == [incident.id]
    assert await outbox_of(store, incident.id, clock) == [("github.pir_reminder", True)]
    clock.advance(timedelta(days=1))
    assert await store.remind_reviews(clock(), 10) == []
    await store.schedule_review(incident.id, clock() + timedelta(days=2))  # resolved again
    clock.advance(timedelta(days=9))
    assert await store.remind_reviews(clock(), 10) == []


async def test_a_reopened_incident_holds_its_reminder_until_it_resolves(
    store: Store, clock: FakeClock
) -> None:
    """Scheduled, then cancelled (None: the incident reopened), then due again."""
    incident = await opened(store, clock, priority="P1")
    assert incident.id is not None
    due = clock() + timedelta(hours=48)
    await store.schedule_review(incident.id, due)
    await store.schedule_review(incident.id, None)
    assert await store.remind_reviews(due + timedelta(days=1), 10) == []
    later = due + timedelta(hours=3)
    await store.schedule_review(incident.id, later)
    assert await store.remind_reviews(later, 10) == [incident.id]


async def test_reminders_are_taken_earliest_first_up_to_the_limit(
    store: Store, clock: FakeClock
) -> None:
    """Several due: the earliest first, ``limit`` at a time; a P2's reminder is not urgent."""
    first = await opened(store, clock, "g1", priority="P2")
    second = await opened(store, clock, "g2", priority="P0")
    assert first.id is not None
    assert second.id is not None
    await store.schedule_review(second.id, clock() + timedelta(hours=1))
    await store.schedule_review(first.id, clock() + timedelta(hours=2))
    clock.advance(timedelta(hours=3))
    assert await store.remind_reviews(clock(), 1) == [second.id]
    assert await store.remind_reviews(clock(), 1) == [first.id]
    await outbox_of(store, second.id, clock)
    assert await outbox_of(store, first.id, clock) == [("github.pir_reminder", False)]


async def test_two_replicas_take_a_due_review_once(postgres_db: str, clock: FakeClock) -> None:
    """PostgreSQL, two replicas asking at the same moment: one reminder effect in all."""
    replicas = [PostgresStore(postgres_db, clock=clock) for _ in range(2)]
    for replica in replicas:
        await replica.open()
    try:
        incident = await opened(replicas[0], clock, priority="P0")
        assert incident.id is not None
        await outbox_of(replicas[0], incident.id, clock)  # its sync, out of the way
        await replicas[0].schedule_review(incident.id, clock())
        taken = await asyncio.gather(*(r.remind_reviews(clock(), 10) for r in replicas))
        assert sorted(taken) == [[], [incident.id]]
        assert await outbox_of(replicas[1], incident.id, clock) == [("github.pir_reminder", True)]
        assert await outbox_of(replicas[1], incident.id, clock) == []
    finally:
        for replica in replicas:
            await replica.close()


async def test_the_reviews_record_stands_beside_the_incident_issues(
    store: Store, clock: FakeClock
) -> None:
    """The review's issue record, in its own slot, is never taken for the incident's issue:
    listings and the lookup by issue number see only the incident issue."""
    incident = await opened(store, clock, priority="P0")
    assert incident.id is not None
    await store.save_issue_record(
        IssueRecord(incident.id, slot(REPO), 5, "https://github.example/5", "[PIR]", "", "")
    )
    assert await store.incident_by_issue(REPO, 5) is None
    assert (await store.issue_record(incident.id, slot(REPO))) is not None
    [row] = await store.list_incidents(REPO)
    assert row.issue_number is None
