"""Incident → GitHub issue (title, body, labels, state) and timeline comments. Pure.

The body follows the operations guide's incident template. The bridge owns only the region
between ``<!-- incident-bridge:begin -->`` and ``<!-- incident-bridge:end -->``; Root Cause
Analysis and Resolution sit outside it, written once for people to fill in. Every issue ends
with the marker ``<!-- incident-bridge:v1 kind=… id=… key=… -->``.

Alert text is hostile until proven otherwise: it is escaped so that it cannot mention people,
open HTML, forge a marker or break a table, and every piece is length-capped so the body stays
under GitHub's 65,536 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from bridge import measures, snapshot
from bridge.model import AlertState, Incident, Priority, StormMember, TimelineEvent

BEGIN = "<!-- incident-bridge:begin -->"
END = "<!-- incident-bridge:end -->"
BODY_LIMIT = 65_536
TITLE_LIMIT = 256
_BODY_BUDGET = 60_000  # leave room for text people add outside the bridge region
_CELL = 120
_URL_LIMIT = 2000  # after percent-encoding, which can grow text twelvefold
_TIMELINE_ROWS = 30
_MAINT_PREFIX = {"perfective": "MAINT-PERF", "adaptive": "MAINT-ADAPT", "preventive": "MAINT-PREV"}

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")
# C0/C1 controls, zero-width characters and every Unicode bidi control (incl. U+061C) and BOM.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


@dataclass(frozen=True, slots=True)
class PriorityStyle:
    label: str  # priority-critical
    name: str  # Critical


@dataclass(frozen=True, slots=True)
class Runbook:
    title: str
    markdown: str


@dataclass(frozen=True, slots=True)
class Trace:
    """A service's references (``traceability`` in the config): the guide's Traceability block."""

    requirement: str | None = None
    component: str | None = None
    implementation: str | None = None
    tests: str | None = None


@dataclass(frozen=True, slots=True)
class RenderOptions:
    styles: Mapping[Priority, PriorityStyle]
    close_on_resolve: bool = True
    extra_labels: tuple[str, ...] = ()
    runbook: Callable[[Incident], Runbook | None] = field(default=lambda _incident: None)
    # By service (an alert's ``service`` label, else its ``job``): its requirement and
    # architecture references, for incidents whose alerts carry no such labels.
    traceability: Mapping[str, Trace] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DesiredIssue:
    title: str
    region: str  # BEGIN … END inclusive
    body: str  # the whole body for a new issue
    labels: frozenset[str]
    state: str  # open | closed


def escape(text: str, limit: int = _CELL) -> str:
    """Alert text as inert inline Markdown: one line, no HTML, no mentions, capped."""
    text = _CONTROL.sub("", text).replace("\r", " ").replace("\n", " ").strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # A zero-width joiner after "@" keeps "@team" readable but never a mention.
    return text.replace("@", "@\u2060")


def safe_url(url: str) -> str | None:
    """An http(s) URL safe inside Markdown link parentheses, or None."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    encoded = quote(url, safe=":/?#[]@!$&'*+,;=%-._~")
    return encoded if len(encoded) <= _URL_LIMIT else None


