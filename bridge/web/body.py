"""Reading a request body under the bridge's limit (``webhook.max_body_bytes``), for both
webhooks (Alertmanager's and GitHub's)."""

from __future__ import annotations

from aiohttp import web


async def read_within(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` bytes. A declared length above
    the limit is refused before reading anything; otherwise aiohttp reads the body and stops past
    the application's ``client_max_size`` (the limit and a little more), so a body without a
    length is never held much beyond the limit either."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None
