"""Post-incident reviews: when one is due, and what its timeline says. Pure: no I/O.

The operations guide asks for a post-incident review within 48 hours of every P0/P1 incident
("6. Document"). The bridge opens it as an issue ``[PIR] INC-042 <summary>`` pre-filled with the
guide's template (``bridge/github/pir.py`` renders it, ``GitHubSync.review`` writes it):

- **asked for** by any decision that resolves an incident (kind ``incident``) at P0 or P1 —
  whatever resolved it: its alerts, a flapping incident settling, reconciliation, the heartbeat
  returning, a person closing the issue. :func:`request` adds a ``github.pir`` effect to such a
  decision, in the resolution's own transaction (``bridge/ingest.py``), after its comment and
  before its sync — so the one edit that closes the incident's issue also links the review —
  and records ``Incident.review_requested_at`` (the first time);
- **updated** (the same issue, only the bridge's region) by every later resolution and reopening
  of an incident that has one, whatever its priority then: a re-fire within the reopen window
  shows in the same review;
- **reminded** once: 48 hours (:data:`DUE`) after the resolution, one comment on the review if
  it is still open — people closing it is what "done" means. The due moment is kept per review
  in the store (``Store.schedule_review``), not on the incident: a resolved incident may be
  superseded by a newer one of its alert group before its review is due, and the review is
  still owed.

The review's timeline is built here from the incident's recorded events and the notifications
its outbox sent (:func:`timeline`): fired, detected, notified whom, acknowledged by whom,
escalations, resolved — one line each, by name only (addresses and numbers never appear).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.engine import Decision
from bridge.model import EffectSpec, Incident, TimelineEvent
from bridge.store.base import SentNotification

DUE = timedelta(hours=48)  # the guide: "within 48 hours for P0/P1"
LABEL = "post-incident-review"
REMINDER_ID = "review-due"  # the reminder comment's event id: INC-042.review-due
# What the guide's review needs that the incident issue's repository slot does not hold: the
# review's own issue record is kept under the repository name with this suffix.
_SLOT_SUFFIX = " pir"

_CHANNEL_NAMES = {"notify.slack": "Slack", "notify.email": "email", "notify.sms": "SMS"}


def slot(repository: str) -> str:
    """Where the store keeps the review's issue record (``Store.issue_record``): beside the
    incident issue's own record, never mistaken for it (an issue lookup by repository finds
    only incident issues)."""
    return f"{repository}{_SLOT_SUFFIX}"


def needs_review(incident: Incident) -> bool:
    """An incident the guide wants a review of: kind ``incident``, P0 or P1."""
    return incident.kind == "incident" and incident.priority.rank <= 1


def request(before: Incident | None, decision: Decision, now: datetime) -> None:
    """Add the review's ``github.pir`` effect to ``decision`` when it calls for one (see the
    module doc); ``before`` is the incident as it was, ``now`` the transaction's time."""
    after = decision.incident
    if (
        after is None
        or before is None
        or not decision.changed
        or decision.is_new
        or after.kind != "incident"
    ):
        return
    resolves = before.state == "open" and after.state == "resolved"
    reopens = before.state == "resolved" and after.state == "open"
    if resolves and needs_review(after) and after.review_requested_at is None:
        after.review_requested_at = now
    elif not ((resolves or reopens) and after.review_requested_at is not None):
        return
    # Before the incident's sync: that one edit of its issue then links the review too.
    effects = decision.effects
    at = next((i for i, e in enumerate(effects) if e.kind == "github.sync"), len(effects))
    effects.insert(at, EffectSpec("github.pir"))


def due_at(incident: Incident) -> datetime | None:
    """When the review of ``incident`` is due: 48 h after its resolution; None while it is open
    again (a reopening: the review waits for the resolution)."""
    if incident.state != "resolved" or incident.resolved_at is None:
        return None
    return incident.resolved_at + DUE


# -- the timeline -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the review's timeline."""

    at: datetime
    text: str  # plain text; the renderer escapes it


# Event kinds whose own text does not say what they mean in a review's terms.
_HEADS: dict[str, str] = {"opened": "Detected", "sla_breached": "SLA breached"}


def _told(sent: Sequence[SentNotification]) -> str:
    """``Slack; email to Ops lead, CTO; SMS to Ops lead (failed)``: who a notification reached,
    channel by channel, in a stable order."""
    parts: list[str] = []
    for kind in ("notify.slack", "notify.email", "notify.sms"):
        mine = [s for s in sent if s.kind == kind]
        if not mine:
            continue
        channel = _CHANNEL_NAMES[kind]
        if kind == "notify.slack":
            states = {s.state for s in mine}
            parts.append(channel + _state_note(states))
            continue
        names: list[str] = []
        for name in dict.fromkeys(s.name or "someone" for s in mine):
            states = {s.state for s in mine if (s.name or "someone") == name}
            names.append(name + _state_note(states))
        parts.append(f"{channel} to {', '.join(names)}")
    return "; ".join(parts)


def _state_note(states: set[str]) -> str:
    if "done" in states:
        return ""
    if "failed" in states:
        return " (failed)"
    return " (sending)"


def timeline(events: Sequence[TimelineEvent], sent: Sequence[SentNotification]) -> list[Entry]:
    """The review's timeline: every recorded event, oldest first, each followed by whom it was
    told when notifications were made for it — at its first delivery, else at the event. (A
    message storm control held back counts as told: the person's summary tells it; summaries
    themselves, which may tell of several incidents, are not listed.)"""
    by_event: dict[int, list[SentNotification]] = {}
    for item in sent:
        if item.event_seq is not None:
            by_event.setdefault(item.event_seq, []).append(item)
    entries: list[Entry] = []
    for event in events:
        head = _HEADS.get(event.kind)
        text = f"{head}: {event.text}" if head else event.text
        entries.append(Entry(event.at, text))
        told = by_event.get(event.seq)
        if told:
            delivered = [s.finished_at for s in told if s.state == "done" and s.finished_at]
            at = max(event.at, min(delivered)) if delivered else event.at
            entries.append(Entry(at, f"Notified: {_told(told)}"))
    entries.sort(key=lambda entry: entry.at)  # stable: an event's notices stay after it
    return entries
