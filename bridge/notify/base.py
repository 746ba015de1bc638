"""What every channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bridge.model import Incident, Lane, TimelineEvent


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification to send: which incident, which event, to whom, and where it lives."""

    incident: Incident
    event: TimelineEvent
    recipient: str  # an email address, a phone number, or the Slack channel
    recipient_name: str = ""
    issue_url: str | None = None  # the incident's GitHub issue, once it exists
    # Channel state kept between messages of one incident (Slack's root message ts).
    state: dict[str, str] = field(default_factory=dict)
    priority_name: str = ""  # the rules' name of the incident's priority ("Critical")


@dataclass(frozen=True, slots=True)
class BundleItem:
    """One message storm control held back: its incident, its event, the issue link."""

    incident: Incident
    event: TimelineEvent
    issue_url: str | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    """One summary message to a person of everything held for them (oldest first)."""

    recipient: str
    items: tuple[BundleItem, ...]
    recipient_name: str = ""
    key: str = ""  # unique per bundle (the effect's id): the email's Message-ID


class Notifier(Protocol):
    """One channel. ``send`` raises EffectError (retryable or permanent) when it fails, with
    ``outcome_unknown`` when the message may have gone out anyway; it returns channel state to
    keep for the incident's later messages (or an empty dict)."""

    channel: Lane

    async def send(self, notice: Notice) -> dict[str, str]: ...

    async def close(self) -> None: ...


@runtime_checkable
class BundleNotifier(Notifier, Protocol):
    """A channel under storm control (email, SMS): it can also send a person's bundle, one
    message, classifying failures like ``send``."""

    async def send_bundle(self, bundle: Bundle) -> None: ...
