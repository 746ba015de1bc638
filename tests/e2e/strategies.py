"""What the fuzz suites feed the bridge (issue #10): hostile alert text and Alertmanager
webhooks, valid, nearly valid and not at all.

- **hostile text** (:func:`hostile`): what an alert rule's labels and annotations may hold when
  someone wants to abuse them — mentions (``@user``, ``@org/team``, Slack's ``<!here>``,
  look-alikes: the fullwidth at sign U+FF20, zero-width joiners between ``@`` and the name),
  forged markers of the bridge (CONTRACT.md: ``<!-- incident-bridge:... -->``), raw HTML and
  script, Markdown table pipes and newlines, code fences, bidi controls, NUL, and very long text;
- **Alertmanager webhooks, version 4** (:func:`webhook`): payloads Alertmanager could send
  (random receivers, statuses, group labels, alerts with random labels and annotations,
  timestamps in every RFC 3339 spelling Go prints including the zero time
  ``0001-01-01T00:00:00Z``, ``truncatedAlerts`` up to Go's uint64, ``externalURL``,
  fingerprints); :func:`mutant` — one of those with one thing changed (a field missing, of the
  wrong type, a number written as a string, unknown fields nested deep, a lone surrogate, ...),
  each with the one answer CONTRACT.md allows for it; and :func:`junk`, bodies that are not
  webhooks at all (bytes, any JSON, a webhook cut short, nesting deeper than any parser follows).

Every generator takes a :class:`Source` of choices, so one description serves two speeds:

- :class:`Drawn` makes each choice a Hypothesis draw — the strategies :data:`webhooks`,
  :data:`mutants`, :data:`junk_bodies` and :data:`hostile_text` shrink a failure to a small
  example, but a webhook costs hundreds of draws (about a tenth of a second here);
- :class:`Seeded` makes them from ``random.Random(seed)`` — Hypothesis draws only the seed
  (:data:`seeds`), so a webhook costs a millisecond or two; a failure is reported by its seed,
  which rebuilds the same body.

:func:`seeded` and :func:`drawn` give either kind as a :class:`Case`; the fuzz tests run
mostly seeded cases and a few drawn ones.

Receivers, group keys and fingerprints come from small pools most of the time, so payloads meet
the incidents earlier ones opened (updates, resolutions, reopenings), not only new groups.
Lone surrogates never appear in the text: the webhook parser refuses them as malformed JSON
(the ``surrogate`` mutant checks that), so no renderer ever sees one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from hypothesis import strategies as st

T = TypeVar("T")
ZERO_TIME = "0001-01-01T00:00:00Z"
# The fake clock of tests/conftest.py: timestamps cluster around it so groups open, resolve and
# reopen within the windows the engine uses.
NOW = datetime(2026, 11, 26, 21, 45, tzinfo=UTC)
UINT64_MAX = 2**64 - 1  # Alertmanager's truncatedAlerts is a Go uint64

# -- hostile text ---------------------------------------------------------------------------

MENTIONS = [
    "@user",
    "@octocat",
    "@org/team",
    "@acme/on-call",
    "@here",
    "@channel",
    "@everyone",
    "@@double",
    "cc @alice, @bob.",
    "(@paren)",
    "mail root@example.com",
    "\uff20fullwidth",  # FULLWIDTH COMMERCIAL AT
    "\ufe6bsmall",  # SMALL COMMERCIAL AT
    "@\u200djoined",  # ZERO WIDTH JOINER between "@" and the name
    "@\u200bspaced",  # ZERO WIDTH SPACE
    "@\u2060wj",  # WORD JOINER (what the renderers themselves insert)
    "@\u00adshy",  # SOFT HYPHEN
    "@\u0301combining",
    "\\@escaped",
    "&#64;entity",
    "&commat;named",
    "%40percent",
    "`@code`",
    "<@U024BE7LH>",
    "<!here>",
    "<!channel>",
    "<!subteam^S123|@ops>",
    "<#C123|general>",
]
MARKERS = [
    "<!-- incident-bridge:v1 kind=incident id=INC-999 key=" + "0" * 64 + " -->",
    "<!-- incident-bridge:v1 kind=pir id=INC-001 key=x -->",
    "<!-- incident-bridge:v1 kind=storm id=INC-002 key=y -->",
    "<!-- incident-bridge:begin -->",
    "<!-- incident-bridge:end -->",
    "<!-- incident-bridge:event=INC-001.1 -->",
    "<!-- incident-bridge:event=INC-001.review-due -->",
    "<!-- incident-bridge:state=v1:eJwLSS0u0c3LL0kFAA -->",
    "<!--",
    "-->",
    "--!>",
    "<!-- incident-bridge:v1",
    "&lt;!-- incident-bridge:begin --&gt;",
]
HTML = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<details><summary>x</summary>",
    "</details>",
    '<a href="javascript:alert(1)">x</a>',
    "<b>bold</b>",
    "<style>*{display:none}</style>",
    "<iframe src=//evil.example>",
    "</p></body>",
    "<br/>",
    "<!doctype html>",
    "<![CDATA[x]]>",
    "&lt;b&gt;",
    "&amp;",
    "&#60;script&#62;",
    '"quoted"',
    "'single'",
]
MARKDOWN = [
    "|",
    "\\|",
    "||",
    "| a | b |\n|---|---|",
    "\n",
    "\r\n",
    "\r",
    "\n\n## Root Cause Analysis\n",
    "\n# Heading\n",
    "```",
    "```python\nimport os\n",
    "~~~",
    "`",
    "``",
    "\n    indented code",
    "\n> quote",
    "\n- [ ] task",
    "[x](javascript:alert(1))",
    "![img](http://evil.example/x.png)",
    "<https://evil.example>",
    "*",
    "**",
    "_",
    "\\",
    "\n---\n",
    "\n===\n",
    "[^1]",
    "$x$",
    ":+1:",
    "#1",
    "acme/incidents#1",
    "https://runbooks.example.com/",
]
CONTROLS = [
    "\x00",
    "\x1b[31m",
    "\x07",
    "\x7f",
    "\x85",
    "\t",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u200f",
    "\u061c",
    "\ufeff",
    "\ufffd",
]
UNICODE = [
    "🔥",
    "é",
    "ẞ",
    "İ",
    "\U0001d400",
    "Σ",
    "Ω",
    "数据库",
    "Сервис",
    "€",
    "…",
    "\u201cq\u201d",
]
PIECES = MENTIONS + MARKERS + HTML + MARKDOWN + CONTROLS + UNICODE


# -- where the choices come from ------------------------------------------------------------


class Source(Protocol):
    """The choices a generator makes."""

    def number(self, low: int, high: int) -> int:
        """An integer in [low, high]; Hypothesis shrinks towards ``low``."""

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``; Hypothesis shrinks towards the first."""

    def text(self) -> str:
        """Any text of up to 12 characters but lone surrogates."""

    def blob(self, size: int) -> bytes:
        """Any bytes, at most ``size``."""

    def real(self) -> float:
        """A finite float."""


