"""The hidden state line each issue carries, read back by ``incident-bridge rebuild``."""

from __future__ import annotations

import base64
import dataclasses
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import snapshot
from bridge.engine import Policy, apply_notification
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label, else P3."""
    return Classification(Priority(labels.get("priority", "P3")), "test")


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def incident_of(
    count: int = 3, *, annotation: str = "disk almost full", labels: Mapping[str, str] = {}
) -> Incident:
    alerts = tuple(
        AlertSnapshot(
            fingerprint=f"fp{i:05d}",
            status="firing",
            labels={"alertname": "DiskFull", "instance": f"db-{i}:9100", **labels},
            annotations={"summary": annotation, "description": f"{annotation} #{i}"},
            starts_at=T0 + timedelta(seconds=i),
            ends_at=None,
            generator_url="http://prometheus:9090/graph",
        )
        for i in range(count)
    )
    note = Notification(
        receiver="bridge",
        status="firing",
        alerts=alerts,
        group_labels={"alertname": "DiskFull"},
        common_labels={"alertname": "DiskFull"},
        common_annotations={},
        external_url="http://alertmanager:9093",
        group_key='{}:{alertname="DiskFull"}',
        truncated_alerts=0,
    )
    decision = apply_notification(None, note, T0 + timedelta(minutes=1), POLICY)
    assert decision.incident is not None
    incident = decision.incident
    incident.key, incident.identity, incident.number = "ab" * 32, note.group_key, 42
    return incident


def test_an_incident_survives_the_round_trip() -> None:
    """Everything the store keeps comes back; ``updated_at`` is the caller's, ``id`` unset."""
    incident = incident_of()
    incident.acknowledged_at = T0 + timedelta(minutes=3)
    incident.acknowledged_by = "alice"
    incident.event_seq = 7
    line = snapshot.state_line(incident)
    later = T0 + timedelta(hours=1)
    back = snapshot.read_state_line(line, updated_at=later)
    assert back.id is None
    assert all(a.updated_at == later for a in back.alerts.values())
    expected = dataclasses.replace(
        incident,
        id=None,
        alerts={fp: dataclasses.replace(a, updated_at=later) for fp, a in incident.alerts.items()},
    )
    assert back == expected


def test_the_line_ignores_what_changes_without_anything_visible_changing() -> None:
    """A repeat refreshes each alert's ``updated_at``; the line stays the same, so no edit."""
    incident = incident_of()
    before = snapshot.state_line(incident)
    for a in incident.alerts.values():
        a.updated_at = T0 + timedelta(days=1)
    assert snapshot.state_line(incident) == before


def test_a_huge_group_is_cut_to_the_budget_keeping_firing_alerts() -> None:
    """5,000 alerts with long text: the line fits MAX_CHARS, keeps a prefix of the firing ones."""
    incident = incident_of(5000, annotation="x" * 300)
    line = snapshot.state_line(incident)
    assert len(line) <= snapshot.MAX_CHARS
    back = snapshot.read_state_line(line, updated_at=T0)
    assert 0 < len(back.alerts) < 5000
    assert set(back.alerts) <= set(incident.alerts)
    assert back.number == 42
    assert back.key == incident.key


def noise(chars: int, seed: int = 0) -> str:
    """``chars`` characters that do not compress (what zlib cannot shrink, the line must cut)."""
    seeded = random.Random(seed)  # noqa: S311 -- test data, not a secret
    return base64.urlsafe_b64encode(seeded.randbytes(chars)).decode()[:chars]


