"""The words of each notification: email subject and bodies, the SMS text. Pure.

Alert text is hostile here too: the summary is one line, capped, and HTML-escaped in the HTML
body; the SMS text fits one segment (160 GSM-7 characters, or 70 when it needs Unicode).
"""

from __future__ import annotations

import html

from bridge.model import Incident, TimelineEvent
from bridge.notify.base import Notice

_WHAT = {
    "opened": "opened",
    "reopened": "reopened",
    "resolved": "resolved",
    "priority_raised": "raised",
    "alert_firing": "updated",
    "alert_resolved": "updated",
}
# GSM 03.38 basic set (the extension characters are left out: they count double).
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def one_line(text: str, limit: int) -> str:
    """Alert text as a single line of at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def subject(incident: Incident, event: TimelineEvent) -> str:
    """``[P0][INC-042] <summary>``, with the state for anything but the opening."""
    head = f"[{incident.priority}][{incident.display_id}]"
    what = _WHAT.get(event.kind, "updated")
    tail = "" if what == "opened" else f" ({what})"
    return f"{head} {one_line(incident.summary, 160)}{tail}"


def _lines(notice: Notice) -> list[str]:
    incident, event = notice.incident, notice.event
    lines = [
        f"{incident.display_id} — priority {incident.priority}",
        f"{one_line(incident.summary, 300)}",
        "",
        f"{event.at:%Y-%m-%d %H:%M} UTC: {one_line(event.text, 300)}",
    ]
    firing = incident.firing_alerts()
    if firing:
        lines.append(f"Alerts firing: {len(firing)} of {len(incident.alerts)}")
    return lines


def text_body(notice: Notice) -> str:
    lines = _lines(notice)
    if notice.issue_url:
        lines += ["", f"Incident issue: {notice.issue_url}"]
    lines += ["", "— incident-bridge"]
    return "\n".join(lines) + "\n"


def html_body(notice: Notice) -> str:
    paragraphs = [f"<p>{html.escape(line)}</p>" for line in _lines(notice) if line]
    if notice.issue_url:
        url = html.escape(notice.issue_url, quote=True)
        paragraphs.append(f'<p><a href="{url}">Open the incident issue</a></p>')
    return "<!doctype html><html><body>" + "".join(paragraphs) + "</body></html>"


def is_gsm7(text: str) -> bool:
    return all(ch in _GSM7 for ch in text)


def sms_text(notice: Notice) -> str:
    """One SMS segment: id, priority, state, the summary shortened to fit, and the link."""
    incident, event = notice.incident, notice.event
    what = _WHAT.get(event.kind, "updated").upper()
    head = f"{incident.display_id} {incident.priority} {what}: "
    tail = f" {notice.issue_url}" if notice.issue_url else ""
    summary = one_line(incident.summary, 160)
    limit = 160 if is_gsm7(head + summary + tail) else 70
    room = limit - len(head) - len(tail)
    if room < 10:  # a long link leaves too little: the link goes, the summary stays
        tail, room = "", limit - len(head)
    if len(summary) > room:
        summary = summary[: room - 1].rstrip() + ("…" if limit == 70 else ".")
    text = head + summary + tail
    if not is_gsm7(text) and len(text) > 70:  # the ellipsis or the summary needs Unicode
        text = text[:70]
    return text
