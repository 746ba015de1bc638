"""structlog set-up: JSON lines on stdout (or a console renderer for humans)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import orjson
import structlog

LogFormat = Literal["json", "console"]


def _dumps(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure(fmt: LogFormat = "json", level: int = logging.INFO) -> None:
    """Route structlog (and the standard library's logging) to stdout in ``fmt``."""
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(name)s %(message)s")
