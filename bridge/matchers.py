"""Alertmanager-style label matchers: ``name="value"``, ``!=``, ``=~``, ``!~``. Pure.

The syntax and semantics follow Alertmanager's classic matcher parser (``amtool``, routes,
inhibit rules):

- ``name`` is a Prometheus label name; whitespace around the operator is allowed;
- the value may be double-quoted, with the escapes ``\\"``, ``\\\\`` and ``\\n`` (any other
  backslash is kept literally, as Alertmanager does), or unquoted (the rest of the text, trimmed);
- a regex is anchored at both ends, as Alertmanager's ``^(?:re)$``, so ``=~"Disk"`` does not
  match ``DiskFull``;
- a label the alert does not carry has the value ``""``: ``severity!="critical"`` matches an
  alert without a severity, ``team=~".*"`` matches every alert.

Regexes are Python ``re`` rather than Go RE2; the common subset (classes, alternation,
repetition, a leading ``(?i)``) behaves the same.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MatchOp", "Matcher", "parse_matcher"]

_MATCHER_RE = re.compile(
    r"\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*",
    re.DOTALL,
)

# Go's RE2 accepts flags such as (?i) anywhere; Python only at the start of the whole pattern,
# which the anchoring group would hide. A leading flag group is turned into a scoped one.
_LEADING_FLAGS_RE = re.compile(r"\(\?([ims]+)\)")


class MatchOp(enum.StrEnum):
    """The four matcher operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One matcher; ``matches`` evaluates it against an alert's labels.

    Constructing one with a regex operator compiles the anchored regex (ValueError if invalid).
    """

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        op = MatchOp(self.op)
        object.__setattr__(self, "op", op)
        if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            try:
                object.__setattr__(self, "_regex", re.compile(_scoped(self.value)))
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.value!r}: {exc.msg}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the alert's labels satisfy this matcher (a missing label is ``""``)."""
        actual = labels.get(self.name, "")
        if not isinstance(actual, str):  # defensive: labels come from JSON
            actual = str(actual)
        if self._regex is None:
            return (actual == self.value) is (self.op is MatchOp.EQUAL)
        found = self._regex.fullmatch(actual) is not None
        return found is (self.op is MatchOp.REGEX)

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def _scoped(regex: str) -> str:
    """``regex`` as one group; a leading ``(?i)`` becomes ``(?i:...)``, as RE2 scopes it."""
    flags = _LEADING_FLAGS_RE.match(regex)
    if flags is not None:
        return f"(?{flags[1]}:{regex[flags.end() :]})"
    return f"(?:{regex})"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``alertname=~"Disk.*"``; ValueError with a clear message."""
    found = _MATCHER_RE.fullmatch(text)
    if found is None:
        raise ValueError(
            f"bad matcher {text!r}: expected <label><op><value> with op one of = != =~ !~, "
            'e.g. alertname=~"Disk.*"'
        )
    value = _unquote(found["value"], text)
    return Matcher(found["name"], MatchOp(found["op"]), value)


def _unquote(raw: str, text: str) -> str:
    """Alertmanager's value unescaping: optional surrounding quotes, ``\\"``, ``\\\\``, ``\\n``."""
    quoted = raw.startswith('"')
    if quoted:
        if len(raw) < 2 or not raw.endswith('"') or _escaped_at_end(raw[1:-1]):
            raise ValueError(f"bad matcher {text!r}: the value's closing double quote is missing")
        raw = raw[1:-1]
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char == "\\":
            nxt = next(chars, None)
            if nxt is None:
                out.append("\\")  # a trailing backslash is literal
            elif nxt == "n":
                out.append("\n")
            elif nxt in ('"', "\\"):
                out.append(nxt)
            else:  # a spurious escape keeps its backslash
                out.append("\\" + nxt)
        elif char == '"':
            raise ValueError(f"bad matcher {text!r}: the value contains an unescaped double quote")
        else:
            out.append(char)
    return "".join(out)


def _escaped_at_end(inner: str) -> bool:
    """True when ``inner`` ends in an odd run of backslashes (so its closing quote is escaped)."""
    run = len(inner) - len(inner.rstrip("\\"))
    return run % 2 == 1