def _time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def plain(text: str, limit: int) -> str:
    """Alert text for an issue title: GitHub shows titles as text (only `code` renders), so no
    entities or backslashes; one line, no code spans, no mentions, capped."""
    text = " ".join(_CONTROL.sub("", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("`", "'").replace("@", "@\u2060")


def title_of(incident: Incident) -> str:
    prefix = (
        _MAINT_PREFIX.get(incident.maintenance_type, "MAINT-PERF")
        if incident.kind == "maint"
        else incident.display_id
    )
    head = f"[{prefix}] "
    # Each "@" grows by one character, so cap with room to spare and cut exactly at the end.
    return (head + plain(incident.summary, TITLE_LIMIT - len(head) - 8))[:TITLE_LIMIT]


def marker(incident: Incident) -> str:
    kind = incident.kind  # incident | maint | storm
    return f"<!-- incident-bridge:v1 kind={kind} id={incident.display_id} key={incident.key} -->"


def comment_marker(event_id: str) -> str:
    return f"<!-- incident-bridge:event={event_id} -->"


def _alert_row(alert: AlertState) -> str:
    status = "🔥 firing" if alert.status == "firing" else "✅ resolved"
    name = escape(alert.labels.get("alertname", ""), 60)
    instance = escape(alert.labels.get("instance", "") or alert.labels.get("pod", ""), 60)
    value = escape(alert.annotations.get("value", ""), 40)
    url = safe_url(alert.generator_url)
    source = f"[graph]({url})" if url else "—"
    cells = [status, name, instance or "—", value or "—", _time(alert.starts_at), source]
    return "| " + " | ".join(cells) + " |"


def _alerts_section(incident: Incident, max_rows: int) -> list[str]:
    alerts = sorted(
        incident.alerts.values(),
        key=lambda a: (a.status != "firing", a.priority.rank, a.starts_at, a.fingerprint),
    )
    lines = [
        "## Alerts",
        "",
        "| Status | Alert | Instance | Value | Started | Source |",
        "|---|---|---|---|---|---|",
    ]
    lines += [_alert_row(a) for a in alerts[:max_rows]]
    hidden = max(0, len(alerts) - max_rows)
    left_out = []
    if hidden:
        left_out.append(f"{hidden} more alert{'s' if hidden != 1 else ''} not shown here")
    if incident.truncated_alerts:
        left_out.append(
            f"{incident.truncated_alerts} alert{'s' if incident.truncated_alerts != 1 else ''}"
            " left out by Alertmanager (truncatedAlerts)"
        )
    if left_out:
        lines += ["", f"_{'; '.join(left_out)}._"]
    return lines


def _impact_section(incident: Incident, styles: Mapping[Priority, PriorityStyle]) -> list[str]:
    firing = incident.firing_alerts()
    total = len(incident.alerts) + incident.truncated_alerts
    labels = incident.common_labels or incident.group_labels
    lines = ["## Impact", ""]
    service = labels.get("service") or labels.get("job")
    if service:
        lines.append(f"- **Affects**: service {escape(service, 80)}")
    instances = sorted({a.labels.get("instance", "") for a in firing} - {""})
    if instances:
        shown = ", ".join(escape(i, 60) for i in instances[:10])
        more = f" and {len(instances) - 10} more" if len(instances) > 10 else ""
        lines.append(f"- **Instances**: {shown}{more}")
    lines.append(f"- **Alerts firing**: {len(firing)} of {total}")
    description = incident.common_annotations.get("description") or next(
        (a.annotations.get("description", "") for a in firing if a.annotations.get("description")),
        "",
    )
    if description:
        lines.append(f"- **Description**: {escape(description, 500)}")
    if incident.kind == "incident":
        lines.append(f"- **Priority decided by**: {escape(incident.priority_rule, 200)}")
        missed = " — ⏰ **missed**"  # the SLA timers (bridge/sla.py) recorded a breach
        respond = missed if incident.response_breached_at is not None else ""
        resolve = missed if incident.resolution_breached_at is not None else ""
        lines.append(f"- **Respond by**: {_time(incident.respond_by)}{respond}")
        lines.append(f"- **Resolve by**: {_time(incident.resolve_by)}{resolve}")
    return lines


def _runbook_section(incident: Incident, options: RenderOptions) -> list[str]:
    urls: list[str] = []
    for alert in [*incident.firing_alerts(), *incident.alerts.values()]:
        url = safe_url(alert.annotations.get("runbook_url", ""))
        if url and url not in urls:
            urls.append(url)
    lines = ["## Runbook", ""]
    lines += [f"- [{escape(url, 100)}]({url})" for url in urls[:5]]
    # The alert rule's own runbook_url wins; the bundled runbook is for alerts without one.
    bundled = None if urls else options.runbook(incident)
    if bundled is not None:
        lines += [
            "",
            f"<details><summary>{escape(bundled.title, 100)}</summary>",
            "",
            bundled.markdown.strip(),
            "",
            "</details>",
        ]
    if len(lines) == 2:
        lines.append("_No runbook linked: add a `runbook_url` annotation to the alert rule._")
    return lines


_ISSUE_REF = re.compile(r"\\#(\d+)")
_TRACE_FIELDS = (
    ("requirement", "Original Requirement"),
    ("component", "Architecture"),
    ("implementation", "Implementation"),
    ("tests", "Tests"),
)


def reference(text: str, limit: int = 200) -> str:
    """A reference (``#46 REQ-NF-PERF-001``) escaped like alert text, but with its issue
    references (``#46``, ``acme/reqs#46``) left as GitHub links them."""
    return _ISSUE_REF.sub(r"#\1", escape(text, limit))


def traceability_section(incident: Incident, options: RenderOptions) -> list[str]:
    """The guide's Traceability block: the alerts' ``requirement`` / ``component`` labels,
    else the config's ``traceability`` entry for the incident's services (several services:
    each distinct reference, in service order)."""
    labelled = {
        name: incident.common_labels.get(name, "").strip() for name in ("requirement", "component")
    }
    found = {name: [labelled[name]] if labelled.get(name) else [] for name, _ in _TRACE_FIELDS}
    for service in measures.services_of(incident):
        trace = options.traceability.get(service)
        if trace is None:
            continue
        for name, _title in _TRACE_FIELDS:
            value = getattr(trace, name)
            if value and not labelled.get(name) and value not in found[name]:
                found[name].append(value)
    lines = ["## Traceability", ""]
    for name, title in _TRACE_FIELDS:
        if found[name]:
            shown = "; ".join(reference(value) for value in found[name][:5])
            lines.append(f"- **{title}**: {shown}")
    if len(lines) == 2:
        lines.append(
            "_No `requirement` or `component` label on the alerts and no `traceability` entry"
            " for the service in the config; link the requirement and the architecture"
            " component here._"
        )
    return lines


def _timeline_section(events: Sequence[TimelineEvent]) -> list[str]:
    lines = ["## Timeline", "", "| Time | Event |", "|---|---|"]
    shown = list(events)[-_TIMELINE_ROWS:]
    lines += [f"| {_time(e.at)} | {escape(e.text, 200)} |" for e in shown]
    return lines


def _status_line(incident: Incident) -> str:
    if incident.kind == "maint":
        if incident.state == "open":
            return f"**Status**: condition present since {_time(incident.opened_at)}"
        return (
            f"**Status**: condition cleared at {_time(incident.resolved_at)};"
            " close this request when the work is done"
        )
    if incident.state == "open":
        status = f"**Status**: 🔴 Open since {_time(incident.opened_at)}"
        if incident.flapping:
            status += " — 〰️ flapping: alerts fire and resolve repeatedly, notifications damped"
            if incident.quiet_until is not None:
                status += f"; closes at {_time(incident.quiet_until)} if nothing fires again"
        return status
    how = {
        "manual": "closed by hand",
        "heartbeat": "the heartbeat arrives again",
        "reconciled": "resolved by reconciliation: Alertmanager no longer has its alerts",
    }.get(incident.resolution or "", "every alert resolved")
    return f"**Status**: ✅ Resolved at {_time(incident.resolved_at)} ({how})"


def _annotation(incident: Incident, name: str) -> str:
    """The common annotation, else the first firing (or any) alert's."""
    alerts = [*incident.firing_alerts(), *incident.alerts.values()]
    for source in [incident.common_annotations, *(a.annotations for a in alerts)]:
        text = source.get(name, "").strip()
        if text:
            return text
    return ""


def _maintenance_sections(incident: Incident) -> list[str]:
    """The guide's maintenance request fields: justification, proposed solution, impact."""
    lines = ["## Justification", ""]
    summary = _annotation(incident, "summary") or incident.summary
    lines.append(f"- **Observed**: {escape(summary, 300)}")
    description = _annotation(incident, "description")
    if description:
        lines.append(f"- **Detail**: {escape(description, 500)}")
    metric = incident.common_labels.get("metric", "")
    value = _annotation(incident, "value")
    if metric or value:
        lines.append(f"- **Measure**: {escape(metric or 'value', 60)} = {escape(value or '—', 40)}")
    firing = incident.firing_alerts()
    lines.append(f"- **Alerts firing**: {len(firing)} of {len(incident.alerts)}")
    proposed = _annotation(incident, "proposed_action")
    impact = _annotation(incident, "expected_impact")
    lines += [
        "",
        "## Proposed Solution",
        "",
        escape(proposed, 1000) if proposed else "_Add a `proposed_action` annotation to the rule._",
        "",
        "## Expected Impact",
        "",
        escape(impact, 1000) if impact else "_Add an `expected_impact` annotation to the rule._",
    ]
    return lines


def render_region(
    incident: Incident,
    events: Sequence[TimelineEvent],
    options: RenderOptions,
    max_rows: int = 50,
    review_issue: int | None = None,
) -> str:
    lines = [BEGIN]
    if incident.kind == "maint":
        # A maintenance request: planned work, no severity, no deadlines, never pages.
        lines.append(f"**Type**: {incident.maintenance_type.capitalize()} Maintenance")
        lines += [_status_line(incident), ""]
        lines += [*_maintenance_sections(incident), ""]
    else:
        style = options.styles[incident.priority]
        lines.append(f"**Severity**: {style.name} ({incident.priority})")
        lines.append(_status_line(incident))
        if review_issue is not None:  # the post-incident review links back here (pir.py)
            lines.append(f"**Post-incident review**: #{review_issue}")
        lines.append("")
        lines += [*_impact_section(incident, options.styles), ""]
    lines += [*_alerts_section(incident, max_rows), ""]
    lines += [*_runbook_section(incident, options), ""]
    lines += [*traceability_section(incident, options), ""]
    lines += _timeline_section(events)
    lines.append(snapshot.state_line(incident))  # hidden: what `rebuild` reads back
    lines.append(END)
    return "\n".join(lines)


def _human_sections() -> str:
    return "\n".join(
        [
            "## Root Cause Analysis",
            "",
            "_Responders: describe the cause here. The bridge never edits this section._",
            "",
            "## Resolution",
            "",
            "_Responders: the fix, how it was verified and deployed._",
        ]
    )


def _region_span(body: str) -> tuple[int, int] | None:
    """Where the bridge region (markers included) starts and ends in ``body``, if it is there."""
    start = body.find(BEGIN)
    end = body.find(END, start + len(BEGIN)) if start >= 0 else -1
    return (start, end + len(END)) if start >= 0 and end >= 0 else None


def splice(body: str, region: str) -> str:
    """Replace the bridge region in ``body``, keeping everything people wrote around it.

    Without a region (someone deleted it) the new region goes first, the rest is kept.
    """
    span = _region_span(body)
    if span is None:
        return f"{region}\n\n{body}"
    return body[: span[0]] + region + body[span[1] :]


def adopted_body(body: str, region: str, incident: Incident) -> str:
    """A reported issue's body once the bridge adopts it: what the reporter wrote, untouched,
    then the bridge's region, the sections for people (when they fit) and the marker. Adopting
    again (a retry after an answer that never came) replaces only the region."""
    if _region_span(body) is not None:
        adopted = splice(body, region)
    else:
        parts = [body.rstrip(), region, _human_sections()]
        if sum(len(part) + 2 for part in parts) + len(marker(incident)) > BODY_LIMIT:
            parts.pop()  # the reporter's text and the region come first
        adopted = "\n\n".join(part for part in parts if part)
    if marker(incident) not in adopted:
        adopted = f"{adopted}\n\n{marker(incident)}"
    return adopted


def region_of(body: str) -> str:
    """The bridge region of an issue body (markers included), or "" when there is none."""
    span = _region_span(body)
    return body[span[0] : span[1]] if span else ""


# State labels the bridge sets as they apply (CONTRACT.md, "Issues on GitHub"); ``identified``
# is people's to set (it acknowledges and moves the status page to Identified), never ours.
STATE_LABELS = ("acknowledged", "sla-breached", "flapping")


def managed_labels(options: RenderOptions) -> frozenset[str]:
    """Every label the bridge may put on an issue (and so may remove again)."""
    labels = {
        "incident-bridge",
        "incident",
        "resolved",
        "storm",
        *STATE_LABELS,
        *(f"maintenance-{kind}" for kind in ("corrective", *_MAINT_PREFIX)),
        *options.extra_labels,
    }
    labels.update(style.label for style in options.styles.values())
    return frozenset(labels)


def desired_labels(incident: Incident, options: RenderOptions) -> frozenset[str]:
    if incident.kind == "maint":
        return frozenset({"incident-bridge", f"maintenance-{incident.maintenance_type}"})
    labels = {"incident-bridge", "incident", "maintenance-corrective", *options.extra_labels}
    labels.add(options.styles[incident.priority].label)
    if incident.state == "resolved" and not options.close_on_resolve:
        labels.add("resolved")
    if incident.acknowledged_at is not None:
        labels.add("acknowledged")
    if incident.response_breached_at is not None or incident.resolution_breached_at is not None:
        labels.add("sla-breached")
    if incident.flapping:
        labels.add("flapping")
    return frozenset(labels)


def desired_state(incident: Incident, options: RenderOptions) -> str:
    if incident.kind == "maint":
        # People close a request when the work is done; it reopens when its condition fires
        # anew (the engine clears manual_hold then).
        return "closed" if incident.manual_hold else "open"
    if incident.state == "resolved" and (
        options.close_on_resolve or incident.resolution == "manual"
    ):
        return "closed"
    return "open"


def render_issue(
    incident: Incident,
    events: Sequence[TimelineEvent],
    options: RenderOptions,
    *,
    review_issue: int | None = None,
) -> DesiredIssue:
    """What the incident's issue should look like now (with its post-incident review's issue
    number once it has one)."""
    max_rows = 50
    while True:
        region = render_region(incident, events, options, max_rows, review_issue)
        body = "\n\n".join([region, _human_sections(), marker(incident)])
        if len(body) <= _BODY_BUDGET or max_rows == 0:
            break
        max_rows //= 2
    return DesiredIssue(
        title=title_of(incident),
        region=region,
        body=body,
        labels=desired_labels(incident, options),
        state=desired_state(incident, options),
    )


def render_comment(incident: Incident, event: TimelineEvent) -> str:
    """The comment for a timeline event (resolution, reopening), with its event marker."""
    if incident.kind == "maint" and event.kind in ("resolved", "reopened"):
        what = "cleared" if event.kind == "resolved" else "is back"
        head = (
            f"The condition behind this maintenance request {what} at {_time(event.at)}."
            " The request stays open until people close it."
        )
    elif event.kind == "resolved":
        duration = escape(str(event.data.get("duration", "")), 40)
        why = escape(str(event.data.get("why") or f"every alert resolved after {duration}"), 200)
        head = f"✅ **Resolved** at {_time(event.at)}: {why}."
    elif event.kind == "reconciled":
        duration = escape(str(event.data.get("duration", "")), 40)
        head = (
            f"✅ **Resolved by reconciliation** at {_time(event.at)}: none of its alerts is"
            f" active in Alertmanager any more (after {duration}). Its resolved notification"
            " was lost, or the group was silenced until its alerts ended."
        )
    elif event.kind == "reopened":
        why = escape(str(event.data.get("why") or "alerts of this group fire again"), 200)
        head = f"🔁 **Reopened** at {_time(event.at)}: {why}. Priority {incident.priority}."
    elif event.kind == "sla_breached":
        head = f"⏰ **SLA breached** at {_time(event.at)}: {escape(event.text, 300)}"
        if event.data.get("which") == "response":
            head += (
                "\n\nAcknowledge to stop the paging: assign this issue, label it"
                " `acknowledged`, or comment."
            )
    elif event.kind == "closed_manually":
        firing = int(event.data.get("firing") or 0)
        who = escape(str(event.data.get("who", "")), 60) or "someone"
        head = f"**Closed by hand** at {_time(event.at)} by {who}: resolved manually."
        if firing:
            alerts = f"{firing} alert{'s' if firing != 1 else ''}"
            head += (
                f" ⚠️ {alerts} of this group {'are' if firing != 1 else 'is'} still firing; the"
                " incident stays closed until an alert of the group starts firing anew."
            )
    else:
        head = f"**{escape(event.kind, 40)}** at {_time(event.at)}: {escape(event.text, 300)}"
    return f"{head}\n\n{comment_marker(event.event_id(incident))}"


# -- alert storm roll-ups (bridge/storm.py) --------------------------------------------------

STORM_OVER = "over"  # the "storm over" comment's event id is INC-NNN.over


def _storm_line(member: StormMember, summary_limit: int) -> str:
    incident = member.incident
    resolved = incident.state != "open"
    parts = [
        f"- [{'x' if resolved else ' '}] {incident.display_id}",
        str(incident.priority),
        "resolved" if resolved else "firing",
    ]
    if member.issue_number is not None:
        parts.append(f"#{member.issue_number}")
    if summary_limit:
        parts.append(escape(incident.summary, summary_limit))
    return " · ".join(parts)


def _storm_status(storm: Incident, members: Sequence[StormMember], over: bool) -> str:
    if members and all(m.incident.state != "open" for m in members):
        return "**Status**: ✅ Every listed group has resolved"
    if over:
        return (
            "**Status**: 🌤️ Storm over: every listed group still firing has its own issue"
            " (linked below); this issue closes when they have all resolved"
        )
    return f"**Status**: 🌩️ Storm since {_time(storm.opened_at)}"


def render_storm(
    storm: Incident, members: Sequence[StormMember], options: RenderOptions, *, over: bool
) -> DesiredIssue:
    """The roll-up issue of a storm: a checklist of the groups it lists, ticked when resolved,
    with each group's priority, state and own issue (``#N``) once it has one."""
    highest = Priority.highest(*(m.incident.priority for m in members)) if members else None
    ordered = sorted(members, key=lambda m: (m.incident.priority.rank, m.incident.number or 0))
    firing = sum(1 for m in members if m.incident.state == "open")
    own = sum(1 for m in members if m.issue_number is not None)
    head = [
        BEGIN,
        f"**Alert storm**: {len(members)} alert groups opened faster than the GitHub write"
        " budget allows. They are listed here rather than each getting an issue at once; a"
        " group still firing gets its own issue when the budget allows, linked here.",
        _storm_status(storm, members, over),
    ]
    if highest is not None:
        style = options.styles[highest]
        head.append(f"**Highest priority**: {style.name} ({highest})")
    head += [
        f"**Groups**: {firing} firing, {len(members) - firing} resolved, {own} with an issue"
        " of their own",
        "",
        "## Alert groups",
        "",
    ]
    tail = [END]
    for summary_limit in (80, 40, 0):
        lines = [_storm_line(m, summary_limit) for m in ordered]
        if sum(len(line) + 1 for line in lines) < _BODY_BUDGET - 2000:
            break
    else:
        kept: list[str] = []
        size = 0
        for line in lines:
            size += len(line) + 1
            if size >= _BODY_BUDGET - 2000:
                break
            kept.append(line)
        lines = [*kept, "", f"_{len(lines) - len(kept)} more groups not listed here._"]
    region = "\n".join([*head, *lines, *tail])
    labels = {"incident-bridge", "incident", "storm"}
    if highest is not None:
        labels.add(options.styles[highest].label)
    resolved = bool(members) and all(m.incident.state != "open" for m in members)
    return DesiredIssue(
        title=f"[{storm.display_id}] Alert storm: {len(members)} alert groups",
        region=region,
        body="\n\n".join([region, marker(storm)]),
        labels=frozenset(labels),
        state="closed" if resolved else "open",
    )


def render_storm_over(storm: Incident, at: datetime) -> str:
    """The one comment saying the storm is over, with its event marker."""
    return (
        f"🌤️ **Storm over** at {_time(at)}: every group listed here that is still firing has its"
        " own issue now, and new groups get their own issues again. This issue closes when the"
        " groups listed here have all resolved."
        f"\n\n{comment_marker(f'{storm.display_id}.{STORM_OVER}')}"
    )
