"""The report as Markdown or as a self-contained HTML page with inline SVG charts. Pure.

``bridge/report.py`` computes the figures; this only lays them out. Alert text (summaries, group
labels, service names) is hostile: Markdown gets it through ``github.render.escape`` (inert, one
line, no HTML, no mentions), HTML through ``html.escape`` — in the page and inside the SVG alike.
The page has no script and no external asset, follows the reader's light or dark scheme, and
fits a phone (tables scroll sideways, charts scale to the width).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from bridge.github.render import escape as md_escape
from bridge.model import Priority
from bridge.report import (
    NOISY_GROUPS,
    Compliance,
    NoisyGroup,
    Report,
    Row,
    Stat,
    meets,
    target_seconds,
)
from bridge.rules import Target
from bridge.text import one_line

Tone = Literal["ok", "bad", "none"]

DOCS = "docs/reporting.md"
_UNACKNOWLEDGED_SHOWN = 50
_CHART_SERVICES = 20  # the least available services charted; the table has them all


# -- numbers as text ----------------------------------------------------------------------------


def human(value: float | None) -> str:
    """Seconds for people: ``45s``, ``4m 10s``, ``1h 05m``, ``2d 3h``; ``—`` for nothing."""
    if value is None:
        return "—"
    total = round(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def target_text(target: Target | timedelta) -> str:
    """``< 5m``, ``< 4h``, ``< 24h``, ``< 14d``, ``< 1h 30m``; ``next business day``."""
    limit = target_seconds(target)
    if limit is None:
        return "next business day"
    total = round(limit)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if total >= (2 * size if unit == "d" else size) and total % size == 0:
            return f"< {total // size}{unit}"
    return f"< {human(limit)}"


def percent(share: float | None) -> str:
    """``99.86%`` — cut, not rounded, so a miss never shows as the target; ``—`` for none."""
    if share is None:
        return "—"
    # The epsilon: 57 of 100 is 0.57, whose float times 10,000 is 5,699.999…, not 5,700.
    return f"{math.floor(share * 10000 + 1e-6) / 100:.2f}%"


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "missed", None: "—"}[ok]


def _tone(ok: bool | None) -> Tone:
    if ok is None:
        return "none"
    return "ok" if ok else "bad"


def _mark(ok: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "—"}[ok]


def _when(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _days(window: timedelta) -> str:
    days = window.total_seconds() / 86400
    return f"{days:g} day{'s' if days != 1 else ''}" if days >= 1 else human(window.total_seconds())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _label(priority: Priority | None) -> str:
    return "All" if priority is None else str(priority)


def _stat(stat: Stat) -> str:
    if stat.count == 0:
        return "—"
    return f"{human(stat.mean)} / {human(stat.p90)}"


def _compliance(c: Compliance) -> str:
    if c.total == 0:
        return "—"
    return f"{percent(c.share)} ({c.total - c.breached} of {c.total})"


def _compliance_ok(c: Compliance) -> bool | None:
    """A ``next_business_day`` target is judged by its breaches alone: met without any."""
    if c.total == 0:
        return None
    return c.breached == 0


def _cut(text: str, limit: int = 200) -> str:
    """Alert text for the page: one line, at most ``limit`` characters, without control or
    bidi characters (a right-to-left override would reorder the rest of the line)."""
    return one_line(text, limit)


def _groups(group: NoisyGroup) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(group.group_labels.items()))


# -- the headline figures, shared by both formats -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Headline:
    text: str
    ok: bool | None


def headlines(report: Report, quote: Callable[[str], str]) -> list[Headline]:
    """The summary lines a manager reads first; ``quote`` makes alert text (a service name)
    inert in the output format."""
    overall = report.overall
    by_priority = ", ".join(f"{r.priority}: {r.opened}" for r in report.rows)
    detected = meets(overall.detect, report.mttd_target)
    lines = [
        Headline(
            f"{_count(overall.opened, 'incident')} opened ({by_priority}); {report.incidents}"
            f" open at some moment of the window, {overall.open_at_end} still open at its end.",
            None,
        ),
        Headline(
            f"MTTD {human(overall.detect.mean)} (p90 {human(overall.detect.p90)}), target"
            f" {target_text(report.mttd_target)}: {verdict(detected)}.",
            detected,
        ),
    ]
    for row in report.rows[:2]:  # the guide's MTTR targets: P0 and P1
        assert row.priority is not None
        target = report.targets[row.priority].resolve
        ok = meets(row.resolve, target)
        if row.resolve.count == 0:
            text = (
                f"MTTR {row.priority}: none resolved in the window (target {target_text(target)})."
            )
        else:
            text = (
                f"MTTR {row.priority} {human(row.resolve.mean)} over {row.resolve.count}"
                f" resolved, target {target_text(target)}: {verdict(ok)}."
            )
        lines.append(Headline(text, ok))
    response, resolution = overall.response, overall.resolution
    both = [c for c in (response, resolution) if c.total]
    lines.append(
        Headline(
            f"SLA compliance: response {_compliance(response)}, resolution"
            f" {_compliance(resolution)}.",
            None if not both else all(c.breached == 0 for c in both),
        )
    )
    if report.services:
        worst = report.services[0]
        lines.append(
            Headline(
                f"Availability: lowest {quote(worst.service)} {percent(worst.availability)}, target"
                f" {percent(report.availability_target)}: {verdict(worst.meets_target)}"
                f" ({sum(not s.meets_target for s in report.services)} of"
                f" {len(report.services)} services below).",
                worst.meets_target,
            )
        )
    else:
        lines.append(Headline("Availability: no service had an incident.", True))
    return lines


# -- Markdown ----------------------------------------------------------------------------------


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    out = [
        f"# Incident report: {_when(report.since)} to {_when(report.until)}"
        f" ({_days(report.window)})",
        "",
        "## Summary",
        "",
    ]
    for line in headlines(report, md_escape):
        mark = {True: "✅ ", False: "❌ ", None: ""}[line.ok]
        out.append(f"- {mark}{line.text}")
    out += [
        "",
        "## Incidents by priority",
        "",
        "Times are mean / p90. MTTD: earliest alert to incident opened; MTTA: opened to first"
        " acknowledgement; MTTR: earliest alert to resolved.",
        "",
        "| Priority | Opened | Resolved | Still open | MTTD | MTTD < 5m | MTTA | Respond"
        " target | MTTR | Resolve target |",
        "|---|---:|---:|---:|---|---|---|---|---|---|",
    ]
    for row in [*report.rows, report.overall]:
        out.append(_md_priority_row(report, row))
    out += [
        "",
        "## SLA compliance",
        "",
        "The share of incidents opened in the window without a missed deadline.",
        "",
        "| Priority | Respond target | Response | Breached | Resolve target | Resolution |"
        " Breached |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for row in [*report.rows, report.overall]:
        respond, resolve = _targets(report, row)
        out.append(
            f"| {_label(row.priority)} | {respond} | {_compliance(row.response)} |"
            f" {row.response.breached} | {resolve} | {_compliance(row.resolution)} |"
            f" {row.resolution.breached} |"
        )
    out += ["", "## Unacknowledged incidents", ""]
    if not report.unacknowledged:
        out.append("Every incident opened in the window was acknowledged.")
    for item in report.unacknowledged[:_UNACKNOWLEDGED_SHOWN]:
        state = f"resolved {_when(item.resolved_at)}" if item.resolved_at else "still open"
        breach = ", response deadline missed" if item.response_breached else ""
        out.append(
            f"- {item.display_id} ({item.priority}) {md_escape(item.summary)} — opened"
            f" {_when(item.opened_at)}, {state}{breach}"
        )
    if len(report.unacknowledged) > _UNACKNOWLEDGED_SHOWN:
        out.append(f"- … and {len(report.unacknowledged) - _UNACKNOWLEDGED_SHOWN} more")
    out += [
        "",
        f"## Noisiest alert groups (top {NOISY_GROUPS})",
        "",
        "Episodes are openings and reopenings in the window.",
        "",
        "| Alert group | Latest | Priority | Episodes | Alerts fired | Incidents | Flapping |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for group in report.noisiest:
        out.append(
            f"| {md_escape(group.summary)}<br>{md_escape(_groups(group))} | {group.latest} |"
            f" {group.priority} | {group.episodes} | {group.alerts_fired} | {group.incidents} |"
            f" {'yes' if group.flapping else 'no'} |"
        )
    if not report.noisiest:
        out.append("| no incidents | | | 0 | 0 | 0 | |")
    out += [
        "",
        "## Incident minutes and availability per service",
        "",
        "Down: a P0 incident (service unavailable) open; degraded: only a P1. Availability ="
        f" 1 - down / window, target {percent(report.availability_target)}.",
        "",
        "| Service | Incidents | Incident minutes | Down | Degraded | Availability | Target |",
        "|---|---:|---:|---|---|---:|---|",
    ]
    for service in report.services:
        out.append(
            f"| {md_escape(service.service)} | {service.incidents} |"
            f" {service.incident_seconds / 60:.0f} | {human(service.down_seconds)} |"
            f" {human(service.degraded_seconds)} | {percent(service.availability)} |"
            f" {_mark(service.meets_target)} |"
        )
    if not report.services:
        out.append("| no incidents | 0 | 0 | — | — | 100.00% | ✅ met |")
    out += ["", *[f"Note: {note}" for note in report.notes]]
    out.append(f"How these figures are computed: {DOCS}.")
    return "\n".join(out) + "\n"


def _targets(report: Report, row: Row) -> tuple[str, str]:
    if row.priority is None:
        return "per priority", "per priority"
    targets = report.targets[row.priority]
    return target_text(targets.respond), target_text(targets.resolve)


def _md_priority_row(report: Report, row: Row) -> str:
    respond, resolve = _targets(report, row)
    detect_ok = _mark(meets(row.detect, report.mttd_target))
    if row.priority is not None:
        targets = report.targets[row.priority]
        respond += f" {_mark(_judge(row.acknowledge, row.response, targets.respond))}"
        resolve += f" {_mark(_judge(row.resolve, row.resolution, targets.resolve))}"
    return (
        f"| {_label(row.priority)} | {row.opened} | {row.resolved} | {row.open_at_end} |"
        f" {_stat(row.detect)} | {detect_ok} | {_stat(row.acknowledge)} | {respond} |"
        f" {_stat(row.resolve)} | {resolve} |"
    )


def _judge(stat: Stat, compliance: Compliance, target: Target) -> bool | None:
    """A mean against a fixed target — missed too when none was met in time, only breached —
    and a ``next_business_day`` target by its breaches."""
    if target_seconds(target) is None:
        return _compliance_ok(compliance)
    if stat.count == 0 and compliance.breached:
        return False
    return meets(stat, target)


# -- HTML --------------------------------------------------------------------------------------


def render_html(report: Report) -> str:
    """The whole page: inline CSS and SVG, no script, no external asset, every text escaped."""
    esc = html.escape
    title = f"Incident report: {_when(report.since)} to {_when(report.until)}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>Incident report</h1><p class=muted>{esc(_when(report.since))} to"
        f" {esc(_when(report.until))} ({esc(_days(report.window))})</p>",
        "<section><h2>Summary</h2><ul class=headlines>",
    ]
    for line in headlines(report, str):
        parts.append(f'<li class="{_tone(line.ok)}">{_badge(line.ok)}{esc(line.text)}</li>')
    parts.append("</ul></section>")
    parts.append("<section><h2>Incidents per priority</h2>")
    parts.append(_incidents_chart(report))
    parts.append("</section><section><h2>MTTR against the target</h2>")
    parts.append(_mttr_chart(report))
    parts.append("</section><section><h2>Availability per service</h2>")
    parts.append(_availability_chart(report))
    parts.append("</section>")
    parts.append(_priority_table(report))
    parts.append(_sla_table(report))
    parts.append(_unacknowledged_html(report))
    parts.append(_noisy_table(report))
    parts.append(_services_table(report))
    notes = "".join(f"<p>{esc(note)}</p>" for note in report.notes)
    parts.append(
        f'<footer class="muted">{notes}<p>Times are UTC; durations are mean / p90. How these'
        f" figures are computed: {esc(DOCS)}.</p></footer></main></body></html>"
    )
    return "".join(parts)


def _badge(ok: bool | None) -> str:
    if ok is None:
        return ""
    return f'<span class="badge {_tone(ok)}">{verdict(ok)}</span> '


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table whose cells are already HTML; in a box that scrolls sideways on a phone."""
    cells = "".join(f"<th scope=col>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<section><h2>{caption}</h2><div class=scroll><table><thead><tr>{cells}</tr></thead>"
        f"<tbody>{body}</tbody></table></div></section>"
    )


