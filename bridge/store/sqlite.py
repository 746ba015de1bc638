"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL``.

All writes go through one writer that runs queued units of work in batches: one
``BEGIN IMMEDIATE … COMMIT`` (one fsync) per batch, a SAVEPOINT per unit so a failing unit rolls
back alone. Concurrent webhooks therefore share fsyncs (group commit) without weakening
durability: every caller is answered only after the batch holding its unit has committed.

The units run on the event loop (they are short: the engine plus a few statements against the
page cache); only COMMIT, which waits for the disk, runs in a worker thread. Reads that need no
transaction with a write go to a second connection on its own thread (WAL lets readers run beside
the writer). WAL checkpoints run on a thread of their own (``_Checkpointer``), so no COMMIT
waits for one.

We use the standard library's ``sqlite3`` rather than aiosqlite: aiosqlite crosses threads once
per statement, while a unit of work here is a whole engine step (several statements) that must
run inside the writer's transaction anyway.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import structlog

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
from bridge.store.sqlite_schema import MIGRATIONS

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], Any]

log = structlog.get_logger(__name__)

_BATCH_MAX = 64  # bounds how long one batch holds the event loop (~20 ms of new groups)
_CHECKPOINT_EVERY = 0.1  # seconds between the checkpointer's PASSIVE checkpoints
# The writer's own automatic checkpoint, only if the checkpointer falls behind (32 MB of WAL).
_AUTOCHECKPOINT_BACKSTOP = 8192
_QUICK_EVENTS = 50  # at most this many timeline events are read on the event loop (``_quick``)
_KNOWN_KEYS_MAX = 500_000  # incident keys the look-ahead remembers (hashes, ~35 MB at most)


