"""The SMS text: one segment, as Twilio counts it, whatever the alert's summary holds.

Segments are counted by the fake Twilio's ``count_segments`` (GSM-7 basic and extension tables,
UCS-2 in UTF-16 code units), the same function that fills the fake's ``num_segments``.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.model import EventKind, Incident, Priority, TimelineEvent
from bridge.notify.base import BundleItem, Notice
from bridge.notify.render import (
    bundle_html_body,
    bundle_sms,
    bundle_subject,
    bundle_text_body,
    sms_text,
)
from fakes.twilio import GSM7_BASIC, GSM7_EXTENSION, count_segments

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
URL = "https://github.com/acme/incidents/issues/42"


def notice(
    summary: str,
    *,
    priority: Priority = Priority.P0,
    number: int | None = 42,
    kind: EventKind = "opened",
    url: str | None = URL,
) -> Notice:
    incident = Incident(
        key="k" * 64,
        identity="id",
        kind="incident",
        receiver="r",
        group_key="g",
        group_labels={},
        state="open",
        priority=priority,
        priority_rule="test",
        summary=summary,
        opened_at=T0,
        earliest_starts_at=T0,
        respond_by=None,
        resolve_by=None,
        number=number,
    )
    event = TimelineEvent(seq=1, at=T0, kind=kind, text=kind)
    return Notice(incident=incident, event=event, recipient="+15550001111", issue_url=url)


def segments(text: str) -> int:
    return count_segments(text)[1]


GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400)
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)),
        st.sampled_from(
            list(
                "€[]{}\\^~|\f\u2026\u201c\u201d\u2018\u2019\u2014\u2013\u00a0\u200b\u202e\u2028\x00\x1b\t"
            )
        ),
        st.characters(codec="utf-8"),  # anything, astral planes and lone surrogates too
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji: 2 UTF-16 units
    ),
    max_size=400,
)
URLS = st.one_of(
    st.none(),
    st.just(URL),
    st.integers(min_value=1, max_value=10**9).map(lambda n: f"{URL[:-2]}{n}"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-./~_", max_size=200).map(
        lambda path: f"https://ghe.example.com/{path}"
    ),
)


@settings(max_examples=400, deadline=None)
@given(
    summary=st.one_of(GSM_TEXT, HOSTILE_TEXT),
    priority=st.sampled_from(list(Priority)),
    number=st.one_of(st.none(), st.integers(min_value=0, max_value=10**12)),
    kind=st.sampled_from(["opened", "reopened", "resolved", "priority_raised", "alert_firing"]),
    url=URLS,
)
@example(summary="x" * 400, priority=Priority.P0, number=1, kind="opened", url=URL)
@example(summary="€" * 200, priority=Priority.P0, number=1, kind="opened", url=URL)
@example(summary="🔥" * 100, priority=Priority.P0, number=1, kind="opened", url=URL)
@example(summary="\ud800" * 3, priority=Priority.P0, number=1, kind="opened", url=URL)
def test_the_sms_text_is_always_one_segment_with_the_id_and_priority(
    summary: str, priority: Priority, number: int | None, kind: EventKind, url: str | None
) -> None:
    """Whatever the summary (extension characters that count double, Unicode that makes the
    limit 70 UTF-16 units, emoji that take two, control and bidi characters, lone surrogates)
    the text is one segment and carries the incident id and the priority; it can be sent as
    UTF-8 and is a single line."""
    n = notice(summary, priority=priority, number=number, kind=kind, url=url)
    text = sms_text(n)
    assert segments(text) == 1, (count_segments(text), text)
    assert text.startswith(f"{n.incident.display_id} {priority} ")
    text.encode("utf-8")  # no lone surrogate: the form body can be encoded
    assert "\n" not in text
    assert "\r" not in text
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


@settings(max_examples=200, deadline=None)
@given(summary=GSM_TEXT)
def test_a_gsm_summary_keeps_the_link_and_the_160_character_room(summary: str) -> None:
    """A summary the GSM-7 alphabet can write never costs the link, and is cut only when it
    must be."""
    text = sms_text(notice(summary))
    assert text.endswith(" " + URL)
    assert count_segments(text)[0] == "GSM-7"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("Database down on db-1", f"INC-042 P0 OPENED: Database down on db-1 {URL}"),
        ("  line one\n\tline two  ", f"INC-042 P0 OPENED: line one line two {URL}"),
        # Typographic look-alikes are written in GSM-7 rather than forcing Unicode.
        ("\u201cAPI\u201d \u2013 5xx\u2019s\u2026 ", f'INC-042 P0 OPENED: "API" - 5xx\'s... {URL}'),
        ("", f"INC-042 P0 OPENED {URL}"),
    ],
)
def test_short_summaries_are_kept_whole(summary: str, expected: str) -> None:
    """A short summary goes out as it is, flattened to one line."""
    assert sms_text(notice(summary)) == expected


def test_a_long_ascii_summary_is_cut_to_fill_160_with_the_link() -> None:
    """A long summary is shortened (marked with ``...``) so the text is exactly as long as one
    GSM-7 segment allows, and the link stays."""
    text = sms_text(notice("disk full on db-1 " * 30))
    assert count_segments(text) == ("GSM-7", 1)
    assert len(text) >= 150
    assert "... " in text
    assert text.endswith(" " + URL)


def test_extension_characters_count_double() -> None:
    """``€`` and brackets take two septets each: fewer of them fit."""
    text = sms_text(notice("[€]" * 100))
    assert count_segments(text) == ("GSM-7", 1)
    assert text.endswith(" " + URL)


def test_a_unicode_summary_fits_70_units() -> None:
    """A summary that needs Unicode makes the limit 70 UTF-16 units; emoji take two."""
    text = sms_text(notice("Сервис недоступен: база данных не отвечает 🔥🔥🔥 " * 3))
    assert count_segments(text) == ("UCS-2", 1)
    assert text.startswith("INC-042 P0 OPENED: Сервис")
    assert sum(2 if ord(ch) > 0xFFFF else 1 for ch in text) <= 70


def test_the_resolution_and_a_missing_link_read_right() -> None:
    """The state word follows the event; without an issue yet there is no link."""
    n = notice("disk full", kind="resolved", url=None)
    assert sms_text(n) == "INC-042 P0 RESOLVED: disk full"
    raised = dataclasses.replace(n, event=TimelineEvent(2, T0, "priority_raised", "raised"))
    assert sms_text(raised).startswith("INC-042 P0 RAISED: ")


# -- bundles (storm control) ------------------------------------------------------------------


def items(count: int, *, url: str | None = URL, kind: EventKind = "opened") -> list[BundleItem]:
    made = []
    for number in range(1, count + 1):
        held = notice(f"service {number} down", number=number, kind=kind, url=url)
        made.append(BundleItem(held.incident, held.event, held.issue_url))
    return made


@pytest.mark.parametrize("count", [1, 2, 7, 12, 50, 200, 1200])
def test_a_bundle_sms_is_one_segment_naming_what_fits_and_counting_the_rest(count: int) -> None:
    """As many ids as fit, ``+N more`` for the rest, the first issue link: one GSM-7 segment,
    and the count in front always matches."""
    text = bundle_sms(items(count))
    assert count_segments(text) == ("GSM-7", 1)
    assert text.startswith(f"{count} more incident update")
    assert text.endswith(" " + URL)
    named = [part.split(" ")[0] for part in text.split(": ", 1)[1].split(", ")]
    assert named[0] == "INC-001"
    left = int(text.rsplit(" +", 1)[1].split(" ")[0]) if " more " + URL in text else 0
    assert len(named) + left == count


def test_a_small_bundle_names_every_incident_and_its_state() -> None:
    """Two held openings and a resolution, all named, the state shown for the resolution."""
    held = items(2) + items(1, kind="resolved")
    assert (
        bundle_sms(held)
        == f"3 more incident updates: INC-001 P0, INC-002 P0, INC-001 P0 resolved {URL}"
    )


def test_a_bundle_without_links_still_fits() -> None:
    """No issue yet: no link, the room goes to ids."""
    text = bundle_sms(items(60, url=None))
    assert count_segments(text) == ("GSM-7", 1)
    assert "http" not in text
    assert " more" in text.split(": ", 1)[1]


def test_an_empty_bundle_is_refused() -> None:
    """A bundle always tells something."""
    with pytest.raises(ValueError, match="at least one"):
        bundle_sms([])


def test_the_bundle_email_lists_every_held_message_with_its_link() -> None:
    """Subject: the highest priority and the first ids; text and HTML: one line per held
    message, its summary (escaped in HTML) and issue link."""
    held = items(7)
    assert bundle_subject(held) == (
        "[P0] 7 more incident updates: INC-001, INC-002, INC-003, INC-004, INC-005 …"
    )
    text = bundle_text_body(held)
    for number in range(1, 8):
        assert f"INC-{number:03d} P0: service {number} down\n  {URL}\n" in text
    hostile = notice("<script>x</script>", number=9)
    page = bundle_html_body([BundleItem(hostile.incident, hostile.event, URL)])
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert f'href="{URL}"' in page
