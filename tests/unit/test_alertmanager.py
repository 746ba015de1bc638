"""Parsing Alertmanager webhooks: every captured payload, time quirks, and hostile bodies.

Anything that is not an Alertmanager v4 webhook must end as WebhookError (a 400) and nothing
else: another exception would be a 503 that Alertmanager retries for ever.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.alertmanager import WebhookError, labels_fingerprint, parse_webhook
from bridge.model import Notification
from support import FIXTURES, fixture_names, payload

Payload = dict[str, Any]


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def parse(data: Any) -> Notification:
    return parse_webhook(body(data))


def single(**alert_fields: Any) -> Payload:
    """The captured single-alert payload with some alert fields replaced."""
    data = payload("01_firing_single.json")
    data["alerts"][0].update(alert_fields)
    return data


# -- the captured payloads -----------------------------------------------------------------


@pytest.mark.parametrize("name", fixture_names())
def test_every_captured_payload_parses(name: str) -> None:
    """Each payload a real Alertmanager sent is accepted, field for field."""
    data = payload(name)
    n = parse(data)
    assert n.receiver == data["receiver"]
    assert n.status == data["status"]
    assert n.group_key == data["groupKey"]
    assert n.group_labels == data["groupLabels"]
    assert n.common_labels == data["commonLabels"]
    assert n.common_annotations == data["commonAnnotations"]
    assert n.external_url == data["externalURL"]
    assert n.truncated_alerts == data.get("truncatedAlerts", 0)
    assert len(n.alerts) == len(data["alerts"])
    for alert, raw in zip(n.alerts, data["alerts"], strict=True):
        assert alert.fingerprint == raw["fingerprint"]
        assert alert.status == raw["status"]
        assert alert.labels == raw["labels"]
        assert alert.annotations == raw.get("annotations", {})
        assert alert.generator_url == raw["generatorURL"]
        assert alert.starts_at.utcoffset() == timedelta(0)
        assert alert.ends_at is None or alert.ends_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("name", fixture_names())
def test_the_captured_bytes_parse_as_they_are(name: str) -> None:
    """The bytes exactly as Alertmanager sent them parse, the same as after a JSON round trip."""
    raw = (FIXTURES / name).read_bytes()
    assert parse_webhook(raw) == parse(payload(name))


# -- time ----------------------------------------------------------------------------------


def test_go_zero_time_means_not_ended() -> None:
    """Alertmanager's ``endsAt: 0001-01-01T00:00:00Z`` (Go's zero time) becomes None."""
    n = parse(payload("01_firing_single.json"))
    assert n.alerts[0].ends_at is None


@pytest.mark.parametrize(
    "ends", [None, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000000Z"], ids=str
)
def test_missing_null_or_zero_ends_at_is_none(ends: str | None) -> None:
    """No end time in any of its spellings is ``ends_at=None``."""
    data = single(endsAt=ends)
    if ends is None:
        del data["alerts"][0]["endsAt"]
    assert parse(data).alerts[0].ends_at is None


def test_a_real_end_time_is_kept() -> None:
    """A resolved alert's endsAt is kept, in UTC."""
    n = parse(payload("03_resolved_single.json"))
    assert n.alerts[0].ends_at == datetime(2026, 11, 26, 21, 23, 8, 585024, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-11-26T21:21:57.362313123Z",
            datetime(2026, 11, 26, 21, 21, 57, 362313, tzinfo=UTC),
        ),
        ("2026-11-26T21:21:57.1Z", datetime(2026, 11, 26, 21, 21, 57, 100000, tzinfo=UTC)),
        ("2026-11-26T21:21:57Z", datetime(2026, 11, 26, 21, 21, 57, tzinfo=UTC)),
        (
            "2026-11-26T22:21:57.999999999+01:00",
            datetime(2026, 11, 26, 21, 21, 57, 999999, tzinfo=UTC),
        ),
    ],
    ids=["nanoseconds", "tenths", "seconds", "offset-nanoseconds"],
)
def test_rfc3339_timestamps_with_any_precision(text: str, expected: datetime) -> None:
    """Go prints up to nine fractional digits; they parse (to microseconds), and any offset is
    read as the same instant in UTC (the engine compares times of one tzinfo only)."""
    starts = parse(single(startsAt=text, endsAt=text)).alerts[0]
    assert starts.starts_at == expected
    assert starts.ends_at == expected
    assert starts.starts_at.tzinfo is UTC
    assert starts.ends_at is not None
    assert starts.ends_at.tzinfo is UTC


