"""Flapping: an alert group that fires and resolves too often. Pure: no I/O, time passed in.

A *flip* is an incident going from firing to every alert resolved (a resolution, or the start of
a flapping incident's quiet period) or from every alert resolved back to firing (a reopening, or
a re-fire during the quiet period). Only the flips of the last ``flapping.window`` count; more
than ``flapping.max_flips`` of them make the incident *flapping*: labelled ``flapping``, its
alerts coming and going no longer told one by one on Slack (bridge/notify/policy.py) but in one
summary (the ``flapping`` event), and its close deferred — when every alert resolves the
incident stays open until ``quiet_until`` (the flap window later); a re-fire cancels that, and
the engine's ``settle_flapping`` timer step closes it once the quiet period has passed.

The engine (bridge/engine.py) calls these at each flip; only incidents flap, never maintenance
requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.durations import format_duration
from bridge.model import Incident


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    """``flapping`` from the configuration."""

    max_flips: int = 3
    window: timedelta = timedelta(hours=1)


def recent_flips(flips: list[datetime], now: datetime, window: timedelta) -> list[datetime]:
    """The flips within the window ending ``now``: later than ``now - window`` (a flip exactly
    one window old has left it)."""
    return [at for at in flips if now - window < at <= now]


def record_flip(incident: Incident, now: datetime, policy: FlapPolicy) -> bool:
    """Record a flip at ``now`` on ``incident`` (a copy the caller owns), forgetting flips that
    left the window. Returns True when this flip makes the incident flapping."""
    incident.flips = [*recent_flips(incident.flips, now, policy.window), now]
    if incident.flapping or len(incident.flips) <= policy.max_flips:
        return False
    incident.flapping = True
    return True


def flapping_text(flips: int, policy: FlapPolicy) -> str:
    """The one summary told when an incident starts flapping."""
    window = format_duration(policy.window)
    return (
        f"Flapping: fired and resolved {flips} times in {window}; notifications damped"
        f" until quiet for {window}"
    )
