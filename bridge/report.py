"""The continuous-improvement report's figures. Pure: histories and a window in, figures out.

``incident-bridge report`` (bridge/cli.py) reads the histories from the store
(``Store.incidents_between``) and renders these figures with ``bridge/report_render.py``;
nothing here does I/O. The definitions of the times are ``bridge/measures.py``'s, the ones the
metrics use; here they are read from each incident's whole timeline:

- an incident is *in the window* when it was open at some moment of [since, until); it is
  *opened in the window* when its ``opened_at`` is; its priority is the highest it had;
- **MTTD** and **MTTA** are over the incidents opened in the window (MTTA over those acknowledged
  before ``until``; the others are listed as unacknowledged); **MTTR** over the incidents
  resolved in the window (resolved at ``until``, the last resolution within the window),
  from the earliest alert ``startsAt``, so a reopened incident counts its whole duration;
- **SLA compliance**: the share of the incidents opened in the window without a response
  (resolution) breach — the ``sla_breached`` events ``bridge/sla.py`` records, kept even when the
  incident reopened later; an incident still inside its deadline counts as compliant so far;
- **noisiest alert groups**: per alert group (the incident identity), the firing episodes
  (openings and reopenings) in the window, the alerts fired and the incidents;
- **incident minutes and availability per service**: each episode (opened or reopened →
  resolved) from its first alert's ``startsAt``, cut to the window, for every service of the
  incident (``measures.services_of``). *Incident minutes* add up every incident's; *down* is the
  time some P0 incident of the service was open (the guide's P0: "service unavailable"),
  overlaps counted once; *degraded* the time only a P1 was; availability = 1 - down / window,
  against the guide's 99.9 %.

Where an incident's timeline is gone (pruned after ``store.retention``, or the incident rebuilt
from its issue without one) its fields stand in: one episode from the earliest ``startsAt`` to
``resolved_at``, ``acknowledged_at``, ``response_breached_at`` / ``resolution_breached_at``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge.measures import ACK_EVENTS, RESOLUTION_EVENTS, priority_in, seconds, services_of
from bridge.model import Incident, Priority, TimelineEvent
from bridge.rules import Rules, Target
from bridge.store.base import IncidentHistory

MTTD_TARGET = timedelta(minutes=5)  # the operations guide's "Mean Time to Detect < 5 minutes"
AVAILABILITY_TARGET = 0.999  # the operations guide's "Availability: 99.9% target"
NOISY_GROUPS = 10  # the noisiest alert groups listed


# -- per incident -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Episode:
    """One stretch of an incident being open: opened (or reopened) → resolved."""

    start: datetime  # its first alert's startsAt: the impact begins
    opened: datetime  # when the bridge opened or reopened it
    end: datetime | None  # resolved; None while open
    priority: Priority  # the highest it had


# How an incident's timeline begins: opened by its alerts, or reported by people on GitHub.
_OPENINGS = ("opened", "reported")


def episodes(incident: Incident, events: Sequence[TimelineEvent]) -> list[Episode]:
    """The incident's episodes from its timeline (oldest event first); from its fields when the
    timeline has no ``opened`` event (pruned, or rebuilt from the issue)."""
    if not any(event.kind in _OPENINGS for event in events):
        end = incident.resolved_at if incident.state == "resolved" else None
        return [Episode(incident.earliest_starts_at, incident.opened_at, end, incident.priority)]
    found: list[Episode] = []
    start: datetime | None = None
    opened = incident.opened_at
    priority = incident.priority
    fired: list[datetime] = []  # alerts firing anew since the last resolution
    for event in events:
        if start is None:
            if event.kind == "alert_firing":
                fired.append(event.at)
            elif event.kind in (*_OPENINGS, "reopened", "reopened_manually"):
                if event.kind in _OPENINGS:
                    start, opened = incident.earliest_starts_at, incident.opened_at
                elif event.kind == "reopened":
                    start, opened = min([*fired, event.at]), event.at
                    if found:
                        # The same episode resumed: its alerts fire again with their old
                        # startsAt, which the last episode already counted.
                        start = max(start, found[-1].end or start)
                else:  # people reopened the issue: open from then on
                    start, opened = event.at, event.at
                priority = priority_in(event) or incident.priority
                fired = []
            continue
        if event.kind == "priority_raised":
            raised = priority_in(event)
            if raised is not None:
                priority = Priority.highest(priority, raised)
        elif event.kind in RESOLUTION_EVENTS:
            found.append(Episode(start, opened, max(event.at, start), priority))
            start, fired = None, []
    if start is not None:
        end = incident.resolved_at if incident.state == "resolved" else None
        found.append(Episode(start, opened, max(end, start) if end else None, priority))
    return found


@dataclass(frozen=True, slots=True)
class Facts:
    """One incident as the report counts it, as of ``until``."""

    incident: Incident
    priority: Priority  # the highest it had
    episodes: tuple[Episode, ...]  # those begun before until; an end at or after it is None
    services: tuple[str, ...]
    acknowledged_at: datetime | None  # the first acknowledgement before until
    response_breached: bool
    resolution_breached: bool
    alerts_fired: int  # alerts that fired in the window
    flapped: bool  # flapping at some moment of the window
    from_fields: bool  # no timeline: its fields stood in

    @property
    def opened_at(self) -> datetime:
        return self.incident.opened_at

    @property
    def resolved_at(self) -> datetime | None:
        """Its last resolution, if it was resolved at ``until``."""
        return self.episodes[-1].end if self.episodes else None

    @property
    def detect(self) -> float:
        return seconds(self.incident.opened_at - self.incident.earliest_starts_at)

    @property
    def acknowledge(self) -> float | None:
        if self.acknowledged_at is None:
            return None
        return seconds(self.acknowledged_at - self.incident.opened_at)

    @property
    def resolve(self) -> float | None:
        if self.resolved_at is None:
            return None
        return seconds(self.resolved_at - self.incident.earliest_starts_at)


def facts(history: IncidentHistory, since: datetime, until: datetime) -> Facts | None:
    """The incident of ``history`` as of ``until``, or None when it was not open at any moment
    of the window (nor maintenance, nor a storm roll-up)."""
    incident = history.incident
    if incident.kind != "incident" or incident.opened_at >= until:
        return None
    events = [event for event in history.events if event.at < until]
    kept: list[Episode] = []
    for episode in episodes(incident, events):
        if episode.start >= until and episode.opened >= until:
            continue
        kept.append(episode if episode.end is None or episode.end < until else _open(episode))
    if not any(_overlaps(e, since, until) for e in kept):
        return None
    timeline = any(event.kind in _OPENINGS for event in events)
    if timeline:
        acks = [event.at for event in events if event.kind in ACK_EVENTS]
        acknowledged_at = min(acks) if acks else None
        breaches = {
            str(event.data.get("which")) for event in events if event.kind == "sla_breached"
        }
        response, resolution = "response" in breaches, "resolution" in breaches
    else:
        acknowledged_at = _before(incident.acknowledged_at, until)
        response = _before(incident.response_breached_at, until) is not None
        resolution = _before(incident.resolution_breached_at, until) is not None
    fired = sum(
        int(event.data.get("count", 1))
        for event in events
        if event.kind == "alert_firing" and since <= event.at
    )
    if not timeline:  # no timeline: the incident's own alerts stand in
        fired = sum(1 for a in incident.alerts.values() if since <= a.starts_at < until)
    flapped = incident.flapping or any(
        event.kind == "flapping" and since <= event.at for event in events
    )
    return Facts(
        incident=incident,
        priority=Priority.highest(*(e.priority for e in kept)) if kept else incident.priority,
        episodes=tuple(kept),
        services=services_of(incident),
        acknowledged_at=acknowledged_at,
        response_breached=response,
        resolution_breached=resolution,
        alerts_fired=fired,
        flapped=flapped,
        from_fields=not timeline,
    )


def _open(episode: Episode) -> Episode:
    return Episode(episode.start, episode.opened, None, episode.priority)


def _before(moment: datetime | None, until: datetime) -> datetime | None:
    return moment if moment is not None and moment < until else None


def _overlaps(episode: Episode, since: datetime, until: datetime) -> bool:
    begin = min(episode.start, episode.opened)
    return begin < until and (episode.end is None or episode.end >= since)


# -- figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """A sample of durations in seconds: how many, the mean and the 90th percentile."""

    count: int
    mean: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        sample = sorted(values)
        if not sample:
            return cls(0, None, None)
        # Nearest rank: the smallest value with at least 90 % of the sample at or below it.
        rank = max(1, math.ceil(0.9 * len(sample)))
        return cls(len(sample), sum(sample) / len(sample), sample[rank - 1])


@dataclass(frozen=True, slots=True)
class Targets:
    """What the rules demand of a priority: its deadlines and their wording."""

    name: str  # Critical, High, …
    respond: Target
    resolve: Target
    respond_text: str = ""
    resolve_text: str = ""


def targets_of(rules: Rules) -> dict[Priority, Targets]:
    """Each priority's targets from ``rules/priorities.yaml``."""
    return {
        p: Targets(
            name=policy.name,
            respond=policy.respond,
            resolve=policy.resolve,
            respond_text=policy.respond_text,
            resolve_text=policy.resolve_text,
        )
        for p, policy in rules.policies.items()
    }


