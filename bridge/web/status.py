"""The public status page: ``GET /status`` (HTML) and ``GET /status.json``.

Public text only: the ``public_summary`` annotation when an alert has one, else
"Service disruption: <service>". Never other labels, annotations, hostnames or internal links.
Posts follow the guide's template: Investigating while open, Monitoring once the alerts resolve,
Resolved after a quiet monitoring window. Never behind ``read_token``.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bridge.model import Incident
from bridge.store.base import StoreUnavailable
from bridge.web.services import services

_RECENT = timedelta(days=7)
_TEMPLATES = {
    "Investigating": "We are investigating reports of {what}.",
    "Monitoring": "A fix has been implemented and we are monitoring the situation: {what}.",
    "Resolved": "The issue has been resolved. All systems operational.",
}


def public_text(incident: Incident) -> str:
    """The only incident text the public may see."""
    for source in [incident.common_annotations, *(a.annotations for a in incident.alerts.values())]:
        text = source.get("public_summary", "").strip()
        if text:
            return text[:300]
    service = (
        incident.common_labels.get("service") or incident.group_labels.get("service", "")
    ).strip()
    return f"Service disruption: {service[:100]}" if service else "Service disruption"


def _posts(incident: Incident, now: datetime, window: timedelta) -> list[dict[str, Any]]:
    what = public_text(incident)
    posts = [
        {
            "status": "Investigating",
            "text": _TEMPLATES["Investigating"].format(what=what),
            "posted_at": incident.opened_at,
        }
    ]
    if incident.state == "resolved" and incident.resolved_at is not None:
        posts.append(
            {
                "status": "Monitoring",
                "text": _TEMPLATES["Monitoring"].format(what=what),
                "posted_at": incident.resolved_at,
            }
        )
        quiet_at = incident.resolved_at + window
        if now >= quiet_at:
            posts.append(
                {"status": "Resolved", "text": _TEMPLATES["Resolved"], "posted_at": quiet_at}
            )
    return posts


async def _public_incidents(request: web.Request) -> tuple[str, list[dict[str, Any]]]:
    svc = services(request)
    now = svc.clock()
    window = svc.config.status_page.monitoring_window
    rows = await svc.store.list_incidents(svc.repository, limit=200)
    items = []
    for row in rows:
        incident = row.incident
        if incident.kind != "incident":
            continue
        if (
            incident.state == "resolved"
            and incident.resolved_at
            and now - incident.resolved_at > _RECENT
        ):
            continue
        posts = _posts(incident, now, window)
        items.append(
            {
                "id": incident.display_id,
                "title": public_text(incident),
                "impact": "major" if incident.priority.rank <= 1 else "minor",
                "status": posts[-1]["status"],
                "posts": [{**p, "posted_at": p["posted_at"].isoformat()} for p in reversed(posts)],
            }
        )
    return svc.config.status_page.title, items


def _overall(items: list[dict[str, Any]]) -> str:
    active = [i for i in items if i["status"] != "Resolved"]
    if any(i["impact"] == "major" and i["status"] == "Investigating" for i in active):
        return "Major outage"
    if active:
        return "Degraded performance"
    return "All systems operational"


async def status_json(request: web.Request) -> web.Response:
    try:
        title, items = await _public_incidents(request)
    except StoreUnavailable:
        return web.json_response({"error": "status temporarily unavailable"}, status=503)
    return web.json_response({"title": title, "status": _overall(items), "incidents": items})


async def status_html(request: web.Request) -> web.Response:
    try:
        title, items = await _public_incidents(request)
    except StoreUnavailable:
        return web.Response(text="status temporarily unavailable", status=503)
    esc = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        "<style>",
        "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;",
        "color:#1f2328}h1{font-size:1.6rem}",
        ".overall{padding:1rem;border-radius:.5rem;background:#dafbe1}",
        ".overall.bad{background:#ffebe9}article{border-top:1px solid #d0d7de;padding:.8rem 0}",
        ".s{font-weight:600}time{color:#59636e;font-size:.9rem}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    overall = _overall(items)
    bad = " bad" if overall != "All systems operational" else ""
    parts.append(f'<p class="overall{bad}">{esc(overall)}</p>')
    if not items:
        parts.append("<p>No incidents in the last 7 days.</p>")
    for item in items:
        parts.append(f"<article><h2>{esc(item['title'])}</h2>")
        for post in item["posts"]:
            posted = esc(post["posted_at"])
            parts.append(
                f'<p><span class="s">{esc(post["status"])}</span> — {esc(post["text"])}<br>'
                f'<time datetime="{posted}">Posted {posted}</time></p>'
            )
        parts.append("</article>")
    parts.append("</body></html>")
    return web.Response(text="".join(parts), content_type="text/html")
