"""What people did on GitHub → the lifecycle steps of ``bridge/acknowledge.py``.

One place for the webhook handler (``bridge/web/github_events.py``) and the poller
(``bridge/github/poller.py``): each says what it saw — an assignment, a label, a comment, a
close, a reopening, a reported issue — and this finds the issue's incident and applies the
matching step through ``Ingestor.apply`` (one transaction on the incident's identity).

It also knows the bridge's own account (``whoami`` at start-up, retried in the background while
GitHub is down), so what the bridge itself does on GitHub is never taken for a person's doing;
nor is what a bot does (``person``: a ``[bot]`` login or GitHub's ``type: "Bot"``), such as an
auto-assign workflow assigning a code owner seconds after the issue opens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import structlog

from bridge import acknowledge as ack
from bridge.engine import Policy
from bridge.github.client import GitHubError, IssueTracker
from bridge.identity import identity_key
from bridge.ingest import Ingestor, Step
from bridge.model import Incident, Priority, TimelineEvent
from bridge.store.base import Store

log = structlog.get_logger(__name__)

Result = Literal["applied", "unchanged", "ignored", "not_incident", "own_account", "bot"]

_EVENTS_TAIL = 200  # timeline events read to find the current episode's start and identification
_LEARN_FIRST, _LEARN_MAX = 1.0, 300.0  # seconds between attempts to learn the login, doubling


class IssueObserver:
    """Applies people's actions on the repository's issues to their incidents."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        tracker: IssueTracker,
        *,
        repository: str,
        policy: Policy,
        priorities: dict[str, Priority],
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._tracker = tracker
        self.repository = repository
        self._policy = policy
        self._priorities = priorities
        self.login: str | None = None  # the bridge's own account on GitHub, once learnt
        self.known = False  # whether ``login`` has been learnt (None then means: no account)

    # -- the bridge's own account ------------------------------------------------------------

    async def learn_login(self) -> bool:
        """Ask GitHub who the bridge is (one attempt); False when GitHub did not say."""
        try:
            login = await self._tracker.whoami()
        except GitHubError as error:
            log.warning("github_identity_unknown", error=str(error))
            return False
        self.login, self.known = login, True
        log.info("github_identity", login=login)
        return True

    async def learn_forever(self) -> None:
        """Learn the login at start-up without holding start-up up: retried with backoff while
        GitHub does not answer (webhook deliveries meanwhile ask for it themselves)."""
        delay = _LEARN_FIRST
        while not self.known and not await self.learn_login():
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LEARN_MAX)

    def own(self, login: str | None) -> bool:
        """Whether ``login`` is the bridge's own account."""
        return ack.same_login(login, self.login)

    def person(self, login: str | None, user_type: str | None = None) -> bool:
        """Whether what ``login`` did is a person's doing: neither the bridge's own account
        nor a bot (``user_type``: GitHub's ``type`` of the user, when known)."""
        return ack.is_person(login, self.login, user_type)

    def _not_person(self, login: str | None, user_type: str | None) -> Result | None:
        """Why what ``login`` did is no person's doing (``own_account`` or ``bot``); None when
        it is a person's."""
        if self.own(login):
            return "own_account"
        return None if self.person(login, user_type) else "bot"

    # -- finding an issue's incident ---------------------------------------------------------

    async def incident_of(self, number: int) -> Incident | None:
        """The incident whose issue this is, if any."""
        return await self._store.incident_by_issue(self.repository, number)

    async def timeline(self, incident: Incident) -> list[TimelineEvent]:
        """The tail of the incident's timeline, oldest first."""
        if incident.id is None:
            return []
        return await self._store.load_events(incident.id, _EVENTS_TAIL)

    async def apply_to(self, incident: Incident, step: Step) -> Result:
        """Run ``step`` on ``incident`` (only that one: when a newer incident took its identity,
        nothing changes)."""
        decision = await self._ingestor.apply(
            incident.key, incident.identity, step, incident_id=incident.id
        )
        return "applied" if decision.changed else "unchanged"

    async def _apply(self, number: int, labels: Iterable[str], step: Step) -> Result:
        incident = await self.incident_of(number)
        if incident is not None:
            return await self.apply_to(incident, step)
        if any(label.lower() == ack.INCIDENT_LABEL for label in labels):
            # A reported issue adopted a moment ago, before its sync recorded the issue: it is
            # found by its stable identity.
            identity = ack.reported_identity(self.repository, number)
            decision = await self._ingestor.apply(identity_key(identity), identity, step)
            if decision.incident is not None:
                return "applied" if decision.changed else "unchanged"
        return "not_incident"

    # -- what people did ---------------------------------------------------------------------

    async def assigned(
        self,
        number: int,
        labels: Iterable[str],
        assignee: str,
        at: datetime | None = None,
        *,
        sender: str,
        sender_type: str | None = None,
        assignee_type: str | None = None,
    ) -> Result:
        """``sender`` assigned ``assignee`` to the issue: acknowledged by the assignee, when a
        person assigned a person (a bot's assignment, even of a person, acknowledges nothing)."""
        reason = self._not_person(sender, sender_type) or self._not_person(assignee, assignee_type)
        if reason is not None:
            return reason
        return await self._apply(number, labels, ack.acknowledge(assignee, "assigned", at))

    async def labelled(
        self,
        number: int,
        labels: Iterable[str],
        label: str,
        who: str,
        at: datetime | None = None,
        who_type: str | None = None,
    ) -> Result:
        """``who`` added ``label``: ``acknowledged`` acknowledges, ``identified`` identifies
        (and acknowledges), when ``who`` is a person; other labels mean nothing here."""
        name = label.lower()
        if name in ack.ACK_LABELS and (reason := self._not_person(who, who_type)) is not None:
            return reason
        if name == "acknowledged":
            return await self._apply(number, labels, ack.acknowledge(who, "label", at))
        if name == "identified":
            incident = await self.incident_of(number)
            before = incident is not None and ack.identified_in_episode(
                await self.timeline(incident)
            )
            return await self._apply(
                number, labels, ack.identify(who, at, identified_before=before)
            )
        return "ignored"

    async def commented(
        self,
        number: int,
        labels: Iterable[str],
        author: str,
        body: str,
        at: datetime | None = None,
        author_type: str | None = None,
    ) -> Result:
        """A comment: a human's acknowledges; the bridge's own (by its account or its marker)
        and a bot's are not a person's doing."""
        reason = self._not_person(author, author_type)
        if reason is not None:
            return reason
        if not ack.human_comment(author, body, self.login, author_type):
            return "own_account"  # the bridge's marker, under another account
        return await self._apply(number, labels, ack.acknowledge(author, "comment", at))

    async def closed(
        self, number: int, labels: Iterable[str], who: str, who_type: str | None = None
    ) -> Result:
        """``who`` closed the issue: resolved manually (a bot's close changes nothing)."""
        if (reason := self._not_person(who, who_type)) is not None:
            return reason
        return await self._apply(number, labels, ack.close_manually(who))

    async def reopened(
        self, number: int, labels: Iterable[str], who: str, who_type: str | None = None
    ) -> Result:
        """``who`` reopened the issue: open again (a bot's reopening changes nothing)."""
        if (reason := self._not_person(who, who_type)) is not None:
            return reason
        return await self._apply(number, labels, ack.reopen_manually(who))

    async def reported(
        self, number: int, title: str, author: str, labels: Iterable[str], body: str | None
    ) -> Result:
        """An issue labelled ``incident``: adopted once if people opened it to report one."""
        labels = frozenset(labels)
        if self.own(author):
            return "own_account"
        if await self.incident_of(number) is not None:
            return "unchanged"  # adopted (and synced) before, or one of the bridge's issues
        if not ack.reportable(labels, body, author, self.login):
            return "ignored"
        issue = ack.Report(self.repository, number, title, author, labels)
        identity = ack.reported_identity(self.repository, number)
        step = ack.report(issue, self._priorities, self._policy)
        decision = await self._ingestor.apply(identity_key(identity), identity, step)
        if decision.changed and decision.incident is not None:
            log.info(
                "github_issue_reported",
                issue=number,
                incident=decision.incident.display_id,
                priority=str(decision.incident.priority),
            )
        return "applied" if decision.changed else "unchanged"
