"""What the handlers share, behind one typed application key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from bridge.clock import Clock
from bridge.config import Config
from bridge.ingest import Ingestor
from bridge.metrics import Metrics
from bridge.store.base import Store


@dataclass(slots=True)
class Services:
    config: Config
    clock: Clock
    metrics: Metrics
    store: Store
    ingestor: Ingestor
    repository: str  # the repository whose issue numbers the API shows
    shutting_down: bool = False
    labels_ready: asyncio.Event = field(default_factory=asyncio.Event)  # start-up labels exist
    # Whether this replica exports the gauges read from the shared database (outbox, open
    # incidents): on PostgreSQL only the GitHub writer does, the others export 0, so a sum over
    # replicas counts each incident and effect once.
    exports_shared_gauges: Callable[[], bool] = lambda: True


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
