"""Hostile alert text against every renderer (issue #10), checked in one place.

An alert rule's labels and annotations are text anyone who can write a Prometheus rule — or
make a service print something into one — controls. Whatever they hold (``strategies.hostile``:
mentions and their look-alikes, forged markers, HTML and script, table pipes, newlines, code
fences, bidi controls, NUL, thousands of characters), every place the bridge writes it must stay
inert. :func:`assert_inert` renders one incident's whole life with the real rules and render
options and checks, renderer by renderer:

- **GitHub** — the issue's title and body, each event's comment, the post-incident review
  (title, body, reminder), a storm roll-up listing it and its "storm over" comment: no mention
  GitHub would link (``@`` followed by a word character, after GitHub's own decoding of
  entities and backslash escapes, outside link targets and the bundled runbook); the bridge's own
  markers only, each exactly once and where it belongs; no ``<`` of the input's (only the
  bridge's markers and the bundled runbook's ``<details>``); every table row with the header's
  column count; the template's headings and nothing else; code fences balanced and inline code
  spans closed on their line; bodies and comments ≤ 65,536 characters, titles ≤ 256 and one
  line;
- **Slack** — the root message and each reply (text and blocks): no ``@`` before a word
  character, no ``<!here>``/``<@U…>``/``<#C…>`` — every ``<`` opens one of the bridge's own
  ``<https://…|label>`` links — no control or format character but its own, and Block Kit's
  length limits;
- **email** — the message parses back with exactly the bridge's headers (no header injection)
  and a one-line subject without control or format characters; the HTML part has only the
  bridge's tags (``p``, ``a`` with the issue link), no comment; the bundle emails likewise;
- **SMS** — one segment as Twilio counts it, one line, the incident id first, sendable UTF-8;
- **the status page** — HTML with only the page's own tags and no script, comment or event
  handler; public text only: nothing from the summary, description, instance or links.

The fuzzing: 300 incidents of generated hostile text (from seeds, one in ten drawn choice by
choice so that a failure shrinks), every hostile piece alone in every field, and 300 generated
webhooks through the whole bridge to the fake GitHub, whose issues and comments get the same
checks. The last test is what it found.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from e2e.strategies import (
    PIECES,
    Case,
    Seeded,
    Source,
    drawn,
    encode,
    hostile,
    seeded,
    webhook,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge import acknowledge, snapshot, status_page, storm
from bridge.app import build_policy, build_render_options
from bridge.clock import FakeClock
from bridge.config import EmailConfig, load_config
from bridge.engine import Decision, apply_notification
from bridge.github import pir
from bridge.github import render as gh
from bridge.model import AlertSnapshot, Incident, Notification, StormMember, TimelineEvent
from bridge.notify import render as notify
from bridge.notify import slack
from bridge.notify.base import Bundle, BundleItem, Notice
from bridge.notify.email import build_bundle_message, build_message
from bridge.rules import Rules
from bridge.store.base import SentNotification
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.twilio import count_segments
from support import REPO, Harness, github_config

Record = Callable[[Mapping[str, object]], None]  # the ``figures`` fixture (tests/e2e/conftest)
T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
KEY = "0123456789abcdef" * 4
ISSUE_URL = "https://github.com/acme/incidents/issues/42"
# Text that only non-public fields carry: it must never reach the status page.
PRIVATE = "PRIVATE-7f3a"
CONFIG = load_config(None)
RULES = Rules.bundled()
POLICY = build_policy(CONFIG, RULES)
OPTIONS = build_render_options(CONFIG, RULES)
EMAIL = EmailConfig.model_validate(
    {"smtp_host": "127.0.0.1", "from": "incident-bridge@example.com"}
)
WINDOW = timedelta(minutes=30)

# -- one incident's life --------------------------------------------------------------------


@dataclass
class Texts:
    """The hostile text of one incident: per alert labels and annotations, the group's."""

    alerts: list[tuple[dict[str, str], dict[str, str]]]
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    receiver: str = "incident-bridge"
    who: str = "alice"  # who acknowledges and closes (a GitHub login; hostile anyway)
    url: str = "http://prometheus.example:9090/graph"


LABEL_KEYS = ["alertname", "instance", "pod", "service", "job", "requirement", "component"]
ANNOTATION_KEYS = ["summary", "description", "value", "runbook_url", "public_summary"]


