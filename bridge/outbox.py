"""The outbox worker: runs due effects from durable state and records every outcome.

Every retry is scheduled here and nowhere else: a retryable failure sets ``next_attempt_at``
(exponential backoff with jitter, or exactly what ``Retry-After`` / the rate-limit reset asks,
whichever is later) and releases the claim; nothing sleeps while holding work. A permanent failure
is recorded, counted and put in the incident's timeline; it never blocks the effects behind it.

A notification may carry a ``deadline`` (its incident's response deadline, ISO 8601, set by
``bridge/notify/policy.py``). A retry is never scheduled past it — the next attempt comes at the
deadline at the latest — and a retryable failure at or past it (or one whose ``Retry-After``
reaches past it: the message cannot go out in time) is retried *and*, in the same transaction,
once, its person is told on their next channel (``fallback``) with a timeline line saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from bridge.clock import Clock
from bridge.effects import EffectError
from bridge.github.sync import PermanentEffectError
from bridge.metrics import Metrics
from bridge.model import EffectSpec, Lane
from bridge.store.base import LATE, ClaimedEffect, Store, StoreUnavailable

log = structlog.get_logger(__name__)

Runner = Callable[[ClaimedEffect], Awaitable[None]]
# Takes (False) or gives up (True) the right to run effects now: the GitHub writer lease, so one
# replica at a time talks to GitHub with the token. Returns whether this worker holds it.
Gate = Callable[[bool], Awaitable[bool]]

_BACKOFF_BASE = 1.0
_BACKOFF_MAX = 300.0
_RETRY_AFTER_MAX = 3600.0  # GitHub's primary window is an hour; anything longer is not honoured
_IDLE_POLL = 1.0


def backoff(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (1-based). A
    ``Retry-After`` is honoured up to an hour (a proxy's day-long or infinite one is not)."""
    exponential: float = min(_BACKOFF_MAX, _BACKOFF_BASE * 2.0 ** max(0, attempts - 1))
    jittered = exponential * rng.uniform(0.8, 1.2)
    if retry_after is not None:
        retry_after = min(retry_after, _RETRY_AFTER_MAX)  # also an inf; a NaN is below
        if not retry_after >= 0.0:
            retry_after = 0.0
        # Never earlier than the far side asked; a little later so replicas do not stampede.
        return max(retry_after + rng.uniform(0.0, 1.0), min(jittered, retry_after + 5.0))
    return jittered


def deadline_of(effect: ClaimedEffect) -> datetime | None:
    """The response deadline of a notification not yet told on another channel (None: none)."""
    raw = effect.payload.get("deadline")
    if not isinstance(raw, str) or effect.payload.get(LATE):
        return None
    try:
        deadline = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return deadline if deadline.tzinfo is not None else None


