"""``GET /api/v1/incidents``: incidents as JSON, behind ``api.read_token`` when set."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from bridge.model import Incident
from bridge.store.base import IncidentRow, StoreUnavailable
from bridge.web.auth import bearer_ok
from bridge.web.services import services


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def sla_state(incident: Incident) -> str | None:
    """``breached`` once a deadline was missed (it stays so for the episode), else ``paused``
    while a silence holds the deadlines, else ``ok``; None for what has no deadlines
    (maintenance requests, storm roll-ups)."""
    if incident.kind != "incident":
        return None
    if incident.response_breached_at is not None or incident.resolution_breached_at is not None:
        return "breached"
    if incident.paused_at is not None:
        return "paused"
    return "ok"


def incident_json(row: IncidentRow) -> dict[str, Any]:
    incident = row.incident
    return {
        "id": incident.display_id,
        "kind": incident.kind,
        "issue_number": row.issue_number,
        "issue_url": row.issue_url or None,
        "title": incident.summary,
        "priority": str(incident.priority),
        "priority_rule": incident.priority_rule,
        "state": incident.state,
        "opened_at": _iso(incident.opened_at),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_via": incident.acknowledged_via,
        "resolved_at": _iso(incident.resolved_at),
        "resolution": incident.resolution,
        "respond_by": _iso(incident.respond_by),
        "resolve_by": _iso(incident.resolve_by),
        "sla": sla_state(incident),
        "response_breached_at": _iso(incident.response_breached_at),
        "resolution_breached_at": _iso(incident.resolution_breached_at),
        "escalations": incident.escalations,
        "next_escalation_at": _iso(incident.next_escalation_at),
        "paused": incident.paused_at is not None,
        "paused_at": _iso(incident.paused_at),
        "alerts_firing": len(incident.firing_alerts()),
        "alerts_total": len(incident.alerts),
        "receiver": incident.receiver,
        "group_labels": incident.group_labels,
    }


async def list_incidents(request: web.Request) -> web.Response:
    svc = services(request)
    token = svc.config.api.read_token
    if token is not None and not bearer_ok(request, token.get()):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    state = request.query.get("state")
    if state not in (None, "open", "resolved"):
        return web.json_response({"error": "state must be open or resolved"}, status=400)
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "100"))))
    except ValueError:
        return web.json_response({"error": "limit must be a number"}, status=400)
    try:
        rows = await svc.store.list_incidents(svc.repository, limit=limit, state=state)
    except StoreUnavailable:
        return web.json_response({"error": "store unavailable"}, status=503)
    return web.json_response([incident_json(row) for row in rows])