def test_naive_timestamps_are_utc() -> None:
    """A timestamp without an offset is taken as UTC."""
    alert = parse(single(startsAt="2026-11-26T21:21:57", endsAt="2026-11-26T21:30:00")).alerts[0]
    assert alert.starts_at == datetime(2026, 11, 26, 21, 21, 57, tzinfo=UTC)
    assert alert.starts_at.tzinfo is not None
    assert alert.ends_at == datetime(2026, 11, 26, 21, 30, tzinfo=UTC)
    assert alert.ends_at is not None
    assert alert.ends_at.tzinfo is not None


@pytest.mark.parametrize(
    "starts",
    [
        pytest.param(
            "0001-01-01T00:00:00+01:00",
        ),
        pytest.param(
            "9999-12-31T23:00:00Z",
        ),
    ],
)
def test_timestamps_the_bridge_cannot_work_with_are_refused(starts: str) -> None:
    """A startsAt the bridge cannot store or compute deadlines from is bad input (400)."""
    with pytest.raises(WebhookError):
        parse_and_use(single(startsAt=starts))


def parse_and_use(data: Payload) -> None:
    """Parse, then do what the store and the engine do with every accepted timestamp."""
    for alert in parse(data).alerts:
        _ = alert.starts_at.astimezone(UTC)
        _ = alert.starts_at + timedelta(days=14)


# -- fingerprints and unknown fields -------------------------------------------------------


@pytest.mark.parametrize("fingerprint", [None, ""], ids=["missing", "empty"])
def test_missing_fingerprint_is_derived_from_the_labels(fingerprint: str | None) -> None:
    """Without a fingerprint the alert gets a stable 16-hex one computed from its labels."""
    data = single(fingerprint=fingerprint)
    if fingerprint is None:
        del data["alerts"][0]["fingerprint"]
    labels = data["alerts"][0]["labels"]
    fp = parse(data).alerts[0].fingerprint
    assert re.fullmatch(r"[0-9a-f]{16}", fp)
    assert fp == labels_fingerprint(labels)
    reordered = single(labels=dict(reversed(list(labels.items()))))
    del reordered["alerts"][0]["fingerprint"]
    assert parse(reordered).alerts[0].fingerprint == fp
    other = single(labels={**labels, "instance": "api-2:9100"})
    del other["alerts"][0]["fingerprint"]
    assert parse(other).alerts[0].fingerprint != fp


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param({"a": "b\x01c"}, {"a\x01b": "c"}, id="key-value"),
        pytest.param({"a": "1", "b": "2"}, {"a": "1\x00b\x012"}, id="pairs"),
        pytest.param({}, {"": ""}, id="empty"),
        pytest.param({"a": "1"}, {"a": "1", "b": ""}, id="extra-empty-label"),
    ],
)
def test_derived_fingerprints_do_not_collide_on_separator_tricks(
    a: dict[str, str], b: dict[str, str]
) -> None:
    """Different label sets get different fingerprints, even when built to look alike."""
    assert labels_fingerprint(a) != labels_fingerprint(b)


def test_unknown_fields_are_ignored() -> None:
    """Fields a newer Alertmanager adds (top level or per alert) never make a payload invalid."""
    data = payload("04_group_of_3_firing.json")
    data["newTopLevelField"] = {"nested": [1, 2, 3]}
    data["alerts"][0]["silencedBy"] = ["abc"]
    data["alerts"][1]["inhibitedBy"] = None
    n = parse(data)
    assert n == parse(payload("04_group_of_3_firing.json"))


# -- invalid payloads ----------------------------------------------------------------------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Payload], None]:
    def change(data: Payload) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(path: tuple[Any, ...]) -> Callable[[Payload], None]:
    def change(data: Payload) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


