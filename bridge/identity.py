"""Incident identity: which Alertmanager alert group a notification belongs to."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from bridge.model import Notification

IdentityMode = Literal["group_key", "group_labels"]


def identity_of(notification: Notification, mode: IdentityMode) -> str:
    """The identity string: the receiver plus the groupKey (default) or the sorted groupLabels.

    ``group_key`` matches Alertmanager's own notification log; ``group_labels`` survives edits
    of the route tree (which change the groupKey) at the price of merging groups that share
    labels across routes of the same receiver.
    """
    if mode == "group_labels":
        labels = json.dumps(sorted(notification.group_labels.items()), separators=(",", ":"))
        return f"{notification.receiver}\x00labels\x00{labels}"
    return f"{notification.receiver}\x00key\x00{notification.group_key}"


def identity_key(identity: str) -> str:
    """sha256 hex of the identity: the store's lookup key and the issue marker's ``key=``."""
    return hashlib.sha256(identity.encode()).hexdigest()
