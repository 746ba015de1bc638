"""``/healthz`` (alive), ``/readyz`` (store reachable, not shutting down), ``/metrics``."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.model import Priority
from bridge.store.base import OutboxStats, StoreUnavailable
from bridge.web.services import services


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    svc = services(request)
    if svc.shutting_down:
        return web.json_response({"status": "shutting down"}, status=503)
    try:
        await svc.store.ping()
    except StoreUnavailable as error:
        return web.json_response(
            {"status": "store unavailable", "error": str(error)[:200]}, status=503
        )
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    svc = services(request)
    m = svc.metrics
    try:
        if svc.exports_shared_gauges():
            stats = await svc.store.outbox_stats()
            counts = await svc.store.open_counts()
        else:  # another replica exports them: zeros here keep sums over replicas right
            stats, counts = OutboxStats(0, 0, 0, None), {}
    except StoreUnavailable:
        pass  # export what we have; the gauges keep their last values
    else:
        m.outbox_pending.set(stats.pending + stats.running)
        m.outbox_failed.set(stats.failed)
        age = (svc.clock() - stats.oldest_pending).total_seconds() if stats.oldest_pending else 0.0
        m.outbox_oldest_age.set(max(0.0, age))
        for priority in Priority:
            m.incidents_open.labels(priority=str(priority)).set(counts.get(str(priority), 0))
            queued = stats.by_priority.get(str(priority), 0)
            m.outbox_queue.labels(priority=str(priority)).set(queued)
    return web.Response(
        body=generate_latest(m.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )
