"""The shared store: PostgreSQL through an asyncpg connection pool, safe for several replicas.

Same behaviour as the SQLite backend; what differs is how concurrency is made safe when more
than one process writes:

- **Migrations** run in one transaction under a fixed advisory lock, so replicas starting
  together migrate once; a database newer than this code is refused.
- **Ingest** is one transaction that first takes ``pg_advisory_xact_lock`` on a 64-bit hash of
  the incident key, then reads the key's latest incident: notifications for one alert group are
  serialized across replicas, and the second of two duplicates meets the first's result in the
  engine (``unchanged``). Numbers come from a ``counters`` row bumped in the same transaction
  (``INSERT … ON CONFLICT DO UPDATE … RETURNING``): the row lock orders concurrent openings
  and a rollback leaves no gap. Anything else that rewrites an incident (``fail_effect``,
  ``restore``) takes the same key lock first.
- **Claims** lock candidate outbox rows with ``FOR UPDATE SKIP LOCKED``, so replicas claiming at
  once never take the same row; each claim bumps ``claim`` (the fencing token) and sets a lease.
  Finishing, retrying or failing applies only to ``state = 'running'`` with the same token.
  ``open`` does not touch running rows (another replica may be running them): a lapsed lease is
  reclaimed by ``claim_effects``, with ``outcome_unknown`` set.

Every database or network failure becomes ``StoreUnavailable``; its message never holds the
connection URL or its password. Commits use PostgreSQL's default ``synchronous_commit = on``:
a 200 means the notification is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from bridge import storm as storms
from bridge.engine import Decision
from bridge.model import (
    EffectSpec,
    Incident,
    Priority,
    StormMember,
    TimelineEvent,
    lane_of,
    number_series,
)
from bridge.store import codec
from bridge.store.base import (
    LATE,
    BundleSlot,
    ClaimedEffect,
    Decide,
    DueIncident,
    HeldNotice,
    IncidentHistory,
    IncidentRow,
    IssueRecord,
    OutboxStats,
    PruneResult,
    SentNotification,
    StoreUnavailable,
    Storm,
    WatchedIssue,
    bundle_payload,
    failure_effects,
    failure_text,
    late_text,
    recipient_of,
)
from bridge.store.postgres_schema import MIGRATIONS, MIGRATIONS_TABLE

log = structlog.get_logger(__name__)

# A string: the runtime class is not subscriptable, only the stubs' is.
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# Failures of the database or the way to it. TimeoutError (a command or an acquire running past
# its timeout) is an OSError. A ``decide`` raising anything else propagates unchanged.
_DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)

TIMEOUT = 5.0  # connect, acquire and every command: a stuck database is a 503, not a hang
# A schema migration runs once, at start-up, and may rewrite a large table.
_MIGRATION_TIMEOUT = 60.0
# Advisory locks: the two-key form (class, object) for the migration lock, the one-key (bigint)
# form for incident keys. PostgreSQL keeps the two forms apart, so they can never collide.
_LOCK_CLASS = 0x49425247  # "IBRG"
_MIGRATION_LOCK = 1
PRUNE_BATCH = 5000


def key_lock(key: str) -> int:
    """The advisory lock id of an incident key: the first 64 bits of its SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def _secrets_in(url: str) -> list[str]:
    """The strings a message must never show: the URL and its password (raw and decoded)."""
    found = [url]
    try:
        parts = urlsplit(url)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]
    except ValueError:
        passwords = []
    for password in passwords:
        if password:
            found += [password, unquote(password)]
    return sorted(set(found), key=len, reverse=True)


def _label(kind: str, number: int) -> str:
    return f"{'MAINT' if kind == 'maint' else 'INC'}-{number:03d}"


def _changed(status: str) -> int:
    """Rows changed, from a command status such as ``DELETE 42``."""
    return int(status.rsplit(" ", 1)[-1])


class _Exists(Exception):
    """restore: an incident of that kind and number is already stored (rolls back)."""


