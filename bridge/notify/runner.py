"""Runs one claimed notification effect: load what it is about, send it, keep channel state.

Storm control (email and SMS, ``throttle`` in their config): before a message goes out, the store
takes a slot in the person's window (at most ``max`` messages per ``per``). At the bound the
message is not sent but *held*, and the effect finishes; the person's one pending *bundle* (a
``notify.<channel>`` effect with ``bundle: true``, due when the window frees a slot) later tells
everything held in one message, taking one slot. New messages to a person whose bundle is pending
join it, so what is held is told in order. Slots and bundles live in the store, so the bound
holds across replicas; every held message is followed by a bundle, so nothing goes untold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bridge.clock import Clock
from bridge.effects import EffectError
from bridge.model import Priority
from bridge.notify.base import Bundle, BundleItem, BundleNotifier, Notice, Notifier
from bridge.store.base import ClaimedEffect, Store

_CHANNEL_HOLD_MAX = 900.0  # seconds: the longest one 429 holds a whole channel


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` messages per person in any ``per``."""

    limit: int
    per: timedelta


class NotifyRunner:
    """The outbox runner of one channel's lane."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        repository: str,
        *,
        clock: Clock | None = None,
        priority_names: Mapping[Priority, str] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        if throttle is not None and (clock is None or not isinstance(notifier, BundleNotifier)):
            raise ValueError("storm control needs a clock and a channel that sends bundles")
        self._store = store
        self._notifier = notifier
        self._repository = repository
        self._clock = clock
        self._throttle = throttle
        self._priority_names = dict(priority_names or {})
        self._blocked_until = 0.0  # epoch seconds: a 429's Retry-After, for the whole channel

    async def _issue_url(self, incident_id: int) -> str | None:
        if not self._repository:
            return None
        record = await self._store.issue_record(incident_id, self._repository)
        return record.url if record is not None and record.url else None

    async def run(self, effect: ClaimedEffect) -> None:
        # A 429's Retry-After holds the channel, not only the message it refused (the limit is
        # the account's): until the window ends every message fails fast, sending nothing, and
        # the outbox reschedules it — as the GitHub tracker does for GitHub's windows.
        now = self._clock().timestamp() if self._clock is not None else None
        if now is not None and now < self._blocked_until:
            raise EffectError(
                f"{self._notifier.channel} rate-limit window: not calling before it ends",
                retryable=True,
                retry_after=self._blocked_until - now,
            )
        try:
            await self._run(effect)
        except EffectError as error:
            if self._clock is not None and error.status == 429 and error.retry_after is not None:
                # The whole channel waits at most a quarter of an hour on one answer (a proxy's
                # day-long Retry-After must not silence every page); the message itself waits
                # what the outbox honours.
                window = min(error.retry_after, _CHANNEL_HOLD_MAX)
                until = self._clock().timestamp() + window
                self._blocked_until = max(self._blocked_until, until)
            # Providers echo the address or number ("The 'To' number +1555… is not a valid
            # phone number"); the failure goes into the issue timeline, which names people only.
            recipient = str(effect.payload.get("to") or "")
            if recipient and recipient in str(error):
                name = str(effect.payload.get("name") or "the recipient")
                raise error.redacted(recipient, name) from None
            raise

    async def _run(self, effect: ClaimedEffect) -> None:
        if effect.payload.get("bundle"):
            await self._run_bundle(effect)
            return
        incident = await self._store.load_incident(effect.incident_id)
        event = await self._store.load_event(effect.incident_id, int(effect.payload["event_seq"]))
        if incident is None or event is None:
            # Pruned, or never there: nothing to send, ever.
            raise EffectError(
                f"incident {effect.incident_id} or its event is gone", retryable=False
            )
        channel = self._notifier.channel
        recipient = str(effect.payload.get("to", ""))
        throttle = self._throttle
        if throttle is not None and self._clock is not None:
            allowed = await self._store.notify_or_hold(
                effect, channel, recipient, self._clock(), throttle.limit, throttle.per
            )
            if not allowed:
                return  # held: the person's bundle tells it
        state = await self._store.notify_state(effect.incident_id, channel)
        notice = Notice(
            incident=incident,
            event=event,
            recipient=recipient,
            recipient_name=str(effect.payload.get("name", "")),
            issue_url=await self._issue_url(effect.incident_id),
            priority_name=self._priority_names.get(incident.priority, ""),
            state=state,
        )
        kept = await self._notifier.send(notice)
        if kept and kept != state:
            await self._store.save_notify_state(effect.incident_id, channel, {**state, **kept})

    async def _run_bundle(self, effect: ClaimedEffect) -> None:
        notifier, throttle, clock = self._notifier, self._throttle, self._clock
        if throttle is None or clock is None or not isinstance(notifier, BundleNotifier):
            raise EffectError(f"{notifier.channel} sends no bundles", retryable=False)
        recipient = str(effect.payload.get("to", ""))
        now = clock()
        slot = await self._store.bundle_slot(
            effect, notifier.channel, recipient, now, throttle.limit, throttle.per
        )
        if slot.wait_until is not None:
            # Another replica's message took the slot first: wait for the next one.
            wait = max(0.0, (slot.wait_until - now).total_seconds())
            raise EffectError("storm control: the window is full", retryable=True, retry_after=wait)
        items: list[BundleItem] = []
        for held in slot.held:
            incident = await self._store.load_incident(held.incident_id)
            event = await self._store.load_event(held.incident_id, held.event_seq)
            if incident is not None and event is not None:
                items.append(BundleItem(incident, event, await self._issue_url(held.incident_id)))
        if items:
            await notifier.send_bundle(
                Bundle(
                    recipient=recipient,
                    items=tuple(items),
                    recipient_name=str(effect.payload.get("name", "")),
                    key=str(effect.id),
                )
            )
        if slot.held:
            await self._store.bundle_told(effect.id)
