"""Without ``github.webhook_secret``: poll the incident issues, so no acknowledgement goes unseen.

Every open incident's issue — and, for ``github.reopen_window`` after its resolution, a resolved
one's, which people may reopen — is read with a conditional request (``If-None-Match`` with the
ETag of the last read): an unchanged issue answers 304, which costs no rate limit. P0/P1
incidents' issues are read every ``github.poll.urgent`` (1 min), the others every
``github.poll.other`` (5 min). The open issues labelled ``incident`` are listed the same way
(conditional, every ``github.poll.urgent``) to adopt the ones people opened (reported incidents).

A changed issue is compared with what the bridge last wrote to it (its ``IssueRecord``) and with
the incident: closed or reopened by someone else, assigned, labelled ``acknowledged`` or
``identified``, commented on by a human since the current episode began. Who did it comes from
the issue's events (``closed_by``, the ``assigned`` / ``labeled`` / ``reopened`` events) and the
comments' authors; what the bridge's own account or a bot (a ``[bot]`` login, or GitHub's
``type: "Bot"`` where the answer carries it) did is never a person's doing. Each finding
goes through the same steps as the webhook (``bridge/github/observe.py``), so the two paths
cannot disagree and a finding seen twice changes nothing the second time.

Only the replica holding the GitHub writer lease polls (one request at a time per token, with
the outbox's requests, through the same tracker). What the poller remembers (ETags, when each
issue is next due) is in memory: after a restart the first round reads every issue in full. A
failed request is logged and counted, and the issue is read again at its next turn; nothing
stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from bridge import acknowledge as ack
from bridge.clock import Clock
from bridge.github.client import GitHubError, IssueEvent, IssueTracker, RemoteIssue
from bridge.github.observe import IssueObserver
from bridge.ingest import Step
from bridge.metrics import Metrics
from bridge.model import Incident
from bridge.store.base import IssueRecord, Store, StoreUnavailable

log = structlog.get_logger(__name__)

Gate = Callable[[bool], Awaitable[bool]]

_MAX_WAIT = 5.0  # seconds: the longest sleep between rounds (a new incident is watched soon)
_OPEN_LIMIT = 1000  # open incidents watched at most
_RESOLVED_LIMIT = 500  # recently resolved incidents looked at for reopenings


@dataclass(slots=True)
class _Watch:
    """What the poller remembers of one issue."""

    etag: str | None = None
    next_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    incident_id: int
    number: int
    urgent: bool


def _latest(events: Sequence[IssueEvent], kind: str, since: datetime) -> IssueEvent | None:
    """The newest ``kind`` event since ``since`` (who closed or reopened the issue last)."""
    for event in reversed(events):
        if event.event == kind and (event.created_at is None or event.created_at >= since):
            return event
    return None


def _first(
    events: Sequence[IssueEvent],
    kind: str,
    since: datetime,
    by: Callable[[IssueEvent], bool],
    *,
    label: str | None = None,
    assignees: Sequence[str] = (),
) -> IssueEvent | None:
    """The earliest ``kind`` event since ``since`` (for a label, or one of the assignees) that
    ``by`` accepts (a person's doing): the first acknowledgement wins."""
    wanted = {a.lower() for a in assignees}
    for event in events:  # oldest first
        if event.event != kind or (event.created_at is not None and event.created_at < since):
            continue
        if label is not None and (event.label or "").lower() != label:
            continue
        if wanted and (event.assignee or "").lower() not in wanted:
            continue
        if by(event):
            return event
    return None


class Poller:
    """Polls the incident issues and applies what people did; ``run_once`` is one round."""

    def __init__(
        self,
        store: Store,
        tracker: IssueTracker,
        observer: IssueObserver,
        clock: Clock,
        metrics: Metrics,
        *,
        urgent: timedelta,
        other: timedelta,
        reopen_window: timedelta,
        gate: Gate | None = None,
        max_wait: float = _MAX_WAIT,
    ) -> None:
        self._store = store
        self._tracker = tracker
        self._observer = observer
        self._clock = clock
        self._metrics = metrics
        self._urgent = urgent
        self._other = other
        self._reopen_window = reopen_window
        self._gate = gate
        self._max_wait = max_wait
        self._watches: dict[int, _Watch] = {}
        self._list = _Watch()  # the open issues labelled ``incident``
        self._wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def watched(self) -> dict[int, datetime | None]:
        """Issue number → when it is next read (None: at the next round)."""
        return {number: watch.next_at for number, watch in self._watches.items()}

    async def run_once(self) -> int:
        """One round: read every watched issue whose turn has come, and the list of open
        ``incident`` issues when its turn has come. Returns how many requests it made."""
        if self._gate is not None and not await self._gate(False):
            return 0  # another replica is the GitHub writer: it polls
        if not self._observer.known and not await self._observer.learn_login():
            return 0  # without knowing its own login it would take its doing for people's
        now = self._clock()
        targets = await self._targets(now)
        self._watches = {n: w for n, w in self._watches.items() if n in targets}
        requests = 0
        due = [t for n, t in targets.items() if self._due(self._watches.get(n), now)]
        for target in sorted(due, key=lambda t: (not t.urgent, t.number)):
            if self._stopping:
                return requests
            watch = self._watches.setdefault(target.number, _Watch())
            watch.next_at = now + (self._urgent if target.urgent else self._other)
            requests += 1
            try:
                await self._poll(target, watch)
            except GitHubError as error:
                self._metrics.github_polls.labels(result="error").inc()
                log.warning("github_poll_failed", issue=target.number, error=str(error))
                if error.retry_after is not None:
                    break  # rate-limited: the rest wait for their next turn
            except StoreUnavailable:
                raise  # the round cannot go on; run_forever logs it and tries again
            except Exception:  # one unreadable issue must not stop the others' polling
                self._metrics.github_polls.labels(result="error").inc()
                log.exception("github_poll_crashed", issue=target.number)
        if self._due(self._list, now):
            self._list.next_at = now + self._urgent
            requests += 1
            try:
                await self._poll_reported()
            except GitHubError as error:
                self._metrics.github_polls.labels(result="error").inc()
                log.warning("github_poll_failed", issue="reported", error=str(error))
        return requests

    async def run_forever(self) -> None:
        """Rounds until ``stop()``; between them, sleep until the next issue's turn (at most
        ``max_wait``)."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
            except StoreUnavailable as error:
                log.warning("github_poll_store_unavailable", error=str(error))
            except Exception:  # a bug must not stop the polling for good
                log.exception("github_poll_crashed")
            timeout = self._max_wait
            turns = [w.next_at for w in [*self._watches.values(), self._list] if w.next_at]
            if turns:
                wait = (min(turns) - self._clock()).total_seconds()
                timeout = min(timeout, max(wait, 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    @staticmethod
    def _due(watch: _Watch | None, now: datetime) -> bool:
        return watch is None or watch.next_at is None or watch.next_at <= now

    async def _targets(self, now: datetime) -> dict[int, _Target]:
        """Open incidents' issues, and those of incidents resolved within the reopen window.
        Read from the store's indexed columns every round (under a storm, every few seconds
        over a thousand incidents): decoding each incident here had held the GIL for tens of
        milliseconds a round, beside the webhooks. Only an issue that changed loads its
        incident (``_poll``)."""
        watched = await self._store.watched_issues(
            self._observer.repository,
            resolved_since=now - self._reopen_window,
            open_limit=_OPEN_LIMIT,
            resolved_limit=_RESOLVED_LIMIT,
        )
        targets: dict[int, _Target] = {}
        for issue in watched:
            target = _Target(issue.incident_id, issue.issue_number, issue.urgent)
            targets.setdefault(issue.issue_number, target)
        return targets

    async def _poll(self, target: _Target, watch: _Watch) -> None:
        remote = await self._tracker.get_issue(target.number, watch.etag)
        if remote is None:
            self._metrics.github_polls.labels(result="unchanged").inc()
            return
        watch.etag = remote.etag
        self._metrics.github_polls.labels(result="changed").inc()
        incident = await self._store.load_incident(target.incident_id)
        record = await self._store.issue_record(target.incident_id, self._observer.repository)
        if incident is None or record is None:
            return
        found = await self._reconcile(incident, record, remote)
        if found:
            log.info("github_poll", issue=target.number, found=found)

    async def _reconcile(
        self, incident: Incident, record: IssueRecord, remote: RemoteIssue
    ) -> list[str]:
        """Apply what people did to the issue since the bridge last wrote it; returns what was
        applied, for the log."""
        person = self._observer.person
        found: list[str] = []
        events: list[IssueEvent] | None = None

        async def issue_events() -> list[IssueEvent]:
            nonlocal events
            if events is None:
                events = await self._tracker.issue_events(remote.number)
            return events

        async def apply(what: str, step: Step) -> None:
            if await self._observer.apply_to(incident, step) == "applied":
                found.append(what)

        if remote.state == "closed" and record.state == "open":
            if incident.state == "open" or incident.resolution != "manual":
                closer, closer_type = remote.closed_by, remote.closed_by_type
                if closer is None:
                    closed = _latest(await issue_events(), "closed", incident.opened_at)
                    if closed is not None:
                        closer, closer_type = closed.actor, closed.actor_type
                if closer is not None and person(closer, closer_type):
                    await apply("closed", ack.close_manually(closer))
            return found
        if remote.state == "open" and record.state == "closed" and incident.state == "resolved":
            reopened = _latest(await issue_events(), "reopened", incident.opened_at)
            who = reopened.actor if reopened is not None else None
            if who is None or person(who, reopened.actor_type if reopened else None):
                await apply("reopened", ack.reopen_manually(who or "someone on GitHub"))
                loaded = await self._store.load_incident(incident.id or 0)
                incident = loaded or incident
        if remote.state != "open" or incident.state != "open":
            return found
        found += await self._acknowledgement(incident, record, remote, issue_events)
        return found

    async def _acknowledgement(
        self,
        incident: Incident,
        record: IssueRecord,
        remote: RemoteIssue,
        issue_events: Callable[[], Awaitable[list[IssueEvent]]],
    ) -> list[str]:
        """Assigned, labelled ``acknowledged`` / ``identified``, or commented on by a human in
        the current episode: the earliest acknowledges (the first acknowledgement wins)."""
        person = self._observer.person
        timeline = await self._observer.timeline(incident)
        start = ack.episode_started(incident, timeline)
        if (
            incident.reported_issue is not None
            and start == incident.opened_at
            and remote.created_at is not None
        ):
            # People assign, label and comment as they open an issue, before a poll adopts it:
            # a reported incident's first episode began with its issue.
            start = min(start, remote.created_at)
        labels = {label.lower() for label in remote.labels}
        needs_ack = incident.acknowledged_at is None
        identify = "identified" in labels and not ack.identified_in_episode(timeline)
        candidates: list[tuple[datetime, str, ack.AckVia]] = []  # (when, who, via)

        def by_person(event: IssueEvent) -> bool:
            return bool(event.actor) and person(event.actor, event.actor_type)

        if needs_ack and remote.assignees:
            assigned = _first(
                await issue_events(),
                "assigned",
                start,
                lambda e: by_person(e) and bool(e.assignee) and person(e.assignee),
                assignees=remote.assignees,
            )
            if assigned is not None and assigned.assignee:
                candidates.append(
                    (assigned.created_at or self._clock(), assigned.assignee, "assigned")
                )
        if needs_ack and "acknowledged" in labels and "acknowledged" not in record.labels:
            labelled = _first(
                await issue_events(), "labeled", start, by_person, label="acknowledged"
            )
            if labelled is not None and labelled.actor:
                candidates.append((labelled.created_at or self._clock(), labelled.actor, "label"))
        identified: IssueEvent | None = None
        if identify:
            identified = _first(
                await issue_events(), "labeled", start, by_person, label="identified"
            )
        if needs_ack and remote.comments:
            for comment in await self._tracker.list_comments(remote.number, start):
                at = comment.created_at or self._clock()
                if at >= start and ack.human_comment(
                    comment.author, comment.body, self._observer.login, comment.author_type
                ):
                    candidates.append((at, comment.author, "comment"))
                    break
        found: list[str] = []
        earliest = min(candidates, default=None)
        identified_at = identified.created_at or self._clock() if identified else None
        if earliest is not None and (identified_at is None or earliest[0] <= identified_at):
            at, who, via = earliest
            at = max(at, incident.opened_at)  # done before the adoption: acknowledged at once
            if await self._observer.apply_to(incident, ack.acknowledge(who, via, at)) == "applied":
                found.append(f"acknowledged ({via})")
        if identified is not None and identified.actor:
            assert identified_at is not None
            step = ack.identify(identified.actor, max(identified_at, incident.opened_at))
            if await self._observer.apply_to(incident, step) == "applied":
                found.append("identified")
        return found

    async def _poll_reported(self) -> None:
        """The open issues labelled ``incident`` (conditional): adopt those people opened."""
        listed = await self._tracker.open_incident_issues(self._list.etag)
        if listed is None:
            self._metrics.github_polls.labels(result="unchanged").inc()
            return
        self._list.etag = listed.etag
        self._metrics.github_polls.labels(result="changed").inc()
        for issue in listed.issues:
            if not ack.reportable(issue.labels, issue.body, issue.author, self._observer.login):
                continue
            assert issue.author is not None  # reportable checks it
            await self._observer.reported(
                issue.number, issue.title, issue.author, issue.labels, issue.body
            )