INVALID_CHANGES: list[Any] = [
    pytest.param(_set(("version",), "3"), "unsupported webhook version '3'", id="version-3"),
    pytest.param(_set(("version",), 4), "version", id="version-int"),
    pytest.param(_drop(("version",)), "version", id="no-version"),
    pytest.param(_drop(("alerts",)), "alerts", id="no-alerts"),
    pytest.param(_set(("alerts",), []), "alerts", id="empty-alerts"),
    pytest.param(_set(("alerts",), "x"), "alerts", id="alerts-string"),
    pytest.param(_set(("alerts",), {"0": {}}), "alerts", id="alerts-object"),
    pytest.param(_set(("alerts", 0), {}), "alerts.0", id="empty-alert"),
    pytest.param(_set(("alerts", 0), None), "alerts.0", id="null-alert"),
    pytest.param(_set(("alerts", 0, "status"), "pending"), "status", id="alert-status"),
    pytest.param(_set(("status",), "FIRING"), "status", id="group-status"),
    pytest.param(_drop(("receiver",)), "receiver", id="no-receiver"),
    pytest.param(_set(("receiver",), ["r"]), "receiver", id="receiver-list"),
    pytest.param(_drop(("groupKey",)), "groupKey", id="no-groupKey"),
    pytest.param(_set(("alerts", 0, "labels"), None), "labels", id="labels-null"),
    pytest.param(_set(("alerts", 0, "labels"), ["a"]), "labels", id="labels-list"),
    pytest.param(_set(("alerts", 0, "labels", "n"), 5), "labels", id="label-int"),
    pytest.param(_set(("alerts", 0, "annotations", "n"), None), "annotations", id="ann-null"),
    pytest.param(_set(("commonLabels", "n"), True), "commonLabels", id="common-bool"),
    pytest.param(_set(("groupLabels",), "x"), "groupLabels", id="group-labels-str"),
    pytest.param(_drop(("alerts", 0, "startsAt")), "startsAt", id="no-startsAt"),
    pytest.param(_set(("alerts", 0, "startsAt"), "yesterday"), "startsAt", id="startsAt-word"),
    pytest.param(_set(("alerts", 0, "startsAt"), None), "startsAt", id="startsAt-null"),
    pytest.param(
        _set(("alerts", 0, "startsAt"), 1764192117),
        "startsAt",
        id="startsAt-number",
    ),
    pytest.param(_set(("alerts", 0, "endsAt"), "never"), "endsAt", id="endsAt-word"),
    pytest.param(_set(("alerts", 0, "fingerprint"), 123), "fingerprint", id="fp-int"),
    pytest.param(_set(("alerts", 0, "generatorURL"), None), "generatorURL", id="url-null"),
    pytest.param(_set(("truncatedAlerts",), -1), "truncatedAlerts", id="truncated-negative"),
    pytest.param(_set(("truncatedAlerts",), "3"), "truncatedAlerts", id="truncated-string"),
    pytest.param(_set(("truncatedAlerts",), 1.5), "truncatedAlerts", id="truncated-float"),
    pytest.param(_set(("truncatedAlerts",), True), "truncatedAlerts", id="truncated-bool"),
]


@pytest.mark.parametrize(("change", "where"), INVALID_CHANGES)
def test_invalid_payloads_are_webhook_errors(change: Callable[[Payload], None], where: str) -> None:
    """A payload with a wrong or missing known field is refused, naming where it went wrong."""
    data = payload("01_firing_single.json")
    change(data)
    with pytest.raises(WebhookError) as caught:
        parse(data)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "malformed JSON"),
        (b"not json", "malformed JSON"),
        (b"{", "malformed JSON"),
        (b'{"version": "4",}', "malformed JSON"),
        (b"\xff\xfe\x00{", "malformed JSON"),
        (b"[" * 100_000, "malformed JSON"),  # nesting deeper than any parser should follow
        (b"null", "not an Alertmanager webhook"),
        (b"[]", "not an Alertmanager webhook"),
        (b"42", "not an Alertmanager webhook"),
        (b'"alerts"', "not an Alertmanager webhook"),
        (b"{}", "not an Alertmanager webhook"),
        (b'{"alerts": [{}]}', "not an Alertmanager webhook"),
    ],
    ids=repr,
)
def test_bodies_that_are_not_webhooks(raw: bytes, message: str) -> None:
    """Malformed JSON and JSON that is not a webhook object are told apart."""
    with pytest.raises(WebhookError, match=message):
        parse_webhook(raw)