async def _lock_key(conn: Conn, key: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", key_lock(key))


async def _migrate(conn: Conn) -> None:
    """Apply the missing migrations in one transaction, under the migration lock: a replica
    that waited for another one's migration finds the schema current and applies nothing."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            _LOCK_CLASS,
            _MIGRATION_LOCK,
            timeout=_MIGRATION_TIMEOUT,
        )
        await conn.execute(MIGRATIONS_TABLE)
        version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        if version > len(MIGRATIONS):
            raise StoreUnavailable(
                f"database schema version {version} is newer than this bridge knows "
                f"({len(MIGRATIONS)}); upgrade incident-bridge"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute(script, timeout=_MIGRATION_TIMEOUT)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", number)
            log.info("store_migrated", version=number)


async def _next_number(conn: Conn, kind: str) -> int:
    value = await conn.fetchval(
        "INSERT INTO counters (name, value) VALUES ($1, 1)"
        " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
        f"number:{kind}",
    )
    return int(value)


async def _save_incident(conn: Conn, incident: Incident, now: datetime, *, new: bool) -> None:
    data = codec.incident_to_json(incident)
    if new:
        incident.number = await _next_number(conn, incident.kind)
        incident.id = await conn.fetchval(
            "INSERT INTO incidents (key, kind, number, state, priority, opened_at, resolved_at,"
            " data, updated_at, due_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " RETURNING id",
            incident.key,
            incident.kind,
            incident.number,
            incident.state,
            str(incident.priority),
            incident.opened_at,
            incident.resolved_at,
            data,
            now,
            incident.due_at,
        )
    else:
        await conn.execute(
            "UPDATE incidents SET state = $1, priority = $2, resolved_at = $3, data = $4,"
            " updated_at = $5, due_at = $6 WHERE id = $7",
            incident.state,
            str(incident.priority),
            incident.resolved_at,
            data,
            now,
            incident.due_at,
            incident.id,
        )


async def _insert_events(conn: Conn, incident_id: int, events: list[TimelineEvent]) -> None:
    if events:
        await conn.executemany(
            "INSERT INTO events (incident_id, seq, at, kind, text, data)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [
                # PostgreSQL's text cannot hold NUL, which alert text may (an alertname in
                # "Alert fired: …"); left out, as every renderer leaves control characters out.
                (
                    incident_id,
                    e.seq,
                    e.at,
                    e.kind,
                    e.text.replace("\x00", ""),
                    codec.event_data_to_json(e),
                )
                for e in events
            ],
        )


async def _insert_effects(conn: Conn, incident_id: int, decision: Decision, now: datetime) -> None:
    urgent = decision.incident is not None and decision.incident.urgent
    for effect in decision.effects:
        if effect.kind == "github.sync" and not decision.is_new:
            # FOR UPDATE: a replica claiming that pending sync right now either finished its
            # claim (we then see it running and add a sync) or waits for our commit (and its
            # sync renders the state we are writing). Without the lock, a claim slipping in
            # between this read and our commit would render the old state and nothing would
            # follow it.
            last = await conn.fetchrow(
                "SELECT kind, state FROM outbox WHERE incident_id = $1 AND lane = 'github'"
                " AND state IN ('pending', 'running') ORDER BY id DESC LIMIT 1 FOR UPDATE",
                incident_id,
            )
            if last is not None and last["kind"] == "github.sync" and last["state"] == "pending":
                continue  # coalesced: the pending sync will render the latest state
        payload = dict(effect.payload)
        if effect.event_seq is not None:
            payload["event_seq"] = effect.event_seq
        await conn.execute(
            "INSERT INTO outbox (incident_id, kind, payload, state, created_at, next_attempt_at,"
            " urgent, lane, recipient) VALUES ($1, $2, $3, 'pending', $4, $4, $5, $6, $7)",
            incident_id,
            effect.kind,
            codec.dumps(payload),
            now,
            urgent,
            lane_of(effect.kind),
            recipient_of(effect.kind, payload),
        )
    if urgent and not decision.is_new:
        # Raised to P0/P1: what the incident already has queued goes first too.
        await conn.execute(
            "UPDATE outbox SET urgent = true WHERE incident_id = $1 AND state IN"
            " ('pending', 'running') AND NOT urgent",
            incident_id,
        )


async def _record_failure(
    conn: Conn,
    effect: ClaimedEffect,
    now: datetime,
    text: str,
    fallback: Sequence[EffectSpec],
    *,
    late: bool,
) -> None:
    """The timeline line of a failing effect and, in the same transaction, its fallback: the
    message on the person's next channel, or a bundle taking over what a failed one held. The
    caller holds the incident's key lock."""
    row = await conn.fetchrow(
        "SELECT number, data FROM incidents WHERE id = $1", effect.incident_id
    )
    assert row is not None  # incidents are never deleted, and the caller holds its key lock
    incident = codec.incident_from_json(
        row["data"], row_id=effect.incident_id, number=row["number"]
    )
    incident.event_seq += 1
    data: dict[str, Any] = {"effect": effect.kind, "effect_id": effect.id}
    if late:
        data["late"] = True
    event = TimelineEvent(
        seq=incident.event_seq, at=now, kind="effect_failed", text=text, data=data
    )
    await _save_incident(conn, incident, now, new=False)
    await _insert_events(conn, effect.incident_id, [event])
    queued_effects = failure_effects(effect.kind, incident.kind, fallback)
    if queued_effects:
        queued = Decision(outcome="updated", incident=incident, effects=queued_effects)
        await _insert_effects(conn, effect.incident_id, queued, now)
    for spec in fallback:
        if spec.payload.get("bundle"):
            await _take_over_bundle(conn, effect, spec, now)


async def _take_over_bundle(
    conn: Conn, failed: ClaimedEffect, spec: EffectSpec, now: datetime
) -> None:
    """What the failed bundle held moves to the person's bundle on ``spec``'s channel: their
    pending one, else a new one due now (its window decides when it goes)."""
    if not await conn.fetchval("SELECT 1 FROM notify_held WHERE bundle_id = $1 LIMIT 1", failed.id):
        return
    channel = lane_of(spec.kind)
    recipient = str(spec.payload["to"])
    # That person's slots and bundle serialize on their advisory key lock (after the
    # incident's: nothing takes the two the other way round).
    await _lock_key(conn, f"notify:{channel}:{recipient}")
    bundle_id = await conn.fetchval(
        "SELECT o.id FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
        " WHERE h.channel = $1 AND h.recipient = $2 AND o.state = 'pending'"
        " LIMIT 1 FOR UPDATE OF o",
        channel,
        recipient,
    )
    if bundle_id is None:
        bundle_id = await conn.fetchval(
            "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
            " next_attempt_at, urgent, lane, bundle, recipient) VALUES ($1, $2, $3, 'pending',"
            " $4, $4, $5, $6, true, $7) RETURNING id",
            failed.incident_id,
            spec.kind,
            codec.dumps(spec.payload),
            now,
            failed.urgent,
            channel,
            recipient,
        )
    await conn.execute(
        "UPDATE notify_held SET bundle_id = $1, channel = $2, recipient = $3 WHERE bundle_id = $4",
        bundle_id,
        channel,
        recipient,
        failed.id,
    )


# Storm membership changes (joining, ending a storm) serialize on this advisory key lock.
_STORM_LOCK = "storm-membership"


async def _pending_last(conn: Conn, incident_id: int, kind: str) -> bool:
    """Whether the incident's last unfinished GitHub effect is a pending ``kind`` (to coalesce
    into; a message queued after it on another lane does not stop that); FOR UPDATE, as in
    ``_insert_effects``, so a claim cannot slip in before our commit."""
    last = await conn.fetchrow(
        "SELECT kind, state FROM outbox WHERE incident_id = $1 AND lane = 'github' AND state IN"
        " ('pending', 'running') ORDER BY id DESC LIMIT 1 FOR UPDATE",
        incident_id,
    )
    return last is not None and last["kind"] == kind and last["state"] == "pending"


async def _queue_storm(conn: Conn, storm_id: int, not_before: datetime, now: datetime) -> None:
    if await _pending_last(conn, storm_id, "github.storm"):
        return  # coalesced: the pending edit renders the storm as it is when it runs
    edited = await conn.fetchval("SELECT edited_at FROM storms WHERE incident_id = $1", storm_id)
    await conn.execute(
        "INSERT INTO outbox (incident_id, kind, payload, state, created_at, next_attempt_at,"
        " urgent) VALUES ($1, 'github.storm', '{}', 'pending', $2, $3, true)",
        storm_id,
        now,
        storms.due_at(not_before, edited),
    )


# Claiming: the incident's oldest unfinished effect only, so its effects run in order. Two
# statements, each walking its own partial index in order and stopping at the limit (an OR of
# the two would sort every candidate). SKIP LOCKED: rows another replica is claiming (or an
# ingest is coalescing into) are left to it; a row claimed meanwhile is re-checked against the
# WHERE clause once locked and dropped, since it is then running with a lease in the future.
# The two differ only in their first WHERE line and their ORDER BY. The order is per incident,
# lane and recipient (one person's failing mailbox holds back only their own messages); storm
# control's bundles
# (``bundle``) stand apart from the order: they tell a person about several incidents, so they
# neither wait for nor hold back the messages of the incident they were queued on.
_CLAIM = """
WITH picked AS (
    SELECT o.id FROM outbox o
    WHERE {which}
      AND o.lane = $4
      AND (o.bundle OR o.id = (SELECT min(p.id) FROM outbox p
                               WHERE p.incident_id = o.incident_id AND p.lane = o.lane
                                 AND p.recipient = o.recipient AND NOT p.bundle
                                 AND p.state IN ('pending', 'running')))
    ORDER BY {order}
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
)
UPDATE outbox u SET state = 'running', claim = u.claim + 1, lease_until = $3,
                    outcome_unknown = u.outcome_unknown OR u.state = 'running'
FROM picked, incidents i
WHERE u.id = picked.id AND i.id = u.incident_id
RETURNING u.id, u.incident_id, u.kind, u.payload, u.attempts, u.claim, u.created_at,
          u.outcome_unknown, u.next_attempt_at, u.urgent, i.kind AS incident_kind, i.number
"""
CLAIM_LAPSED = _CLAIM.format(
    which="o.state = 'running' AND o.lease_until <= $1", order="o.lease_until"
)
CLAIM_DUE = _CLAIM.format(
    which="o.state = 'pending' AND o.next_attempt_at <= $1",
    order="o.urgent DESC, o.next_attempt_at, o.id",
)

_ISSUE_UPSERT = (
    "INSERT INTO github_issues (incident_id, repository, number, url, title, body, region,"
    " labels, state, etag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (incident_id, repository) DO UPDATE SET number = excluded.number,"
    " url = excluded.url, title = excluded.title, body = excluded.body,"
    " region = excluded.region, labels = excluded.labels, state = excluded.state,"
    " etag = excluded.etag"
)


def _issue_values(record: IssueRecord) -> tuple[Any, ...]:
    return (
        record.incident_id,
        record.repository,
        record.number,
        record.url,
        record.title,
        record.body,
        record.region,
        codec.dumps(sorted(record.labels)),
        record.state,
        record.etag,
    )


class PostgresStore:
    """The PostgreSQL backend of the Store protocol."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime],
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = TIMEOUT,
    ) -> None:
        self._url = url
        self._secrets = _secrets_in(url)
        self._clock = clock
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None

    # -- errors ----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<secret>")
        return text

    def _unavailable(self, error: BaseException) -> StoreUnavailable:
        detail = str(error) or type(error).__name__
        return StoreUnavailable(self._scrub(f"postgresql: {detail}"))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except _DB_ERRORS as error:
            raise self._unavailable(error) from error

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            pool = await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                command_timeout=self._timeout,
                server_settings={
                    "application_name": "incident-bridge",
                    # A replica stalled inside a transaction must not hold incident locks long.
                    "idle_in_transaction_session_timeout": "15s",
                },
            )
        except (*_DB_ERRORS, ValueError) as error:
            # ``from None``: a connection error's own text may repeat the URL; ours is scrubbed.
            raise self._unavailable(error) from None
        try:
            async with pool.acquire(timeout=self._timeout) as conn:
                await _migrate(conn)
        except BaseException as error:
            pool.terminate()
            if isinstance(error, _DB_ERRORS):
                raise self._unavailable(error) from error
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._timeout)
        except (*_DB_ERRORS, TimeoutError):
            pool.terminate()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("store is closed")
        with self._errors():
            async with pool.acquire(timeout=self._timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def execute_for_test(self, sql: str) -> None:
        """Run one statement (tests use it to make real faults)."""
        async with self._connection() as conn:
            await conn.execute(sql)

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.fetchval("SELECT 1")

    # -- ingest ----------------------------------------------------------------------------

    async def ingest(self, key: str, identity: str, decide: Decide) -> Decision:
        async with self._transaction() as conn:
            await _lock_key(conn, key)
            row = await conn.fetchrow(
                "SELECT id, number, data FROM incidents WHERE key = $1 ORDER BY id DESC LIMIT 1",
                key,
            )
            current = (
                codec.incident_from_json(row["data"], row_id=row["id"], number=row["number"])
                if row
                else None
            )
            decision = decide(current)
            incident = decision.incident
            if not decision.changed or incident is None:
                return decision
            now = self._clock()
            if decision.is_new:
                incident.key = key
                incident.identity = identity
            await _save_incident(conn, incident, now, new=decision.is_new)
            assert incident.id is not None
            await _insert_events(conn, incident.id, decision.events)
            await _insert_effects(conn, incident.id, decision, now)
            return decision

    # -- outbox ----------------------------------------------------------------------------

    async def claim_effects(
        self, now: datetime, limit: int, lease: timedelta, lane: str = "github"
    ) -> list[ClaimedEffect]:
        lease_until = now + lease
        async with self._transaction() as conn:
            lapsed = await conn.fetch(CLAIM_LAPSED, now, limit, lease_until, lane)
            due = (
                await conn.fetch(CLAIM_DUE, now, limit - len(lapsed), lease_until, lane)
                if len(lapsed) < limit
                else []
            )
        rows = sorted(lapsed, key=lambda r: r["id"]) + sorted(
            due, key=lambda r: (not r["urgent"], r["next_attempt_at"], r["id"])
        )
        return [
            ClaimedEffect(
                id=row["id"],
                incident_id=row["incident_id"],
                kind=row["kind"],
                payload=codec.loads(row["payload"]),
                attempts=row["attempts"],
                claim=row["claim"],
                created_at=row["created_at"],
                outcome_unknown=row["outcome_unknown"],
                incident_label=_label(row["incident_kind"], row["number"]),
                urgent=row["urgent"],
            )
            for row in rows
        ]

    async def finish_effect(self, effect: ClaimedEffect, now: datetime) -> bool:
        async with self._connection() as conn:
            done = await conn.fetchval(
                "UPDATE outbox SET state = 'done', finished_at = $1, lease_until = NULL,"
                " attempts = attempts + 1, outcome_unknown = false, last_error = NULL"
                " WHERE id = $2 AND claim = $3 AND state = 'running' RETURNING id",
                now,
                effect.id,
                effect.claim,
            )
        return done is not None

    async def retry_effect(
        self,
        effect: ClaimedEffect,
        at: datetime,
        error: str,
        *,
        outcome_unknown: bool,
        fallback: Sequence[EffectSpec] | None = None,
    ) -> bool:
        retry = (
            "UPDATE outbox SET state = 'pending', next_attempt_at = $1, last_error = $2,"
            " attempts = attempts + 1, outcome_unknown = $3, lease_until = NULL,"
            " payload = coalesce($6, payload)"
            " WHERE id = $4 AND claim = $5 AND state = 'running' RETURNING id"
        )
        if fallback is None or effect.payload.get(LATE):
            async with self._connection() as conn:
                done = await conn.fetchval(
                    retry, at, error[:2000], outcome_unknown, effect.id, effect.claim, None
                )
            return done is not None
        # Still failing at its deadline: retried, marked, and its person told on their next
        # channel, in one transaction. Only the claim's holder writes the row, so the claimed
        # payload is the stored one.
        marked = codec.dumps({**effect.payload, LATE: True})
        now = self._clock()
        async with self._transaction() as conn:
            key = await conn.fetchval("SELECT key FROM incidents WHERE id = $1", effect.incident_id)
            if key is None:
                return False
            await _lock_key(conn, key)  # the timeline changes: the same lock as ingest
            done = await conn.fetchval(
                retry, at, error[:2000], outcome_unknown, effect.id, effect.claim, marked
            )
            if done is None:
                return False
            text = late_text(effect.kind, error, fallback)
            await _record_failure(conn, effect, now, text, fallback, late=True)
            return True

    async def fail_effect(
        self,
        effect: ClaimedEffect,
        now: datetime,
        error: str,
        fallback: Sequence[EffectSpec] = (),
    ) -> bool:
        async with self._transaction() as conn:
            key = await conn.fetchval("SELECT key FROM incidents WHERE id = $1", effect.incident_id)
            if key is None:
                return False
            # The incident's timeline and event_seq change: the same lock as ingest.
            await _lock_key(conn, key)
            failed = await conn.fetchval(
                "UPDATE outbox SET state = 'failed', finished_at = $1, last_error = $2,"
                " attempts = attempts + 1, lease_until = NULL"
                " WHERE id = $3 AND claim = $4 AND state = 'running' RETURNING id",
                now,
                error[:2000],
                effect.id,
                effect.claim,
            )
            if failed is None:
                return False
            text = failure_text(effect.kind, error, fallback)
            await _record_failure(conn, effect, now, text, fallback, late=False)
            # What a failed bundle held and no fallback took over is not told by it any more.
            await conn.execute("DELETE FROM notify_held WHERE bundle_id = $1", effect.id)
            return True

    async def next_due(self, lane: str = "github") -> datetime | None:
        # Only effects a claim could take: a pending row waiting behind its incident's older
        # effect (running on another replica, say) is not due, or every idle worker would spin
        # on it until that effect ends.
        async with self._connection() as conn:
            due: datetime | None = await conn.fetchval(
                "SELECT o.next_attempt_at FROM outbox o WHERE o.state = 'pending'"
                " AND o.lane = $1 AND (o.bundle OR NOT EXISTS (SELECT 1 FROM outbox p"
                " WHERE p.incident_id = o.incident_id AND p.lane = o.lane"
                " AND p.recipient = o.recipient AND NOT p.bundle"
                " AND p.state IN ('pending', 'running') AND p.id < o.id))"
                " ORDER BY o.next_attempt_at, o.id LIMIT 1",
                lane,
            )
        return due

    async def outbox_stats(self) -> OutboxStats:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) FROM outbox"
                " WHERE state IN ('pending', 'running', 'failed') GROUP BY state"
            )
            oldest = await conn.fetchval(
                "SELECT min(created_at) FROM outbox WHERE state = 'pending'"
            )
            queued = await conn.fetch(
                "SELECT i.priority, count(*) FROM outbox o JOIN incidents i"
                " ON i.id = o.incident_id WHERE o.state IN ('pending', 'running')"
                " GROUP BY i.priority"
            )
        counts = {row[0]: int(row[1]) for row in rows}
        return OutboxStats(
            pending=counts.get("pending", 0),
            running=counts.get("running", 0),
            failed=counts.get("failed", 0),
            oldest_pending=oldest,
            by_priority={row[0]: int(row[1]) for row in queued},
        )

    # -- incidents -------------------------------------------------------------------------

    async def load_incident(self, incident_id: int) -> Incident | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT number, data FROM incidents WHERE id = $1", incident_id
            )
        if row is None:
            return None
        return codec.incident_from_json(row["data"], row_id=incident_id, number=row["number"])

    async def load_events(self, incident_id: int, limit: int) -> list[TimelineEvent]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT seq, at, kind, text, data FROM events WHERE incident_id = $1"
                " ORDER BY seq DESC LIMIT $2",
                incident_id,
                limit,
            )
        return [_event(row) for row in reversed(rows)]

    async def load_event(self, incident_id: int, seq: int) -> TimelineEvent | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT seq, at, kind, text, data FROM events WHERE incident_id = $1 AND seq = $2",
                incident_id,
                seq,
            )
        return _event(row) if row is not None else None

    async def issue_record(self, incident_id: int, repository: str) -> IssueRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT number, url, title, body, region, labels, state, etag FROM github_issues"
                " WHERE incident_id = $1 AND repository = $2",
                incident_id,
                repository,
            )
        if row is None:
            return None
        return IssueRecord(
            incident_id=incident_id,
            repository=repository,
            number=row["number"],
            url=row["url"],
            title=row["title"],
            body=row["body"],
            region=row["region"],
            labels=set(codec.loads(row["labels"])),
            state=row["state"],
            etag=row["etag"],
        )

    async def save_issue_record(self, record: IssueRecord) -> None:
        async with self._connection() as conn:
            await conn.execute(_ISSUE_UPSERT, *_issue_values(record))

    async def list_incidents(
        self, repository: str, *, limit: int = 100, state: str | None = None
    ) -> list[IncidentRow]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT i.id, i.number, i.data, g.number AS issue_number, g.url FROM incidents i"
                " LEFT JOIN github_issues g ON g.incident_id = i.id AND g.repository = $1"
                " WHERE ($2::text IS NULL OR i.state = $2::text) ORDER BY i.id DESC LIMIT $3",
                repository,
                state,
                limit,
            )
        return [
            IncidentRow(
                incident=codec.incident_from_json(
                    row["data"], row_id=row["id"], number=row["number"]
                ),
                issue_number=row["issue_number"],
                issue_url=row["url"],
            )
            for row in rows
        ]

    async def watched_issues(
        self, repository: str, *, resolved_since: datetime, open_limit: int, resolved_limit: int
    ) -> list[WatchedIssue]:
        head = (
            "SELECT i.id, g.number, i.priority, i.state FROM incidents i"
            " JOIN github_issues g ON g.incident_id = i.id AND g.repository = $1"
            " WHERE i.kind = 'incident' AND "
        )
        async with self._connection() as conn:
            rows = list(
                await conn.fetch(
                    f"{head}i.state = 'open' ORDER BY i.id DESC LIMIT $2", repository, open_limit
                )
            )
            rows += await conn.fetch(
                f"{head}i.state = 'resolved' AND i.resolved_at >= $2 ORDER BY i.id DESC LIMIT $3",
                repository,
                resolved_since,
                resolved_limit,
            )
        return [
            WatchedIssue(
                row["id"], row["number"], Priority(row["priority"]), row["state"] == "open"
            )
            for row in rows
        ]

    async def open_counts(self) -> dict[str, int]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT priority, count(*) FROM incidents"
                " WHERE state = 'open' AND kind = 'incident' GROUP BY priority"
            )
        return {str(row[0]): int(row[1]) for row in rows}

    async def incident_count(self) -> int:
        async with self._connection() as conn:
            count = await conn.fetchval("SELECT count(*) FROM incidents")
        return int(count)

    # -- retention and rebuild -------------------------------------------------------------

    async def prune(self, before: datetime, *, batch: int = PRUNE_BATCH) -> PruneResult:
        # Each statement deletes at most ``batch`` rows and commits on its own, so no lock is
        # held for long. Done and failed effects never change again, and an incident resolved
        # longer ago than the retention cannot be reopened (the reopen window is shorter: the
        # config checks it), so nothing here races with ingest or the outbox.
        events = effects = 0
        async with self._connection() as conn:
            while True:
                deleted = _changed(
                    await conn.execute(
                        "DELETE FROM events e USING (SELECT ev.incident_id, ev.seq"
                        " FROM incidents i JOIN events ev ON ev.incident_id = i.id"
                        " WHERE i.state <> 'open' AND i.resolved_at < $1 AND ev.at < $1"
                        # Never a maintenance request's (it reopens whenever its condition
                        # fires anew) nor one with an unfinished effect (it needs its event).
                        " AND i.kind <> 'maint' AND NOT EXISTS (SELECT 1 FROM outbox o"
                        " WHERE o.incident_id = i.id AND o.state IN ('pending', 'running'))"
                        " LIMIT $2) d WHERE e.incident_id = d.incident_id AND e.seq = d.seq",
                        before,
                        batch,
                    )
                )
                events += deleted
                if deleted < batch:
                    break
            while True:
                deleted = _changed(
                    await conn.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                        " WHERE state IN ('done', 'failed') AND finished_at < $1"
                        " ORDER BY finished_at LIMIT $2)",
                        before,
                        batch,
                    )
                )
                effects += deleted
                if deleted < batch:
                    break
            while True:
                deleted = _changed(
                    await conn.execute(
                        "DELETE FROM github_deliveries WHERE id IN (SELECT id"
                        " FROM github_deliveries WHERE at < $1 LIMIT $2)",
                        before,
                        batch,
                    )
                )
                if deleted < batch:
                    break
        return PruneResult(events=events, effects=effects)

    async def restore(self, incident: Incident, record: IssueRecord | None) -> bool:
        assert incident.number is not None, "restore keeps the incident's number"
        now = self._clock()
        try:
            async with self._transaction() as conn:
                await _lock_key(conn, incident.key)
                # The counter first: its row lock orders us with ingests opening incidents of
                # this kind, so none of them can take this number after our check.
                await conn.execute(
                    "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name)"
                    " DO UPDATE SET value = greatest(counters.value, excluded.value)",
                    number_series(incident.kind),
                    incident.number,
                )
                new_id = await conn.fetchval(
                    "INSERT INTO incidents (key, kind, number, state, priority, opened_at,"
                    " resolved_at, data, updated_at, due_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                    " ON CONFLICT (kind, number) DO NOTHING RETURNING id",
                    incident.key,
                    incident.kind,
                    incident.number,
                    incident.state,
                    str(incident.priority),
                    incident.opened_at,
                    incident.resolved_at,
                    codec.incident_to_json(incident),
                    now,
                    incident.due_at,
                )
                if new_id is None:
                    raise _Exists  # roll the counter back too: nothing changes
                if record is not None:
                    await conn.execute(_ISSUE_UPSERT, new_id, *_issue_values(record)[1:])
        except _Exists:
            return False
        incident.id = new_id
        if record is not None:
            record.incident_id = new_id
        return True

    # -- the GitHub writer lease and write budget ---------------------------------------

    async def hold_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        async with self._connection() as conn:
            owner = await conn.fetchval(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until WHERE leases.holder = excluded.holder"
                " OR leases.until <= $4 RETURNING holder",
                name,
                holder,
                now + ttl,
                now,
            )
        return bool(owner == holder)

    async def urgent_waiting(self, now: datetime) -> bool:
        async with self._connection() as conn:
            found = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM outbox o WHERE o.state = 'pending' AND o.urgent"
                " AND o.next_attempt_at <= $1 AND o.kind <> 'github.storm'"
                # Only one that can be claimed: behind its incident's older effect (in backoff,
                # say) it is not waiting for the budget, and must not hold P2/P3 writes back.
                " AND o.lane = 'github' AND o.id = (SELECT min(p.id) FROM outbox p"
                " WHERE p.incident_id = o.incident_id AND p.lane = 'github'"
                " AND p.state IN ('pending', 'running')))",
                now,
            )
        return bool(found)

    async def writes_since(self, since: datetime) -> list[datetime]:
        async with self._connection() as conn:
            rows = await conn.fetch("SELECT at FROM github_writes WHERE at > $1 ORDER BY at", since)
        return [row["at"] for row in rows]

    async def record_write(self, at: datetime) -> None:
        async with self._transaction() as conn:
            await conn.execute("INSERT INTO github_writes (at) VALUES ($1)", at)
            await conn.execute("DELETE FROM github_writes WHERE at < $1", at - timedelta(hours=1))

    async def budget_factor(self) -> tuple[float, datetime | None]:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT factor, changed_at FROM github_budget WHERE name = 'github'"
            )
        if row is None:
            return 1.0, None
        changed: datetime = row["changed_at"]
        return float(row["factor"]), changed

    async def set_budget_factor(self, factor: float, at: datetime) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO github_budget (name, factor, changed_at) VALUES ('github', $1, $2)"
                " ON CONFLICT (name) DO UPDATE SET factor = excluded.factor,"
                " changed_at = excluded.changed_at",
                factor,
                at,
            )

    # -- storm mode ------------------------------------------------------------------------

    async def join_storm(self, incident_id: int, now: datetime) -> int:
        async with self._transaction() as conn:
            await _lock_key(conn, _STORM_LOCK)
            # A member of a storm that is over (resolved, then firing again while the budget is
            # still spent) joins the active storm: the over one's "storm over" stays true.
            storm_id = await conn.fetchval(
                "SELECT m.storm_id FROM storm_members m JOIN storms s"
                " ON s.incident_id = m.storm_id WHERE m.incident_id = $1 AND s.over_at IS NULL",
                incident_id,
            )
            if storm_id is None:
                storm_id = await conn.fetchval(
                    "SELECT incident_id FROM storms WHERE over_at IS NULL"
                    " ORDER BY incident_id DESC LIMIT 1"
                )
                if storm_id is None:
                    storm = storms.new_storm(await _next_number(conn, "incident"), now)
                    storm_id = await conn.fetchval(
                        "INSERT INTO incidents (key, kind, number, state, priority, opened_at,"
                        " resolved_at, data, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $6) RETURNING id",
                        storm.key,
                        storm.kind,
                        storm.number,
                        storm.state,
                        str(storm.priority),
                        now,
                        codec.incident_to_json(storm),
                    )
                    await conn.execute("INSERT INTO storms (incident_id) VALUES ($1)", storm_id)
                await conn.execute(
                    "INSERT INTO storm_members (incident_id, storm_id, joined_at)"
                    " VALUES ($1, $2, $3) ON CONFLICT (incident_id) DO UPDATE"
                    " SET storm_id = excluded.storm_id, joined_at = excluded.joined_at",
                    incident_id,
                    storm_id,
                    now,
                )
            await _queue_storm(conn, storm_id, now, now)
        return int(storm_id)

    async def storm_of(self, incident_id: int) -> int | None:
        async with self._connection() as conn:
            storm_id = await conn.fetchval(
                "SELECT storm_id FROM storm_members WHERE incident_id = $1", incident_id
            )
        return int(storm_id) if storm_id is not None else None

    async def queue_storm(self, storm_id: int, not_before: datetime) -> None:
        async with self._transaction() as conn:
            await _queue_storm(conn, storm_id, not_before, self._clock())

    async def load_storm(self, storm_id: int, repository: str) -> Storm | None:
        async with self._transaction() as conn:  # one snapshot for the storm and its members
            row = await conn.fetchrow(
                "SELECT i.number, i.data, s.edited_at, s.over_at, s.announced_at"
                " FROM incidents i JOIN storms s ON s.incident_id = i.id WHERE i.id = $1",
                storm_id,
            )
            if row is None:
                return None
            rows = await conn.fetch(
                "SELECT i.id, i.number, i.data, g.number AS issue FROM storm_members m"
                " JOIN incidents i ON i.id = m.incident_id LEFT JOIN github_issues g"
                " ON g.incident_id = i.id AND g.repository = $1 WHERE m.storm_id = $2"
                " ORDER BY i.number",
                repository,
                storm_id,
            )
        return Storm(
            incident=codec.incident_from_json(row["data"], row_id=storm_id, number=row["number"]),
            members=[
                StormMember(
                    incident=codec.incident_from_json(
                        r["data"], row_id=r["id"], number=r["number"]
                    ),
                    issue_number=r["issue"],
                )
                for r in rows
            ],
            edited_at=row["edited_at"],
            over_at=row["over_at"],
            announced_at=row["announced_at"],
        )

    async def record_storm_write(
        self, storm_id: int, at: datetime, *, priority: Priority, resolved: bool
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE storms SET edited_at = $1 WHERE incident_id = $2", at, storm_id
            )
            row = await conn.fetchrow(
                "SELECT number, data FROM incidents WHERE id = $1 FOR UPDATE", storm_id
            )
            assert row is not None  # incidents are never deleted
            storm = codec.incident_from_json(row["data"], row_id=storm_id, number=row["number"])
            storm.priority = priority
            if resolved != (storm.state == "resolved"):
                storm.state = "resolved" if resolved else "open"
                storm.resolved_at = at if resolved else None
            await _save_incident(conn, storm, at, new=False)

    async def storm_over(self, storm_id: int, repository: str, at: datetime) -> bool:
        async with self._transaction() as conn:
            await _lock_key(conn, _STORM_LOCK)
            marked = await conn.fetchval(
                "UPDATE storms SET over_at = $1 WHERE incident_id = $2 AND over_at IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM storm_members m JOIN incidents i"
                " ON i.id = m.incident_id LEFT JOIN github_issues g ON g.incident_id = i.id"
                " AND g.repository = $3 WHERE m.storm_id = $2 AND i.state = 'open'"
                " AND g.number IS NULL) RETURNING incident_id",
                at,
                storm_id,
                repository,
            )
        return marked is not None

    async def storm_announced(self, storm_id: int, at: datetime) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE storms SET announced_at = $1 WHERE incident_id = $2", at, storm_id
            )

    async def queue_syncs(self, incident_ids: list[int], now: datetime) -> None:
        async with self._transaction() as conn:
            for incident_id in incident_ids:
                if not await _pending_last(conn, incident_id, "github.sync"):
                    await conn.execute(
                        "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                        " next_attempt_at, urgent) VALUES ($1, 'github.sync', '{}', 'pending',"
                        " $2, $2, false)",
                        incident_id,
                        now,
                    )

    # -- notification channels' state -------------------------------------------------

    async def notify_state(self, incident_id: int, channel: str) -> dict[str, str]:
        async with self._connection() as conn:
            data = await conn.fetchval(
                "SELECT data FROM notify_state WHERE incident_id = $1 AND channel = $2",
                incident_id,
                channel,
            )
        return dict(codec.loads(data)) if data is not None else {}

    async def save_notify_state(
        self, incident_id: int, channel: str, state: dict[str, str]
    ) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO notify_state (incident_id, channel, data) VALUES ($1, $2, $3)"
                " ON CONFLICT (incident_id, channel) DO UPDATE SET data = excluded.data",
                incident_id,
                channel,
                codec.dumps(state),
            )

    # -- storm control per person -----------------------------------------------------------

    async def notify_or_hold(
        self,
        effect: ClaimedEffect,
        channel: str,
        recipient: str,
        now: datetime,
        limit: int,
        per: timedelta,
    ) -> bool:
        async with self._transaction() as conn:
            # One person's slots and bundle serialize on their advisory key lock.
            await _lock_key(conn, f"notify:{channel}:{recipient}")
            if await conn.fetchval(
                "SELECT 1 FROM notify_log WHERE channel = $1 AND recipient = $2 AND effect_id = $3",
                channel,
                recipient,
                effect.id,
            ):
                return True  # its slot was taken by an earlier attempt
            if await conn.fetchval("SELECT 1 FROM notify_held WHERE effect_id = $1", effect.id):
                return False  # already held
            await conn.execute(
                "DELETE FROM notify_log WHERE channel = $1 AND recipient = $2 AND at <= $3",
                channel,
                recipient,
                now - per,
            )
            # FOR UPDATE: a replica claiming that bundle right now either has (we then see it
            # running and add another) or waits for our commit (and tells what we hold).
            bundle_id = await conn.fetchval(
                "SELECT o.id FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
                " WHERE h.channel = $1 AND h.recipient = $2 AND o.state = 'pending'"
                " LIMIT 1 FOR UPDATE OF o",
                channel,
                recipient,
            )
            if bundle_id is None:
                row = await conn.fetchrow(
                    "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM notify_log"
                    " WHERE channel = $1 AND recipient = $2 AND at > $3",
                    channel,
                    recipient,
                    now - per,
                )
                assert row is not None  # an aggregate always has its row
                # A bundle being sent goes first: what comes meanwhile waits for the next one.
                running = await conn.fetchval(
                    "SELECT 1 FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
                    " WHERE h.channel = $1 AND h.recipient = $2 AND o.state = 'running' LIMIT 1",
                    channel,
                    recipient,
                )
                if row["n"] < limit and running is None:
                    await conn.execute(
                        "INSERT INTO notify_log (channel, recipient, effect_id, at)"
                        " VALUES ($1, $2, $3, $4)",
                        channel,
                        recipient,
                        effect.id,
                        now,
                    )
                    return True
                payload = bundle_payload(recipient, str(effect.payload.get("name", "")))
                bundle_id = await conn.fetchval(
                    "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                    " next_attempt_at, urgent, lane, bundle, recipient) VALUES ($1, $2, $3,"
                    " 'pending', $4, $5, $6, $7, true, $8) RETURNING id",
                    effect.incident_id,
                    f"notify.{channel}",
                    codec.dumps(payload),
                    now,
                    now if row["n"] < limit else max(now, row["oldest"] + per),
                    effect.urgent,
                    channel,
                    recipient,
                )
            await conn.execute(
                "INSERT INTO notify_held (effect_id, channel, recipient, incident_id, event_seq,"
                " bundle_id, held_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                effect.id,
                channel,
                recipient,
                effect.incident_id,
                int(effect.payload["event_seq"]),
                bundle_id,
                now,
            )
            return False

    async def bundle_slot(
        self,
        bundle: ClaimedEffect,
        channel: str,
        recipient: str,
        now: datetime,
        limit: int,
        per: timedelta,
    ) -> BundleSlot:
        async with self._transaction() as conn:
            await _lock_key(conn, f"notify:{channel}:{recipient}")
            held = [
                HeldNotice(row["incident_id"], row["event_seq"], row["held_at"])
                for row in await conn.fetch(
                    "SELECT incident_id, event_seq, held_at FROM notify_held"
                    " WHERE bundle_id = $1 ORDER BY held_at, effect_id",
                    bundle.id,
                )
            ]
            if not held or await conn.fetchval(
                "SELECT 1 FROM notify_log WHERE channel = $1 AND recipient = $2 AND effect_id = $3",
                channel,
                recipient,
                bundle.id,
            ):
                return BundleSlot(held)
            await conn.execute(
                "DELETE FROM notify_log WHERE channel = $1 AND recipient = $2 AND at <= $3",
                channel,
                recipient,
                now - per,
            )
            row = await conn.fetchrow(
                "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM notify_log"
                " WHERE channel = $1 AND recipient = $2 AND at > $3",
                channel,
                recipient,
                now - per,
            )
            assert row is not None  # an aggregate always has its row
            if row["n"] >= limit:
                return BundleSlot([], row["oldest"] + per)
            await conn.execute(
                "INSERT INTO notify_log (channel, recipient, effect_id, at)"
                " VALUES ($1, $2, $3, $4)",
                channel,
                recipient,
                bundle.id,
                now,
            )
            return BundleSlot(held)

    async def bundle_told(self, bundle_id: int) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM notify_held WHERE bundle_id = $1", bundle_id)

    # -- the on-call lifecycle -------------------------------------------------------------

    async def due_incidents(self, now: datetime, limit: int) -> list[DueIncident]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT id, key, data, due_at FROM incidents WHERE due_at IS NOT NULL"
                " AND due_at <= $1 ORDER BY due_at LIMIT $2",
                now,
                limit,
            )
        return [
            DueIncident(
                id=row["id"],
                key=row["key"],
                identity=str(codec.loads(row["data"])["identity"]),
                due_at=row["due_at"],
            )
            for row in rows
        ]

    async def next_timer(self) -> datetime | None:
        async with self._connection() as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT min(due_at) FROM incidents WHERE due_at IS NOT NULL"
            )
        return value

    async def set_mark(self, name: str, at: datetime) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO marks (name, at) VALUES ($1, $2) ON CONFLICT (name)"
                " DO UPDATE SET at = greatest(marks.at, excluded.at)",
                name,
                at,
            )

    async def mark(self, name: str) -> datetime | None:
        async with self._connection() as conn:
            value: datetime | None = await conn.fetchval(
                "SELECT at FROM marks WHERE name = $1", name
            )
        return value

    async def first_delivery(self, delivery_id: str, now: datetime) -> bool:
        async with self._connection() as conn:
            inserted = await conn.fetchval(
                "INSERT INTO github_deliveries (id, at) VALUES ($1, $2)"
                " ON CONFLICT (id) DO NOTHING RETURNING 1",
                delivery_id,
                now,
            )
        return inserted is not None

    async def delivery_seen(self, delivery_id: str) -> bool:
        async with self._connection() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM github_deliveries WHERE id = $1", delivery_id
            )
        return found is not None

    async def incident_by_issue(self, repository: str, number: int) -> Incident | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT i.id, i.number, i.data FROM github_issues g"
                " JOIN incidents i ON i.id = g.incident_id"
                " WHERE g.repository = $1 AND g.number = $2 ORDER BY i.id DESC LIMIT 1",
                repository,
                number,
            )
        if row is None:
            return None
        return codec.incident_from_json(row["data"], row_id=row["id"], number=row["number"])

    # -- reports ---------------------------------------------------------------------------

    async def incidents_between(self, since: datetime, until: datetime) -> list[IncidentHistory]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = await conn.fetch(_BETWEEN, until, since)
            events: dict[int, list[TimelineEvent]] = {row["id"]: [] for row in rows}
            for row in await conn.fetch(_BETWEEN_EVENTS, until, since):
                events[row["incident_id"]].append(_event(row))
        return [
            IncidentHistory(
                incident=codec.incident_from_json(
                    row["data"], row_id=row["id"], number=row["number"]
                ),
                events=events[row["id"]],
            )
            for row in rows
        ]

    async def open_incidents(self, after_id: int, limit: int) -> list[Incident]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT id, number, data FROM incidents WHERE state = 'open' AND id > $1"
                " ORDER BY id LIMIT $2",
                after_id,
                limit,
            )
        return [
            codec.incident_from_json(row["data"], row_id=row["id"], number=row["number"])
            for row in rows
        ]

    # -- post-incident reviews ---------------------------------------------------------------

    async def notifications(self, incident_id: int) -> list[SentNotification]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT kind, payload, state, finished_at FROM outbox"
                " WHERE incident_id = $1 AND lane != 'github' ORDER BY id",
                incident_id,
            )
        return [_sent(row) for row in rows]

    async def schedule_review(self, incident_id: int, due_at: datetime | None) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO reviews (incident_id, due_at) VALUES ($1, $2)"
                " ON CONFLICT (incident_id) DO UPDATE SET due_at = excluded.due_at"
                " WHERE reviews.reminded_at IS NULL",
                incident_id,
                due_at,
            )

    async def remind_reviews(self, now: datetime, limit: int) -> list[int]:
        async with self._transaction() as conn:
            # SKIP LOCKED: a review another replica is taking is its own; once that commits,
            # its due_at is NULL and no replica takes it again.
            rows = await conn.fetch(
                "UPDATE reviews r SET due_at = NULL, reminded_at = $1 FROM incidents i"
                " WHERE i.id = r.incident_id AND r.incident_id IN (SELECT incident_id"
                " FROM reviews WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at"
                " LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING r.incident_id, i.kind, i.priority",
                now,
                limit,
            )
            for row in rows:
                await conn.execute(
                    "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                    " next_attempt_at, urgent, lane) VALUES ($1, 'github.pir_reminder', '{}',"
                    " 'pending', $2, $2, $3, 'github')",
                    row["incident_id"],
                    now,
                    row["kind"] == "incident" and row["priority"] in ("P0", "P1"),
                )
        return [int(row["incident_id"]) for row in rows]


def _sent(row: asyncpg.Record) -> SentNotification:
    data = codec.loads(row["payload"])
    seq = data.get("event_seq")
    return SentNotification(
        kind=row["kind"],
        name=str(data.get("name") or ""),
        event_seq=int(seq) if seq is not None and not data.get("bundle") else None,
        state=row["state"],
        finished_at=row["finished_at"],
    )


# Incidents open at some moment of a window: opened before its end ($1), not resolved before its
# start ($2). Open incidents have no resolved_at.
_BETWEEN = (
    "SELECT id, number, data FROM incidents WHERE kind = 'incident' AND opened_at < $1"
    " AND (resolved_at IS NULL OR resolved_at >= $2) ORDER BY id"
)
_BETWEEN_EVENTS = (
    "SELECT e.incident_id, e.seq, e.at, e.kind, e.text, e.data FROM events e"
    " JOIN incidents i ON i.id = e.incident_id WHERE i.kind = 'incident' AND i.opened_at < $1"
    " AND (i.resolved_at IS NULL OR i.resolved_at >= $2) ORDER BY e.incident_id, e.seq"
)


def _event(row: asyncpg.Record) -> TimelineEvent:
    return codec.event_from_row(
        row["seq"], row["at"].isoformat(), row["kind"], row["text"], row["data"]
    )
