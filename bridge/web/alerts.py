"""``POST /api/v1/alerts``: the Alertmanager webhook.

200 only after the notification is durably stored. 400 for anything that is not an Alertmanager
v4 webhook (a body that cannot be decoded included), 401 for a missing or wrong bearer token,
413 above ``webhook.max_body_bytes``, 503 when the store cannot take it (Alertmanager retries
5xx, never 4xx). Every answer is counted by code and logged once.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from bridge.alertmanager import WebhookError, parse_webhook
from bridge.store import codec
from bridge.store.base import StoreUnavailable
from bridge.web.auth import bearer_ok
from bridge.web.body import BodyError, read_within
from bridge.web.services import Services, services

log = structlog.get_logger(__name__)


def _answer(
    svc: Services, status: int, started: float, body: dict[str, object], **fields: object
) -> web.Response:
    elapsed = time.perf_counter() - started
    svc.metrics.webhooks_by_code(str(status)).inc()
    svc.metrics.webhook_seconds.observe(elapsed)
    level = log.info if status < 500 else log.warning
    level("webhook", code=status, duration_ms=round(elapsed * 1000, 2), **fields)
    return web.json_response(body, status=status, dumps=codec.dumps)


async def receive_alerts(request: web.Request) -> web.Response:
    svc = services(request)
    started = time.perf_counter()
    token = svc.config.webhook.bearer_token
    if token is not None and not bearer_ok(request, token.get()):
        return _answer(svc, 401, started, {"error": "missing or wrong bearer token"})
    try:
        body = await read_within(request, svc.config.webhook.max_body_bytes)
    except BodyError as refused:
        return _answer(svc, refused.status, started, {"error": refused.error}, reason=refused.error)
    try:
        notification = parse_webhook(body)
    except WebhookError as error:
        return _answer(svc, 400, started, {"error": str(error)}, reason=str(error))
    fields: dict[str, object] = {
        "receiver": notification.receiver[:200],
        "group_key": notification.group_key[:500],
        "alerts": len(notification.alerts),
        "group_status": notification.status,
    }
    try:
        decision = await svc.ingestor.ingest(notification)
    except StoreUnavailable as error:
        return _answer(
            svc,
            503,
            started,
            {"error": "store unavailable, retry later"},
            reason=str(error),
            **fields,
        )
    except Exception as error:  # a bug must still make Alertmanager retry, not drop the alerts
        log.exception("webhook_failed")
        return _answer(
            svc,
            503,
            started,
            {"error": "internal error, retry later"},
            reason=type(error).__name__,
            **fields,
        )
    incident = decision.incident
    answer: dict[str, object] = {"status": "accepted", "outcome": decision.outcome}
    if incident is not None and incident.number is not None:
        answer["incident"] = incident.display_id
        answer["priority"] = str(incident.priority)
        fields["incident"] = incident.display_id
        fields["priority"] = str(incident.priority)
    return _answer(
        svc, 200, started, answer, outcome=decision.outcome, effects=len(decision.effects), **fields
    )
