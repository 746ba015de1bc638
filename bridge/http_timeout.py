"""Outbound HTTP timeouts that mean what they say.

aiohttp rounds a timeout of 5 s or more up to the next whole second of the loop's clock (it
groups timers that way), so a 5 s timeout could hold an attempt for almost 6 s. The bridge
promises every outbound call gives up within its timeout (a lane held by a hung provider, a
shutdown inside Kubernetes' grace period), so its aiohttp clients (Slack, Twilio, the
Alertmanager API) take their timeout from here, with the rounding turned off.
"""

from __future__ import annotations

import math

import aiohttp


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A whole-request timeout of exactly ``seconds``: never rounded up."""
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)