def _judged(text: str, ok: bool | None) -> str:
    return f'{html.escape(text)} <span class="badge {_tone(ok)}">{verdict(ok)}</span>'


def _priority_table(report: Report) -> str:
    rows = []
    for row in [*report.rows, report.overall]:
        respond, resolve = _targets(report, row)
        if row.priority is not None:
            targets = report.targets[row.priority]
            respond = _judged(respond, _judge(row.acknowledge, row.response, targets.respond))
            resolve = _judged(resolve, _judge(row.resolve, row.resolution, targets.resolve))
        rows.append(
            [
                _label(row.priority),
                str(row.opened),
                str(row.resolved),
                str(row.open_at_end),
                _judged(_stat(row.detect), meets(row.detect, report.mttd_target)),
                html.escape(_stat(row.acknowledge)),
                respond,
                html.escape(_stat(row.resolve)),
                resolve,
            ]
        )
    head = [
        "Priority",
        "Opened",
        "Resolved",
        "Still open",
        "MTTD (&lt; 5m)",
        "MTTA",
        "Respond target",
        "MTTR",
        "Resolve target",
    ]
    return _table("Incidents by priority", head, rows)


def _sla_table(report: Report) -> str:
    rows = []
    for row in [*report.rows, report.overall]:
        respond, resolve = _targets(report, row)
        rows.append(
            [
                _label(row.priority),
                html.escape(respond),
                html.escape(_compliance(row.response)),
                str(row.response.breached),
                html.escape(resolve),
                html.escape(_compliance(row.resolution)),
                str(row.resolution.breached),
            ]
        )
    head = ["Priority", "Respond", "Response", "Breached", "Resolve", "Resolution", "Breached"]
    return _table("SLA compliance", head, rows)


