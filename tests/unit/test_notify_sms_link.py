"""The SMS text keeps the issue link whatever the summary holds: id, priority and link first,
the summary shortened into what remains; a summary that needs Unicode only for accents, symbols
or emoji is written in GSM-7 (160 septets of room instead of 70 UTF-16 units).

Segments are counted by the fake Twilio's ``count_segments``, as in test_notify_render.py.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from unit.test_notify_render import HOSTILE_TEXT, URL, notice

from bridge.model import Priority
from bridge.notify.render import gsm_fold, sms_text
from fakes.twilio import count_segments


@settings(max_examples=400, deadline=None)
@given(summary=HOSTILE_TEXT, priority=st.sampled_from(list(Priority)))
@example(summary="Сервис недоступен: база данных не отвечает 🔥🔥🔥 " * 3, priority=Priority.P0)
@example(summary="数据库宕机所有请求失败" * 10, priority=Priority.P1)
@example(summary="🔥" * 100, priority=Priority.P0)
@example(summary="\ud800" * 3, priority=Priority.P0)
def test_the_link_survives_any_summary(summary: str, priority: Priority) -> None:
    """Whatever the summary (Unicode that makes the limit 70, emoji that take two units), the
    text is one segment that starts with the id and priority and ends with the link."""
    text = sms_text(notice(summary, priority=priority))
    assert count_segments(text)[1] == 1, (count_segments(text), text)
    assert text.startswith(f"INC-042 {priority} OPENED")
    assert text.endswith(" " + URL)


@pytest.mark.parametrize(
    ("summary", "expected", "encoding"),
    [
        # Cyrillic has no GSM-7 form: Unicode, the summary cut into the room the link leaves.
        (
            "Сервис недоступен: база данных не отвечает",
            f"INC-042 P0 OPENED: Сервис… {URL}",
            "UCS-2",
        ),
        ("数据库宕机", f"INC-042 P0 OPENED: 数据库宕机 {URL}", "UCS-2"),
        # Only emoji and accents keep it from GSM-7: folded, the whole summary fits.
        (
            "🔥 Checkout API down in eu-west-1 — 5xx for 10 min ✅",
            f"INC-042 P0 OPENED: Checkout API down in eu-west-1 - 5xx for 10 min {URL}",
            "GSM-7",
        ),
        (
            "Błąd płatności: usługa niedostępna",
            f"INC-042 P0 OPENED: Blad platnosci: usluga niedostepna {URL}",
            "GSM-7",
        ),
        # Nothing but emoji: folding would leave nothing, so they stay (and here they fit).
        ("🔥🔥🔥", f"INC-042 P0 OPENED: 🔥🔥🔥 {URL}", "UCS-2"),
    ],
)
def test_a_unicode_summary_keeps_the_link(summary: str, expected: str, encoding: str) -> None:
    """A summary needing Unicode used to leave too little room and lose the link; now the link
    is always there, and folding to GSM-7 keeps whole summaries Unicode would cut to a word."""
    text = sms_text(notice(summary))
    assert text == expected
    assert count_segments(text) == (encoding, 1)


def test_a_link_too_long_for_any_segment_goes_and_the_summary_stays() -> None:
    """A link longer than a segment can carry cannot be sent: the summary is what is left."""
    long_url = "https://ghe.example.com/" + "a" * 150
    text = sms_text(notice("Сервис недоступен", url=long_url))
    assert text == "INC-042 P0 OPENED: Сервис недоступен"


def test_a_link_leaving_no_room_for_a_unicode_summary_keeps_the_link() -> None:
    """When the link fills the Unicode segment, the summary is left out rather than the link."""
    url = "https://ghe.example.com/acme/incidents/issues/" + "4" * 6
    text = sms_text(notice("Сервис недоступен", url=url))
    assert text == f"INC-042 P0 OPENED {url}"
    assert count_segments(text) == ("GSM-7", 1)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Zażółć gęślą jaźń", "Zazolc gesla jazn"),
        ("latency 300µs", "latency 300us"),
        ("ﬁle • ready", "file ready"),
        ("Acme™ API", "AcmeTM API"),
        ("café ünïcode", "café ünicode"),  # é and ü are GSM-7 already; ï is folded
        ("⚠️ disk 95%", "disk 95%"),
        ("Сервис", None),
        ("Δ up, λ down", None),  # Δ is GSM-7, λ is not
        ("٣ errors", None),  # an Arabic-Indic digit has no GSM-7 form
    ],
)
def test_only_accents_symbols_and_emoji_are_folded(text: str, folded: str | None) -> None:
    """Accents go, symbols and emoji go; a letter or digit GSM-7 cannot write keeps Unicode."""
    assert gsm_fold(text) == folded
