"""A message still failing at its response deadline: the policy stamps the deadline, the outbox
retries no later than it and, failing at it, tells the person on their next channel once; the
fallback rule for late messages and failed bundles.

The outbox runs against a real SQLite store; the adapter is a function raising the error under
test, and time is a fake clock shared by the outbox and the store.
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.effects import EffectError
from bridge.engine import Decision
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Incident, Priority, TimelineEvent
from bridge.notify.fallback import Contacts, fallback_for
from bridge.notify.policy import Audience, Recipient, deadline, notifications
from bridge.outbox import Outbox
from bridge.store.base import LATE, ClaimedEffect, bundle_payload
from bridge.store.sqlite import SqliteStore
from store_support import T0, opened

ALICE = Recipient("Alice Ops", "alice@example.com", "+15550001111")
BOB = Recipient("Bob Lead", "bob@example.com", None)
ERIN = Recipient("Erin Oncall", "erin@example.com", None)
CONTACTS = Contacts(email=True, sms=True, stakeholders=(ALICE, BOB), escalation=(ERIN,))
RESPOND = {Priority.P0: timedelta(minutes=5), Priority.P1: timedelta(minutes=15)}


# -- the policy stamps each message's deadline ----------------------------------------------


def p1(respond_by: datetime | None = T0 + timedelta(minutes=15)) -> Incident:
    return Incident(
        key="k" * 64,
        identity="id",
        kind="incident",
        receiver="r",
        group_key="g",
        group_labels={},
        state="open",
        priority=Priority.P1,
        priority_rule="test",
        summary="checkout down",
        opened_at=T0,
        earliest_starts_at=T0,
        respond_by=respond_by,
        resolve_by=None,
        number=1,
    )


AUDIENCE = Audience(
    slack=True,
    email=True,
    sms=True,
    stakeholders=(ALICE, BOB),
    channels={p: frozenset({"email"}) for p in Priority},
    respond_by=lambda priority, start: start + RESPOND.get(priority, timedelta(hours=2)),
)


@pytest.mark.parametrize(
    ("event_at", "respond_by", "expected"),
    [
        (T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=15)),  # the opening
        (T0 + timedelta(minutes=5), T0 + timedelta(minutes=15), T0 + timedelta(minutes=20)),
        (T0 + timedelta(hours=2), T0 + timedelta(minutes=15), T0 + timedelta(hours=2, minutes=15)),
        (T0, None, None),  # no response deadline, no late message
    ],
)
def test_a_messages_deadline_is_the_response_deadline_or_the_response_time_after_its_event(
    event_at: datetime, respond_by: datetime | None, expected: datetime | None
) -> None:
    """The incident's response deadline; for an event after it the priority's response time
    counted from the event, so a resolution email two hours in is not late at once."""
    event = TimelineEvent(seq=1, at=event_at, kind="resolved", text="resolved")
    assert deadline(p1(respond_by), event, AUDIENCE) == expected


def test_every_notification_carries_its_deadline() -> None:
    """Slack's message and each stakeholder's email carry the deadline, as ISO 8601."""
    opened_at = TimelineEvent(seq=1, at=T0, kind="opened", text="opened")
    decision = Decision("opened", incident=p1(), changed=True, events=[opened_at])
    effects = notifications(decision, AUDIENCE)
    assert [e.kind for e in effects] == ["notify.slack", "notify.email", "notify.email"]
    assert {e.payload["deadline"] for e in effects} == {(T0 + timedelta(minutes=15)).isoformat()}
    without = Decision("opened", incident=p1(None), changed=True, events=[opened_at])
    assert all("deadline" not in e.payload for e in notifications(without, AUDIENCE))


# -- the fallback rule for late messages and failed bundles -----------------------------------


def test_a_message_already_told_instead_at_its_deadline_is_not_told_there_again() -> None:
    """Late (told by SMS at the deadline), then refused for good: no second text."""
    payload = {"to": ALICE.email, "name": ALICE.name, "event_seq": 1, LATE: True}
    assert fallback_for("notify.email", payload, CONTACTS) == []


@pytest.mark.parametrize(
    ("kind", "to", "expected"),
    [
        ("notify.email", "alice@example.com", ("notify.sms", "+15550001111")),
        ("notify.sms", "+15550001111", ("notify.email", "alice@example.com")),
        ("notify.email", "bob@example.com", None),  # no phone: nobody to take it over
    ],
)
def test_a_failed_bundle_is_taken_over_by_the_persons_bundle_on_their_next_channel(
    kind: str, to: str, expected: tuple[str, str] | None
) -> None:
    """One bundle on the other channel (one message, whatever was held), never one message
    per held notification; it does not fall back again."""
    specs = fallback_for(kind, bundle_payload(to, "x"), CONTACTS)
    if expected is None:
        assert specs == []
        return
    [spec] = specs
    assert (spec.kind, spec.payload["to"]) == expected
    assert spec.payload["bundle"] is True
    assert spec.payload["fallback_for"] == to
    assert spec.event_seq is None
    assert fallback_for(spec.kind, spec.payload, CONTACTS) == []


# -- the outbox at the deadline ---------------------------------------------------------------

DEADLINE = T0 + timedelta(minutes=15)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "s.db", clock=clock)
    await s.open()
    yield s
    await s.close()


class Adapter:
    """The email channel's stand-in: raises ``error`` (None: sends) and counts attempts."""

    def __init__(self) -> None:
        self.error: EffectError | None = EffectError("SMTP 451: try later", retryable=True)
        self.attempts = 0

    async def __call__(self, effect: ClaimedEffect) -> None:
        self.attempts += 1
        if self.error is not None:
            raise self.error


