"""Runs one claimed notification effect: load what it is about, send it, keep channel state."""

from __future__ import annotations

from bridge.effects import EffectError
from bridge.notify.base import Notice, Notifier
from bridge.store.base import ClaimedEffect, Store


class NotifyRunner:
    """The outbox runner of one channel's lane."""

    def __init__(self, store: Store, notifier: Notifier, repository: str) -> None:
        self._store = store
        self._notifier = notifier
        self._repository = repository

    async def run(self, effect: ClaimedEffect) -> None:
        incident = await self._store.load_incident(effect.incident_id)
        event = await self._store.load_event(effect.incident_id, int(effect.payload["event_seq"]))
        if incident is None or event is None:
            # Pruned, or never there: nothing to send, ever.
            raise EffectError(
                f"incident {effect.incident_id} or its event is gone", retryable=False
            )
        record = (
            await self._store.issue_record(effect.incident_id, self._repository)
            if self._repository
            else None
        )
        channel = self._notifier.channel
        state = await self._store.notify_state(effect.incident_id, channel)
        notice = Notice(
            incident=incident,
            event=event,
            recipient=str(effect.payload.get("to", "")),
            recipient_name=str(effect.payload.get("name", "")),
            issue_url=record.url if record is not None and record.url else None,
            state=state,
        )
        kept = await self._notifier.send(notice)
        if kept and kept != state:
            await self._store.save_notify_state(effect.incident_id, channel, {**state, **kept})
