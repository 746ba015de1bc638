"""Alertmanager-style matchers: parsing, quoting, anchoring and missing-label semantics."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.matchers import Matcher, MatchOp, parse_matcher


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('alertname="DiskFull"', "alertname", MatchOp.EQUAL, "DiskFull"),
        ('service!="db"', "service", MatchOp.NOT_EQUAL, "db"),
        ('alertname=~"Disk.*"', "alertname", MatchOp.REGEX, "Disk.*"),
        ('env!~"staging|dev"', "env", MatchOp.NOT_REGEX, "staging|dev"),
        ("severity=critical", "severity", MatchOp.EQUAL, "critical"),
        ("  team  =~  front.*  ", "team", MatchOp.REGEX, "front.*"),
        ('a=""', "a", MatchOp.EQUAL, ""),
        ("a=", "a", MatchOp.EQUAL, ""),
        ('a="say \\"hi\\""', "a", MatchOp.EQUAL, 'say "hi"'),
        ('a="back\\\\slash"', "a", MatchOp.EQUAL, "back\\slash"),
        ('a="two\\nlines"', "a", MatchOp.EQUAL, "two\nlines"),
        ('a=~"\\d+"', "a", MatchOp.REGEX, "\\d+"),  # a spurious escape keeps its backslash
        ('a="x y, z"', "a", MatchOp.EQUAL, "x y, z"),
        ("__name__:x=1", "__name__:x", MatchOp.EQUAL, "1"),
    ],
)
def test_parse_matcher(text: str, name: str, op: MatchOp, value: str) -> None:
    """Quoted and unquoted values, whitespace and escapes parse as Alertmanager parses them."""
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "expected <label><op><value>"),
        ("alertname", "expected <label><op><value>"),
        ('="x"', "expected <label><op><value>"),
        ('1abc="x"', "expected <label><op><value>"),
        ('a-b="x"', "expected <label><op><value>"),
        ('a="unterminated', "closing double quote is missing"),
        ('a="escaped end\\"', "closing double quote is missing"),
        ('a="x"y"', "unescaped double quote"),
        ('a==x"', "unescaped double quote"),
        ('a=~"("', "invalid regular expression"),
    ],
)
def test_parse_matcher_rejects(text: str, fragment: str) -> None:
    """Malformed matchers raise ValueError with a message that says what is wrong."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="DiskFull"', {"alertname": "DiskFull"}, True),
        ('alertname="DiskFull"', {"alertname": "diskfull"}, False),
        ('alertname!="DiskFull"', {"alertname": "DiskFull"}, False),
        # regexes are anchored at both ends, like Alertmanager's ^(?:re)$
        ('alertname=~"Disk"', {"alertname": "DiskFull"}, False),
        ('alertname=~"Full"', {"alertname": "DiskFull"}, False),
        ('alertname=~"Disk.*"', {"alertname": "DiskFull"}, True),
        ('alertname=~"foo|bar"', {"alertname": "foobar"}, False),
        ('alertname=~"foo|bar"', {"alertname": "bar"}, True),
        ('alertname=~"x"', {"alertname": "x\n"}, False),
        ('alertname!~"Disk.*"', {"alertname": "DiskFull"}, False),
        ('alertname!~"Disk"', {"alertname": "DiskFull"}, True),
        ('alertname=~"(?i)disk.*"', {"alertname": "DiskFull"}, True),
        ('alertname=~"(?i)disk|cpu"', {"alertname": "xCPU"}, False),
        # a missing label is the empty string
        ('severity!="critical"', {}, True),
        ('severity=""', {}, True),
        ('severity="critical"', {}, False),
        ('team=~".*"', {}, True),
        ('team=~".+"', {}, False),
        ('team!~".+"', {}, True),
        ('team!=""', {}, False),
        ('team!=""', {"team": "x"}, True),
    ],
)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    """Equality, negation, anchored regexes and missing labels follow Alertmanager semantics."""
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text", ['a="x"', 'a!~"q\\"uote"', 'a=~"multi\\nline"', 'a="back\\\\slash"', "a=~.*"]
)
def test_str_round_trips(text: str) -> None:
    """``str(matcher)`` is a matcher that parses back to the same thing."""
    matcher = parse_matcher(text)
    assert parse_matcher(str(matcher)) == matcher


def test_constructor_checks_regex() -> None:
    """Building a Matcher directly compiles (and checks) its regex too."""
    assert Matcher("a", MatchOp.REGEX, "x+").matches({"a": "xxx"})
    with pytest.raises(ValueError, match="invalid regular expression"):
        Matcher("a", MatchOp.NOT_REGEX, "[")


@given(st.text(max_size=40))
def test_parse_matcher_only_raises_value_error(text: str) -> None:
    """Any text either parses or raises ValueError, never another exception."""
    try:
        matcher = parse_matcher(text)
    except ValueError:
        return
    matcher.matches({"a": text})


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
def test_any_value_round_trips(value: str) -> None:
    """Every value, however many quotes, backslashes and newlines, survives ``str`` and parsing."""
    matcher = Matcher("label", MatchOp.EQUAL, value)
    assert parse_matcher(str(matcher)) == matcher
    assert parse_matcher(str(matcher)).matches({"label": value})
