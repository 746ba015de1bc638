"""A post-incident review as a GitHub issue, and its reminder comment. Pure.

The body follows the operations guide's post-incident template ("6. Document"). The bridge's
region (``render.BEGIN`` … ``render.END``) holds what the bridge knows — the incident it
reviews (linked, so GitHub links back), date, severity, duration, impact from the alerts,
detection and response times (``bridge/measures.py``'s definitions), when the review is due,
the traceability references and the **Timeline** from the recorded events and notifications
(``bridge/review.py``) — and is refreshed when the review is updated. Root Cause, Resolution,
What Went Well, What Went Wrong, Action Items and Prevention follow outside it, for people: written
once when the issue is made, never edited again. The marker
``<!-- incident-bridge:v1 kind=pir id=INC-NNN key=… -->`` ends the body.

Alert text is escaped as in ``render.py``, and the body stays under GitHub's limit: a long
timeline keeps its first and last lines and says how many were left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bridge import review
from bridge.engine import human_duration
from bridge.github import render
from bridge.measures import ACK_EVENTS, priority_in, services_of
from bridge.model import Incident, Priority, TimelineEvent
from bridge.store.base import SentNotification

LABELS = frozenset({"incident-bridge", review.LABEL})
_HEAD_LINES = 40  # a long timeline keeps its start (fired, detected, told, acknowledged) …
_TAIL_LINES = 120  # … and its end (escalations, resolution)
_LINE = 300


def title_of(incident: Incident) -> str:
    """``[PIR] INC-042 <summary>``, cut to GitHub's 256 characters."""
    head = f"[PIR] {incident.display_id} "
    return (head + render.plain(incident.summary, render.TITLE_LIMIT - len(head) - 8))[
        : render.TITLE_LIMIT
    ]


def marker(incident: Incident) -> str:
    return f"<!-- incident-bridge:v1 kind=pir id={incident.display_id} key={incident.key} -->"


def _time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first_acknowledgement(
    incident: Incident, events: Sequence[TimelineEvent]
) -> tuple[datetime, str] | None:
    """The incident's first acknowledgement and by whom: from its timeline, else its fields."""
    for event in events:
        if event.kind in ACK_EVENTS:
            who = event.data.get("who") or (
                f"silence {event.data['silences'][0]}"
                if event.kind == "silenced" and event.data.get("silences")
                else "a silence"
            )
            return event.at, str(who)
    if incident.acknowledged_at is not None:
        return incident.acknowledged_at, incident.acknowledged_by or "someone"
    return None


def _impact(incident: Incident) -> str:
    """What the alerts say was hit: services, instances, how many alerts, the description."""
    parts: list[str] = []
    services = [s for s in services_of(incident) if s != "unknown"]
    if services:
        noun = "service" if len(services) == 1 else "services"
        parts.append(f"{noun} {', '.join(render.escape(s, 80) for s in services[:5])}")
    instances = sorted({a.labels.get("instance", "") for a in incident.alerts.values()} - {""})
    if instances:
        shown = ", ".join(render.escape(i, 60) for i in instances[:5])
        more = f" and {len(instances) - 5} more" if len(instances) > 5 else ""
        parts.append(f"instances {shown}{more}")
    total = len(incident.alerts) + incident.truncated_alerts
    parts.append(f"{total} alert{'s' if total != 1 else ''}")
    description = incident.common_annotations.get("description") or next(
        (
            a.annotations["description"]
            for a in incident.alerts.values()
            if a.annotations.get("description")
        ),
        "",
    )
    line = "; ".join(parts)
    if description:
        line += f" — {render.escape(description, 500)}"
    return line


def _status(incident: Incident) -> str:
    if incident.state == "open":
        return (
            "**Status**: 🔴 The incident is open again (reopened); this review is updated when it"
            " resolves"
        )
    how = {
        "manual": "closed by hand",
        "heartbeat": "the heartbeat arrived again",
        "reconciled": "by reconciliation with Alertmanager",
    }.get(incident.resolution or "", "every alert resolved")
    return f"**Status**: ✅ Incident resolved at {_time(incident.resolved_at)} ({how})"