# -- error messages never echo alert data --------------------------------------------------

SECRET = "s3cr3t-Bearer-ghp_0123456789abcdef"


def _with_secret(data: Payload) -> Payload:
    """Put the secret-looking value in every label and annotation map of the payload."""
    for alert in data["alerts"]:
        if isinstance(alert, dict):
            alert.setdefault("labels", {})["password"] = SECRET
            alert.setdefault("annotations", {})["token"] = SECRET
    data["commonLabels"]["password"] = SECRET
    data["groupLabels"]["password"] = SECRET
    data["commonAnnotations"]["token"] = SECRET
    return data


@pytest.mark.parametrize(
    "change",
    [
        _set(("alerts", 0, "labels", "n"), 5),
        _set(("alerts", 0, "labels", "password"), [SECRET]),
        _set(("alerts", 0, "annotations", "token"), {"value": SECRET}),
        _set(("alerts", 0, "startsAt"), SECRET),
        _set(("alerts", 0, "endsAt"), SECRET),
        _set(("alerts", 0, "status"), SECRET),
        _set(("status",), SECRET),
        _set(("receiver",), [SECRET]),
        _set(("truncatedAlerts",), SECRET),
        _set(("version",), "3"),
        _drop(("groupKey",)),
    ],
)
def test_error_messages_never_echo_label_values(change: Callable[[Payload], None]) -> None:
    """The 400's message names the field, never the values sent (they may hold secrets)."""
    data = _with_secret(payload("04_group_of_3_firing.json"))
    change(data)
    with pytest.raises(WebhookError) as caught:
        parse(data)
    assert SECRET not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


# -- hostile input -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _parse_or_webhook_error(raw: bytes) -> Notification | None:
    try:
        return parse_webhook(raw)
    except WebhookError as error:
        message = str(error)
    assert message  # a message the sender can act on
    return None


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_webhook_error(raw: bytes) -> None:
    """Any byte string is a notification or a WebhookError, never another exception."""
    _parse_or_webhook_error(raw)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_arbitrary_json_raises_only_webhook_error(value: Any) -> None:
    """Any JSON document (NaN and Infinity included) is a notification or a WebhookError."""
    _parse_or_webhook_error(json.dumps(value).encode())


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(fixture_names()), data=st.data())
def test_a_captured_payload_with_one_part_replaced_raises_only_webhook_error(
    name: str, data: st.DataObject
) -> None:
    """Replace any one part of a real payload by any JSON value: a result or a WebhookError."""
    doc = payload(name)
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    replacement = data.draw(json_values, label="replacement")
    _set(path, replacement)(doc)
    _parse_or_webhook_error(body(doc))


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=40),
    data=st.data(),
)
def test_error_messages_never_echo_a_label_value_anywhere(secret: str, data: st.DataObject) -> None:
    """Whatever goes wrong, a label or annotation value never appears in the error text."""
    value = f"secret-{secret}"
    doc = payload("04_group_of_3_firing.json")
    for alert in doc["alerts"]:
        alert["labels"]["credential"] = value
        alert["annotations"]["credential"] = value
    doc["commonLabels"]["credential"] = value
    doc["groupLabels"]["credential"] = value
    doc["commonAnnotations"]["credential"] = value
    paths = [p for p in _paths(doc) if p[-1] != "credential"]
    path = data.draw(st.sampled_from(paths), label="path")
    _set(path, data.draw(json_values, label="replacement"))(doc)
    message = ""
    try:
        parse(doc)
    except WebhookError as error:
        message = str(error)
    assert value not in message
