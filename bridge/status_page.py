"""The public status page, pure: incidents and a clock reading in, posts, availability and HTML out.

``bridge/web/status.py`` reads the store and calls these; nothing here does I/O.

Public text only (CONTRACT.md): an incident is shown by the ``public_summary`` annotation when
an alert has one, else "Service disruption: <service>". The service is the incident's
``service`` label, else its ``alertname``; no other label, annotation, hostname or link ever
reaches the page.

Posts use the operations guide's status-page template and move
**Investigating** (open) → **Identified** (acknowledged, or labelled ``identified``) →
**Monitoring** (alerts resolved) → **Resolved** (quiet for ``status_page.monitoring_window``). A
re-fire reopens the same incident and its posts start again at Investigating. Each post's time
is derived from the incident's fields and its timeline: ``opened_at`` (or the reopening),
``acknowledged_at`` or the episode's ``identified`` event, ``resolved_at`` and
``resolved_at + window``.

The availability bars cover the last 90 UTC days per service: a day is a major outage when a
P0/P1 incident of the service was open during it, degraded for a P2/P3 one.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bridge.heartbeat import RULE as HEARTBEAT_RULE
from bridge.model import Incident, Priority
from bridge.text import one_line

Step = Literal["Investigating", "Identified", "Monitoring", "Resolved"]
Level = Literal["operational", "degraded", "major", "no_data"]

RECENT = timedelta(days=7)  # resolved incidents stay listed this long after their resolution
HISTORY_DAYS = 90

# The operations guide's "Status Page Template". Its "[root cause]" is never public text here,
# so Identified says only that the cause is known.
TEMPLATES: dict[Step, str] = {
    "Investigating": "We are investigating reports of {what}.",
    "Identified": "The issue has been identified. We are working on a fix.",
    "Monitoring": "A fix has been implemented and deployed. We are monitoring the situation.",
    "Resolved": "The issue has been resolved. All systems operational.",
}
RECURRED = " The issue has come back after it was resolved."

_LEVEL_RANK: dict[Level, int] = {"no_data": -1, "operational": 0, "degraded": 1, "major": 2}
_LEVEL_TEXT: dict[Level, str] = {
    "operational": "No incidents",
    "degraded": "Degraded performance",
    "major": "Major outage",
    "no_data": "No data",
}


# -- public text ------------------------------------------------------------------------------


def service_of(incident: Incident) -> str:
    """The incident's service: its ``service`` label, else its ``alertname`` ("" if neither)."""
    firing = incident.firing_alerts() or sorted(
        incident.alerts.values(), key=lambda a: (a.starts_at, a.fingerprint)
    )
    for name in ("service", "alertname"):
        sources = [incident.common_labels, incident.group_labels, *(a.labels for a in firing)]
        for labels in sources:
            value = one_line(labels.get(name, ""), 100)
            if value:
                return value
    return ""


def public_text(incident: Incident) -> str:
    """The only incident text the public may see."""
    for source in [incident.common_annotations, *(a.annotations for a in incident.alerts.values())]:
        text = one_line(source.get("public_summary", ""), 300)
        if text:
            return text
    service = service_of(incident)
    return f"Service disruption: {service}" if service else "Service disruption"


# -- posts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Post:
    """One status update of an incident."""

    status: Step
    text: str
    posted_at: datetime


def episode_start(incident: Incident, reopened_at: datetime | None = None) -> datetime:
    """When the current episode began: ``opened_at``, or for a reopened incident the reopening
    (``reopened_at`` from its timeline when known; else the newest alert ``startsAt``, the new
    start that reopened it, kept between ``opened_at`` and the resolution)."""
    if incident.reopen_count == 0:
        return incident.opened_at
    if reopened_at is not None:
        return max(reopened_at, incident.opened_at)
    newest = max((a.starts_at for a in incident.alerts.values()), default=incident.opened_at)
    start = max(newest, incident.opened_at)
    return min(start, incident.resolved_at) if incident.resolved_at is not None else start


def identified_at(
    incident: Incident, start: datetime, labelled: datetime | None = None
) -> datetime | None:
    """When the incident became Identified, or None.

    The guide's Identified is "the incident is acknowledged — ``acknowledged_at`` set — or its
    GitHub issue is labelled ``identified``": the earlier of ``acknowledged_at`` and
    ``labelled``, the time of the current episode's ``identified`` event in the timeline (the
    label's step, ``bridge/acknowledge.py``, records it and acknowledges at that moment when
    nothing did before). An acknowledgement or a label after the alerts resolved adds no post:
    Monitoring came first.
    """
    resolved = incident.resolved_at if incident.state == "resolved" else None
    moments = [
        moment
        for moment in (incident.acknowledged_at, labelled)
        if moment is not None and (resolved is None or moment <= resolved)
    ]
    if not moments:
        return None
    return max(min(moments), start)


def posts(
    incident: Incident,
    now: datetime,
    window: timedelta,
    *,
    reopened_at: datetime | None = None,
    labelled_at: datetime | None = None,
) -> list[Post]:
    """The current episode's posts, oldest first; the last one is the incident's status.
    ``labelled_at``: when the timeline says the episode was labelled ``identified``."""
    start = episode_start(incident, reopened_at)
    first = TEMPLATES["Investigating"].format(what=public_text(incident))
    if incident.reopen_count:
        first += RECURRED
    result = [Post("Investigating", first, start)]
    labelled = labelled_at if labelled_at is not None and labelled_at >= start else None
    acked = identified_at(incident, start, labelled)
    if acked is not None and acked <= now:
        result.append(Post("Identified", TEMPLATES["Identified"], acked))
    if incident.state == "resolved" and incident.resolved_at is not None:
        resolved = max(incident.resolved_at, start)
        result.append(Post("Monitoring", TEMPLATES["Monitoring"], resolved))
        quiet = resolved + window
        if now >= quiet:
            result.append(Post("Resolved", TEMPLATES["Resolved"], quiet))
    return result


def status_of(incident: Incident, now: datetime, window: timedelta) -> Step:
    """Where the incident stands on the page now."""
    return posts(incident, now, window)[-1].status


# -- incidents on the page ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicIncident:
    """An incident as the public sees it."""

    id: str
    service: str
    title: str
    impact: Literal["major", "minor"]
    posts: tuple[Post, ...]  # oldest first

    @property
    def status(self) -> Step:
        return self.posts[-1].status


def public_incident(
    incident: Incident,
    now: datetime,
    window: timedelta,
    *,
    reopened_at: datetime | None = None,
    labelled_at: datetime | None = None,
) -> PublicIncident:
    return PublicIncident(
        id=incident.display_id,
        service=service_of(incident),
        title=public_text(incident),
        impact="major" if incident.priority.rank <= 1 else "minor",
        posts=tuple(posts(incident, now, window, reopened_at=reopened_at, labelled_at=labelled_at)),
    )


def public(incident: Incident) -> bool:
    """An incident the public hears of: not a maintenance request, a storm roll-up, or the
    bridge's own "Alerting pipeline is down" (the heartbeat: our monitoring, not their
    service — the responders and stakeholders are told of it, the status page is not)."""
    return incident.kind == "incident" and incident.priority_rule != HEARTBEAT_RULE


def listed(incident: Incident, now: datetime) -> bool:
    """Shown on the page: a public incident that is open or was resolved within the last 7
    days."""
    if not public(incident):
        return False
    if incident.state == "resolved" and incident.resolved_at is not None:
        return now - incident.resolved_at <= RECENT
    return True


def overall(items: Iterable[PublicIncident]) -> str:
    """The banner: a major incident not yet fixed is a major outage; anything else still
    moving (a minor one, or one being monitored) is degraded performance."""
    active = [i for i in items if i.status != "Resolved"]
    if any(i.impact == "major" and i.status in ("Investigating", "Identified") for i in active):
        return "Major outage"
    if active:
        return "Degraded performance"
    return "All systems operational"


# -- availability -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayCell:
    """One UTC day of one service."""

    day: date
    level: Level
    incidents: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The cell's text alternative."""
        text = f"{self.day.isoformat()}: {_LEVEL_TEXT[self.level]}"
        if self.incidents:
            text += f" ({', '.join(self.incidents)})"
        return text


