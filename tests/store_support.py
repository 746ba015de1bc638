"""Helpers for the store tests (both backends): notifications, the engine step, rebuilt incidents.

The engine runs for real inside the store's transaction, as the Ingestor does; only the rules
are a stand-in (``classify``) and time comes from a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bridge.clock import FakeClock
from bridge.engine import Decision, Policy, apply_notification
from bridge.identity import identity_key, identity_of
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority
from bridge.store.base import Store

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def classify(labels: Mapping[str, str], annotations: Mapping[str, str]) -> Classification:
    """A stand-in for the rules: the ``priority`` label, else P3; ``kind=maintenance``."""
    priority = Priority(labels.get("priority", "P3"))
    return Classification(
        priority, f"test {priority}", maintenance=labels.get("kind") == "maintenance"
    )


POLICY = Policy(
    classify=classify,
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def alert(
    fp: str = "a1",
    status: str = "firing",
    ends: datetime | None = None,
    labels: Mapping[str, str] | None = None,
) -> AlertSnapshot:
    return AlertSnapshot(
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]  # tests pass only "firing" / "resolved"
        labels={"alertname": "HighCPU", "instance": f"{fp}:9100", **(labels or {})},
        annotations={"summary": f"HighCPU on {fp}"},
        starts_at=T0,
        ends_at=ends,
        generator_url="",
    )


def note(*alerts: AlertSnapshot, group: str = "g1") -> Notification:
    firing = any(a.status == "firing" for a in alerts)
    return Notification(
        receiver="r",
        status="firing" if firing else "resolved",
        alerts=alerts,
        group_labels={"group": group},
        common_labels={"alertname": "HighCPU"},
        common_annotations={},
        external_url="",
        group_key=f'{{}}:{{group="{group}"}}',
        truncated_alerts=0,
    )


def resolved_note(group: str = "g1") -> Notification:
    return note(alert(status="resolved", ends=T0 + timedelta(minutes=5)), group=group)


def key_of(n: Notification) -> str:
    return identity_key(identity_of(n, "group_key"))


async def ingest(store: Store, clock: FakeClock, n: Notification) -> Decision:
    """What the Ingestor does: identity → key → engine inside the store's transaction."""
    identity = identity_of(n, "group_key")
    return await store.ingest(
        identity_key(identity),
        identity,
        lambda current: apply_notification(current, n, clock(), POLICY),
    )


async def opened(store: Store, clock: FakeClock, group: str = "g1", **labels: str) -> Incident:
    decision = await ingest(store, clock, note(alert(labels=labels), group=group))
    assert decision.outcome == "opened"
    assert decision.incident is not None
    return decision.incident


def numbers(incidents: list[Incident | None]) -> list[int]:
    """The incident numbers, sorted; every incident must have one."""
    found = [i.number for i in incidents if i is not None]
    assert None not in found
    return sorted(n for n in found if n is not None)


def rebuilt(clock: FakeClock, group: str, number: int, **labels: str) -> Incident:
    """An incident as ``rebuild`` reconstructs it from its GitHub issue: key, kind and number
    set, no store id yet."""
    n = note(alert(labels=labels), group=group)
    identity = identity_of(n, "group_key")
    incident = apply_notification(None, n, clock(), POLICY).incident
    assert incident is not None
    incident.key = identity_key(identity)
    incident.identity = identity
    incident.number = number
    return incident