async def queue_email(store: SqliteStore, incident: Incident, due: datetime) -> None:
    """An email to Alice about the incident's opening, its deadline ``due``."""
    payload = {
        "to": ALICE.email,
        "name": ALICE.name,
        "event": "opened",
        "deadline": due.isoformat(),
    }
    email = EffectSpec("notify.email", payload, event_seq=1)

    def decide(current: Incident | None) -> Decision:
        assert current is not None
        return Decision("updated", incident=copy.copy(current), changed=True, effects=[email])

    await store.ingest(incident.key, incident.identity, decide)


async def email_to_alice(store: SqliteStore, clock: FakeClock) -> Incident:
    """A P1 incident with one email to Alice due now, its deadline 15 minutes away."""
    incident = await opened(store, clock, group="g", priority="P1")
    await queue_email(store, incident, DEADLINE)
    return incident


def rows(store: SqliteStore, lane: str) -> list[tuple[Any, ...]]:
    """(state, attempts, next_attempt_at as a datetime) of the lane's effects."""
    with closing(sqlite3.connect(store.path)) as conn:
        found = conn.execute(
            "SELECT state, attempts, next_attempt_at FROM outbox WHERE lane = ? ORDER BY id",
            (lane,),
        ).fetchall()
    return [(s, a, datetime.fromtimestamp(at, T0.tzinfo)) for s, a, at in found]


def worker(store: SqliteStore, adapter: Adapter, clock: FakeClock, metrics: Metrics) -> Outbox:
    return Outbox(
        store,
        adapter,
        clock,
        metrics,
        lane="email",
        fallback=lambda effect: fallback_for(effect.kind, effect.payload, CONTACTS),
    )


def fallbacks(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "incident_bridge_notify_fallbacks_total", {"channel": "email", "reason": reason}
    )
    assert value is not None
    return value


@pytest.mark.parametrize(
    ("before", "attempts", "retry_after", "due", "late"),
    [
        # Well before the deadline: the usual backoff (about a second).
        (600, 0, None, None, False),
        # 30 s before, backoff at its 4-5 minutes: the next attempt is at the deadline itself.
        (30, 9, None, DEADLINE, False),
        # 30 s before, the far side asks for 20 s: honoured, still before the deadline.
        (30, 0, 20.0, None, False),
        # 30 s before, the far side asks for 2 minutes: it cannot go out in time, told now.
        (30, 0, 120.0, None, True),
        # At the deadline and after it: still failing, told now.
        (0, 3, None, None, True),
        (-300, 5, None, None, True),
    ],
)
async def test_a_retry_is_never_later_than_the_deadline_and_failing_at_it_falls_back(
    store: SqliteStore,
    clock: FakeClock,
    before: int,
    attempts: int,
    retry_after: float | None,
    due: datetime | None,
    late: bool,
) -> None:
    """The retry is scheduled by the usual backoff, but never past the message's deadline;
    failing at or past it, or told to wait past it, the message is retried *and* Alice is
    texted instead, with the timeline saying so."""
    incident = await email_to_alice(store, clock)
    assert incident.id is not None
    await store.execute_for_test(f"UPDATE outbox SET attempts = {attempts:d}")  # noqa: S608
    clock.now = DEADLINE - timedelta(seconds=before)
    adapter, metrics = Adapter(), Metrics()
    adapter.error = EffectError("SMTP 451: try later", retryable=True, retry_after=retry_after)
    await worker(store, adapter, clock, metrics).run_once()
    [(state, tries, next_at)] = rows(store, "email")
    assert (state, tries) == ("pending", attempts + 1)
    if due is not None:
        assert next_at == due
    if retry_after is not None:
        assert next_at >= clock() + timedelta(seconds=retry_after)
    if not late:
        assert next_at <= DEADLINE
    texts = rows(store, "sms")
    lines = [e.text for e in await store.load_events(incident.id, 50) if e.kind == "effect_failed"]
    if late:
        assert len(texts) == 1
        assert lines == [
            "notify.email still failing at the response deadline, retrying: SMTP 451: try later;"
            " told instead: sms to Alice Ops"
        ]
        assert fallbacks(metrics, "late") == 1
    else:
        assert (texts, lines) == ([], [])
        assert fallbacks(metrics, "late") == 0


async def test_failing_past_the_deadline_tells_the_person_once_then_keeps_retrying(
    store: SqliteStore, clock: FakeClock
) -> None:
    """Every attempt after the deadline fails again: one text, one timeline line, however
    many retries; the email goes once the server takes it. A refusal for good after that
    texts nobody a second time."""
    incident = await email_to_alice(store, clock)
    assert incident.id is not None
    adapter, metrics = Adapter(), Metrics()
    outbox = worker(store, adapter, clock, metrics)
    for _ in range(30):  # 30 minutes of a dead SMTP server, drained every minute
        await outbox.drain()
        clock.advance(60)
    assert adapter.attempts > 10
    assert len(rows(store, "sms")) == 1
    adapter.error = None
    clock.advance(300)
    await outbox.drain()
    assert [r[0] for r in rows(store, "email")] == ["done"]
    assert fallbacks(metrics, "late") == 1

    await queue_email(store, incident, DEADLINE)  # another one, its deadline long past
    adapter.error = EffectError("SMTP 451", retryable=True)
    clock.advance(3600)
    await outbox.drain()  # late at once: texted
    adapter.error = EffectError("SMTP 550: no such user", retryable=False)
    clock.advance(600)
    await outbox.drain()  # refused for good: the text already went
    assert len(rows(store, "sms")) == 2
    lines = [e.text for e in await store.load_events(incident.id, 50) if e.kind == "effect_failed"]
    assert lines[-1] == "notify.email failed permanently: SMTP 550: no such user"
    assert fallbacks(metrics, "failed") == 1