any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


class Drawn:
    """Choices drawn by Hypothesis (inside ``@st.composite``): shrinkable, slower."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def number(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def pick(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))

    def text(self) -> str:
        return self._draw(any_text)

    def blob(self, size: int) -> bytes:
        return self._draw(st.binary(max_size=size))

    def real(self) -> float:
        return self._draw(st.floats(allow_nan=False, allow_infinity=False))


# Where Seeded's characters come from: mostly ASCII, then Latin, any BMP letter or symbol,
# controls, and the astral planes (emoji; two UTF-16 units each); never a surrogate.
_RANGES = [
    (0x20, 0x7E),
    (0x20, 0x7E),
    (0x20, 0x7E),
    (0xA0, 0x24F),
    (0x0, 0x1F),
    (0x7F, 0x9F),
    (0x100, 0xD7FF),
    (0xE000, 0xFFFF),
    (0x1F300, 0x1FAFF),
    (0x10000, 0x10FFFF),
]
_REALS = [0.0, -0.0, 0.5, 3.0, -1.5, 1e-308, 1.7976931348623157e308, 1e16, 123.456]


class Seeded:
    """Choices made by ``random.Random(seed)``: a case costs one Hypothesis draw (the seed)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)  # noqa: S311  # test data, not secrets

    def number(self, low: int, high: int) -> int:
        return self._random.randint(low, high)

    def pick(self, options: Sequence[T]) -> T:
        return options[self._random.randrange(len(options))]

    def text(self) -> str:
        chars = []
        for _ in range(self._random.randint(0, 12)):
            low, high = _RANGES[self._random.randrange(len(_RANGES))]
            chars.append(chr(self._random.randint(low, high)))
        return "".join(chars)

    def blob(self, size: int) -> bytes:
        return self._random.randbytes(self._random.randint(0, size))

    def real(self) -> float:
        if self._random.randrange(2):
            return self.pick(_REALS)
        return self._random.uniform(-1e9, 1e9)


