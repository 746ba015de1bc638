"""The baseline: a bare aiohttp webhook receiver that parses the same JSON and answers 200.

It does what any receiver must (read the body, parse it) and nothing the bridge adds
(validation, classification, the durable transaction). ``python -m bench.bare_receiver PORT``.
"""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    return web.json_response({"status": "accepted", "alerts": len(body.get("alerts", []))})


def main() -> None:
    app = web.Application()
    app.router.add_post("/api/v1/alerts", receive)
    app.router.add_get("/healthz", lambda _request: _ok())
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


async def _ok() -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    main()
