"""The public status page: ``GET /status`` (HTML) and ``GET /status.json``.

Thin: reads the incidents from the store and hands them to ``bridge.status_page``, where the
posts, the availability bars and the HTML are made. Never behind ``read_token``; 404 with
``status_page.enabled: false``.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from bridge.report import episodes
from bridge.status_page import (
    StatusPage,
    Stretch,
    build_page,
    listed,
    page_json,
    render_html,
)
from bridge.store.base import StoreUnavailable
from bridge.web.services import services

# Enough for 90 days of incidents at ~30 a day; when a read is cut short, the days before the
# oldest incident read show as "no data" rather than as days without incidents.
READ_LIMIT = 3000
EVENTS_LIMIT = 500  # the timeline tail searched for a reopened incident's reopening
# Public pages are often put behind a cache; a short max-age keeps the lag well under a minute.
CACHE_CONTROL = "public, max-age=30"


async def _page(request: web.Request) -> StatusPage:
    svc = services(request)
    if not svc.config.status_page.enabled:
        raise web.HTTPNotFound()
    now = svc.clock()
    rows = await svc.store.list_incidents(svc.repository, limit=READ_LIMIT)
    incidents = [row.incident for row in rows]
    covered_from = None
    if len(rows) >= READ_LIMIT:
        covered_from = min(i.opened_at for i in incidents)
    reopened: dict[str, datetime] = {}
    labelled: dict[str, datetime] = {}
    stretches: dict[str, list[Stretch]] = {}
    for incident in incidents:
        if not incident.reopen_count or incident.id is None:
            continue
        events = await svc.store.load_events(incident.id, EVENTS_LIMIT)
        # Each episode at the priority it had (a P0 that came back as a P3 was a major outage
        # on its P0 days); from the incident's fields when the tail no longer holds its opening.
        spans = episodes(incident, events)
        stretches[incident.key] = [(e.opened, e.end, e.priority) for e in spans]
        if not listed(incident, now):
            continue
        times = [e.at for e in events if e.kind == "reopened"]
        if times:
            reopened[incident.key] = times[-1]
        # The episode's ``identified`` label, where the timeline is read anyway (elsewhere the
        # label's step acknowledged at the same moment, which the incident's fields show).
        identified = [
            e.at for e in events if e.kind == "identified" and e.at >= max(times, default=e.at)
        ]
        if identified:
            labelled[incident.key] = identified[0]
    return build_page(
        svc.config.status_page.title,
        incidents,
        now,
        svc.config.status_page.monitoring_window,
        reopened_at=reopened,
        covered_from=covered_from,
        labelled_at=labelled,
        stretches=stretches,
    )


async def status_json(request: web.Request) -> web.Response:
    try:
        page = await _page(request)
    except StoreUnavailable:
        return web.json_response({"error": "status temporarily unavailable"}, status=503)
    return web.json_response(page_json(page), headers={"Cache-Control": CACHE_CONTROL})


async def status_html(request: web.Request) -> web.Response:
    try:
        page = await _page(request)
    except StoreUnavailable:
        return web.Response(text="status temporarily unavailable", status=503)
    return web.Response(
        text=render_html(page), content_type="text/html", headers={"Cache-Control": CACHE_CONTROL}
    )