def uptime_percent(cells: Sequence[DayCell]) -> float | None:
    """The share of days (with data) without a major outage, in percent; None without data."""
    known = [c for c in cells if c.level != "no_data"]
    if not known:
        return None
    return 100.0 * sum(c.level != "major" for c in known) / len(known)


@dataclass(frozen=True, slots=True)
class ServiceBar:
    """The availability bar of one service, oldest day first."""

    service: str
    days: tuple[DayCell, ...]

    @property
    def uptime_percent(self) -> float | None:
        return uptime_percent(self.days)


@dataclass(frozen=True, slots=True)
class Availability:
    """Every service's bar over the same days, and the days merged over all services."""

    first_day: date
    last_day: date
    services: tuple[ServiceBar, ...]
    overall: tuple[DayCell, ...]

    @property
    def uptime_percent(self) -> float | None:
        return uptime_percent(self.overall)


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


Stretch = tuple[datetime, datetime | None, Priority]
"""One stretch of an incident being open: opened, resolved (None: still open), its priority."""


def availability(
    incidents: Iterable[Incident],
    now: datetime,
    *,
    days: int = HISTORY_DAYS,
    covered_from: datetime | None = None,
    stretches: Mapping[str, Sequence[Stretch]] | None = None,
) -> Availability:
    """The last ``days`` UTC days (today included) per service. An incident counts on every day
    from its ``opened_at`` to its ``resolved_at`` (or now, while open): P0/P1 as a major outage,
    P2/P3 as degraded; the worst one decides a day. A reopened incident counts by its
    ``stretches`` (by ``key``, from its timeline: each episode at the priority it had then, the
    gaps between them not counted) where given, else from its first opening to its last
    resolution at its current priority. Days before ``covered_from`` (where the incidents read
    start, when the read was cut short) are no data.
    """
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    span = _days(first, days)
    no_data_before = covered_from.astimezone(UTC).date() if covered_from is not None else first
    levels: dict[str, dict[date, Level]] = {}
    ids: dict[str, dict[date, list[str]]] = {}
    for incident in incidents:
        if not public(incident):
            continue
        service = service_of(incident) or "Other"
        spans = (stretches or {}).get(incident.key) or [
            (incident.opened_at, incident.resolved_at, incident.priority)
        ]
        for opened, resolved, priority in spans:
            start = opened.astimezone(UTC)
            end = (resolved or now).astimezone(UTC)
            start_day, end_day = max(start.date(), first), min(max(end, start).date(), today)
            level: Level = "major" if priority.rank <= 1 else "degraded"
            day = start_day
            while day <= end_day:
                by_day = levels.setdefault(service, {})
                if _LEVEL_RANK[level] > _LEVEL_RANK[by_day.get(day, "operational")]:
                    by_day[day] = level
                ids.setdefault(service, {}).setdefault(day, []).append(incident.display_id)
                day += timedelta(days=1)

    def cell(day: date, level: Level, names: Iterable[str]) -> DayCell:
        if day < no_data_before and level == "operational":
            return DayCell(day, "no_data")
        return DayCell(day, level, tuple(sorted(set(names))))

    bars = tuple(
        ServiceBar(
            service,
            tuple(
                cell(d, levels[service].get(d, "operational"), ids[service].get(d, []))
                for d in span
            ),
        )
        for service in sorted(levels)
    )
    merged = []
    for n, d in enumerate(span):
        worst: Level = "operational"
        names: list[str] = []
        for bar in bars:
            c = bar.days[n]
            names.extend(c.incidents)
            if _LEVEL_RANK[c.level] > _LEVEL_RANK[worst]:
                worst = c.level
        merged.append(cell(d, worst, names))
    return Availability(first, today, bars, tuple(merged))


CELL_WIDTH, CELL_GAP, BAR_HEIGHT = 8, 2, 34
_FILL: dict[Level, str] = {
    "operational": "#2da44e",
    "degraded": "#d4a72c",
    "major": "#cf222e",
    "no_data": "#afb8c1",
}


def format_percent(value: float | None) -> str:
    """``98.88%`` — cut, not rounded, so a bad day never shows as 100%."""
    if value is None:
        return "no data"
    return f"{int(value * 100) / 100:.2f}%"