seeds = st.integers(min_value=0, max_value=2**32 - 1)
"""A seed for :class:`Seeded`."""


@dataclass(frozen=True, slots=True)
class Case(Generic[T]):
    """A generated value and the seed that made it (None: drawn choice by choice). Shown by
    its seed, which rebuilds it, so a falsifying example stays readable."""

    value: T
    seed: int | None = None

    def __repr__(self) -> str:
        if self.seed is not None:
            return f"Case(seed={self.seed})"
        shown = repr(self.value)
        return f"Case({shown[:2000]}{'…' if len(shown) > 2000 else ''})"


def seeded(make: Callable[[Source], T]) -> st.SearchStrategy[Case[T]]:
    """Cases of ``make`` built from a seed: one draw each."""
    return seeds.map(lambda seed: Case(make(Seeded(seed)), seed))


def drawn(make: Callable[[Source], T]) -> st.SearchStrategy[Case[T]]:
    """Cases of ``make`` drawn choice by choice: they shrink to a small example."""
    return _strategy(make).map(Case)


def _strategy(make: Callable[[Source], T]) -> st.SearchStrategy[T]:
    """The Hypothesis strategy of a generator: every choice drawn."""

    @st.composite
    def drawn(draw: st.DrawFn) -> T:
        return make(Drawn(draw))

    return drawn()


# -- hostile text ---------------------------------------------------------------------------

_LONG_PIECES = [*PIECES, "x", "@a ", "| ", "é"]


def _short(src: Source) -> str:
    return "".join(
        src.pick(PIECES) if src.number(0, 2) else src.text() for _ in range(src.number(0, 8))
    )


def hostile(src: Source) -> str:
    """Alert text meant to ping, inject, forge or break: mostly short mixes of hostile pieces
    and any text, one time in four thousands of characters (a piece repeated, and more)."""
    if src.number(0, 3):
        return _short(src)
    length = src.number(50, 3000)
    return (src.pick(_LONG_PIECES) * length)[:length] + _short(src)


# -- webhook payloads -----------------------------------------------------------------------

RECEIVERS = ["incident-bridge", "team-db", "team-web", "probe-webhook"]
ALERTNAMES = [
    "HighCPU",
    "HighLatency",
    "DiskFull",
    "ServiceUnavailable",  # the critical-alert list: P0
    "DatabaseDown",
    "Watchdog",  # the heartbeat: never an incident
]
METRICS = ["error_rate", "response_time_p95", "cpu_usage", "memory_usage", "disk_usage", "bogus"]
VALUES = ["7.3", "0.5", "1.5k", "2.3%", "320ms", "1.5s", "1e3", "NaN", "-Inf", "", "n/a", "1e400"]
LABEL_NAMES = ["alertname", "instance", "service", "job", "severity", "pod", "team", "__name__"]
ANNOTATION_NAMES = [
    "summary",
    "description",
    "runbook_url",
    "value",
    "public_summary",
    "proposed_action",
    "expected_impact",
]
URLS = [
    "https://runbooks.example.com/highcpu",
    "http://prometheus.example:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D",
    "javascript:alert(1)",
    "//no-scheme.example/x",
    "http://",
    "",
    "https://runbooks.example.com/x) <b>|y",
]
OFFSETS = ["Z", "Z", "Z", "+00:00", "-07:00", "+05:30", "+14:00", ""]
_EPOCH_1971 = int(datetime(1971, 1, 1, tzinfo=UTC).timestamp())
_EPOCH_2998 = int(datetime(2998, 12, 31, tzinfo=UTC).timestamp())


