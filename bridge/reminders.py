"""The post-incident reviews' reminders, as a scheduler tick (``bridge/scheduler.py``).

A review's one reminder is due 48 hours after its incident resolved (``bridge/review.py``); the
due moment is a row of the store's ``reviews`` table, written when the review is created or
updated. Each scheduler pass — on every replica, at most ``idle_poll`` (5 s) apart — asks the
store to take the reviews that are due: in one transaction each is marked reminded and its
``github.pir_reminder`` effect queued, so a reminder is queued once whichever replica asks, and
the GitHub writer posts it (unless people closed the review by then).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from bridge.store.base import Store

log = structlog.get_logger(__name__)

_BATCH = 100


class ReviewReminders:
    """The tick: queue the reminders of the reviews due now."""

    def __init__(self, store: Store, on_effects: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._on_effects = on_effects

    async def check(self, now: datetime) -> None:
        queued = await self._store.remind_reviews(now, _BATCH)
        if queued:
            log.info("review_reminders_queued", incidents=queued)
            self._on_effects()
