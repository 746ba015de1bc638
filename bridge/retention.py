"""``store.retention``: old timeline events and finished outbox rows pruned in the background.

Once an hour (and a minute after start) the store deletes what is older than the retention: the
timeline events of incidents resolved before the cut-off and effects that finished (done or
failed) before it. Open incidents and unfinished effects are never touched. The store deletes in
small batches, so webhooks never wait long behind a prune. Every replica may prune: deleting
what another already deleted is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import structlog

from bridge.clock import Clock
from bridge.metrics import Metrics
from bridge.store.base import PruneResult, Store, StoreUnavailable

log = structlog.get_logger(__name__)

FIRST_DELAY = 60.0  # seconds after start: start-up (labels, the backlog) goes first
INTERVAL = 3600.0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # nothing the store holds is older


class Retention:
    def __init__(self, store: Store, clock: Clock, metrics: Metrics, keep: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._keep = keep
        self._stop = asyncio.Event()

    async def run_once(self) -> PruneResult | None:
        """One prune; None when the store is unavailable (the next run tries again)."""
        started = time.perf_counter()
        now = self._clock()
        if self._keep >= now - _EPOCH:
            return PruneResult(events=0, effects=0)  # kept for longer than anything existed
        cutoff = now - self._keep
        try:
            result = await self._store.prune(cutoff)
        except StoreUnavailable as error:
            log.warning("retention_prune_failed", error=str(error))
            return None
        self._metrics.pruned.labels(kind="events").inc(result.events)
        self._metrics.pruned.labels(kind="effects").inc(result.effects)
        log.info(
            "retention_prune",
            before=cutoff.isoformat(),
            events=result.events,
            effects=result.effects,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return result

    def stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        delay = FIRST_DELAY
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return
            await self.run_once()
            delay = INTERVAL
