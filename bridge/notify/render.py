"""The words of each notification: email subject and bodies, the SMS text. Pure.

Alert text is hostile here too: the summary is one line, capped, and HTML-escaped in the HTML
body; the SMS text fits one segment (160 GSM-7 characters, or 70 when it needs Unicode) and keeps
the issue link whenever the link can fit at all.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence

from bridge.model import Incident, TimelineEvent
from bridge.notify.base import BundleItem, Notice
from bridge.text import one_line

_WHAT = {
    "opened": "opened",
    "reopened": "reopened",
    "resolved": "resolved",
    "priority_raised": "raised",
    "alert_firing": "updated",
    "alert_resolved": "updated",
    "acknowledged": "acknowledged",
    "identified": "identified",
    "closed_manually": "resolved",
    "reopened_manually": "reopened",
    "sla_breached": "SLA breached",
    "escalated": "ESCALATED: nobody acknowledged",
    "silenced": "silenced",
    "unsilenced": "silence ended",
    "flapping": "flapping",
    "reconciled": "resolved",
    "reported": "reported",
}
# GSM 03.38 basic set: one septet each.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# GSM 03.38 extension table: two septets each (escape + code).
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7_SINGLE = 160  # septets in a one-segment GSM-7 message
_UCS2_SINGLE = 70  # UTF-16 code units in a one-segment UCS-2 message
# Typographic look-alikes written in GSM-7, so that a curly quote does not halve the room.
_LOOKALIKES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00ab": '"',
        "\u00bb": '"',
    }
)


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
    """Whether GSM-7 (basic or extension table) can write ``text``."""
    return all(ch in _GSM7 or ch in _GSM7_EXTENSION for ch in text)


def _gsm7_cost(char: str) -> int:
    return 2 if char in _GSM7_EXTENSION else 1


def _ucs2_cost(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1  # outside the BMP: a surrogate pair


def _sms_clean(text: str) -> str:
    """One line without control, format (bidi overrides, zero-width) or lone surrogate
    characters, typographic look-alikes in GSM-7."""
    kept = (
        ch if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp") else " "
        for ch in text.translate(_LOOKALIKES)
    )
    return " ".join("".join(kept).split())


# Letters NFKD does not take apart, written as GSM-7 can (a summary is read, not quoted).
_FOLD = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ħ": "h",
        "Ħ": "H",
        "\u0131": "i",  # dotless i
        "ŀ": "l",
        "Ŀ": "L",
        "œ": "oe",
        "Œ": "OE",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "µ": "u",  # micro: 300µs → 300us
    }
)


def gsm_fold(text: str) -> str | None:
    """``text`` written in GSM-7 when only accents, symbols and emoji keep it from it: accented
    letters lose their accents (ą → a), symbols and emoji go (🔥, •, ™). None when a letter or
    digit has no GSM-7 form (Cyrillic, Greek, CJK…): then only Unicode says it right."""
    kept: list[str] = []
    for char in text.translate(_FOLD):
        if char in _GSM7 or char in _GSM7_EXTENSION:
            kept.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if base and is_gsm7(base):
            kept.append(base)
        elif unicodedata.category(char)[0] in "LN":
            return None
        else:
            kept.append(" ")
    return " ".join("".join(kept).split())


def _fit(head: str, summary: str, tail: str) -> str | None:
    """``head + summary + tail`` in one segment, the summary cut (and marked) into the room
    ``head`` and ``tail`` leave, or left out (with the ``": "`` before it) when none of it fits.
    None only when ``head + tail`` alone is more than a segment."""
    gsm = is_gsm7(head + summary + tail)
    cost, limit, mark = (
        (_gsm7_cost, _GSM7_SINGLE, "...") if gsm else (_ucs2_cost, _UCS2_SINGLE, "\u2026")
    )
    room = limit - sum(map(cost, head + tail))
    if sum(map(cost, summary)) <= room:
        return head + summary + tail
    room -= sum(map(cost, mark))
    kept = 0
    for char in summary:
        room -= cost(char)
        if room < 0:
            break
        kept += 1
    shortened = summary[:kept].rstrip()
    if shortened:
        return head + shortened + mark + tail
    bare = head.removesuffix(": ") + tail
    return bare if _fits(bare) else None


def sms_text(notice: Notice) -> str:
    """One SMS segment — 160 GSM-7 septets (extension characters take two), or 70 UTF-16 units
    when the text needs Unicode: id, priority, state and the link first, the summary shortened
    into the room they leave. A summary that needs Unicode only for accents, symbols or emoji is
    written in GSM-7 instead (:func:`gsm_fold`): with a link, Unicode leaves it a handful of
    characters, GSM-7 more than a hundred. The link goes only when it cannot fit at all (a
    very long one): it is in the email and on the issue."""
    incident, event = notice.incident, notice.event
    what = _WHAT.get(event.kind, "updated").upper()
    head = f"{incident.display_id} {incident.priority} {what}"
    summary = _sms_clean(incident.summary)[:_GSM7_SINGLE]
    if not is_gsm7(summary):
        summary = gsm_fold(summary) or summary  # nothing but emoji: they are all it says
    link = "".join(_sms_clean(notice.issue_url or "").split())
    if summary:
        head += ": "
    for tail in (f" {link}", "") if link else ("",):
        text = _fit(head, summary, tail)
        if text is not None:
            return text
    raise AssertionError("unreachable: without a link the text always fits")


# -- bundles: what storm control held for a person, in one message --------------------------


def _fits(text: str) -> bool:
    """Whether ``text`` is one SMS segment."""
    if is_gsm7(text):
        return sum(map(_gsm7_cost, text)) <= _GSM7_SINGLE
    return sum(map(_ucs2_cost, text)) <= _UCS2_SINGLE


def _label(item: BundleItem) -> str:
    """``INC-012 P0``, with the state for anything but an opening: ``INC-012 P0 resolved``."""
    what = _WHAT.get(item.event.kind, "updated")
    tail = "" if what == "opened" else f" {what}"
    return f"{item.incident.display_id} {item.incident.priority}{tail}"


def _more(count: int) -> str:
    return f"{count} more incident update{'' if count == 1 else 's'}"


def bundle_sms(items: Sequence[BundleItem]) -> str:
    """One SMS segment for everything held: ``7 more incident updates: INC-012 P0, INC-013 P0
    resolved +3 more <link>`` — as many ids as fit, then how many are left out, and the first
    issue link among them (dropped, as in :func:`sms_text`, when not even one id fits with it).
    """
    if not items:
        raise ValueError("a bundle tells at least one message")
    labels = [_label(item) for item in items]
    link = next(("".join(_sms_clean(i.issue_url).split()) for i in items if i.issue_url), "")
    head = _more(len(items))
    for tail in (f" {link}", "") if link else ("",):
        best: str | None = None
        for kept in range(len(labels) + 1):
            listed = ", ".join(labels[:kept])
            left = len(labels) - kept
            text = head + (f": {listed}" if listed else "")
            if left and kept:
                text += f" +{left} more"
            text += tail
            if not _fits(text):
                break
            best = text
        if best is not None and (best != head + tail or not link):
            return best
    raise AssertionError("unreachable: the count alone always fits")


def bundle_subject(items: Sequence[BundleItem]) -> str:
    """``[P0] 7 more incident updates: INC-012, INC-013, INC-014 …``"""
    top = min((item.incident.priority for item in items), key=lambda p: p.rank)
    ids = [item.incident.display_id for item in items]
    shown = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
    return f"[{top}] {_more(len(items))}: {shown}"


def _bundle_lines(item: BundleItem) -> list[str]:
    return [f"{_label(item)}: {one_line(item.incident.summary, 200)}"] + (
        [f"  {item.issue_url}"] if item.issue_url else []
    )


def bundle_text_body(items: Sequence[BundleItem]) -> str:
    """Every held message, one line each (id, priority, state, summary) and its issue link."""
    lines = [
        f"You were sent the most messages allowed in a short time; {_more(len(items))} since:",
        "",
    ]
    for item in items:
        lines += _bundle_lines(item)
    lines += ["", "— incident-bridge"]
    return "\n".join(lines) + "\n"


def bundle_html_body(items: Sequence[BundleItem]) -> str:
    rows = []
    for item in items:
        text = html.escape(f"{_label(item)}: {one_line(item.incident.summary, 200)}")
        if item.issue_url:
            url = html.escape(item.issue_url, quote=True)
            text = f'<a href="{url}">{text}</a>'
        rows.append(f"<li>{text}</li>")
    intro = html.escape(
        f"You were sent the most messages allowed in a short time; {_more(len(items))} since:"
    )
    return f"<!doctype html><html><body><p>{intro}</p><ul>{''.join(rows)}</ul></body></html>"