def _unacknowledged_html(report: Report) -> str:
    esc = html.escape
    parts = ["<section><h2>Unacknowledged incidents</h2>"]
    if not report.unacknowledged:
        parts.append("<p class=muted>Every incident opened in the window was acknowledged.</p>")
    else:
        parts.append("<ul class=plain>")
        for item in report.unacknowledged[:_UNACKNOWLEDGED_SHOWN]:
            state = f"resolved {_when(item.resolved_at)}" if item.resolved_at else "still open"
            breach = ", response deadline missed" if item.response_breached else ""
            parts.append(
                f"<li><b>{esc(item.display_id)}</b> ({esc(str(item.priority))})"
                f" {esc(_cut(item.summary))} <span class=muted>— opened"
                f" {esc(_when(item.opened_at))}, {esc(state)}{esc(breach)}</span></li>"
            )
        more = len(report.unacknowledged) - _UNACKNOWLEDGED_SHOWN
        if more > 0:
            parts.append(f"<li class=muted>… and {more} more</li>")
        parts.append("</ul>")
    parts.append("</section>")
    return "".join(parts)


def _noisy_table(report: Report) -> str:
    esc = html.escape
    rows = [
        [
            f"{esc(_cut(g.summary))}<br><span class=muted>{esc(_cut(_groups(g)))}</span>",
            esc(g.latest),
            str(g.priority),
            str(g.episodes),
            str(g.alerts_fired),
            str(g.incidents),
            "yes" if g.flapping else "no",
        ]
        for g in report.noisiest
    ]
    head = [
        "Alert group",
        "Latest",
        "Priority",
        "Episodes",
        "Alerts fired",
        "Incidents",
        "Flapping",
    ]
    return _table(f"Noisiest alert groups (top {NOISY_GROUPS})", head, rows)