def everywhere(text: str) -> Texts:
    """``text`` in every label and annotation the renderers read."""
    labels = dict.fromkeys(LABEL_KEYS, text)
    notes = dict.fromkeys(ANNOTATION_KEYS, text)
    return Texts(
        alerts=[(labels, notes), ({**labels, "instance": text + "2"}, notes)],
        common_labels=labels,
        common_annotations=notes,
        receiver=text,
        who=text,
        url=text,
    )


def _private(texts: Texts) -> Texts:
    """The same, with the private marker in every field the public may not see."""
    alerts = [
        (
            {**labels, "instance": labels.get("instance", "") + PRIVATE},
            {
                **notes,
                "summary": notes.get("summary", "") + PRIVATE,
                "description": notes.get("description", "") + PRIVATE,
                "runbook_url": "https://runbooks.example.com/" + PRIVATE,
            },
        )
        for labels, notes in texts.alerts
    ]
    common = dict(texts.common_annotations)
    common["summary"] = common.get("summary", "") + PRIVATE
    return replace(
        texts,
        alerts=alerts,
        common_annotations=common,
        url=f"http://prometheus.example/{PRIVATE}/{texts.url}",
    )


@dataclass
class Life:
    """What the renderers are given: the incident as it ends, its events, and its incident
    as it was at each event (the notifications render the state of their moment)."""

    incident: Incident
    events: list[TimelineEvent]
    at_event: list[Incident]


def live(texts: Texts, *, acknowledged: bool, resolved: bool, reopened: bool) -> Life:
    """Open an incident from ``texts`` (with the real rules), then maybe acknowledge it,
    resolve it and reopen it, as the engine and the acknowledgement steps do."""
    events: list[TimelineEvent] = []
    states: list[Incident] = []

    def step(decision: Decision) -> Incident:
        assert decision.incident is not None
        events.extend(decision.events)
        states.extend(decision.incident for _ in decision.events)
        return decision.incident

    def note(status: str, starts: datetime, ends: datetime | None) -> Notification:
        snaps = tuple(
            AlertSnapshot(
                fingerprint=f"f{n}",
                status=status,  # type: ignore[arg-type]  # "firing" | "resolved"
                labels=labels,
                annotations=notes,
                starts_at=starts,
                ends_at=ends,
                generator_url=texts.url,
            )
            for n, (labels, notes) in enumerate(texts.alerts)
        )
        return Notification(
            receiver=texts.receiver,
            status=status,  # type: ignore[arg-type]
            alerts=snaps,
            group_labels={"alertname": "x"},
            common_labels=texts.common_labels,
            common_annotations=texts.common_annotations,
            external_url=texts.url,
            group_key="{}:{}",
            truncated_alerts=3,
        )

    opened_at = T0 + timedelta(minutes=1)
    incident = step(apply_notification(None, note("firing", T0, None), opened_at, POLICY))
    incident.key, incident.identity, incident.id, incident.number = KEY, "i", 7, 42
    now = opened_at
    if acknowledged:
        now += timedelta(minutes=2)
        incident = step(acknowledge.acknowledge(texts.who, "comment")(incident, now))
    if resolved:
        now += timedelta(minutes=30)
        resolution = apply_notification(incident, note("resolved", T0, now), now, POLICY)
        incident = step(resolution)
        if reopened:
            now += timedelta(minutes=10)
            incident = step(apply_notification(incident, note("firing", now, None), now, POLICY))
    elif reopened:  # a person closes it while it fires
        now += timedelta(minutes=5)
        incident = step(acknowledge.close_manually(texts.who)(incident, now))
    return Life(incident, events, states)


# -- what must hold -------------------------------------------------------------------------

_LINK_TARGET = re.compile(r"\]\(https?://[^)\s]*\)")
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MENTION = re.compile(r"@\w")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def mentions(markdown: str) -> list[str]:
    """What GitHub would link as a mention: ``@`` then a word character in the text as
    GitHub shows it — entities decoded, backslash escapes taken off (either order), link
    targets left out."""
    text = _LINK_TARGET.sub("](…)", markdown)
    shown = {
        _BACKSLASH_ESCAPE.sub(r"\1", html.unescape(text)),
        html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", text)),
    }
    return [m.group() for s in shown for m in _MENTION.finditer(s)]