def bar_svg(bar: ServiceBar) -> str:
    """One service's bar as inline SVG: a cell per day, coloured by level, each with a title."""
    esc = html.escape
    width = len(bar.days) * (CELL_WIDTH + CELL_GAP) - CELL_GAP
    summary = (
        f"{bar.service}: {format_percent(bar.uptime_percent)} of the last {len(bar.days)} days "
        "without a major outage"
    )
    parts = [
        f'<svg class="bar" role="img" viewBox="0 0 {width} {BAR_HEIGHT}" '
        f'preserveAspectRatio="none" height="{BAR_HEIGHT}" aria-label="{esc(summary)}">',
        f"<title>{esc(summary)}</title>",
    ]
    for n, c in enumerate(bar.days):
        x = n * (CELL_WIDTH + CELL_GAP)
        parts.append(
            f'<rect class="{c.level}" x="{x}" y="0" width="{CELL_WIDTH}" height="{BAR_HEIGHT}" '
            f'rx="1.5" fill="{_FILL[c.level]}"><title>{esc(c.label)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


# -- the page -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusPage:
    title: str
    now: datetime
    incidents: tuple[PublicIncident, ...]
    availability: Availability
    overall: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overall", overall(self.incidents))


def build_page(
    title: str,
    incidents: Sequence[Incident],
    now: datetime,
    window: timedelta,
    *,
    reopened_at: Mapping[str, datetime] | None = None,
    covered_from: datetime | None = None,
    labelled_at: Mapping[str, datetime] | None = None,
    stretches: Mapping[str, Sequence[Stretch]] | None = None,
) -> StatusPage:
    """The page from the incidents read (newest first). ``reopened_at`` maps an incident's
    ``key`` to when its current episode was reopened, and ``labelled_at`` to when it was
    labelled ``identified``, where the timeline says."""
    reopened = reopened_at or {}
    labelled = labelled_at or {}
    shown = tuple(
        public_incident(
            i, now, window, reopened_at=reopened.get(i.key), labelled_at=labelled.get(i.key)
        )
        for i in incidents
        if listed(i, now)
    )
    return StatusPage(
        title,
        now,
        shown,
        availability(incidents, now, covered_from=covered_from, stretches=stretches),
    )


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def page_json(page: StatusPage) -> dict[str, Any]:
    """``/status.json``: posts newest first."""
    avail = page.availability

    def days(cells: Sequence[DayCell]) -> list[dict[str, Any]]:
        return [
            {"date": c.day.isoformat(), "status": c.level, "incidents": list(c.incidents)}
            for c in cells
        ]

    return {
        "title": page.title,
        "status": page.overall,
        "updated_at": _iso(page.now),
        "incidents": [
            {
                "id": i.id,
                "service": i.service,
                "title": i.title,
                "impact": i.impact,
                "status": i.status,
                "posts": [
                    {"status": p.status, "text": p.text, "posted_at": _iso(p.posted_at)}
                    for p in reversed(i.posts)
                ],
            }
            for i in page.incidents
        ],
        "availability": {
            "from": avail.first_day.isoformat(),
            "to": avail.last_day.isoformat(),
            "uptime_percent": avail.uptime_percent,
            "services": [
                {
                    "service": bar.service,
                    "uptime_percent": bar.uptime_percent,
                    "days": days(bar.days),
                }
                for bar in avail.services
            ],
        },
    }


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC")


_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--card:#f6f8fa;
--line:#d0d7de;--ok:#dafbe1;--minor:#fff8c5;--bad:#ffebe9;--operational:#2da44e;
--degraded:#d4a72c;--major:#cf222e;--no_data:#afb8c1}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--card:#161b22;--line:#30363d;--ok:#12261e;--minor:#2e2a12;--bad:#2d1214;--operational:#3fb950;
--degraded:#d29922;--major:#f85149;--no_data:#484f58}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:46rem;margin:0 auto;padding:1.25rem 1rem 2rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.8rem 0 .6rem}
h3{font-size:1rem;margin:0 0 .4rem;overflow-wrap:anywhere}
.overall{padding:.9rem 1rem;border-radius:.5rem;font-weight:600;background:var(--ok)}
.overall.degraded{background:var(--minor)}.overall.major{background:var(--bad)}
article{background:var(--card);border:1px solid var(--line);border-radius:.5rem;
padding:.8rem 1rem;margin:.7rem 0}
.post{margin:.5rem 0 0;padding-left:.7rem;border-left:3px solid var(--line)}
.post p{margin:0;overflow-wrap:anywhere}
.s{font-weight:600}.s.Investigating{color:var(--major)}.s.Identified{color:var(--degraded)}
.s.Monitoring,.s.Resolved{color:var(--operational)}
time,.muted{color:var(--muted);font-size:.875rem}
.svc{margin:1rem 0}.svc-head{display:flex;justify-content:space-between;gap:.5rem;
flex-wrap:wrap}.svc-head span:first-child{font-weight:600;overflow-wrap:anywhere}
svg.bar{display:block;width:100%;height:34px;margin:.3rem 0 .1rem}
svg.bar rect.operational{fill:var(--operational)}svg.bar rect.degraded{fill:var(--degraded)}
svg.bar rect.major{fill:var(--major)}svg.bar rect.no_data{fill:var(--no_data)}
.axis{display:flex;justify-content:space-between}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;list-style:none}
.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;
vertical-align:-.1rem}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.8rem}
"""


def render_html(page: StatusPage) -> str:
    """The whole page: inline CSS, no script, no external asset, every text escaped."""
    esc = html.escape
    tone = {"Major outage": "major", "Degraded performance": "degraded"}.get(page.overall, "ok")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{esc(page.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{esc(page.title)}</h1>",
        f'<p class="overall {tone}" role="status">{esc(page.overall)}</p>',
    ]
    active = [i for i in page.incidents if i.status != "Resolved"]
    past = [i for i in page.incidents if i.status == "Resolved"]
    parts.append("<section><h2>Current incidents</h2>")
    if not active:
        parts.append('<p class="muted">No current incidents.</p>')
    parts.extend(_incident_html(i) for i in active)
    parts.append("</section><section><h2>Past incidents (last 7 days)</h2>")
    if not past:
        parts.append('<p class="muted">No incidents resolved in the last 7 days.</p>')
    parts.extend(_incident_html(i) for i in past)
    parts.append("</section>")
    parts.append(_availability_html(page.availability))
    parts.append(
        f'<footer class="muted">Updated <time datetime="{_iso(page.now)}">{_when(page.now)}'
        "</time>. Times are UTC.</footer></main></body></html>"
    )
    return "".join(parts)


def _incident_html(item: PublicIncident) -> str:
    esc = html.escape
    parts = [f"<article><h3>{esc(item.title)}</h3>"]
    for post in reversed(item.posts):
        parts.append(
            f'<div class="post"><p><span class="s {post.status}">{post.status}</span> — '
            f"{esc(post.text)}</p>"
            f'<time datetime="{_iso(post.posted_at)}">Posted {_when(post.posted_at)}</time></div>'
        )
    parts.append("</article>")
    return "".join(parts)


def _availability_html(avail: Availability) -> str:
    days = (avail.last_day - avail.first_day).days + 1
    parts = [
        f"<section><h2>Availability, last {days} days</h2>",
        f"<p>{format_percent(avail.uptime_percent)} of days without a major outage, "
        "all services.</p>",
    ]
    if not avail.services:
        parts.append(f'<p class="muted">No incidents in the last {days} days.</p>')
    for bar in avail.services:
        parts.append(
            f'<div class="svc"><div class="svc-head"><span>{html.escape(bar.service)}</span>'
            f'<span class="muted">{format_percent(bar.uptime_percent)} without a major outage'
            f"</span></div>{bar_svg(bar)}"
            f'<div class="axis muted"><span>{days} days ago</span><span>Today</span></div></div>'
        )
    legend = [
        ("operational", "No incidents"),
        ("degraded", "Degraded performance (P2/P3)"),
        ("major", "Major outage (P0/P1)"),
        ("no_data", "No data"),
    ]
    parts.append('<ul class="legend muted">')
    parts.extend(
        f'<li><i style="background:var(--{level})"></i>{text}</li>' for level, text in legend
    )
    parts.append("</ul></section>")
    return "".join(parts)