def label_name(src: Source) -> str:
    return src.pick(LABEL_NAMES) if src.number(0, 2) else src.text()


def label_value(src: Source) -> str:
    return (
        src.pick(["api", "db-1:9100", "critical", "warning"]) if src.number(0, 2) else hostile(src)
    )


def labels(src: Source) -> dict[str, str]:
    """An alert's labels: usually an alertname and some of the labels the rules read."""
    found: dict[str, str] = {}
    if src.number(0, 9):
        found["alertname"] = src.pick(ALERTNAMES) if src.number(0, 2) else label_value(src)
    if src.number(0, 1):
        found["severity"] = src.pick(["critical", "warning", "info", "page", ""])
    if not src.number(0, 4):
        found["priority"] = src.pick(["P0", "P1", "P2", "P3", "P4", "p0", "high"])
    if not src.number(0, 4):
        found["metric"] = src.pick(METRICS)
    if not src.number(0, 9):
        found["kind"] = "maintenance"
        found["maintenance_type"] = src.pick(["perfective", "adaptive", "preventive", "other"])
    for _ in range(src.number(0, 4)):
        found[label_name(src)] = label_value(src)
    return found


def url(src: Source) -> str:
    kind = src.number(0, 2)
    if kind == 0:
        return src.pick(URLS)
    return ("https://runbooks.example.com/" if kind == 1 else "") + hostile(src)


def alert_annotations(src: Source) -> dict[str, str]:
    found: dict[str, str] = {}
    for _ in range(src.number(0, 5)):
        name = src.pick(ANNOTATION_NAMES)
        if name == "runbook_url":
            found[name] = url(src)
        elif name == "value":
            found[name] = src.pick(VALUES) if src.number(0, 1) else hostile(src)
        else:
            found[name] = hostile(src)
    for _ in range(src.number(0, 2)):
        found[label_name(src)] = hostile(src)
    return found


def rfc3339(moment: datetime, digits: int, offset: str) -> str:
    """``moment`` as Go would print it: 0-9 fractional digits, ``Z``, an offset, or none."""
    if offset not in ("Z", ""):
        sign = 1 if offset[0] == "+" else -1
        moment = moment + sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    return text + offset


def timestamp(src: Source) -> str:
    """A startsAt/endsAt the bridge accepts: RFC 3339 between 1971 and 2998 in any precision,
    mostly within days of the fake clock."""
    if src.number(0, 3):
        moment = NOW + timedelta(seconds=src.number(-3 * 86_400, 86_400))
    else:
        moment = datetime.fromtimestamp(src.number(_EPOCH_1971, _EPOCH_2998), tz=UTC)
    moment += timedelta(microseconds=src.number(0, 999_999))
    return rfc3339(moment, src.number(0, 9), src.pick(OFFSETS))


def ends_at(src: Source) -> str | None:
    return src.pick(
        [ZERO_TIME, "0001-01-01T00:00:00.000000000Z", None, timestamp(src), timestamp(src)]
    )


def fingerprint(src: Source) -> str:
    kind = src.number(0, 3)
    if kind == 0:
        return src.text()
    if kind == 1:
        return f"{src.number(0, 2**64 - 1):016x}"
    return src.pick(["57f7b60b5dab80c0", "a1", "a2", "a3", "b1", ""])


def alert(src: Source) -> dict[str, Any]:
    """One alert of the payload; optional fields are sometimes left out."""
    found: dict[str, Any] = {
        "status": src.pick(["firing", "firing", "resolved"]),
        "labels": labels(src),
        "startsAt": timestamp(src),
    }
    if src.number(0, 5):
        found["annotations"] = alert_annotations(src)
    if src.number(0, 5):
        found["endsAt"] = ends_at(src)
    if src.number(0, 5):
        found["generatorURL"] = url(src)
    if src.number(0, 5):
        found["fingerprint"] = fingerprint(src)
    return found


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    """What Alertmanager puts in commonLabels / commonAnnotations: the pairs all alerts share."""
    shared = dict(maps[0]) if maps else {}
    for other in maps[1:]:
        shared = {k: v for k, v in shared.items() if other.get(k) == v}
    return shared