@pytest.mark.parametrize(
    "where",
    [
        "common annotation",
        "common label",
        "group label",
        "summary",
        "group key",
        "3,000 common annotations",
        "everything",
    ],
)
def test_a_group_with_huge_text_of_its_own_is_clipped_to_the_budget(where: str) -> None:
    """The alerts alone cannot make the line fit when the group's own labels or annotations
    are huge (150,000 characters that do not compress, within a 1 MiB webhook): that text is
    clipped until the line fits, and the line still reads back as the same incident."""
    incident = incident_of(1)
    big = noise(150_000)
    if where in ("common annotation", "everything"):
        incident.common_annotations = {"description": big}
    if where in ("common label", "everything"):
        incident.common_labels = {**incident.common_labels, "team": big}
    if where in ("group label", "everything"):
        incident.group_labels = {"alertname": "DiskFull", big[:5000]: big}
    if where in ("summary", "everything"):
        incident.summary = big
    if where in ("group key", "everything"):
        incident.group_key = big
    if where in ("3,000 common annotations", "everything"):
        incident.common_annotations = {f"a{i}": noise(50, i) for i in range(3000)}
    line = snapshot.state_line(incident)
    assert len(line) <= snapshot.MAX_CHARS
    back = snapshot.read_state_line(line, updated_at=T0)
    assert (back.key, back.number, back.priority, back.state) == (
        incident.key,
        42,
        incident.priority,
        "open",
    )
    assert back.opened_at == incident.opened_at
    # What is left of the text is the start of what was there.
    assert back.summary == incident.summary[: len(back.summary)]
    assert all(
        incident.common_annotations[name].startswith(value)
        for name, value in back.common_annotations.items()
    )


def test_ordinary_text_is_never_clipped() -> None:
    """Only a group whose own text cannot fit is clipped: 2,000 characters of description are
    kept whole."""
    incident = incident_of(3)
    incident.common_annotations = {"description": noise(2_000)}
    back = snapshot.read_state_line(snapshot.state_line(incident), updated_at=T0)
    assert back.common_annotations == incident.common_annotations


@pytest.mark.parametrize(
    "line",
    [
        "<!-- incident-bridge:state=v1:!!!not-base64 -->",
        "<!-- incident-bridge:state=v1:eJwrSS0uAQAEXQHB -->",  # valid zlib, not JSON
        "<!-- incident-bridge:state=v1: -->",
        "<!-- incident-bridge:state=v2:abc -->",
        "some text",
    ],
)
def test_a_damaged_or_foreign_line_is_refused(line: str) -> None:
    """A line edited by hand (or not ours) is a SnapshotError, never a crash."""
    with pytest.raises(snapshot.SnapshotError):
        snapshot.read_state_line(line, updated_at=T0)


def test_a_line_with_a_bad_field_is_refused() -> None:
    """Well-formed but wrong (an unknown priority) is refused too."""
    good = snapshot.state_line(incident_of(1))
    incident = incident_of(1)
    incident.priority = "P9"  # type: ignore[assignment]  # what a forged line could hold
    bad = snapshot.state_line(incident)
    assert good != bad
    with pytest.raises(snapshot.SnapshotError):
        snapshot.read_state_line(bad, updated_at=T0)


def test_find_state_line_takes_it_out_of_a_body() -> None:
    """The line is found among the rest of the body; a body without one gives None."""
    line = snapshot.state_line(incident_of(1))
    assert snapshot.find_state_line(f"# head\n{line}\nmore\n<!-- x -->") == line
    assert snapshot.find_state_line("no line here") is None


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200), value=st.text(max_size=100))
def test_hostile_alert_text_stays_inside_the_line(text: str, value: str) -> None:
    """Whatever the alert text, the line is one HTML comment of base64: no "-->", no newline,
    no "@", and it reads back to the same text."""
    incident = incident_of(2, annotation=text, labels={"team": value})
    line = snapshot.state_line(incident)
    inner = line[len(snapshot.PREFIX) : -len(snapshot.SUFFIX)]
    assert "-->" not in inner
    assert "\n" not in line
    assert "@" not in line
    back = snapshot.read_state_line(line, updated_at=T0)
    assert back.alerts["fp00000"].annotations["summary"] == text
    assert back.alerts["fp00000"].labels["team"] == value
