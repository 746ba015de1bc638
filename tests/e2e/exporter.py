"""A tiny metrics exporter of ours: ``GET /metrics`` in Prometheus' text format, served by aiohttp
on 127.0.0.1, with values the test sets while Prometheus scrapes it.

    async with Exporter(active_users=2000) as shop:
        ...  # scrape_configs target: shop.target
        shop.set("active_users", 6000)  # the next scrape sees it
        shop.failing = True  # scrapes get 503: Prometheus records up == 0 for the target

Every metric is a gauge; a sample may carry labels (``shop.set("pg_up", 0, db="orders")``).
Prometheus adds ``job`` and ``instance`` (and the scrape config's target labels) itself.
"""

from __future__ import annotations

from aiohttp import web

from fakes.loopback import LoopbackServer

Sample = tuple[str, tuple[tuple[str, str], ...]]  # name, sorted labels


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exporter(LoopbackServer):
    """Gauges on ``/metrics``; ``failing`` makes every scrape a 503 (the target is down)."""

    def __init__(self, **gauges: float) -> None:
        self._samples: dict[Sample, float] = {}
        self.failing = False
        """When true, ``/metrics`` answers 503: Prometheus' ``up`` for the target becomes 0."""
        self.scrapes = 0
        """Scrapes answered with metrics (not counting failed ones)."""
        for name, value in gauges.items():
            self.set(name, value)
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set the gauge ``name`` (with these labels) to ``value`` from the next scrape on."""
        self._samples[(name, tuple(sorted(labels.items())))] = float(value)

    @property
    def target(self) -> str:
        """``127.0.0.1:PORT``: the scrape target, as Prometheus' static_configs want it."""
        return self.base_url.removeprefix("http://")

    def exposition(self) -> str:
        """The text ``/metrics`` serves: each gauge's TYPE line, then its samples."""
        lines: list[str] = []
        typed: set[str] = set()
        for (name, labels), value in sorted(self._samples.items()):
            if name not in typed:
                typed.add(name)
                lines.append(f"# TYPE {name} gauge")
            shown = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
            lines.append(f"{name}{{{shown}}} {value!r}" if shown else f"{name} {value!r}")
        return "\n".join(lines) + "\n"

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.Response(status=503, text="exporter down (set by the test)\n")
        self.scrapes += 1
        return web.Response(text=self.exposition(), content_type="text/plain", charset="utf-8")
