"""JSON encoding of incidents and events for the store backends (one format for both).

orjson writes datetimes as RFC 3339 and is several times faster than the standard library on
this, the hottest part of the write path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.model import AlertState, Incident, Priority, TimelineEvent


def ts(moment: datetime | None) -> str | None:
    """Aware datetime → ISO 8601 in UTC (None stays None)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).isoformat()


def dt(text: Any) -> datetime | None:
    """ISO 8601 → aware datetime (None stays None)."""
    return None if text is None else datetime.fromisoformat(str(text))


def _req_dt(text: Any) -> datetime:
    value = dt(text)
    if value is None:
        raise ValueError("missing timestamp")
    return value


def epoch(moment: datetime) -> float:
    """Seconds since the epoch: the form of every timestamp the store compares in SQL."""
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _alert_to_dict(alert: AlertState) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at,
        "ends_at": alert.ends_at,
        "generator_url": alert.generator_url,
        "priority": str(alert.priority),
        "rule": alert.rule,
        "updated_at": alert.updated_at,
        "resolved_by_absence": alert.resolved_by_absence,
    }


def _alert_from_dict(data: dict[str, Any]) -> AlertState:
    return AlertState(
        fingerprint=data["fingerprint"],
        status=data["status"],
        labels=data["labels"],
        annotations=data["annotations"],
        starts_at=_req_dt(data["starts_at"]),
        ends_at=dt(data["ends_at"]),
        generator_url=data["generator_url"],
        priority=Priority(data["priority"]),
        rule=data["rule"],
        updated_at=_req_dt(data["updated_at"]),
        resolved_by_absence=data["resolved_by_absence"],
    )


def incident_to_json(incident: Incident) -> str:
    data = {
        "key": incident.key,
        "identity": incident.identity,
        "kind": incident.kind,
        "receiver": incident.receiver,
        "group_key": incident.group_key,
        "group_labels": incident.group_labels,
        "state": incident.state,
        "priority": str(incident.priority),
        "priority_rule": incident.priority_rule,
        "summary": incident.summary,
        "opened_at": incident.opened_at,
        "earliest_starts_at": incident.earliest_starts_at,
        "respond_by": incident.respond_by,
        "resolve_by": incident.resolve_by,
        "alerts": [_alert_to_dict(a) for a in incident.alerts.values()],
        "common_labels": incident.common_labels,
        "common_annotations": incident.common_annotations,
        "external_url": incident.external_url,
        "maintenance_type": incident.maintenance_type,
        "truncated_alerts": incident.truncated_alerts,
        "resolved_at": incident.resolved_at,
        "resolution": incident.resolution,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledged_by": incident.acknowledged_by,
        "manual_hold": incident.manual_hold,
        "reopen_count": incident.reopen_count,
        "event_seq": incident.event_seq,
        "acknowledged_via": incident.acknowledged_via,
        "response_breached_at": incident.response_breached_at,
        "resolution_breached_at": incident.resolution_breached_at,
        "escalations": incident.escalations,
        "next_escalation_at": incident.next_escalation_at,
        "paused_at": incident.paused_at,
        "flips": incident.flips,
        "flapping": incident.flapping,
        "quiet_until": incident.quiet_until,
        "reported_issue": incident.reported_issue,
        "review_requested_at": incident.review_requested_at,
    }
    return orjson.dumps(data).decode()


def incident_from_json(text: str, *, row_id: int, number: int) -> Incident:
    data = orjson.loads(text)
    alerts = [_alert_from_dict(a) for a in data["alerts"]]
    return Incident(
        key=data["key"],
        identity=data["identity"],
        kind=data["kind"],
        receiver=data["receiver"],
        group_key=data["group_key"],
        group_labels=data["group_labels"],
        state=data["state"],
        priority=Priority(data["priority"]),
        priority_rule=data["priority_rule"],
        summary=data["summary"],
        opened_at=_req_dt(data["opened_at"]),
        earliest_starts_at=_req_dt(data["earliest_starts_at"]),
        respond_by=dt(data["respond_by"]),
        resolve_by=dt(data["resolve_by"]),
        alerts={a.fingerprint: a for a in alerts},
        common_labels=data["common_labels"],
        common_annotations=data["common_annotations"],
        external_url=data["external_url"],
        maintenance_type=data["maintenance_type"],
        truncated_alerts=data["truncated_alerts"],
        resolved_at=dt(data["resolved_at"]),
        resolution=data["resolution"],
        acknowledged_at=dt(data["acknowledged_at"]),
        acknowledged_by=data["acknowledged_by"],
        manual_hold=data["manual_hold"],
        reopen_count=data["reopen_count"],
        event_seq=data["event_seq"],
        # Added later (on-call lifecycle): absent from documents written before.
        acknowledged_via=data.get("acknowledged_via"),
        response_breached_at=dt(data.get("response_breached_at")),
        resolution_breached_at=dt(data.get("resolution_breached_at")),
        escalations=data.get("escalations", 0),
        next_escalation_at=dt(data.get("next_escalation_at")),
        paused_at=dt(data.get("paused_at")),
        flips=[_req_dt(x) for x in data.get("flips", ())],
        flapping=data.get("flapping", False),
        quiet_until=dt(data.get("quiet_until")),
        reported_issue=data.get("reported_issue"),
        review_requested_at=dt(data.get("review_requested_at")),
        id=row_id,
        number=number,
    )


def event_data_to_json(event: TimelineEvent) -> str:
    return orjson.dumps(event.data).decode()


def event_from_row(seq: int, at: str, kind: str, text: str, data: str) -> TimelineEvent:
    return TimelineEvent(
        seq=seq,
        at=_req_dt(at),
        kind=kind,  # type: ignore[arg-type]  # the store only holds kinds the engine wrote
        text=text,
        data=orjson.loads(data),
    )


def dumps(value: Any) -> str:
    """Any JSON value → text (orjson)."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes) -> Any:
    """JSON text → value (orjson)."""
    return orjson.loads(text)