def target_seconds(target: Target | timedelta) -> float | None:
    """A target in seconds; None for ``next_business_day`` (judged by its breaches only)."""
    return target.total_seconds() if isinstance(target, timedelta) else None


def meets(stat: Stat, target: Target | timedelta) -> bool | None:
    """Whether the mean is under a fixed target (the guide's targets are "< …"); None when
    there is nothing to judge (no sample, or a ``next_business_day`` target)."""
    limit = target_seconds(target)
    if stat.mean is None or limit is None:
        return None
    return stat.mean < limit


@dataclass(frozen=True, slots=True)
class Compliance:
    """How many incidents met a deadline: ``total`` minus ``breached``."""

    total: int
    breached: int

    @property
    def share(self) -> float | None:
        return None if self.total == 0 else (self.total - self.breached) / self.total


@dataclass(frozen=True, slots=True)
class Row:
    """The figures of one priority, or of all (``priority`` None)."""

    priority: Priority | None
    opened: int  # opened in the window
    resolved: int  # resolved in the window
    open_at_end: int  # still open at until
    detect: Stat
    acknowledge: Stat
    resolve: Stat
    response: Compliance
    resolution: Compliance


@dataclass(frozen=True, slots=True)
class Unacknowledged:
    """An incident opened in the window that nobody acknowledged before ``until``."""

    display_id: str
    priority: Priority
    summary: str
    opened_at: datetime
    resolved_at: datetime | None  # None: still open at until
    response_breached: bool