def _connect(path: Path, *, readonly: bool = False, on_loop: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=5.0, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    # Only this process writes; a lock held elsewhere must fail fast (503), not stall the loop
    # (the writer and the read-only connection the event loop reads on, ``on_loop``).
    conn.execute(f"PRAGMA busy_timeout = {100 if not readonly or on_loop else 5000}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


class _Checkpointer:
    """WAL checkpoints on a thread and a connection of their own, so no COMMIT pays for one.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses ``wal_autocheckpoint``
    pages: that batch (and every webhook queued behind it) waited for the pages to be copied into
    the database file and for its fsync — a few times a second under a storm. Here a PASSIVE
    checkpoint (it never blocks the writer or a reader) runs every ``interval`` instead; the
    writer keeps a far larger automatic checkpoint as a backstop (``_AUTOCHECKPOINT_BACKSTOP``),
    which then finds almost nothing left to copy. A failing checkpoint is logged and tried again
    at the next turn: the WAL keeps every committed change until one succeeds.
    """

    def __init__(self, path: Path, interval: float) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(self._interval):
            try:
                if conn is None:
                    conn = _connect(self._path)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as error:
                if not self._failing:  # once per failing spell, not every turn
                    log.warning("store_checkpoint_failed", error=str(error))
                self._failing = True
            else:
                self._failing = False
        if conn is not None:
            conn.close()


class _Writer:
    """The single writer: queued units run in batches, one transaction (one fsync) per batch.

    Units run on the event loop itself, one after another: each is a short burst of CPU (the
    engine) and SQLite statements that touch only the page cache. Only COMMIT — where
    ``synchronous=FULL`` waits for the disk — runs in a worker thread, and while it runs, new
    units queue up for the next batch: group commit. Running the statements on the loop avoids
    handing the GIL back and forth between threads for every statement.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._pending: list[tuple[Unit, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, unit: Unit) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(StoreUnavailable("store is closed"))
            return future
        self._pending.append((unit, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def close(self) -> None:
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        await asyncio.to_thread(self.conn.close)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_BATCH_MAX], self._pending[_BATCH_MAX:]
            results = await self._run_batch(batch)
            _settle_all(results)
            # One turn of the loop before the next batch: the callers just answered send their
            # responses, and the webhooks that arrived meanwhile decide ahead and join the next
            # batch, instead of waiting behind its statements (fewer, fuller batches).
            await asyncio.sleep(0)

    async def _run_batch(
        self, batch: list[tuple[Unit, asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """One transaction for the batch. Units run back to back; if one fails, the batch is
        rolled back and run again with a savepoint around each unit, so only the failing
        unit's writes are undone (units are closures over their inputs: running one again
        writes the same). Savepoints only then: they are two statements per unit."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            results, failure = _apply_units(conn, batch, isolated=False)
            if failure is not None:
                if conn.in_transaction:  # some errors (a full disk) end it themselves
                    conn.execute("ROLLBACK")
                if len(batch) == 1:
                    return [(batch[0][1], False, failure)]
                conn.execute("BEGIN IMMEDIATE")
                results, _ = _apply_units(conn, batch, isolated=True)
            await asyncio.to_thread(conn.execute, "COMMIT")
        except Exception as error:  # the batch failed as a whole (BEGIN, COMMIT, I/O)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("store_rollback_failed")
            failure = StoreUnavailable(f"sqlite: {error}")
            results = [(future, False, failure) for _, future in batch]
        return results


def _apply_units(
    conn: sqlite3.Connection, batch: list[tuple[Unit, asyncio.Future[Any]]], *, isolated: bool
) -> tuple[list[tuple[asyncio.Future[Any], bool, Any]], Exception | None]:
    """Run the batch's units in the open transaction. Not ``isolated``: stop at the first
    failure and return it (the caller rolls back). ``isolated``: a savepoint around each unit;
    a failing unit's writes are rolled back and its error becomes its result."""
    results: list[tuple[asyncio.Future[Any], bool, Any]] = []
    for unit, future in batch:
        if not isolated:
            try:
                results.append((future, True, unit(conn)))
            except Exception as error:  # the unit's own failure: the batch runs again, isolated
                return results, error
            continue
        conn.execute("SAVEPOINT unit")
        try:
            value = unit(conn)
        except Exception as error:  # the unit's own failure: roll back only it
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            results.append((future, False, error))
        else:
            conn.execute("RELEASE unit")
            results.append((future, True, value))
    return results, None


def _settle_all(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        _settle(future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    elif isinstance(value, sqlite3.Error):
        future.set_exception(StoreUnavailable(f"sqlite: {value}"))
    else:
        future.set_exception(value)


def _migrate(conn: sqlite3.Connection) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StoreUnavailable(
            f"database schema version {version} is newer than this bridge knows "
            f"({len(MIGRATIONS)}); upgrade incident-bridge"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("store_migrated", version=number)


_CLAIM_HEAD = (
    "SELECT o.id, o.incident_id, o.kind, o.payload, o.attempts, o.claim, o.created_at,"
    " o.outcome_unknown, o.state, i.kind, i.number, o.urgent FROM outbox o"
    " JOIN incidents i ON i.id = o.incident_id WHERE "
)
# An incident's effects run in its order, one at a time per lane and recipient (one person's
# failing mailbox holds back only their own messages); storm control's bundles
# (``bundle``) stand apart: they tell a person about several incidents, so they neither wait
# for nor hold back the messages of the incident they were queued on.
_CLAIM_OLDEST = (
    " AND o.lane = ? AND (o.bundle = 1 OR o.id = (SELECT MIN(p.id) FROM outbox p"
    " WHERE p.incident_id = o.incident_id AND p.lane = o.lane AND p.recipient = o.recipient"
    " AND p.bundle = 0 AND p.state IN ('pending', 'running')))"
)
# Two queries, each walking its own partial index in order and stopping at the limit; one query
# with an OR of the two would sort every candidate first, which stalls ingest behind a backlog.
CLAIM_LAPSED = (
    f"{_CLAIM_HEAD}o.state = 'running' AND o.lease_until <= ?{_CLAIM_OLDEST}"
    " ORDER BY o.lease_until LIMIT ?"
)
# A P0/P1 GitHub effect due and claimable: behind its incident's older effect (in backoff, say)
# it is not waiting for the budget, and must not hold P2/P3 writes back.
URGENT_WAITING = (
    "SELECT 1 FROM outbox o WHERE o.state = 'pending' AND o.urgent = 1"
    " AND o.next_attempt_at <= ? AND o.kind <> 'github.storm'"
    " AND o.lane = 'github' AND o.id = (SELECT MIN(p.id) FROM outbox p"
    " WHERE p.incident_id = o.incident_id AND p.lane = 'github'"
    " AND p.state IN ('pending', 'running')) LIMIT 1"
)
CLAIM_DUE = (
    f"{_CLAIM_HEAD}o.state = 'pending' AND o.next_attempt_at <= ?{_CLAIM_OLDEST}"
    " ORDER BY o.urgent DESC, o.next_attempt_at, o.id LIMIT ?"
)


_WATCHED = (
    "SELECT i.id, g.number, i.priority, i.state FROM incidents i"
    " JOIN github_issues g ON g.incident_id = i.id AND g.repository = ?"
    " WHERE i.kind = 'incident' AND "
)
_WATCHED_OPEN = f"{_WATCHED}i.state = 'open' ORDER BY i.id DESC LIMIT ?"
_WATCHED_RESOLVED = (
    f"{_WATCHED}i.state = 'resolved' AND i.resolved_at >= ? ORDER BY i.id DESC LIMIT ?"
)
_LATEST_OF_KEY = "SELECT id, number, data FROM incidents WHERE key = ? ORDER BY id DESC LIMIT 1"


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A decision taken ahead of the write transaction, and the row it was taken on (None: no
    incident under the key yet). Valid in the transaction only if the row is still the same."""

    row: tuple[Any, ...] | None
    decision: Decision


class _KnownKeys:
    """The incident keys the database may hold, as hashes: a key that is not here has no
    incident, so the look-ahead needs no read to decide on it (a new alert group). That read
    costs four times the writer's same read, since every commit empties the look-ahead
    connection's page cache. Kept only by an exclusive store (no other process writes
    incidents); filled from the database at open, then by every insert of an incident.

    It never decides anything alone: a decision that changes something is checked again by
    the writer, which reads the key inside the transaction, and one that changes nothing is
    taken only on a read. A hash collision, an insert rolled back, or an insert this does not
    hear of costs only speed. Without ``keys`` (a store that is not exclusive, or not yet
    open) and past ``_KNOWN_KEYS_MAX`` keys it does not answer (every look-ahead reads, as
    without it) rather than grow without bound."""

    def __init__(self, keys: list[str] | None, limit: int = _KNOWN_KEYS_MAX) -> None:
        self._limit = limit
        self._hashes: set[int] | None = None if keys is None else set()
        for key in keys or ():
            self.add(key)

    def add(self, key: str) -> None:
        if self._hashes is None:
            return
        if len(self._hashes) >= self._limit:
            self._hashes = None
            log.info("store_known_keys_full", limit=self._limit)
            return
        self._hashes.add(hash(key))

    def absent(self, key: str) -> bool:
        """True only if no incident has ``key``."""
        return self._hashes is not None and hash(key) not in self._hashes


def _next_number(conn: sqlite3.Connection, kind: str) -> int:
    row = conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        (f"number:{kind}",),
    ).fetchone()
    return int(row[0])


def _save_incident(conn: sqlite3.Connection, incident: Incident, now: float, *, new: bool) -> None:
    data = codec.incident_to_json(incident)
    resolved = codec.epoch(incident.resolved_at) if incident.resolved_at else None
    due_at = incident.due_at
    due = codec.epoch(due_at) if due_at is not None else None
    if new:
        incident.number = _next_number(conn, incident.kind)
        cursor = conn.execute(
            "INSERT INTO incidents (key, kind, number, state, priority, opened_at, resolved_at,"
            " data, updated_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                incident.key,
                incident.kind,
                incident.number,
                incident.state,
                str(incident.priority),
                codec.epoch(incident.opened_at),
                resolved,
                data,
                now,
                due,
            ),
        )
        incident.id = cursor.lastrowid
    else:
        conn.execute(
            "UPDATE incidents SET state = ?, priority = ?, resolved_at = ?, data = ?,"
            " updated_at = ?, due_at = ? WHERE id = ?",
            (incident.state, str(incident.priority), resolved, data, now, due, incident.id),
        )


def _insert_events(conn: sqlite3.Connection, incident_id: int, events: list[TimelineEvent]) -> None:
    conn.executemany(
        "INSERT INTO events (incident_id, seq, at, kind, text, data) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (incident_id, e.seq, codec.ts(e.at), e.kind, e.text, codec.event_data_to_json(e))
            for e in events
        ],
    )


def _insert_effects(
    conn: sqlite3.Connection, incident_id: int, decision: Decision, now: float
) -> None:
    urgent = decision.incident is not None and decision.incident.urgent
    for effect in decision.effects:
        if effect.kind == "github.sync" and not decision.is_new:
            last = conn.execute(
                "SELECT kind, state FROM outbox WHERE incident_id = ? AND lane = 'github'"
                " AND state IN ('pending', 'running') ORDER BY id DESC LIMIT 1",
                (incident_id,),
            ).fetchone()
            if last is not None and last[0] == "github.sync" and last[1] == "pending":
                continue  # coalesced: the pending sync will render the latest state
        payload = dict(effect.payload)
        if effect.event_seq is not None:
            payload["event_seq"] = effect.event_seq
        conn.execute(
            "INSERT INTO outbox (incident_id, kind, payload, state, created_at, next_attempt_at,"
            " urgent, lane, recipient) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            (
                incident_id,
                effect.kind,
                codec.dumps(payload),
                now,
                now,
                urgent,
                lane_of(effect.kind),
                recipient_of(effect.kind, payload),
            ),
        )
    if urgent and not decision.is_new:
        # Raised to P0/P1: what the incident already has queued goes first too.
        conn.execute(
            "UPDATE outbox SET urgent = 1 WHERE incident_id = ? AND state IN"
            " ('pending', 'running') AND urgent = 0",
            (incident_id,),
        )


def _record_failure(
    conn: sqlite3.Connection,
    effect: ClaimedEffect,
    now: datetime,
    text: str,
    fallback: Sequence[EffectSpec],
    *,
    late: bool,
) -> None:
    """The timeline line of a failing effect and, in the same transaction, its fallback: the
    message on the person's next channel, or a bundle taking over what a failed one held."""
    row = conn.execute(
        "SELECT number, data FROM incidents WHERE id = ?", (effect.incident_id,)
    ).fetchone()
    incident = codec.incident_from_json(row[1], row_id=effect.incident_id, number=row[0])
    incident.event_seq += 1
    data: dict[str, Any] = {"effect": effect.kind, "effect_id": effect.id}
    if late:
        data["late"] = True
    event = TimelineEvent(
        seq=incident.event_seq, at=now, kind="effect_failed", text=text, data=data
    )
    at = codec.epoch(now)
    _save_incident(conn, incident, at, new=False)
    _insert_events(conn, effect.incident_id, [event])
    queued_effects = failure_effects(effect.kind, incident.kind, fallback)
    if queued_effects:
        queued = Decision(outcome="updated", incident=incident, effects=queued_effects)
        _insert_effects(conn, effect.incident_id, queued, at)
    for spec in fallback:
        if spec.payload.get("bundle"):
            _take_over_bundle(conn, effect, spec, at)


def _take_over_bundle(
    conn: sqlite3.Connection, failed: ClaimedEffect, spec: EffectSpec, at: float
) -> None:
    """What the failed bundle held moves to the person's bundle on ``spec``'s channel: their
    pending one, else a new one due now (its window decides when it goes)."""
    if not conn.execute(
        "SELECT 1 FROM notify_held WHERE bundle_id = ? LIMIT 1", (failed.id,)
    ).fetchone():
        return
    channel = lane_of(spec.kind)
    recipient = str(spec.payload["to"])
    pending = conn.execute(
        "SELECT h.bundle_id FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
        " WHERE h.channel = ? AND h.recipient = ? AND o.state = 'pending' LIMIT 1",
        (channel, recipient),
    ).fetchone()
    if pending is not None:
        bundle_id = int(pending[0])
    else:
        cursor = conn.execute(
            "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
            " next_attempt_at, urgent, lane, bundle, recipient)"
            " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, 1, ?)",
            (
                failed.incident_id,
                spec.kind,
                codec.dumps(spec.payload),
                at,
                at,
                failed.urgent,
                channel,
                recipient,
            ),
        )
        assert cursor.lastrowid is not None
        bundle_id = cursor.lastrowid
    conn.execute(
        "UPDATE notify_held SET bundle_id = ?, channel = ?, recipient = ? WHERE bundle_id = ?",
        (bundle_id, channel, recipient, failed.id),
    )


def _pending_last(conn: sqlite3.Connection, incident_id: int, kind: str) -> bool:
    """Whether the incident's last unfinished GitHub effect is a pending ``kind`` (to coalesce
    into; a message queued after it on another lane does not stop that)."""
    last = conn.execute(
        "SELECT kind, state FROM outbox WHERE incident_id = ? AND lane = 'github' AND state IN"
        " ('pending', 'running') ORDER BY id DESC LIMIT 1",
        (incident_id,),
    ).fetchone()
    return last is not None and last[0] == kind and last[1] == "pending"


def _queue_storm(conn: sqlite3.Connection, storm_id: int, not_before: float, now: float) -> None:
    if _pending_last(conn, storm_id, "github.storm"):
        return  # coalesced: the pending edit renders the storm as it is when it runs
    row = conn.execute("SELECT edited_at FROM storms WHERE incident_id = ?", (storm_id,)).fetchone()
    edited = row[0] if row is not None else None
    due = (
        not_before if edited is None else max(not_before, edited + storms.EDIT_GAP.total_seconds())
    )
    conn.execute(
        "INSERT INTO outbox (incident_id, kind, payload, state, created_at, next_attempt_at,"
        " urgent) VALUES (?, 'github.storm', '{}', 'pending', ?, ?, 1)",
        (storm_id, now, due),
    )


_ISSUE_UPSERT = (
    "INSERT INTO github_issues (incident_id, repository, number, url, title, body,"
    " region, labels, state, etag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (incident_id, repository) DO UPDATE SET number = excluded.number,"
    " url = excluded.url, title = excluded.title, body = excluded.body,"
    " region = excluded.region, labels = excluded.labels, state = excluded.state,"
    " etag = excluded.etag"
)


def _issue_values(record: IssueRecord, incident_id: int) -> tuple[Any, ...]:
    return (
        incident_id,
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


class StoreInUse(StoreUnavailable):
    """Another process holds the SQLite file: one ``serve`` per file (use PostgreSQL for more)."""


class _ProcessLock:
    """An exclusive ``flock`` on ``<db>.lock`` held for the store's life, so a second ``serve``
    on the same file is refused instead of corrupting the single-writer design. The kernel drops
    the lock when the process dies, however it dies, so a crash never leaves a stale lock."""

    def __init__(self, db: Path) -> None:
        self.path = db.with_name(db.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreInUse(
                f"{self.path.with_suffix('')} is in use by another incident-bridge process "
                f"(pid {holder}); stop it first (one serve per SQLite file; run several "
                "replicas on PostgreSQL)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock


class SqliteStore:
    """The SQLite backend of the Store protocol.

    ``exclusive`` (the default, for ``serve`` and ``rebuild``) takes the process lock: the
    writer assumes it is the only one. Read-only commands open with ``exclusive=False``.
    """

    def __init__(
        self, path: Path, *, clock: Callable[[], datetime], exclusive: bool = True
    ) -> None:
        self.path = path
        self._clock = clock
        self._lock = _ProcessLock(path) if exclusive else None
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None
        # Read-only, used on the event loop only: the engine's look-ahead (``_decide_ahead``)
        # and the small indexed reads (``_quick``).
        self._ahead: sqlite3.Connection | None = None
        self._loop_thread: int | None = None
        self._checkpointer: _Checkpointer | None = None
        self._known = _KnownKeys(None)  # answers only in an exclusive store, once open
        self._read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._lock is not None:
                self._lock.acquire()
        except OSError as error:
            raise StoreUnavailable(f"cannot open {self.path}: {error}") from error
        try:
            await self._open()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    async def _open(self) -> None:
        def connect_and_migrate() -> sqlite3.Connection:
            conn = _connect(self.path)
            try:
                _migrate(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            conn = await asyncio.to_thread(connect_and_migrate)
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"cannot open {self.path}: {error}") from error
        self._writer = _Writer(conn)
        self._reader = await self._read(lambda: _connect(self.path, readonly=True))
        self._ahead = await asyncio.to_thread(_connect, self.path, readonly=True, on_loop=True)
        self._loop_thread = threading.get_ident()
        if self._lock is None:
            return  # a read-only user: a serve may be running these effects right now

        # A single SQLite process: whatever was running when it last stopped was interrupted,
        # and the leases it held are nobody's now. Checkpoints move to the checkpointer.
        def interrupted(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE outbox SET state = 'pending', outcome_unknown = 1, lease_until = NULL"
                " WHERE state = 'running'"
            )
            conn.execute("DELETE FROM leases")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_BACKSTOP}")

        await self._write(interrupted)
        keys = await self._read(lambda: self._rows("SELECT DISTINCT key FROM incidents"))
        self._known = _KnownKeys([key for (key,) in keys])
        self._checkpointer = _Checkpointer(self.path, _CHECKPOINT_EVERY)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            await asyncio.to_thread(checkpointer.stop)
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            ahead.close()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await self._read(reader.close)
        self._read_pool.shutdown(wait=True)
        if self._lock is not None:
            self._lock.release()

    async def _write(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("store is closed")
        result: T = await self._writer.submit(unit)
        return result

    async def _read(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, fn)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"sqlite: {error}") from error
        except RuntimeError as error:  # the reader pool was shut down: the store is closed
            raise StoreUnavailable(f"store is closed: {error}") from error

    async def _quick(self, fn: Callable[[], T]) -> T:
        """A small indexed read (a key, a LIMIT), answered on the event loop itself from the
        look-ahead connection: a hop to the reader thread costs 30-70 µs of CPU and a wake-up,
        ten times such a read, and the outbox and the timers make several per effect. Reads
        that can grow with the data (lists, counts, reports) go through ``_read``."""
        try:
            return fn()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"sqlite: {error}") from error

    def _rconn(self) -> sqlite3.Connection:
        """The read connection of the calling thread: the reader thread's, or on the event
        loop the look-ahead one (``_quick``). Both read the last committed state."""
        on_loop = threading.get_ident() == self._loop_thread
        conn = self._ahead if on_loop else self._reader
        if conn is None:
            raise StoreUnavailable("store is closed")
        return conn

    async def execute_for_test(self, sql: str) -> None:
        """Run one statement on the writer connection (tests use it to make real faults)."""
        await self._write(lambda c: c.execute(sql))

    async def ping(self) -> None:
        await self._read(lambda: self._rconn().execute("SELECT 1").fetchone())

    # -- ingest ----------------------------------------------------------------------------

    def _decide_ahead(self, key: str, decide: Decide) -> _Ahead | None:
        """Run ``decide`` on the last committed state of ``key``, outside the write transaction
        (None if that read fails: the writer then decides alone)."""
        conn = self._ahead
        if conn is None:
            return None
        if self._known.absent(key):
            decision = decide(None)
            if decision.changed:  # the writer reads the key again before writing it
                return _Ahead(row=None, decision=decision)
        try:
            row = conn.execute(_LATEST_OF_KEY, (key,)).fetchone()
        except sqlite3.Error:
            return None
        current = codec.incident_from_json(row[2], row_id=row[0], number=row[1]) if row else None
        return _Ahead(row=row, decision=decide(current))

    async def ingest(self, key: str, identity: str, decide: Decide) -> Decision:
        # The engine runs ahead of the write transaction, on the last committed state: while
        # the writer waits for the disk (COMMIT), the event loop decides the next webhooks
        # instead of idling, and the transaction only checks that the incident is still as
        # read, then writes. An unchanged repeat — nothing to write — is answered from that
        # committed (already durable) state without queueing for the writer at all: it is
        # ordered before any change still in flight, as concurrent requests may be.
        ahead = self._decide_ahead(key, decide)
        if ahead is not None and not ahead.decision.changed:
            return ahead.decision

        def unit(conn: sqlite3.Connection) -> Decision:
            row = conn.execute(_LATEST_OF_KEY, (key,)).fetchone()
            if ahead is not None and ahead.row == row:
                decision = ahead.decision  # nothing committed to this identity since the read
            else:
                current = (
                    codec.incident_from_json(row[2], row_id=row[0], number=row[1]) if row else None
                )
                decision = decide(current)
            incident = decision.incident
            if not decision.changed or incident is None:
                return decision
            now = codec.epoch(self._clock())
            if decision.is_new:
                incident.key = key
                incident.identity = identity
                self._known.add(key)
            _save_incident(conn, incident, now, new=decision.is_new)
            assert incident.id is not None
            _insert_events(conn, incident.id, decision.events)
            _insert_effects(conn, incident.id, decision, now)
            return decision

        return await self._write(unit)

    # -- outbox ----------------------------------------------------------------------------

    async def claim_effects(
        self, now: datetime, limit: int, lease: timedelta, lane: str = "github"
    ) -> list[ClaimedEffect]:
        at = codec.epoch(now)

        def unit(conn: sqlite3.Connection) -> list[ClaimedEffect]:
            # Running effects whose lease ran out (their worker died or gave up: the outcome of
            # what it sent is unknown), then due pending ones; one per incident, its oldest.
            rows = conn.execute(CLAIM_LAPSED, (at, lane, limit)).fetchall()
            rows += conn.execute(CLAIM_DUE, (at, lane, limit - len(rows))).fetchall()
            claimed = []
            for (
                effect_id,
                incident_id,
                kind,
                payload,
                attempts,
                claim,
                created,
                unknown,
                state,
                incident_kind,
                number,
                urgent,
            ) in rows:
                lapsed = state == "running"
                prefix = "MAINT" if incident_kind == "maint" else "INC"
                conn.execute(
                    "UPDATE outbox SET state = 'running', claim = claim + 1, lease_until = ?,"
                    " outcome_unknown = outcome_unknown OR ? WHERE id = ?",
                    (at + lease.total_seconds(), lapsed, effect_id),
                )
                claimed.append(
                    ClaimedEffect(
                        id=effect_id,
                        incident_id=incident_id,
                        kind=kind,
                        payload=codec.loads(payload),
                        attempts=attempts,
                        claim=claim + 1,
                        created_at=codec.from_epoch(created),
                        outcome_unknown=bool(unknown) or lapsed,
                        incident_label=f"{prefix}-{number:03d}",
                        urgent=bool(urgent),
                    )
                )
            return claimed

        return await self._write(unit)

    async def finish_effect(self, effect: ClaimedEffect, now: datetime) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE outbox SET state = 'done', finished_at = ?, lease_until = NULL,"
                    " attempts = attempts + 1, outcome_unknown = 0, last_error = NULL"
                    " WHERE id = ? AND claim = ? AND state = 'running'",
                    (codec.epoch(now), effect.id, effect.claim),
                ).rowcount
                == 1
            )
        )

    async def retry_effect(
        self,
        effect: ClaimedEffect,
        at: datetime,
        error: str,
        *,
        outcome_unknown: bool,
        fallback: Sequence[EffectSpec] | None = None,
    ) -> bool:
        late = fallback is not None and not effect.payload.get(LATE)
        # Only the claim's holder writes the row, so the claimed payload is the stored one.
        marked = codec.dumps({**effect.payload, LATE: True}) if late else None
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, last_error = ?,"
                " attempts = attempts + 1, outcome_unknown = ?, lease_until = NULL,"
                " payload = coalesce(?, payload)"
                " WHERE id = ? AND claim = ? AND state = 'running'",
                (
                    codec.epoch(at),
                    error[:2000],
                    int(outcome_unknown),
                    marked,
                    effect.id,
                    effect.claim,
                ),
            ).rowcount
            if changed != 1:
                return False
            if late and fallback is not None:
                text = late_text(effect.kind, error, fallback)
                _record_failure(conn, effect, now, text, fallback, late=True)
            return True

        return await self._write(unit)

    async def fail_effect(
        self,
        effect: ClaimedEffect,
        now: datetime,
        error: str,
        fallback: Sequence[EffectSpec] = (),
    ) -> bool:
        def unit(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE outbox SET state = 'failed', finished_at = ?, last_error = ?,"
                " attempts = attempts + 1, lease_until = NULL"
                " WHERE id = ? AND claim = ? AND state = 'running'",
                (codec.epoch(now), error[:2000], effect.id, effect.claim),
            ).rowcount
            if changed != 1:
                return False
            text = failure_text(effect.kind, error, fallback)
            _record_failure(conn, effect, now, text, fallback, late=False)
            # What a failed bundle held and no fallback took over is not told by it any more.
            conn.execute("DELETE FROM notify_held WHERE bundle_id = ?", (effect.id,))
            return True

        return await self._write(unit)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._rconn().execute(sql, params).fetchall()

    def _row(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._rconn().execute(sql, params).fetchone()

    async def next_due(self, lane: str = "github") -> datetime | None:
        # Only effects a claim could take, as on PostgreSQL: a pending message waiting behind
        # an older one to the same person in backoff is not due, or the lane's worker would
        # spin (a claim per turn) until that one's retry.
        def read() -> datetime | None:
            row = self._row(
                "SELECT o.next_attempt_at FROM outbox o WHERE o.state = 'pending'"
                " AND o.lane = ? AND (o.bundle = 1 OR NOT EXISTS (SELECT 1 FROM outbox p"
                " WHERE p.incident_id = o.incident_id AND p.lane = o.lane"
                " AND p.recipient = o.recipient AND p.bundle = 0"
                " AND p.state IN ('pending', 'running') AND p.id < o.id))"
                " ORDER BY o.next_attempt_at, o.id LIMIT 1",
                (lane,),
            )
            return codec.from_epoch(row[0]) if row and row[0] is not None else None

        return await self._read(read)

    async def outbox_stats(self) -> OutboxStats:
        def read() -> OutboxStats:
            counts = dict(
                self._rows(
                    "SELECT state, COUNT(*) FROM outbox"
                    " WHERE state IN ('pending', 'running', 'failed') GROUP BY state"
                )
            )
            oldest = self._row("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'")[0]
            queued = self._rows(
                "SELECT i.priority, COUNT(*) FROM outbox o JOIN incidents i"
                " ON i.id = o.incident_id WHERE o.state IN ('pending', 'running')"
                " GROUP BY i.priority"
            )
            return OutboxStats(
                pending=counts.get("pending", 0),
                running=counts.get("running", 0),
                failed=counts.get("failed", 0),
                oldest_pending=codec.from_epoch(oldest) if oldest is not None else None,
                by_priority={str(p): int(n) for p, n in queued},
            )

        return await self._read(read)

    # -- incidents -------------------------------------------------------------------------

    async def load_incident(self, incident_id: int) -> Incident | None:
        def read() -> Incident | None:
            row = self._row("SELECT number, data FROM incidents WHERE id = ?", (incident_id,))
            if row is None:
                return None
            return codec.incident_from_json(row[1], row_id=incident_id, number=row[0])

        return await self._quick(read)

    async def load_events(self, incident_id: int, limit: int) -> list[TimelineEvent]:
        def read() -> list[TimelineEvent]:
            rows = self._rows(
                "SELECT seq, at, kind, text, data FROM events WHERE incident_id = ?"
                " ORDER BY seq DESC LIMIT ?",
                (incident_id, limit),
            )
            return [codec.event_from_row(*row) for row in reversed(rows)]

        # The issue's last few events are a small read; a review's or the status page's
        # history is not (a few ms to decode per 500 events): off the loop.
        return await (self._quick if limit <= _QUICK_EVENTS else self._read)(read)

    async def load_event(self, incident_id: int, seq: int) -> TimelineEvent | None:
        def read() -> TimelineEvent | None:
            row = self._row(
                "SELECT seq, at, kind, text, data FROM events WHERE incident_id = ? AND seq = ?",
                (incident_id, seq),
            )
            return codec.event_from_row(*row) if row else None

        return await self._quick(read)

    async def issue_record(self, incident_id: int, repository: str) -> IssueRecord | None:
        def read() -> IssueRecord | None:
            row = self._row(
                "SELECT number, url, title, body, region, labels, state, etag FROM github_issues"
                " WHERE incident_id = ? AND repository = ?",
                (incident_id, repository),
            )
            if row is None:
                return None
            number, url, title, body, region, labels, state, etag = row
            return IssueRecord(
                incident_id=incident_id,
                repository=repository,
                number=number,
                url=url,
                title=title,
                body=body,
                region=region,
                labels=set(codec.loads(labels)),
                state=state,
                etag=etag,
            )

        return await self._quick(read)

    async def save_issue_record(self, record: IssueRecord) -> None:
        values = _issue_values(record, record.incident_id)
        await self._write(lambda c: c.execute(_ISSUE_UPSERT, values))

    async def list_incidents(
        self, repository: str, *, limit: int = 100, state: str | None = None
    ) -> list[IncidentRow]:
        sql = (
            "SELECT i.id, i.number, i.data, g.number, g.url FROM incidents i"
            " LEFT JOIN github_issues g ON g.incident_id = i.id AND g.repository = ?"
            " WHERE (? IS NULL OR i.state = ?) ORDER BY i.id DESC LIMIT ?"
        )

        def read() -> list[IncidentRow]:
            rows = self._rows(sql, (repository, state, state, limit))
            return [
                IncidentRow(
                    incident=codec.incident_from_json(data, row_id=row_id, number=number),
                    issue_number=issue_number,
                    issue_url=issue_url,
                )
                for row_id, number, data, issue_number, issue_url in rows
            ]

        return await self._read(read)

    async def watched_issues(
        self, repository: str, *, resolved_since: datetime, open_limit: int, resolved_limit: int
    ) -> list[WatchedIssue]:
        def read() -> list[WatchedIssue]:
            rows = self._rows(_WATCHED_OPEN, (repository, open_limit))
            rows += self._rows(
                _WATCHED_RESOLVED, (repository, codec.epoch(resolved_since), resolved_limit)
            )
            return [
                WatchedIssue(incident_id, number, Priority(priority), state == "open")
                for incident_id, number, priority, state in rows
            ]

        return await self._read(read)

    async def open_counts(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            rows = self._rows(
                "SELECT priority, COUNT(*) FROM incidents"
                " WHERE state = 'open' AND kind = 'incident' GROUP BY priority"
            )
            return {str(priority): int(count) for priority, count in rows}

        return await self._read(read)

    async def incident_count(self) -> int:
        return await self._read(lambda: int(self._row("SELECT COUNT(*) FROM incidents")[0]))

    # -- retention and rebuild -------------------------------------------------------------

    _PRUNE_BATCH = 5000

    async def prune(self, before: datetime, *, batch: int = _PRUNE_BATCH) -> PruneResult:
        # One writer unit per batch: ingest units queue between them, never behind all of it.
        # Event times are ISO 8601 text in UTC (codec.ts), which sorts like the times.
        resolved_before, at_before = codec.epoch(before), codec.ts(before)

        def events(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM events WHERE (incident_id, seq) IN (SELECT e.incident_id, e.seq"
                " FROM incidents i JOIN events e ON e.incident_id = i.id"
                " WHERE i.state != 'open' AND i.resolved_at < ? AND e.at < ?"
                # Never a maintenance request's (it reopens whenever its condition fires anew,
                # however long after) nor one with an unfinished effect (a comment waiting out
                # a GitHub outage still needs its event).
                " AND i.kind != 'maint' AND NOT EXISTS (SELECT 1 FROM outbox o"
                " WHERE o.incident_id = i.id AND o.state IN ('pending', 'running'))"
                " LIMIT ?)",
                (resolved_before, at_before, batch),
            ).rowcount

        def effects(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                " WHERE state IN ('done', 'failed') AND finished_at < ? LIMIT ?)",
                (resolved_before, batch),
            ).rowcount

        def deliveries(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM github_deliveries WHERE id IN (SELECT id FROM github_deliveries"
                " WHERE at < ? LIMIT ?)",
                (resolved_before, batch),
            ).rowcount

        counts = []
        for unit in (events, effects, deliveries):
            total = 0
            while True:
                deleted = await self._write(unit)
                total += deleted
                if deleted < batch:
                    break
            counts.append(total)
        return PruneResult(events=counts[0], effects=counts[1])

    async def restore(self, incident: Incident, record: IssueRecord | None) -> bool:
        number = incident.number
        assert number is not None, "restore keeps the incident's number"
        now = codec.epoch(self._clock())

        def unit(conn: sqlite3.Connection) -> int | None:
            if conn.execute(
                "SELECT 1 FROM incidents WHERE kind = ? AND number = ?", (incident.kind, number)
            ).fetchone():
                return None
            conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
                (number_series(incident.kind), number),
            )
            cursor = conn.execute(
                "INSERT INTO incidents (key, kind, number, state, priority, opened_at, resolved_at,"
                " data, updated_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    incident.key,
                    incident.kind,
                    number,
                    incident.state,
                    str(incident.priority),
                    codec.epoch(incident.opened_at),
                    codec.epoch(incident.resolved_at) if incident.resolved_at else None,
                    codec.incident_to_json(incident),
                    now,
                    codec.epoch(due) if (due := incident.due_at) is not None else None,
                ),
            )
            new_id = cursor.lastrowid
            assert new_id is not None
            self._known.add(incident.key)
            if record is not None:
                conn.execute(_ISSUE_UPSERT, _issue_values(record, new_id))
            return new_id

        new_id = await self._write(unit)
        if new_id is None:
            return False
        incident.id = new_id
        if record is not None:
            record.incident_id = new_id
        return True

    # -- the GitHub writer lease and write budget ---------------------------------------

    async def hold_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        at, until = codec.epoch(now), codec.epoch(now + ttl)

        def unit(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until WHERE leases.holder = excluded.holder"
                " OR leases.until <= ?",
                (name, holder, until, at),
            )
            row = conn.execute("SELECT holder FROM leases WHERE name = ?", (name,)).fetchone()
            return bool(row is not None and row[0] == holder)

        return await self._write(unit)

    async def urgent_waiting(self, now: datetime) -> bool:
        at = codec.epoch(now)
        return await self._read(lambda: self._row(URGENT_WAITING, (at,)) is not None)

    async def writes_since(self, since: datetime) -> list[datetime]:
        rows = await self._quick(
            lambda: self._rows(
                "SELECT at FROM github_writes WHERE at > ? ORDER BY at", (codec.epoch(since),)
            )
        )
        return [codec.from_epoch(at) for (at,) in rows]

    async def record_write(self, at: datetime) -> None:
        moment = codec.epoch(at)

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO github_writes (at) VALUES (?)", (moment,))
            conn.execute("DELETE FROM github_writes WHERE at < ?", (moment - 3600.0,))

        await self._write(unit)

    async def budget_factor(self) -> tuple[float, datetime | None]:
        row = await self._quick(
            lambda: self._row("SELECT factor, changed_at FROM github_budget WHERE name = 'github'")
        )
        if row is None:
            return 1.0, None
        return float(row[0]), codec.from_epoch(row[1])

    async def set_budget_factor(self, factor: float, at: datetime) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO github_budget (name, factor, changed_at) VALUES ('github', ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET factor = excluded.factor,"
                " changed_at = excluded.changed_at",
                (factor, codec.epoch(at)),
            )
        )

    # -- storm mode ------------------------------------------------------------------------

    async def join_storm(self, incident_id: int, now: datetime) -> int:
        at = codec.epoch(now)

        def unit(conn: sqlite3.Connection) -> int:
            # A member of a storm that is over (resolved, then firing again while the budget is
            # still spent) joins the active storm: the over one's "storm over" stays true.
            row = conn.execute(
                "SELECT m.storm_id FROM storm_members m JOIN storms s"
                " ON s.incident_id = m.storm_id WHERE m.incident_id = ? AND s.over_at IS NULL",
                (incident_id,),
            ).fetchone()
            if row is not None:
                storm_id = int(row[0])
            else:
                active = conn.execute(
                    "SELECT incident_id FROM storms WHERE over_at IS NULL"
                    " ORDER BY incident_id DESC LIMIT 1"
                ).fetchone()
                if active is not None:
                    storm_id = int(active[0])
                else:
                    storm = storms.new_storm(_next_number(conn, "incident"), now)
                    cursor = conn.execute(
                        "INSERT INTO incidents (key, kind, number, state, priority, opened_at,"
                        " resolved_at, data, updated_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                        (
                            storm.key,
                            storm.kind,
                            storm.number,
                            storm.state,
                            str(storm.priority),
                            at,
                            codec.incident_to_json(storm),
                            at,
                        ),
                    )
                    assert cursor.lastrowid is not None
                    storm_id = cursor.lastrowid
                    self._known.add(storm.key)
                    conn.execute("INSERT INTO storms (incident_id) VALUES (?)", (storm_id,))
                conn.execute(
                    "INSERT INTO storm_members (incident_id, storm_id, joined_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (incident_id) DO UPDATE SET storm_id = excluded.storm_id,"
                    " joined_at = excluded.joined_at",
                    (incident_id, storm_id, at),
                )
            _queue_storm(conn, storm_id, at, at)
            return storm_id

        return await self._write(unit)

    async def storm_of(self, incident_id: int) -> int | None:
        row = await self._quick(
            lambda: self._row(
                "SELECT storm_id FROM storm_members WHERE incident_id = ?", (incident_id,)
            )
        )
        return int(row[0]) if row is not None else None

    async def queue_storm(self, storm_id: int, not_before: datetime) -> None:
        at, now = codec.epoch(not_before), codec.epoch(self._clock())
        await self._write(lambda c: _queue_storm(c, storm_id, at, now))

    async def load_storm(self, storm_id: int, repository: str) -> Storm | None:
        def read() -> Storm | None:
            row = self._row(
                "SELECT i.number, i.data, s.edited_at, s.over_at, s.announced_at"
                " FROM incidents i JOIN storms s ON s.incident_id = i.id WHERE i.id = ?",
                (storm_id,),
            )
            if row is None:
                return None
            number, data, edited, over, announced = row
            rows = self._rows(
                "SELECT i.id, i.number, i.data, g.number FROM storm_members m"
                " JOIN incidents i ON i.id = m.incident_id LEFT JOIN github_issues g"
                " ON g.incident_id = i.id AND g.repository = ? WHERE m.storm_id = ?"
                " ORDER BY i.number",
                (repository, storm_id),
            )
            members = [
                StormMember(
                    incident=codec.incident_from_json(d, row_id=i, number=n), issue_number=g
                )
                for i, n, d, g in rows
            ]
            return Storm(
                incident=codec.incident_from_json(data, row_id=storm_id, number=number),
                members=members,
                edited_at=codec.from_epoch(edited) if edited is not None else None,
                over_at=codec.from_epoch(over) if over is not None else None,
                announced_at=codec.from_epoch(announced) if announced is not None else None,
            )

        return await self._read(read)

    async def record_storm_write(
        self, storm_id: int, at: datetime, *, priority: Priority, resolved: bool
    ) -> None:
        moment = codec.epoch(at)

        def unit(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE storms SET edited_at = ? WHERE incident_id = ?", (moment, storm_id)
            )
            number, data = conn.execute(
                "SELECT number, data FROM incidents WHERE id = ?", (storm_id,)
            ).fetchone()
            storm = codec.incident_from_json(data, row_id=storm_id, number=number)
            storm.priority = priority
            if resolved != (storm.state == "resolved"):
                storm.state = "resolved" if resolved else "open"
                storm.resolved_at = at if resolved else None
            _save_incident(conn, storm, moment, new=False)

        await self._write(unit)

    async def storm_over(self, storm_id: int, repository: str, at: datetime) -> bool:
        return await self._write(
            lambda c: (
                c.execute(
                    "UPDATE storms SET over_at = ? WHERE incident_id = ? AND over_at IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM storm_members m JOIN incidents i"
                    " ON i.id = m.incident_id LEFT JOIN github_issues g ON g.incident_id = i.id"
                    " AND g.repository = ? WHERE m.storm_id = ? AND i.state = 'open'"
                    " AND g.number IS NULL)",
                    (codec.epoch(at), storm_id, repository, storm_id),
                ).rowcount
                == 1
            )
        )

    async def storm_announced(self, storm_id: int, at: datetime) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE storms SET announced_at = ? WHERE incident_id = ?",
                (codec.epoch(at), storm_id),
            )
        )

    async def queue_syncs(self, incident_ids: list[int], now: datetime) -> None:
        at = codec.epoch(now)

        def unit(conn: sqlite3.Connection) -> None:
            for incident_id in incident_ids:
                if not _pending_last(conn, incident_id, "github.sync"):
                    conn.execute(
                        "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                        " next_attempt_at, urgent) VALUES (?, 'github.sync', '{}', 'pending',"
                        " ?, ?, 0)",
                        (incident_id, at, at),
                    )

        await self._write(unit)

    # -- notification channels' state -------------------------------------------------

    async def notify_state(self, incident_id: int, channel: str) -> dict[str, str]:
        row = await self._quick(
            lambda: self._row(
                "SELECT data FROM notify_state WHERE incident_id = ? AND channel = ?",
                (incident_id, channel),
            )
        )
        return dict(codec.loads(row[0])) if row else {}

    async def save_notify_state(
        self, incident_id: int, channel: str, state: dict[str, str]
    ) -> None:
        data = codec.dumps(state)
        await self._write(
            lambda c: c.execute(
                "INSERT INTO notify_state (incident_id, channel, data) VALUES (?, ?, ?)"
                " ON CONFLICT (incident_id, channel) DO UPDATE SET data = excluded.data",
                (incident_id, channel, data),
            )
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
        at, window = codec.epoch(now), per.total_seconds()
        person = (channel, recipient)

        def unit(conn: sqlite3.Connection) -> bool:
            # The single writer serializes this against every claim and every other person.
            if conn.execute(
                "SELECT 1 FROM notify_log WHERE channel = ? AND recipient = ? AND effect_id = ?",
                (*person, effect.id),
            ).fetchone():
                return True  # its slot was taken by an earlier attempt
            if conn.execute(
                "SELECT 1 FROM notify_held WHERE effect_id = ?", (effect.id,)
            ).fetchone():
                return False  # already held
            conn.execute(
                "DELETE FROM notify_log WHERE channel = ? AND recipient = ? AND at <= ?",
                (*person, at - window),
            )
            pending = conn.execute(
                "SELECT h.bundle_id FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
                " WHERE h.channel = ? AND h.recipient = ? AND o.state = 'pending' LIMIT 1",
                person,
            ).fetchone()
            if pending is not None:
                bundle_id = int(pending[0])
            else:
                count, oldest = conn.execute(
                    "SELECT COUNT(*), MIN(at) FROM notify_log"
                    " WHERE channel = ? AND recipient = ? AND at > ?",
                    (*person, at - window),
                ).fetchone()
                # A bundle being sent goes first: what comes meanwhile waits for the next one.
                running = conn.execute(
                    "SELECT 1 FROM notify_held h JOIN outbox o ON o.id = h.bundle_id"
                    " WHERE h.channel = ? AND h.recipient = ? AND o.state = 'running' LIMIT 1",
                    person,
                ).fetchone()
                if count < limit and running is None:
                    conn.execute(
                        "INSERT INTO notify_log (channel, recipient, effect_id, at)"
                        " VALUES (?, ?, ?, ?)",
                        (*person, effect.id, at),
                    )
                    return True
                payload = bundle_payload(recipient, str(effect.payload.get("name", "")))
                cursor = conn.execute(
                    "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                    " next_attempt_at, urgent, lane, bundle, recipient)"
                    " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, 1, ?)",
                    (
                        effect.incident_id,
                        f"notify.{channel}",
                        codec.dumps(payload),
                        at,
                        at if count < limit else max(at, oldest + window),
                        effect.urgent,
                        channel,
                        recipient,
                    ),
                )
                assert cursor.lastrowid is not None
                bundle_id = cursor.lastrowid
            conn.execute(
                "INSERT INTO notify_held (effect_id, channel, recipient, incident_id, event_seq,"
                " bundle_id, held_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    effect.id,
                    *person,
                    effect.incident_id,
                    int(effect.payload["event_seq"]),
                    bundle_id,
                    at,
                ),
            )
            return False

        return await self._write(unit)

    async def bundle_slot(
        self,
        bundle: ClaimedEffect,
        channel: str,
        recipient: str,
        now: datetime,
        limit: int,
        per: timedelta,
    ) -> BundleSlot:
        at, window = codec.epoch(now), per.total_seconds()
        person = (channel, recipient)

        def unit(conn: sqlite3.Connection) -> BundleSlot:
            held = [
                HeldNotice(incident_id, seq, codec.from_epoch(held_at))
                for incident_id, seq, held_at in conn.execute(
                    "SELECT incident_id, event_seq, held_at FROM notify_held"
                    " WHERE bundle_id = ? ORDER BY held_at, effect_id",
                    (bundle.id,),
                )
            ]
            if (
                not held
                or conn.execute(
                    "SELECT 1 FROM notify_log WHERE channel = ? AND recipient = ?"
                    " AND effect_id = ?",
                    (*person, bundle.id),
                ).fetchone()
            ):
                return BundleSlot(held)
            conn.execute(
                "DELETE FROM notify_log WHERE channel = ? AND recipient = ? AND at <= ?",
                (*person, at - window),
            )
            count, oldest = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM notify_log"
                " WHERE channel = ? AND recipient = ? AND at > ?",
                (*person, at - window),
            ).fetchone()
            if count >= limit:
                return BundleSlot([], codec.from_epoch(oldest + window))
            conn.execute(
                "INSERT INTO notify_log (channel, recipient, effect_id, at) VALUES (?, ?, ?, ?)",
                (*person, bundle.id, at),
            )
            return BundleSlot(held)

        return await self._write(unit)

    async def bundle_told(self, bundle_id: int) -> None:
        await self._write(
            lambda c: c.execute("DELETE FROM notify_held WHERE bundle_id = ?", (bundle_id,))
        )

    # -- the on-call lifecycle -------------------------------------------------------------

    async def due_incidents(self, now: datetime, limit: int) -> list[DueIncident]:
        def read() -> list[DueIncident]:
            rows = self._rows(
                "SELECT id, key, data, due_at FROM incidents WHERE due_at IS NOT NULL"
                " AND due_at <= ? ORDER BY due_at LIMIT ?",
                (codec.epoch(now), limit),
            )
            return [
                DueIncident(
                    id=row[0],
                    key=row[1],
                    identity=str(codec.loads(row[2])["identity"]),
                    due_at=codec.from_epoch(row[3]),
                )
                for row in rows
            ]

        return await self._read(read)

    async def next_timer(self) -> datetime | None:
        def read() -> datetime | None:
            row = self._row("SELECT MIN(due_at) FROM incidents WHERE due_at IS NOT NULL")
            return None if row is None or row[0] is None else codec.from_epoch(row[0])

        return await self._quick(read)

    async def set_mark(self, name: str, at: datetime) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO marks (name, at) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET at = MAX(at, excluded.at)",
                (name, codec.epoch(at)),
            )
        )

    async def mark(self, name: str) -> datetime | None:
        def read() -> datetime | None:
            row = self._row("SELECT at FROM marks WHERE name = ?", (name,))
            return None if row is None else codec.from_epoch(row[0])

        return await self._quick(read)

    async def first_delivery(self, delivery_id: str, now: datetime) -> bool:
        def unit(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO github_deliveries (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (delivery_id, codec.epoch(now)),
            )
            return cursor.rowcount == 1

        return await self._write(unit)

    async def delivery_seen(self, delivery_id: str) -> bool:
        return await self._quick(
            lambda: (
                self._row("SELECT 1 FROM github_deliveries WHERE id = ?", (delivery_id,))
                is not None
            )
        )

    async def incident_by_issue(self, repository: str, number: int) -> Incident | None:
        def read() -> Incident | None:
            row = self._row(
                "SELECT i.id, i.number, i.data FROM github_issues g"
                " JOIN incidents i ON i.id = g.incident_id"
                " WHERE g.repository = ? AND g.number = ? ORDER BY i.id DESC LIMIT 1",
                (repository, number),
            )
            if row is None:
                return None
            return codec.incident_from_json(row[2], row_id=row[0], number=row[1])

        return await self._quick(read)

    # -- reports ---------------------------------------------------------------------------

    async def incidents_between(self, since: datetime, until: datetime) -> list[IncidentHistory]:
        window = (codec.epoch(until), codec.epoch(since))

        def read() -> list[IncidentHistory]:
            conn = self._rconn()
            conn.execute("BEGIN")  # one snapshot for the incidents and their events
            try:
                rows = conn.execute(_BETWEEN, window).fetchall()
                events: dict[int, list[TimelineEvent]] = {row[0]: [] for row in rows}
                for row in conn.execute(_BETWEEN_EVENTS, window):
                    events[row[0]].append(codec.event_from_row(*row[1:]))
            finally:
                conn.execute("COMMIT")
            return [
                IncidentHistory(
                    incident=codec.incident_from_json(data, row_id=row_id, number=number),
                    events=events[row_id],
                )
                for row_id, number, data in rows
            ]

        return await self._read(read)

    async def open_incidents(self, after_id: int, limit: int) -> list[Incident]:
        def read() -> list[Incident]:
            rows = self._rows(
                "SELECT id, number, data FROM incidents WHERE state = 'open' AND id > ?"
                " ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            return [codec.incident_from_json(d, row_id=i, number=n) for i, n, d in rows]

        return await self._read(read)

    # -- post-incident reviews ---------------------------------------------------------------

    async def notifications(self, incident_id: int) -> list[SentNotification]:
        def read() -> list[SentNotification]:
            rows = self._rows(
                "SELECT kind, payload, state, finished_at FROM outbox"
                " WHERE incident_id = ? AND lane != 'github' ORDER BY id",
                (incident_id,),
            )
            return [_sent(*row) for row in rows]

        return await self._read(read)

    async def schedule_review(self, incident_id: int, due_at: datetime | None) -> None:
        due = codec.epoch(due_at) if due_at is not None else None
        await self._write(
            lambda c: c.execute(
                "INSERT INTO reviews (incident_id, due_at) VALUES (?, ?)"
                " ON CONFLICT (incident_id) DO UPDATE SET due_at = excluded.due_at"
                " WHERE reviews.reminded_at IS NULL",
                (incident_id, due),
            )
        )

    async def remind_reviews(self, now: datetime, limit: int) -> list[int]:
        at = codec.epoch(now)

        def unit(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                "SELECT r.incident_id, i.kind, i.priority FROM reviews r"
                " JOIN incidents i ON i.id = r.incident_id"
                " WHERE r.due_at IS NOT NULL AND r.due_at <= ? ORDER BY r.due_at LIMIT ?",
                (at, limit),
            ).fetchall()
            for incident_id, kind, priority in rows:
                conn.execute(
                    "UPDATE reviews SET due_at = NULL, reminded_at = ? WHERE incident_id = ?",
                    (at, incident_id),
                )
                conn.execute(
                    "INSERT INTO outbox (incident_id, kind, payload, state, created_at,"
                    " next_attempt_at, urgent, lane) VALUES (?, 'github.pir_reminder', '{}',"
                    " 'pending', ?, ?, ?, 'github')",
                    (incident_id, at, at, kind == "incident" and priority in ("P0", "P1")),
                )
            return [int(row[0]) for row in rows]

        return await self._write(unit)


def _sent(kind: str, payload: str, state: str, finished: float | None) -> SentNotification:
    data = codec.loads(payload)
    seq = data.get("event_seq")
    return SentNotification(
        kind=kind,
        name=str(data.get("name") or ""),
        event_seq=int(seq) if seq is not None and not data.get("bundle") else None,
        state=state,
        finished_at=codec.from_epoch(finished) if finished is not None else None,
    )


# Incidents open at some moment of a window: opened before its end (?1), not resolved before its
# start (?2). Open incidents have no resolved_at.
_BETWEEN = (
    "SELECT id, number, data FROM incidents WHERE kind = 'incident' AND opened_at < ?1"
    " AND (resolved_at IS NULL OR resolved_at >= ?2) ORDER BY id"
)
_BETWEEN_EVENTS = (
    "SELECT e.incident_id, e.seq, e.at, e.kind, e.text, e.data FROM events e"
    " JOIN incidents i ON i.id = e.incident_id WHERE i.kind = 'incident' AND i.opened_at < ?1"
    " AND (i.resolved_at IS NULL OR i.resolved_at >= ?2) ORDER BY e.incident_id, e.seq"
)