def webhook(src: Source) -> dict[str, Any]:
    """A valid Alertmanager v4 webhook (as a JSON-ready dict)."""
    group = [alert(src) for _ in range(src.number(1, 6))]
    firing = any(a["status"] == "firing" for a in group)
    common = _common([a["labels"] for a in group])
    body: dict[str, Any] = {
        "version": "4",
        "receiver": src.pick(RECEIVERS) if src.number(0, 3) else hostile(src),
        "status": src.pick(["firing" if firing else "resolved", "firing", "resolved"]),
        "alerts": group,
    }
    kind = src.number(0, 3)
    body["groupKey"] = (
        hostile(src)
        if kind == 0
        else '{}:{alertname="HighCPU", service="api"}'
        if kind == 1
        else f'{{}}:{{alertname="G{src.number(0, 40)}"}}'
    )
    if src.number(0, 5):
        body["groupLabels"] = (
            {k: v for k, v in common.items() if k in ("alertname", "service")}
            if src.number(0, 1)
            else {label_name(src): label_value(src) for _ in range(src.number(0, 3))}
        )
    if src.number(0, 5):
        body["commonLabels"] = common if src.number(0, 2) else labels(src)
    if src.number(0, 5):
        body["commonAnnotations"] = (
            _common([a.get("annotations", {}) for a in group])
            if src.number(0, 2)
            else alert_annotations(src)
        )
    if src.number(0, 5):
        body["externalURL"] = "http://alertmanager.example:9093" if src.number(0, 1) else url(src)
    if src.number(0, 5):
        kind = src.number(0, 3)
        body["truncatedAlerts"] = [0, src.number(0, 10), src.number(0, UINT64_MAX), UINT64_MAX][
            kind
        ]
    if not src.number(0, 5):  # fields a newer Alertmanager might add are ignored
        body[src.pick(["newField", "x", "Version"])] = json_value(src)
    return body


