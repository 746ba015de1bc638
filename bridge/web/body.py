"""Reading a request body under the bridge's limit (``webhook.max_body_bytes``), for both
webhooks (Alertmanager's and GitHub's)."""

from __future__ import annotations

from aiohttp import web


class BodyError(Exception):
    """The body cannot be taken: ``status`` 413 (larger than the limit) or 400 (it could not be
    read: a ``Content-Encoding`` it does not decode with), and the answer's ``error`` text."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


async def read_within(request: web.Request, limit: int) -> bytes:
    """The whole body, or BodyError. A declared length above the limit is refused before
    reading anything; otherwise aiohttp reads the body and stops past the application's
    ``client_max_size`` (the limit and a little more), so a body without a length is never held
    much beyond the limit either."""
    too_large = BodyError(413, f"body larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except web.RequestPayloadError:
        # Its text is aiohttp's, naming only the encoding: nothing the sender did not send.
        encoding = request.headers.get("Content-Encoding", "")[:40]
        raise BodyError(400, f"body could not be read (Content-Encoding: {encoding})") from None
    if len(body) > limit:
        raise too_large
    return body