def _facts(
    incident: Incident,
    events: Sequence[TimelineEvent],
    options: render.RenderOptions,
    incident_issue: int | None,
) -> list[str]:
    # A reopening at a lower priority resets the incident's priority and breaches: the review
    # is of the whole incident, so it takes the highest priority and every breach its timeline
    # holds.
    priority = Priority.highest(incident.priority, *filter(None, map(priority_in, events)))
    style = options.styles[priority]
    linked = f"#{incident_issue} ({incident.display_id})" if incident_issue else incident.display_id
    start = incident.earliest_starts_at
    lines = [
        f"**Incident**: {linked}",
        f"**Date**: {start.astimezone(UTC).strftime('%Y-%m-%d')}",
        f"**Severity**: {style.name} ({priority})",
    ]
    if incident.state == "resolved" and incident.resolved_at is not None:
        duration = human_duration(incident.resolved_at - start)
        lines.append(
            f"**Duration**: {duration} (first alert {_time(start)}, resolved"
            f" {_time(incident.resolved_at)})"
        )
    else:
        lines.append(f"**Duration**: ongoing (first alert {_time(start)})")
    if incident.reopen_count:
        times = "once" if incident.reopen_count == 1 else f"{incident.reopen_count} times"
        lines[-1] += f"; reopened {times}"
    lines.append(f"**Impact**: {_impact(incident)}")
    response = [f"detected {human_duration(incident.opened_at - start)} after the first alert"]
    acknowledged = _first_acknowledgement(incident, events)
    if acknowledged is not None:
        at, who = acknowledged
        response.append(
            f"acknowledged {human_duration(at - incident.opened_at)} after that by"
            f" {render.escape(who, 80)}"
        )
    else:
        response.append("never acknowledged")
    breached = {str(e.data.get("which")) for e in events if e.kind == "sla_breached"}
    if incident.response_breached_at is not None:
        breached.add("response")
    if incident.resolution_breached_at is not None:
        breached.add("resolution")
    missed = [name for name in ("response", "resolution") if name in breached]
    if missed:
        response.append(f"{' and '.join(missed)} deadline missed")
    lines.append(f"**Detection and response**: {'; '.join(response)}")
    due = review.due_at(incident)
    lines.append(
        f"**Review due**: {_time(due)} (within 48 h of the resolution)"
        if due is not None
        else "**Review due**: 48 h after the incident resolves"
    )
    lines.append(_status(incident))
    return lines


def _timeline(
    events: Sequence[TimelineEvent], sent: Sequence[SentNotification], keep: tuple[int, int]
) -> list[str]:
    entries = review.timeline(events, sent)
    lines = [f"- {_time(e.at)} — {render.escape(e.text, _LINE)}" for e in entries]
    head, tail = keep
    if len(lines) > head + tail:
        left_out = len(lines) - head - tail
        shown = [*lines[:head], f"- _… {left_out} more entries not shown here …_"]
        lines = shown + (lines[len(lines) - tail :] if tail else [])
    return ["## Timeline", "", *(lines or ["_Nothing recorded._"])]


def render_region(
    incident: Incident,
    events: Sequence[TimelineEvent],
    sent: Sequence[SentNotification],
    options: render.RenderOptions,
    incident_issue: int | None,
    keep: tuple[int, int] = (_HEAD_LINES, _TAIL_LINES),
) -> str:
    lines = [
        render.BEGIN,
        f"# Post-Incident Review: {render.escape(incident.summary, 200)}",
        "",
        *_facts(incident, events, options, incident_issue),
        "",
        *_timeline(events, sent, keep),
        "",
        *render.traceability_section(incident, options),
        render.END,
    ]
    return "\n".join(lines)


def people_sections(incident_issue: int | None) -> str:
    """The template's sections for people, written once with the issue and never edited."""
    see = f" (see #{incident_issue})" if incident_issue else ""
    return "\n".join(
        [
            "## Root Cause",
            "",
            f"_Reviewers: the cause, as established{see}. The bridge never edits the sections"
            " below._",
            "",
            "## Resolution",
            "",
            "_What fixed it, and how the fix was verified._",
            "",
            "## What Went Well",
            "",
            "- ",
            "",
            "## What Went Wrong",
            "",
            "- ",
            "",
            "## Action Items",
            "",
            "- [ ] Action (owner, due date)",
            "",
            "## Prevention",
            "",
            "Similar incidents will be prevented by:",
            "1. ",
        ]
    )


def render_review(
    incident: Incident,
    events: Sequence[TimelineEvent],
    sent: Sequence[SentNotification],
    options: render.RenderOptions,
    incident_issue: int | None,
) -> render.DesiredIssue:
    """What the review's issue should look like now. ``state`` is always ``open``: the bridge
    opens the review, and only people close it."""
    keep = (_HEAD_LINES, _TAIL_LINES)
    while True:
        region = render_region(incident, events, sent, options, incident_issue, keep)
        body = "\n\n".join([region, people_sections(incident_issue), marker(incident)])
        if len(body) <= render.BODY_LIMIT - 5000 or keep == (0, 0):
            break
        keep = (keep[0] // 2, keep[1] // 2)
    return render.DesiredIssue(
        title=title_of(incident),
        region=region,
        body=body,
        labels=LABELS,
        state="open",
    )


def render_reminder(incident: Incident, due: datetime | None, now: datetime) -> str:
    """The one reminder on a review still open after 48 hours, with its comment marker."""
    when = f" at {_time(due)}" if due is not None else ""
    return (
        f"⏰ **Post-incident review due**{when}: this review of {incident.display_id}"
        f" ({incident.priority}) is still open at {_time(now)}. The operations guide asks for"
        " it within 48 hours of a P0/P1 incident: fill in What Went Well, What Went Wrong,"
        " Action Items and Prevention, then close this issue."
        f"\n\n{render.comment_marker(f'{incident.display_id}.{review.REMINDER_ID}')}"
    )
