"""Storm mode: when new incidents outrun the GitHub write budget.

A P2/P3 incident whose issue the budget cannot create now is *listed* instead: it joins the
active storm, a roll-up issue ``[INC-NNN] Alert storm: <n> alert groups`` whose checklist shows
every listed group (INC id, priority, summary, firing/resolved, ``#N`` once it has an issue of
its own). P0/P1 never join: they get their own issue from the budget's reserve.

The roll-up is itself a row of ``incidents`` (kind ``storm``) numbered from the incident counter
when the storm starts, so ``INC-NNN`` stays gap-free, with a membership table beside it. Its one
effect, ``github.storm``, creates or edits the issue (at most one edit a minute: every enqueue is
due no earlier than :data:`EDIT_GAP` after the last write), asks for own issues for listed groups
still firing while the budget has P2/P3 slots to spare, announces once in a comment that the storm
is over (no listed group waits for an issue any more: a new refusal then starts a new storm), and
closes the issue when every listed group has resolved. Pure: the rules, not the I/O.

The roll-up's effect is claimed ahead of P2/P3 effects (the outbox's ``urgent`` flag), so the
checklist is not starved by the very P2/P3 traffic it summarises, but its writes are charged to
the P2/P3 share: only while a P0/P1 group is listed (and open) may it use the reserve.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bridge.identity import identity_key
from bridge.model import Incident, Priority, StormMember

EDIT_GAP = timedelta(minutes=1)  # between two writes to a roll-up issue
# Own issues for listed groups never use the last quarter of the hour's P2/P3 share: the
# roll-up's edits (and ordinary P2/P3 updates) keep it, so the checklist stays current.
HOUR_HEADROOM = 0.25


def storm_identity(number: int) -> str:
    """Never the identity of an alert group: those always hold a NUL (identity.py)."""
    return f"storm:INC-{number:03d}"


def new_storm(number: int, now: datetime) -> Incident:
    """The roll-up's incident row for a storm starting now as ``INC-<number>``."""
    identity = storm_identity(number)
    return Incident(
        key=identity_key(identity),
        identity=identity,
        kind="storm",
        receiver="",
        group_key="",
        group_labels={},
        state="open",
        priority=Priority.P3,
        priority_rule="storm",
        summary="Alert storm",
        opened_at=now,
        earliest_starts_at=now,
        respond_by=None,
        resolve_by=None,
        number=number,
    )


def due_at(now: datetime, edited_at: datetime | None) -> datetime:
    """When a roll-up edit asked for ``now`` may run: at most one write per EDIT_GAP."""
    return now if edited_at is None else max(now, edited_at + EDIT_GAP)


def highest(members: Sequence[StormMember]) -> Priority:
    """The highest priority inside the storm (P3 when empty)."""
    return Priority.highest(*(m.incident.priority for m in members)) if members else Priority.P3


def promotions(minute_free: int, hour_free: int, hour_share: int) -> int:
    """How many listed groups may ask for an own issue now, given the P2/P3 slots free in the
    minute and the hour windows and the hour's P2/P3 share."""
    headroom = int(hour_share * HOUR_HEADROOM)
    return max(0, min(minute_free, hour_free - headroom))