def unescaped(line: str, char: str) -> int:
    """How many ``char`` in ``line`` are not escaped by an odd run of backslashes."""
    count, backslashes = 0, 0
    for c in line:
        if c == "\\":
            backslashes += 1
            continue
        if c == char and backslashes % 2 == 0:
            count += 1
        backslashes = 0
    return count


def table(body: str, header: str) -> tuple[str, list[str]]:
    """A table's header line and its data rows."""
    lines = body.split("\n")
    start = lines.index(header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return lines[start], rows


def assert_markdown(
    text: str,
    markers: Sequence[str],
    *,
    trusted: Sequence[str] = (),
    headings: Sequence[str] | None = None,
    tables: Mapping[str, int | None] | None = None,
    limit: int = gh.BODY_LIMIT,
) -> None:
    """What every piece of Markdown the bridge writes to GitHub must be. ``markers``: the HTML
    comments it must hold, in order, each once; ``trusted``: the bundled text in it (a runbook)
    that is the bridge's own, not the alert's; ``tables``: header line → rows expected."""
    assert len(text) <= limit
    assert _COMMENT.findall(text) == list(markers)
    assert text.count("-->") == len(markers)
    own = text
    for piece in trusted:
        own = own.replace(piece, "")
    own = _COMMENT.sub("", own)
    assert mentions(own) == []
    # The only tags: a bundled runbook's <details> block, written by the bridge itself.
    tags = re.findall(r"<[^>]*>?", own)
    assert set(tags) <= {"<details>", "<summary>", "</summary>", "</details>"}, tags
    assert own.count("<details>") == own.count("</details>") <= 1
    lines = own.split("\n")
    fences = [n for n, line in enumerate(lines) if _FENCE.match(line)]
    assert len(fences) % 2 == 0
    fenced = {n for a, b in zip(fences[::2], fences[1::2], strict=True) for n in range(a, b + 1)}
    for n, line in enumerate(lines):
        if n not in fenced:
            assert unescaped(line, "`") % 2 == 0, line
    if headings is not None:
        assert re.findall(r"^#{1,6} (.*)$", own, flags=re.MULTILINE) == list(headings)
    for header, count in (tables or {}).items():
        head, rows = table(text, header)
        assert count is None or len(rows) == count
        assert all(unescaped(row, "|") == unescaped(head, "|") for row in rows), rows


def assert_title(title: str, prefix: str) -> None:
    """One line of at most 256 characters, starting with its id, mentioning nobody; GitHub
    renders `code` in titles, so there is none."""
    assert len(title) <= gh.TITLE_LIMIT
    assert title.startswith(prefix)
    assert "\n" not in title
    assert "\r" not in title
    assert "`" not in title
    assert not _MENTION.search(title)
    assert not any(ch in title for ch in "\x00\u202e\u2066\u200b\ufeff")


ISSUE_HEADINGS = [
    "Impact",
    "Alerts",
    "Runbook",
    "Traceability",
    "Timeline",
    "Root Cause Analysis",
    "Resolution",
]
MAINT_HEADINGS = [
    "Justification",
    "Proposed Solution",
    "Expected Impact",
    "Alerts",
    "Runbook",
    "Traceability",
    "Timeline",
    "Root Cause Analysis",
    "Resolution",
]
PIR_HEADINGS = [
    "Post-Incident Review: ",  # the title line (# ...) begins so; checked below
    "Timeline",
    "Traceability",
    "Root Cause",
    "Resolution",
    "What Went Well",
    "What Went Wrong",
    "Action Items",
    "Prevention",
]


def check_github(life: Life) -> int:
    """The incident's issue and comments, its review and a storm roll-up listing it."""
    incident, events = life.incident, life.events
    issue = gh.render_issue(incident, events, OPTIONS, review_issue=12)
    runbook = OPTIONS.runbook(incident)
    trusted = [runbook.markdown.strip()] if runbook is not None else []
    state = snapshot.state_line(incident)
    alerts = len(incident.alerts)
    assert_markdown(
        issue.body,
        [gh.BEGIN, state, gh.END, gh.marker(incident)],
        trusted=trusted,
        headings=MAINT_HEADINGS if incident.kind == "maint" else ISSUE_HEADINGS,
        tables={
            # Fewer rows only when the body would be too long, and then it says so.
            "| Status | Alert | Instance | Value | Started | Source |": (
                alerts if "not shown here" not in issue.body else None
            ),
            "| Time | Event |": min(len(events), 30),
        },
    )
    assert issue.body.endswith(gh.marker(incident))
    prefix = "[MAINT-" if incident.kind == "maint" else "[INC-042] "
    assert_title(issue.title, prefix)
    checked = 2
    for event in events:
        comment = gh.render_comment(incident, event)
        assert_markdown(comment, [gh.comment_marker(event.event_id(incident))])
        assert comment.endswith(gh.comment_marker(event.event_id(incident)))
        checked += 1

    sent = [SentNotification("notify.email", "Ops lead", e.seq, "done", e.at) for e in events[:3]]
    review = pir.render_review(incident, events, sent, OPTIONS, incident_issue=41)
    assert_markdown(review.body, [gh.BEGIN, gh.END, pir.marker(incident)])
    headings = re.findall(r"^#{1,6} (.*)$", review.body, flags=re.MULTILINE)
    assert len(headings) == len(PIR_HEADINGS)
    assert headings[0].startswith(PIR_HEADINGS[0])
    assert headings[1:] == PIR_HEADINGS[1:]
    assert_title(review.title, f"[PIR] {incident.display_id} ")
    reminder = pir.render_reminder(incident, T0 + timedelta(days=2), T0 + timedelta(days=3))
    assert_markdown(reminder, [gh.comment_marker(f"{incident.display_id}.review-due")])

    roll_up = storm.new_storm(50, T0)
    members = [StormMember(incident, 43), StormMember(replace(incident, number=44), None)]
    listed = gh.render_storm(roll_up, members, OPTIONS, over=False)
    assert_markdown(listed.body, [gh.BEGIN, gh.END, gh.marker(roll_up)])
    for member in members:  # one checklist line each, whatever its summary holds
        shown = [line for line in listed.region.split("\n") if member.incident.display_id in line]
        assert len(shown) == 1
        assert shown[0].startswith("- [")
    over = gh.render_storm_over(roll_up, T0)
    assert_markdown(over, [gh.comment_marker("INC-050.over")])
    return checked + 5


_SLACK_LINK = re.compile(r"<https?://[^|<>\s]*\|")
_SLACK_LIMITS = {"header": 150, "section": 3000, "field": 2000, "context": 3000}


def controls(text: str, allowed: str = "") -> list[str]:
    """The control and format characters in ``text`` (bidi overrides, zero-width characters,
    ESC, NUL ...) but ``allowed``."""
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf") and ch not in allowed]


def assert_slack_text(text: str, limit: int) -> None:
    """mrkdwn that pings nobody, links only where the bridge links and carries no control
    character but its own (line breaks, the word joiner after each "@")."""
    assert len(text) <= limit
    assert controls(text, allowed="\n\u2060") == []
    shown = _SLACK_LINK.sub("<LINK|", text)
    assert not _MENTION.search(shown), shown
    for match in re.finditer(r"<", shown):
        assert shown.startswith("<LINK|", match.start()), shown
    assert "<!" not in text
    assert "<@" not in text
    assert "<#" not in text


def check_slack(notice: Notice) -> int:
    text, blocks = slack.slack_blocks(notice)
    root_text, root_blocks = slack.root_message(notice)
    checked = 0
    for fallback, parts in ((text, blocks), (root_text, root_blocks)):
        assert_slack_text(fallback, 40_000)
        assert len(parts) <= 50
        for block in parts:
            kind = block["type"]
            if kind == "header":
                assert block["text"]["type"] == "plain_text"
                assert len(block["text"]["text"]) <= _SLACK_LIMITS["header"]
                assert not _MENTION.search(block["text"]["text"])
            elif kind == "section":
                if "text" in block:
                    assert_slack_text(block["text"]["text"], _SLACK_LIMITS["section"])
                for item in block.get("fields", []):
                    assert_slack_text(item["text"], _SLACK_LIMITS["field"])
            else:
                assert kind == "context"
                for item in block["elements"]:
                    assert_slack_text(item["text"], _SLACK_LIMITS["context"])
        checked += 1
    assert_slack_text(slack.reply_text(notice), _SLACK_LIMITS["section"])
    return checked + 1


class Tags(HTMLParser):
    """Every tag, attribute and comment of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.comments: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value) for name, value in attrs]

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def unknown_decl(self, data: str) -> None:
        self.comments.append(data)


def parse_html(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    parser.close()
    return parser


def check_email(notice: Notice, *, whole: bool) -> int:
    """The subject is one line and the HTML part has only the bridge's tags; ``whole``: the
    message is also written out and parsed back (the standard library's email package is
    slow: once or twice per incident), with exactly the bridge's headers."""
    subject = notify.subject(notice.incident, notice.event)
    assert "\n" not in subject
    assert "\r" not in subject
    assert controls(subject) == []
    assert controls(notify.text_body(notice), allowed="\n") == []
    page = parse_html(notify.html_body(notice))
    assert set(page.tags) <= {"html", "body", "p", "a"}
    assert page.attributes == ([("a", "href", notice.issue_url)] if notice.issue_url else [])
    assert page.comments == []
    if not whole:
        return 1
    message = build_message(EMAIL, notice)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert sorted(parsed.keys()) == sorted(
        ["From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"]
    )
    # Python's header folding can drop a space between two encoded words (seen with private-use
    # and astral characters): what the recipient reads may lose a space, nothing else.
    assert "".join(str(parsed["Subject"]).split()) == "".join(subject.split())
    parts = {part.get_content_type(): part.get_content() for part in parsed.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert parts["text/html"].rstrip("\n") == notify.html_body(notice)
    return 1


def check_sms(notice: Notice) -> int:
    text = notify.sms_text(notice)
    assert count_segments(text)[1] == 1, (count_segments(text), text)
    assert text.startswith(f"{notice.incident.display_id} {notice.incident.priority} ")
    assert "\n" not in text
    assert "\r" not in text
    text.encode("utf-8")
    return 1


def check_bundles(life: Life) -> int:
    items = [
        BundleItem(state, event, ISSUE_URL if n % 2 else None)
        for n, (state, event) in enumerate(zip(life.at_event, life.events, strict=True))
    ]
    text = notify.bundle_sms(items)
    assert count_segments(text)[1] == 1
    bundle = build_bundle_message(EMAIL, _bundle(items))
    parsed = email.message_from_bytes(bundle.as_bytes(), policy=email.policy.default)
    assert "\n" not in notify.bundle_subject(items)
    html_part = next(p for p in parsed.iter_parts() if p.get_content_type() == "text/html")
    page = parse_html(html_part.get_content())
    assert set(page.tags) <= {"html", "body", "p", "ul", "li", "a"}
    assert {value for _tag, _name, value in page.attributes} <= {ISSUE_URL}
    assert page.comments == []
    return 2


def _bundle(items: list[BundleItem]) -> Bundle:
    return Bundle(recipient="ops@example.com", items=tuple(items), recipient_name="Ops lead")


STATUS_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "main",
    "h1",
    "h2",
    "h3",
    "p",
    "section",
    "article",
    "div",
    "span",
    "time",
    "svg",
    "rect",
    "ul",
    "li",
    "i",
    "footer",
}


def check_status_page(life: Life, now: datetime) -> int:
    page = status_page.build_page("Acme status", [life.incident], now, WINDOW)
    document = status_page.render_html(page)
    parsed = parse_html(document)
    assert set(parsed.tags) <= STATUS_TAGS
    assert parsed.comments == []
    assert not [a for a in parsed.attributes if a[1].startswith("on") or a[1] in ("src", "href")]
    assert PRIVATE not in document
    assert PRIVATE not in repr(status_page.page_json(page))
    if status_page.listed(life.incident, now):
        shown = status_page.public_text(life.incident)
        assert html.escape(shown) in document
    return 2


def assert_inert(life: Life) -> int:
    """Every renderer on ``life``; how many renderings were checked."""
    checked = check_github(life)
    for state, event in zip(life.at_event, life.events, strict=True):
        for root in (False, True):
            notice = Notice(
                incident=state,
                event=event,
                recipient="#incidents",
                issue_url=ISSUE_URL if root else None,
                state={"root_ts": "1.2", "channel": "C1"} if root else {},
                priority_name="Critical",
            )
            checked += check_slack(notice)
        mail = Notice(state, event, "ops@example.com", "Ops lead", ISSUE_URL)
        whole = event is life.events[0] or event is life.events[-1]
        checked += check_email(mail, whole=whole)
        checked += check_email(replace(mail, issue_url=None), whole=False)
        checked += check_sms(replace(mail, recipient="+15550001111"))
    checked += check_bundles(life)
    for later in (timedelta(0), timedelta(hours=2), timedelta(days=8)):
        checked += check_status_page(life, T0 + later)
    return checked


# -- the cases ------------------------------------------------------------------------------


def make_texts(src: Source) -> Texts:
    """Hostile text for some of the labels and annotations the renderers read, of one to four
    alerts and their group; an alert may be a maintenance request or on the critical list."""

    def some(keys: Sequence[str]) -> dict[str, str]:
        return {key: hostile(src) for key in keys if not src.number(0, 2)}

    alerts = []
    for _ in range(src.number(1, 4)):
        labels = some(LABEL_KEYS)
        kind = src.number(0, 5)
        if kind == 0:
            labels["kind"] = "maintenance"
        elif kind == 1:
            labels["alertname"] = "ServiceUnavailable"
        alerts.append((labels, some(ANNOTATION_KEYS)))
    url = hostile(src)
    return Texts(
        alerts=alerts,
        common_labels=some(LABEL_KEYS),
        common_annotations=some(ANNOTATION_KEYS),
        receiver=hostile(src),
        who=hostile(src),
        url=url if src.number(0, 1) else "https://prometheus.example/" + url,
    )


@dataclass
class Count:
    """Incidents rendered, renderings checked, and the time it took."""

    cases: int = 0
    renderings: int = 0
    started: float = field(default_factory=time.perf_counter)

    def figures(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "renderings": self.renderings,
            "seconds": round(time.perf_counter() - self.started, 1),
        }


CASES = 300
DRAWN = 30  # of which drawn choice by choice (they shrink); the rest from seeds


@pytest.mark.slow
def test_hostile_alert_text_is_inert_in_every_renderer(figures: Record) -> None:
    """300 incidents made of hostile text, each through its life (opened, maybe acknowledged,
    resolved, reopened or closed by hand): the issue, comments, review, storm roll-up, Slack,
    email, SMS and status page it makes are all inert (see the module doc)."""
    tally = Count()

    def check(texts: Case[Texts], acknowledged: bool, resolved: bool, reopened: bool) -> None:
        life = live(
            _private(texts.value), acknowledged=acknowledged, resolved=resolved, reopened=reopened
        )
        tally.renderings += assert_inert(life)
        tally.cases += 1

    lives = {"acknowledged": st.booleans(), "resolved": st.booleans(), "reopened": st.booleans()}
    run = settings(
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings(run, max_examples=CASES - DRAWN)(given(texts=seeded(make_texts), **lives)(check))()
    long_text = example(
        texts=Case(everywhere("@user " * 3000)), acknowledged=True, resolved=True, reopened=True
    )
    markup = example(
        texts=Case(everywhere("|`<!--@a-->\n" * 1000)),
        acknowledged=True,
        resolved=True,
        reopened=False,
    )
    drawn_cases = given(texts=drawn(make_texts), **lives)(check)
    settings(run, max_examples=DRAWN)(long_text(markup(drawn_cases)))()
    assert tally.cases >= CASES
    figures(tally.figures())


@pytest.mark.parametrize("piece", PIECES, ids=repr)
def test_every_hostile_piece_is_inert_in_every_field(piece: str) -> None:
    """Each piece of hostile text alone — in every label and annotation, the receiver, the
    acknowledger and the links at once — between letters and then repeated to thousands of
    characters, through an incident's life (opened, acknowledged, resolved, reopened)."""
    text = f"x{piece}y " + piece * (3000 // len(piece))
    assert_inert(live(everywhere(text), acknowledged=True, resolved=True, reopened=True))


# -- through the bridge ---------------------------------------------------------------------

THROUGH = 300
_ISSUE_MARKER = re.compile(
    r"<!-- incident-bridge:v1 kind=(incident|maint|pir|storm) id=(INC|MAINT)-\d{3,}"
    r" key=[0-9a-f]{64} -->"
)


@pytest.mark.slow
async def test_hostile_webhooks_make_inert_issues_through_the_bridge(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, figures: Record
) -> None:
    """300 generated webhooks full of hostile text (``strategies.webhook``, seeds 0-299)
    through the whole bridge — HTTP, engine, store, the outbox and PyGithub to the fake
    GitHub, the clock moving a minute every ten — and every issue, review and comment GitHub
    ends up with passes the same checks, none was refused (GitHub's 422 for a body or title too
    long) and none failed."""
    started = time.perf_counter()
    extra = "  budget: {per_minute: 80, per_hour: 500}\n"
    h = Harness(tmp_path, github, clock, github_config(extra))
    await h.start()
    try:
        for seed in range(THROUGH):
            raw = encode(webhook(Seeded(seed)))
            response = await h.http.post(
                "/api/v1/alerts", data=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status == 200, (seed, await response.text())
            if seed % 10 == 9:
                await h.drain()
                clock.advance(timedelta(minutes=1))
        for _ in range(5):  # what the budget held back
            clock.advance(timedelta(minutes=2))
            await h.drain()
        assert h.app is not None
        stats = await h.app[SERVICES].store.outbox_stats()
        assert (stats.pending, stats.running, stats.failed) == (0, 0, 0)
        issues = github.issues(REPO)
        comments = 0
        for issue in issues:
            assert_issue(issue.title, issue.body or "")
            for comment in github.comments(REPO, issue.number):
                assert_markdown(comment.body, _COMMENT.findall(comment.body)[-1:])
                assert re.fullmatch(
                    r"<!-- incident-bridge:event=(INC|MAINT)-\d{3,}\.[\w-]+ -->",
                    _COMMENT.findall(comment.body)[-1],
                )
                comments += 1
    finally:
        await h.stop()
    figures(
        {
            "webhooks": THROUGH,
            "issues": len(issues),
            "comments": comments,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


def assert_issue(title: str, body: str) -> None:
    """An issue the bridge made, whatever its kind: its markers are the bridge's (the region,
    the hidden state line of an incident or request, and the marker that ends it), the rest as
    :func:`assert_markdown` says; the title mentions nobody."""
    markers = _COMMENT.findall(body)
    assert _ISSUE_MARKER.fullmatch(markers[-1]), markers[-1]
    kind = _ISSUE_MARKER.fullmatch(markers[-1]).group(1)  # type: ignore[union-attr]
    if kind in ("incident", "maint"):
        assert len(markers) == 4
        assert markers[1].startswith(snapshot.PREFIX)
    else:
        assert len(markers) == 3
    assert markers[0] == gh.BEGIN
    assert markers[-2] == gh.END
    runbooks = [r.markdown.strip() for r in RULES.runbooks.values()] if kind == "incident" else []
    assert_markdown(body, markers, trusted=runbooks)
    assert len(title) <= gh.TITLE_LIMIT
    assert "\n" not in title
    assert not _MENTION.search(title)


def test_a_bidi_override_in_a_summary_reaches_no_email_or_slack_message() -> None:
    """Found by this fuzzing: the GitHub and SMS renderers leave control and format characters
    out, the email subject and bodies and the Slack messages kept them — a right-to-left
    override (U+202E) in a summary reordered the rest of the subject, a NUL or an ESC went
    out as it was. ``bridge.text.one_line`` leaves them out now, everywhere it is used."""
    life = live(
        everywhere("db-1\u202e1-bd \x1b[31mred\x00 \u200bzero"),
        acknowledged=False,
        resolved=False,
        reopened=False,
    )
    event = life.events[-1]
    notice = Notice(life.incident, event, "ops@example.com", "Ops lead", ISSUE_URL)
    subject = notify.subject(life.incident, event)
    assert subject == f"[{life.incident.priority}][INC-042] db-11-bd [31mred zero"
    assert controls(notify.text_body(notice), allowed="\n") == []
    assert controls(notify.html_body(notice)) == []
    text, blocks = slack.root_message(notice)
    assert "db-11-bd [31mred zero" in text
    assert controls(repr(blocks)) == []