def json_value(src: Source, depth: int = 0) -> Any:
    """Any JSON document, up to 4 levels deep (no NaN or Infinity: not JSON)."""
    kind = src.number(0, 6 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return bool(src.number(0, 1))
    if kind == 2:
        return src.pick([0, -1, 1, 2**63, -(2**63) - 1, 2**64, 10**30, src.number(-999, 999)])
    if kind == 3:
        return src.real()
    if kind == 4:
        return src.text()
    if kind == 5:
        return [json_value(src, depth + 1) for _ in range(src.number(0, 3))]
    return {src.text(): json_value(src, depth + 1) for _ in range(src.number(0, 3))}


def wrong(src: Source, *allowed: type) -> Any:
    """A JSON value of none of the ``allowed`` types (a bool is not an int here)."""
    for _ in range(100):
        value = json_value(src)
        if isinstance(value, bool):
            if bool not in allowed:
                return value
        elif not isinstance(value, allowed):
            return value
    return [] if list not in allowed else {}


def encode(body: Any, *, ascii_only: bool = True, indent: int | None = None) -> bytes:
    """JSON bytes as a sender would write them (Go escapes only what it must; Python's default
    escapes every non-ASCII character: both are JSON)."""
    return json.dumps(body, ensure_ascii=ascii_only, indent=indent).encode("utf-8")


def encoded(src: Source) -> bytes:
    """A valid webhook as bytes: ASCII-escaped or raw UTF-8, compact or indented."""
    return encode(webhook(src), ascii_only=bool(src.number(0, 1)), indent=src.pick([None, None, 2]))


# -- one thing changed ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mutant:
    """A webhook with one change, and the only answer CONTRACT.md allows for it."""

    change: str
    body: bytes
    expected: int


def _numberish(src: Source) -> str:
    return src.pick(["0", "3", "-1", "4", "1.5", "1e3", str(2**70), str(src.number(0, 99))])


def _bad_status(src: Source) -> Any:
    if src.number(0, 1):
        return src.pick(["Firing", "FIRING", " firing", "resolved ", "pending", "silenced", ""])
    return wrong(src, str)


def _bad_labels(src: Source) -> Any:
    if src.number(0, 1):
        return wrong(src, dict)
    return {src.text(): wrong(src, str) for _ in range(src.number(1, 3))}


def _bad_time(src: Source) -> Any:
    if src.number(0, 2):
        return src.pick(
            [
                ZERO_TIME,  # the zero time is "not ended" for endsAt, never a start
                "yesterday",
                "2026-13-01T00:00:00Z",
                "26/11/2026",
                "9999-12-31T23:59:59Z",
                "3000-01-01T00:00:00Z",
                "1969-12-31T23:59:59Z",
                "",
                # Not here, as accepted: a space for the "T" (RFC 3339 allows it), and a string
                # of digits ("1764192117"), which pydantic reads as Unix time even in strict
                # mode (it refuses the bare number) — harmless, but not what Go would send.
            ]
        )
    return wrong(src, str)


def _bad_end(src: Source) -> Any:
    if src.number(0, 2):
        return src.pick(
            ["yesterday", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z"]
        )
    return wrong(src, str, type(None))


def _bad_truncated(src: Source) -> Any:
    kind = src.number(0, 4)
    if kind == 0:
        return -src.number(1, 2**64)
    if kind == 1:
        return src.number(UINT64_MAX + 1, 2**200)
    if kind == 2:
        return src.real()  # 3.0 too: an integer is written without a point
    if kind == 3:
        return _numberish(src)
    return wrong(src, int)


def _bad_version(src: Source) -> Any:
    if src.number(0, 1):
        return src.pick(["3", "5", "", "4.0", " 4", "v4", 4, 4.0])
    return wrong(src, str)


def _bad_alerts(src: Source) -> Any:
    kind = src.number(0, 2)
    if kind == 0:
        return []
    if kind == 1:
        return wrong(src, list)
    return [wrong(src, dict) for _ in range(src.number(1, 3))]


# Where a change goes ("*" is a random alert) and what may replace it there.
_WRONG: dict[tuple[str, ...], Callable[[Source], Any]] = {
    ("version",): _bad_version,
    ("receiver",): lambda src: wrong(src, str),
    ("groupKey",): lambda src: wrong(src, str),
    ("externalURL",): lambda src: wrong(src, str),
    ("status",): _bad_status,
    ("alerts",): _bad_alerts,
    ("groupLabels",): _bad_labels,
    ("commonLabels",): _bad_labels,
    ("commonAnnotations",): _bad_labels,
    ("truncatedAlerts",): _bad_truncated,
    ("alerts", "*"): lambda src: wrong(src, dict),
    ("alerts", "*", "status"): _bad_status,
    ("alerts", "*", "labels"): _bad_labels,
    ("alerts", "*", "annotations"): _bad_labels,
    ("alerts", "*", "startsAt"): _bad_time,
    ("alerts", "*", "endsAt"): _bad_end,
    ("alerts", "*", "generatorURL"): lambda src: wrong(src, str),
    ("alerts", "*", "fingerprint"): lambda src: wrong(src, str),
}
_REQUIRED = [
    ("version",),
    ("receiver",),
    ("status",),
    ("alerts",),
    ("groupKey",),
    ("alerts", "*", "status"),
    ("alerts", "*", "labels"),
    ("alerts", "*", "startsAt"),
]
_OPTIONAL = [
    ("groupLabels",),
    ("commonLabels",),
    ("commonAnnotations",),
    ("externalURL",),
    ("truncatedAlerts",),
    ("alerts", "*", "annotations"),
    ("alerts", "*", "endsAt"),
    ("alerts", "*", "generatorURL"),
    ("alerts", "*", "fingerprint"),
]
CHANGES = [
    "drop-required",
    "drop-optional",
    "wrong-type",
    "wrong-type",
    "wrong-type",
    "extra-field",
    "deep-extra-field",
    "too-deep",
    "null-ends-at",
    "zero-ends-at",
    "surrogate",
    "invalid-utf8",
    "bom",
    "trailing-garbage",
    "duplicate-version",
]


def _parent(body: dict[str, Any], path: tuple[str, ...], index: int) -> tuple[Any, Any]:
    """The container holding ``path``'s last part, and that part (``*`` → ``index``)."""
    target: Any = body
    for part in path[:-1]:
        target = target[index if part == "*" else part]
    last = path[-1]
    return target, index if last == "*" else last


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


def _splice(raw: bytes, member: bytes) -> bytes:
    """``raw`` (a webhook's JSON) with ``member`` (``"name": value``) first in the object."""
    return raw.replace(b'"version"', member + b', "version"', 1)


def mutant(src: Source) -> Mutant:
    """A valid webhook with one change, and the answer that change calls for."""
    body = webhook(src)
    index = src.number(0, len(body["alerts"]) - 1)
    change = src.pick(CHANGES)
    expected = 200
    if change == "drop-required":
        path = src.pick(_REQUIRED)
        parent, key = _parent(body, path, index)
        parent.pop(key, None)
        change, expected = f"drop {'.'.join(path)}", 400
    elif change == "drop-optional":
        path = src.pick(_OPTIONAL)
        parent, key = _parent(body, path, index)
        parent.pop(key, None)
        change = f"drop {'.'.join(path)}"
    elif change == "wrong-type":
        path = src.pick(sorted(_WRONG))
        parent, key = _parent(body, path, index)
        parent[key] = _WRONG[path](src)
        change, expected = f"wrong {'.'.join(path)}", 400
    elif change in ("extra-field", "deep-extra-field"):
        # Unknown fields are ignored, nested as deep as the JSON parser follows (~200 levels).
        where = body if src.number(0, 1) else body["alerts"][index]
        name = src.text()
        while name in where:
            name += "_"
        value = json_value(src)
        where[name] = value if change == "extra-field" else _deep(src.number(1, 150), value)
    elif change == "null-ends-at":
        body["alerts"][index]["endsAt"] = None
    elif change == "zero-ends-at":
        body["alerts"][index]["endsAt"] = src.pick(
            [ZERO_TIME, "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00+00:00"]
        )
    raw = encode(body, ascii_only=bool(src.number(0, 1)))
    if change == "too-deep":  # deeper than the parser follows: malformed JSON
        depth = src.number(250, 100_000)
        raw, expected = _splice(raw, b'"deep": ' + b'{"n":' * depth + b"[]" + b"}" * depth), 400
    elif change == "surrogate":  # a lone surrogate escape anywhere: not text, malformed JSON
        raw, expected = _splice(raw, src.pick([b'"\\ud800": 1', b'"x": "\\udfff"'])), 400
    elif change == "invalid-utf8":
        raw, expected = _splice(raw, src.pick([b'"\xff\xfe": 1', b'"x": "\xc3\x28"'])), 400
    elif change == "bom":
        raw, expected = b"\xef\xbb\xbf" + raw, 400
    elif change == "trailing-garbage":
        raw, expected = raw + src.pick([b"x", b"}", b",", b"{}", b"\x00"]), 400
    elif change == "duplicate-version":  # the last one counts, as in Go
        raw = _splice(raw, b'"version": "' + src.pick([b"3", b"4"]) + b'"')
    return Mutant(change, raw, expected)


# -- not webhooks at all --------------------------------------------------------------------

_JUNK = [
    b"",
    b" ",
    b"null",
    b"{}",
    b"[]",
    b'"4"',
    b"NaN",
    b"1e400",
    b'{"version": NaN}',
    b'{"alerts": Infinity}',
    b"\xef\xbb\xbf{}",
    b"\x00",
    b"{'version': '4'}",
    b'{"version": "4", "alerts": [}',
]


def junk(src: Source) -> bytes:
    """A body that is not a webhook: bytes, any JSON, a webhook cut short, nesting deeper than
    any parser follows, NaN, a BOM, a long run of one byte."""
    kind = src.number(0, 6)
    if kind == 0:
        return src.blob(300)
    if kind == 1:
        return encode(json_value(src))
    if kind == 2:
        raw = encoded(src)
        return raw[: src.number(0, len(raw) - 1)]
    if kind == 3:
        return b"[" * src.number(1, 100_000)
    if kind == 4:
        depth = src.number(1, 20_000)
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == 5:
        return src.pick(_JUNK)
    return src.pick([b"a", b" ", b"\x00", b"{"]) * src.number(1, 60_000)


hostile_text = _strategy(hostile)
webhooks = _strategy(webhook)
encoded_webhooks = _strategy(encoded)
mutants = _strategy(mutant)
junk_bodies = _strategy(junk)