def _services_table(report: Report) -> str:
    rows = [
        [
            html.escape(s.service),
            str(s.incidents),
            f"{s.incident_seconds / 60:.0f}",
            human(s.down_seconds),
            human(s.degraded_seconds),
            _judged(percent(s.availability), s.meets_target),
        ]
        for s in report.services
    ]
    head = [
        "Service",
        "Incidents",
        "Incident minutes",
        "Down (P0)",
        "Degraded (P1)",
        "Availability",
    ]
    return _table("Incident minutes and availability per service", head, rows)


# -- charts (inline SVG) ------------------------------------------------------------------------

_WIDTH = 400  # the viewBox; the chart scales to the page's width
_BAR_X, _BAR_W = 116, 180  # the bar area, right of the labels
_ROW_H = 30


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    fraction: float  # of the bar area, 0..1
    value: str  # shown right of the bar
    tone: str  # a CSS class: ok, bad, none, p0 .. p3
    title: str  # the bar's text alternative


def bar_chart(name: str, bars: Sequence[Bar], marker: tuple[float, str] | None = None) -> str:
    """Horizontal bars with their labels and values, and an optional marker line (a target) at
    a fraction of the bar area; every text escaped, each bar with a title."""
    esc = html.escape
    top = 18 if marker is not None else 4
    height = top + _ROW_H * max(1, len(bars)) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {height}" role="img"'
        f' aria-label="{esc(name)}"><title>{esc(name)}</title>'
    ]
    if not bars:
        parts.append(f'<text x="0" y="{top + 18}" class="muted">No data in the window</text>')
    for n, bar in enumerate(bars):
        y = top + n * _ROW_H
        width = max(0.0, min(1.0, bar.fraction)) * _BAR_W
        label = bar.label if len(bar.label) <= 15 else bar.label[:14] + "…"
        parts.append(
            f"<g><title>{esc(bar.title)}</title>"
            f'<text x="0" y="{y + 19}" class="label">{esc(label)}</text>'
            f'<rect x="{_BAR_X}" y="{y + 5}" width="{_BAR_W}" height="18" rx="3" class="track"/>'
            f'<rect x="{_BAR_X}" y="{y + 5}" width="{width:.1f}" height="18" rx="3"'
            f' class="bar {bar.tone}"/>'
            f'<text x="{_BAR_X + _BAR_W + 6}" y="{y + 19}" class="value">{esc(bar.value)}</text>'
            "</g>"
        )
    if marker is not None:
        at, text = marker
        x = _BAR_X + max(0.0, min(1.0, at)) * _BAR_W
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 2}" x2="{x:.1f}" y2="{height - 2}" class="marker"/>'
            f'<text x="{x:.1f}" y="12" text-anchor="middle" class="marker-label">{esc(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _incidents_chart(report: Report) -> str:
    most = max((row.opened for row in report.rows), default=0) or 1
    bars = [
        Bar(
            label=f"{row.priority} {report.targets[row.priority].name}",
            fraction=row.opened / most,
            value=str(row.opened),
            tone=f"p{row.priority.rank}",
            title=f"{row.priority}: {_count(row.opened, 'incident')} opened",
        )
        for row in report.rows
        if row.priority is not None
    ]
    return bar_chart("Incidents opened per priority", bars)


