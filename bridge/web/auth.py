"""Bearer-token checks in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web


def bearer_ok(request: web.Request, expected: str) -> bool:
    """True when the request carries ``Authorization: Bearer <expected>``."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())
