"""What every fake API server here shares: serving on 127.0.0.1, and injected faults.

A fake subclasses :class:`LoopbackServer` (building ``self.app`` and saying what its base URL
looks like) and keeps ``self.faults``, a list of its own :class:`Fault` subclass (whose
``response()`` speaks the service's error shape); its dispatcher hands each request to
:func:`with_faults`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web


@dataclass
class Fault:
    """An injected response for the next ``times`` requests matching ``method``/``path_regex``.

    ``method`` is an HTTP method or ``"*"``; ``path_regex`` is searched (``re.search``) in the
    request path, without the query string. With ``apply_first`` the request is processed
    normally (state changes happen) and only then replaced by the injected response. ``delay``
    waits before answering, ``drop`` closes the connection instead, ``status=0`` keeps the real
    response.
    """

    method: str
    path_regex: re.Pattern[str]
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    apply_first: bool = False
    delay: float = 0.0
    drop: bool = False
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        """Whether the fault has fired ``times`` times already."""
        return self.hits >= self.times

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        if self.exhausted or self.method not in ("*", method.upper()):
            return False
        return self.path_regex.search(path) is not None

    def response(self) -> web.Response:
        """The response to send in place of the real one (the service's error shape)."""
        raise NotImplementedError


F = TypeVar("F", bound=Fault)


def take_fault(faults: list[F], method: str, path: str) -> F | None:
    """The first pending fault for this request, counted as fired (and dropped when spent)."""
    for fault in faults:
        if fault.matches(method, path):
            fault.hits += 1
            if fault.exhausted:
                faults.remove(fault)
            return fault
    return None


async def _misbehave(request: web.Request, fault: Fault) -> web.StreamResponse | None:
    """Apply a fault's delay, drop or replacement; None keeps the real response."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.drop:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more is sent on this connection
    return fault.response() if fault.status else None


async def with_faults(
    request: web.Request,
    faults: list[F],
    handle: Callable[[], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """``handle`` the request, or a fault in its place: before it runs, or after it (with
    ``apply_first``: the change happened, the answer is lost, slow or replaced)."""
    fault = take_fault(faults, request.method, request.path)
    if fault is not None and not fault.apply_first:
        replaced = await _misbehave(request, fault)
        if replaced is not None:
            return replaced
    response = await handle()
    if fault is not None and fault.apply_first:
        replaced = await _misbehave(request, fault)
        if replaced is not None:
            return replaced
    return response


class LoopbackServer:
    """Serving ``self.app`` on 127.0.0.1; ``async with`` starts and stops it."""

    app: web.Application
    _runner: web.AppRunner | None = None
    _base_url: str | None = None

    def _url(self, host: str, port: int) -> str:
        """The base URL clients are given, once bound to ``host:port``."""
        return f"http://{host}:{port}"

    async def start(self, port: int = 0) -> None:
        """Start serving on 127.0.0.1 (an ephemeral port unless one is given, e.g. to come back
        on the same address after ``close()``)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = self._url(host, bound)

    async def close(self) -> None:
        """Stop serving (idempotent). State and the request log stay readable."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """Where the fake answers; see the subclass for its shape."""
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url