def _mttr_chart(report: Report) -> str:
    """Each priority's MTTR as a share of its own resolve target (the marker at the middle), so
    1 h and 14 d targets read on one chart; longer than twice the target runs off the end."""
    bars = []
    for row in report.rows:
        assert row.priority is not None
        target = report.targets[row.priority].resolve
        limit = target_seconds(target)
        mean = row.resolve.mean
        ok = meets(row.resolve, target)
        if mean is None or limit is None:
            fraction, value = 0.0, "none resolved" if mean is None else human(mean)
        else:
            fraction, value = mean / limit / 2, f"{human(mean)} / {target_text(target)}"
        bars.append(
            Bar(
                label=str(row.priority),
                fraction=fraction,
                value=value,
                tone=_tone(ok),
                title=f"{row.priority} MTTR {human(mean)} over {row.resolve.count} resolved,"
                f" target {target_text(target)}: {verdict(ok)}",
            )
        )
    return bar_chart("Mean time to resolve against each priority's target", bars, (0.5, "target"))


def _availability_chart(report: Report) -> str:
    shown = list(report.services[:_CHART_SERVICES])
    lowest = min((s.availability for s in shown), default=1.0)
    # The scale starts low enough to show the lowest bar and the target: 99 %, else lower.
    floor = 0.99 if lowest >= 0.99 else max(0.0, int(lowest * 100 - 1) / 100)
    span = 1.0 - floor

    def at(share: float) -> float:
        return (share - floor) / span

    bars = [
        Bar(
            label=s.service,
            fraction=at(s.availability),
            value=percent(s.availability),
            tone=_tone(s.meets_target),
            title=f"{s.service}: {percent(s.availability)} available, down {human(s.down_seconds)}"
            f" in {_count(s.incidents, 'incident')}",
        )
        for s in shown
    ]
    chart = bar_chart(
        f"Availability per service, scale from {percent(floor)} to 100%",
        bars,
        (at(report.availability_target), percent(report.availability_target)),
    )
    more = len(report.services) - len(shown)
    note = f"<p class=muted>The {more} other services are in the table below.</p>" if more else ""
    return f"{chart}<p class=muted>Scale from {percent(floor)} to 100%.</p>{note}"