@dataclass(frozen=True, slots=True)
class NoisyGroup:
    """One alert group's noise in the window."""

    key: str
    summary: str  # its latest incident's
    group_labels: dict[str, str]
    latest: str  # its latest incident's id (INC-042)
    priority: Priority  # the highest of its incidents
    incidents: int
    episodes: int  # openings and reopenings in the window
    alerts_fired: int
    flapping: bool


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """One service's incident time in the window, in seconds."""

    service: str
    incidents: int
    incident_seconds: float  # every incident's time, added up
    down_seconds: float  # some P0 incident open (overlaps once)
    degraded_seconds: float  # some P1 open, no P0
    window_seconds: float

    @property
    def availability(self) -> float:
        if self.window_seconds <= 0:
            return 1.0
        return max(0.0, 1.0 - self.down_seconds / self.window_seconds)

    @property
    def meets_target(self) -> bool:
        return self.availability >= AVAILABILITY_TARGET


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``incident-bridge report`` shows."""

    since: datetime
    until: datetime
    targets: Mapping[Priority, Targets]
    rows: tuple[Row, ...]  # P0 .. P3
    overall: Row
    unacknowledged: tuple[Unacknowledged, ...]
    noisiest: tuple[NoisyGroup, ...]
    services: tuple[ServiceTime, ...]  # least available first
    mttd_target: timedelta = MTTD_TARGET
    availability_target: float = AVAILABILITY_TARGET
    incidents: int = 0  # in the window: open at some moment of it
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def window(self) -> timedelta:
        return self.until - self.since

    def row(self, priority: Priority) -> Row:
        return next(r for r in self.rows if r.priority == priority)


def build(
    histories: Iterable[IncidentHistory],
    since: datetime,
    until: datetime,
    targets: Mapping[Priority, Targets],
) -> Report:
    """The report of the window [``since``, ``until``) over ``histories`` (any superset of the
    incidents open in it: the others are left out)."""
    if until <= since:
        raise ValueError("the report's window must end after it starts")
    found = [f for f in (facts(h, since, until) for h in histories) if f is not None]
    rows = tuple(_row(p, [f for f in found if f.priority == p], since) for p in Priority)
    notes: list[str] = []
    fallback = sum(1 for f in found if f.from_fields)
    if fallback:
        notes.append(
            f"{fallback} incident(s) without a timeline (pruned or rebuilt): counted from"
            " their own fields, one episode each."
        )
    return Report(
        since=since,
        until=until,
        targets=targets,
        rows=rows,
        overall=_row(None, found, since),
        unacknowledged=_unacknowledged(found, since),
        noisiest=_noisiest(found, since, until),
        services=_services(found, since, until),
        incidents=len(found),
        notes=tuple(notes),
    )


def _row(priority: Priority | None, found: Sequence[Facts], since: datetime) -> Row:
    opened = [f for f in found if f.opened_at >= since]
    resolved = [f for f in found if f.resolved_at is not None and f.resolved_at >= since]
    acknowledged = [a for a in (f.acknowledge for f in opened) if a is not None]
    return Row(
        priority=priority,
        opened=len(opened),
        resolved=len(resolved),
        open_at_end=sum(1 for f in found if f.resolved_at is None),
        detect=Stat.of(f.detect for f in opened),
        acknowledge=Stat.of(acknowledged),
        resolve=Stat.of(r for r in (f.resolve for f in resolved) if r is not None),
        response=Compliance(len(opened), sum(f.response_breached for f in opened)),
        resolution=Compliance(len(opened), sum(f.resolution_breached for f in opened)),
    )


def _unacknowledged(found: Sequence[Facts], since: datetime) -> tuple[Unacknowledged, ...]:
    missing = [f for f in found if f.opened_at >= since and f.acknowledged_at is None]
    missing.sort(key=lambda f: (f.priority.rank, f.opened_at, f.incident.id or 0))
    return tuple(
        Unacknowledged(
            display_id=f.incident.display_id,
            priority=f.priority,
            summary=f.incident.summary,
            opened_at=f.opened_at,
            resolved_at=f.resolved_at,
            response_breached=f.response_breached,
        )
        for f in missing
    )


def _noisiest(found: Sequence[Facts], since: datetime, until: datetime) -> tuple[NoisyGroup, ...]:
    by_key: dict[str, list[Facts]] = {}
    for f in found:
        by_key.setdefault(f.incident.key, []).append(f)
    groups: list[NoisyGroup] = []
    for key, members in by_key.items():
        latest = max(members, key=lambda f: (f.opened_at, f.incident.id or 0)).incident
        groups.append(
            NoisyGroup(
                key=key,
                summary=latest.summary,
                group_labels=dict(latest.group_labels),
                latest=latest.display_id,
                priority=Priority.highest(*(f.priority for f in members)),
                incidents=len(members),
                episodes=sum(1 for f in members for e in f.episodes if since <= e.opened < until),
                alerts_fired=sum(f.alerts_fired for f in members),
                flapping=any(f.flapped for f in members),
            )
        )
    groups.sort(key=lambda g: (-g.episodes, -g.alerts_fired, -g.incidents, g.summary, g.key))
    return tuple(groups[:NOISY_GROUPS])


def _services(found: Sequence[Facts], since: datetime, until: datetime) -> tuple[ServiceTime, ...]:
    window = seconds(until - since)
    spans: dict[str, list[tuple[datetime, datetime, Priority]]] = {}
    counted: dict[str, int] = {}
    for f in found:
        for service in f.services:
            counted[service] = counted.get(service, 0) + 1
            for episode in f.episodes:
                begin, end = max(episode.start, since), min(episode.end or until, until)
                if end > begin:
                    spans.setdefault(service, []).append((begin, end, episode.priority))
            spans.setdefault(service, [])
    rows = [
        ServiceTime(
            service=service,
            incidents=counted[service],
            incident_seconds=sum(seconds(e - b) for b, e, _ in service_spans),
            down_seconds=_union((b, e) for b, e, p in service_spans if p is Priority.P0),
            degraded_seconds=_union((b, e) for b, e, p in service_spans if p.rank <= 1)
            - _union((b, e) for b, e, p in service_spans if p is Priority.P0),
            window_seconds=window,
        )
        for service, service_spans in spans.items()
    ]
    rows.sort(key=lambda s: (s.availability, -s.incident_seconds, s.service))
    return tuple(rows)


def _union(spans: Iterable[tuple[datetime, datetime]]) -> float:
    """The seconds covered by ``spans``, overlaps counted once."""
    total = 0.0
    reach: datetime | None = None
    for begin, end in sorted(spans):
        if reach is not None and begin < reach:
            begin = reach
        if end > begin:
            total += seconds(end - begin)
            reach = end
    return total