class Outbox:
    """Claims the due effects of one lane (GitHub, or a notification channel) and runs them one
    at a time; every lane has its own worker, so a channel that is down delays only itself."""

    def __init__(
        self,
        store: Store,
        runner: Runner,
        clock: Clock,
        metrics: Metrics,
        *,
        batch: int = 32,
        lease: timedelta = timedelta(seconds=60),
        rng: random.Random | None = None,
        gate: Gate | None = None,
        lane: Lane = "github",
        fallback: Callable[[ClaimedEffect], list[EffectSpec]] = lambda _effect: [],
    ) -> None:
        self._store = store
        self._runner = runner
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._lease = lease
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._gate = gate
        self._lane = lane
        # Who to tell instead when an effect fails for good or is still failing at its deadline.
        self._fallback = fallback
        self._writer = gate is None
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """New effects were committed: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the effect in hand, claim no more."""
        self._stopping = True
        self._wake.set()

    @property
    def is_writer(self) -> bool:
        """Whether this worker held the writer lease at its last pass."""
        return self._writer

    async def release(self) -> None:
        """Hand the writer lease over now rather than when it runs out (a rolling update's
        replacement, or another replica, takes over at once). After ``stop()``."""
        if self._gate is not None and self._writer:
            self._writer = False
            with contextlib.suppress(StoreUnavailable):
                await self._gate(True)

    async def _still_writer(self) -> bool:
        """Whether this worker still holds the writer lease (renewing it when due); a store
        that does not answer counts as lost: nothing more is started on a lease unconfirmed."""
        if self._gate is None:
            return True
        try:
            return await self._gate(False)
        except StoreUnavailable:
            return False

    async def run_once(self) -> int:
        """Run every effect due now (one pass); return how many were attempted."""
        self._writer = self._gate is None or await self._gate(False)
        if not self._writer:
            return 0  # another replica is the writer; its lease ending makes this one it
        claimed_at = self._clock()
        claimed = await self._store.claim_effects(claimed_at, self._batch, self._lease, self._lane)
        for index, effect in enumerate(claimed):
            # Past half the lease, the rest of the batch is released rather than run: another
            # replica may take a claim once its lease ends, and an effect must never run on two.
            late = self._clock() - claimed_at > self._lease / 2
            # The writer lease is renewed before each effect (a store write only once a quarter
            # of it has gone): a long batch on a slow GitHub must not outlast it while another
            # replica takes over the writing. Lost, the rest goes back.
            lost = index > 0 and not self._stopping and not late and not await self._still_writer()
            if self._stopping or late or lost:
                # Release what we will not run, so another replica or the next pass takes it.
                # Not running it tells nothing about an earlier attempt: an unknown outcome (a
                # lapsed claim of a replica that died mid-request) stays unknown.
                reason = (
                    "released at shutdown"
                    if self._stopping
                    else "released: lease half gone"
                    if late
                    else "released: writer lease lost"
                )
                for rest in claimed[index:]:
                    await self._store.retry_effect(
                        rest, self._clock(), reason, outcome_unknown=rest.outcome_unknown
                    )
                break
            await self._run(effect)
        return len(claimed)

    async def drain(self, max_passes: int = 100) -> None:
        """Run passes until nothing is due (tests with a fake clock use this)."""
        for _ in range(max_passes):
            if await self.run_once() == 0:
                return

    async def _run(self, effect: ClaimedEffect) -> None:
        started = time.perf_counter()
        bound = structlog.contextvars.bind_contextvars(
            effect_id=effect.id, effect=effect.kind, incident=effect.incident_label
        )
        result = "done"
        error_text: str | None = None
        late = False  # told on another channel now: still failing at its deadline
        try:
            await self._runner(effect)
        except EffectError as error:
            error_text = str(error)
            if error.retryable:
                result = "retry"
                now = self._clock()
                delay = backoff(effect.attempts + 1, error.retry_after, self._rng)
                at, fallback = self._deadline(effect, now, now + timedelta(seconds=delay), error)
                # Unknown stays unknown until the effect is done: this attempt failing before
                # it wrote anything does not tell whether an earlier one did.
                retried = await self._store.retry_effect(
                    effect,
                    at,
                    error_text,
                    outcome_unknown=effect.outcome_unknown or error.outcome_unknown,
                    fallback=fallback,
                )
                if fallback is not None and retried:
                    late = True
                    self._count_fallback("late")
            else:
                result = "failed"
                await self._fail(effect, error_text)
        except PermanentEffectError as error:
            result, error_text = "failed", str(error)
            await self._fail(effect, error_text)
        except StoreUnavailable as error:
            # The claim stays until its lease ends; then it is taken again.
            result, error_text = "retry", f"store unavailable: {error}"
        except Exception as error:  # an unexpected bug must not kill the worker or drop the work
            result, error_text = "retry", f"{type(error).__name__}: {error}"
            log.exception("effect_crashed")
            delay = backoff(effect.attempts + 1, None, self._rng)
            await self._store.retry_effect(
                effect, self._clock() + timedelta(seconds=delay), error_text, outcome_unknown=True
            )
        else:
            await self._store.finish_effect(effect, self._clock())
            latency = (self._clock() - effect.created_at).total_seconds()
            self._metrics.effect_seconds.labels(kind=effect.kind).observe(max(0.0, latency))
        finally:
            structlog.contextvars.reset_contextvars(**bound)
        self._metrics.effects.labels(kind=effect.kind, result=result).inc()
        log.info(
            "effect",
            effect_id=effect.id,
            effect=effect.kind,
            incident=effect.incident_label,
            attempt=effect.attempts + 1,
            outcome_unknown=effect.outcome_unknown,
            result=result,
            late=late,
            error=error_text,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def _deadline(
        self, effect: ClaimedEffect, now: datetime, at: datetime, error: EffectError
    ) -> tuple[datetime, list[EffectSpec] | None]:
        """When to retry ``effect``, and the fallback to queue with the retry (None: none yet).
        No retry is scheduled past the effect's deadline; failing at or past it, or asked by
        the far side to wait past it, the person is told on their next channel now."""
        deadline = deadline_of(effect)
        if deadline is None or at <= deadline:
            return at, None
        earliest = now + timedelta(seconds=error.retry_after or 0.0)
        if now >= deadline or earliest > deadline:
            return at, self._fallback(effect)
        return deadline, None  # one more attempt at the deadline itself

    async def _fail(self, effect: ClaimedEffect, error_text: str) -> None:
        fallback = self._fallback(effect)
        if await self._store.fail_effect(effect, self._clock(), error_text, fallback):
            self._count_fallback("failed")

    def _count_fallback(self, reason: str) -> None:
        if self._lane != "github":
            self._metrics.notify_fallbacks.labels(channel=self._lane, reason=reason).inc()

    async def run_forever(self) -> None:
        """Work until ``stop()``; sleep until the next due effect, a wake-up or the idle poll."""
        while not self._stopping:
            self._wake.clear()
            try:
                if await self.run_once():
                    continue
                due = await self._store.next_due(self._lane) if self._writer else None
            except StoreUnavailable as error:
                log.warning("outbox_store_unavailable", error=str(error))
                due = None
            timeout = _IDLE_POLL
            if due is not None:
                timeout = min(_IDLE_POLL, max(0.0, (due - self._clock()).total_seconds()))
            if timeout > 0:
                wake = self._wake.wait() if self._writer else asyncio.sleep(timeout)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake, timeout)