_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--card:#f6f8fa;
--line:#d0d7de;--ok:#2da44e;--bad:#cf222e;--none:#8c959f;--track:#eaeef2;--p0:#cf222e;
--p1:#bc4c00;--p2:#9a6700;--p3:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--card:#161b22;--line:#30363d;--ok:#3fb950;--bad:#f85149;--none:#6e7681;--track:#21262d;
--p0:#f85149;--p1:#db6d28;--p2:#d29922;--p3:#58a6ff}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:52rem;margin:0 auto;padding:1.25rem 1rem 2rem}
h1{font-size:1.5rem;margin:.2rem 0 0}
h2{font-size:1.15rem;margin:1.8rem 0 .6rem}
.muted,footer{color:var(--muted);font-size:.875rem}
ul.headlines,ul.plain{padding-left:1.1rem}
ul.headlines li{margin:.35rem 0;overflow-wrap:anywhere}
ul.plain li{margin:.3rem 0;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 .4rem;border-radius:.6rem;font-size:.8rem;font-weight:600;
color:#fff;background:var(--none)}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.none{display:none}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:.5rem}
table{border-collapse:collapse;width:100%;font-size:.875rem}
th,td{padding:.4rem .6rem;border-bottom:1px solid var(--line);text-align:left;
vertical-align:top;white-space:nowrap}
td:first-child{white-space:normal;min-width:8rem;overflow-wrap:anywhere}
th{background:var(--card)}
svg.chart{display:block;width:100%;max-width:34rem;height:auto;margin:.3rem 0}
svg.chart text{font-size:13px;fill:var(--fg)}
svg.chart text.muted{fill:var(--muted)}
svg.chart .track{fill:var(--track)}
svg.chart .bar{fill:var(--none)}
svg.chart .bar.ok{fill:var(--ok)}svg.chart .bar.bad{fill:var(--bad)}
svg.chart .bar.p0{fill:var(--p0)}svg.chart .bar.p1{fill:var(--p1)}
svg.chart .bar.p2{fill:var(--p2)}svg.chart .bar.p3{fill:var(--p3)}
svg.chart .marker{stroke:var(--fg);stroke-width:1.5;stroke-dasharray:3 2}
svg.chart text.marker-label{font-size:11px;fill:var(--muted)}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.8rem}
"""


def render(report: Report, fmt: Literal["markdown", "html"]) -> str:
    """The report in ``fmt``."""
    return render_html(report) if fmt == "html" else render_markdown(report)
