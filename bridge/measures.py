"""What MTTD, MTTA, MTTR and incident time measure, for one incident. Pure: no I/O.

The same definitions serve the metrics — ``bridge/ingest.py`` observes each committed decision
with :func:`observe` — and the report (``bridge/report.py``), which reads whole timelines:

- **time to detect**: the earliest alert ``startsAt`` → the incident opened (``opened_at``);
- **time to acknowledge**: the incident opened → its first acknowledgement (a person assigning,
  labelling or commenting on the issue, or a silence in Alertmanager on all its alerts);
- **time to resolve**: the earliest alert ``startsAt`` → resolved (``resolved_at``), as CONTRACT.md
  says ("resolved_at is then, MTTR ends there");
- **incident time** per service: each episode (opened or reopened → resolved), from its first
  alert's ``startsAt`` to its resolution, counted for every service of the incident's alerts.

Only incidents count — never maintenance requests or storm roll-ups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bridge.engine import Decision
from bridge.model import Incident, Priority, TimelineEvent
from bridge.text import one_line

UNKNOWN_SERVICE = "unknown"
SERVICE_LABELS = ("service", "job")  # the first one an alert has names its service
_SERVICE_CHARS = 100
# The events that resolve an incident: by its alerts (engine, flapping, heartbeat), by a person
# closing the issue, by reconciliation with Alertmanager.
RESOLUTION_EVENTS = frozenset({"resolved", "closed_manually", "reconciled"})
# The events that acknowledge one: a person, or a silence on every alert (bridge/reconcile.py).
ACK_EVENTS = frozenset({"acknowledged", "silenced"})
_FOREVER = datetime.max.replace(tzinfo=UTC)


def seconds(delta: timedelta) -> float:
    """A span in seconds, never negative (clocks of Prometheus and the bridge may disagree)."""
    return max(0.0, delta.total_seconds())


def services_of(incident: Incident) -> tuple[str, ...]:
    """The services an incident affects, sorted: each alert's ``service`` label, else its
    ``job``; ``("unknown",)`` when no alert has either."""
    found: set[str] = set()
    for alert in incident.alerts.values():
        for name in SERVICE_LABELS:
            raw = alert.labels.get(name, "")
            value = one_line(raw, len(raw) + 1)  # one line, no control or bidi characters
            if value:
                found.add(value[:_SERVICE_CHARS])
                break
    return tuple(sorted(found)) or (UNKNOWN_SERVICE,)


def priority_in(event: TimelineEvent) -> Priority | None:
    """The priority an ``opened`` / ``reopened`` / ``priority_raised`` event names, if any."""
    value = event.data.get("new" if event.kind == "priority_raised" else "priority")
    try:
        return Priority(value) if isinstance(value, str) else None
    except ValueError:
        return None


def last_episode_start(incident: Incident) -> datetime:
    """When the incident's current (or just resolved) episode started, from its alerts alone.

    The first episode starts at the earliest ``startsAt``. A reopened incident's alerts keep
    their latest firing only, and an episode ends when all of them have ended, so the latest
    episode is the last unbroken stretch of firing: its start is where that stretch begins."""
    if incident.reopen_count == 0:
        return incident.earliest_starts_at
    end = incident.resolved_at if incident.state == "resolved" else None
    spans: list[tuple[datetime, datetime]] = []
    for alert in incident.alerts.values():
        stop = alert.ends_at or _FOREVER  # still firing
        if end is not None:
            if alert.starts_at > end:
                continue
            stop = min(stop, end)
        spans.append((alert.starts_at, stop))
    spans.sort()
    start: datetime | None = None
    reach = _FOREVER
    for begin, stop in spans:
        if start is None or begin > reach:
            start, reach = begin, stop  # a gap before it: a later stretch of firing begins
        else:
            reach = max(reach, stop)
    if start is None:
        return incident.earliest_starts_at
    return max(start, incident.earliest_starts_at)


def acknowledged_by(decision: Decision) -> bool:
    """Whether ``decision`` is the incident's acknowledgement: an ``acknowledged`` event, or a
    silence that acknowledged it (not one on an incident people had acknowledged already)."""
    incident = decision.incident
    if incident is None or incident.acknowledged_at is None:
        return False
    for event in decision.events:
        if event.kind == "acknowledged":
            return True
        if (
            event.kind == "silenced"
            and incident.acknowledged_via == "silence"
            and incident.acknowledged_at == event.at
        ):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Observation:
    """What one committed decision adds to the metrics, in seconds (None: nothing)."""

    priority: Priority
    detect: float | None = None
    acknowledge: float | None = None
    resolve: float | None = None
    incident_time: float | None = None  # the resolved episode's span, for each service
    services: tuple[str, ...] = ()


def observe(decision: Decision) -> Observation | None:
    """The metrics one committed decision makes, or None.

    - an ``opened`` event: time to detect;
    - the first episode's acknowledgement: time to acknowledge (a reopened incident is
      acknowledged afresh, but its ``opened_at`` is the first opening's: not a response time);
    - a resolution (``resolved``, ``closed_manually``, ``reconciled``): time to resolve — at
      every resolution, so a reopened incident is observed again with its whole duration — and
      the resolved episode's incident time (``last_episode_start`` → ``resolved_at``).
    """
    incident = decision.incident
    if incident is None or incident.kind != "incident" or not decision.events:
        return None
    kinds = {event.kind for event in decision.events}
    detect = acknowledge = resolve = incident_time = None
    if "opened" in kinds:
        detect = seconds(incident.opened_at - incident.earliest_starts_at)
    if incident.reopen_count == 0 and acknowledged_by(decision):
        assert incident.acknowledged_at is not None  # acknowledged_by checked it
        acknowledge = seconds(incident.acknowledged_at - incident.opened_at)
    resolved_at = incident.resolved_at
    if incident.state == "resolved" and resolved_at is not None and kinds & RESOLUTION_EVENTS:
        resolve = seconds(resolved_at - incident.earliest_starts_at)
        incident_time = seconds(resolved_at - last_episode_start(incident))
    if detect is None and acknowledge is None and resolve is None:
        return None
    return Observation(
        priority=incident.priority,
        detect=detect,
        acknowledge=acknowledge,
        resolve=resolve,
        incident_time=incident_time,
        services=services_of(incident) if incident_time is not None else (),
    )
