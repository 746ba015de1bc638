"""The GitHub effects: make an incident's issue match the incident, and post its comments.

``sync`` compares what the issue should look like (render.py) with what the bridge last wrote
(the store's IssueRecord) and sends only the difference: one create with labels; otherwise one
PATCH for title/body/state together, then labels added or removed one by one. Only labels the
bridge manages are ever removed, so labels people add survive; the body is re-read with a
conditional request (a free 304 when nobody touched it) and only the bridge region is replaced,
so text people write outside it survives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from bridge import review as reviews
from bridge import storm as storms
from bridge.github import pir, render
from bridge.github.budget import Budget, BudgetExhausted
from bridge.github.client import CreatedIssue, GitHubError, IssueTracker, RemoteIssue
from bridge.model import Incident
from bridge.store.base import ClaimedEffect, IssueRecord, Store, StoreUnavailable, Storm

log = structlog.get_logger(__name__)

T = TypeVar("T")

_TIMELINE_EVENTS = 30
_REVIEW_EVENTS = 1000  # a review's timeline is the whole history (pir.py bounds what it shows)
_CLOCK_SKEW = timedelta(minutes=5)  # between our clock and GitHub's, when asking "since"


def record_of(
    remote: RemoteIssue, incident_id: int, repository: str, managed: frozenset[str]
) -> IssueRecord:
    """What the bridge keeps of an issue (an incident's or a review's) it read back from GitHub
    (adopted after an interrupted create, or found by ``rebuild``): its region, and only the
    labels the bridge manages on it (``managed``)."""
    return IssueRecord(
        incident_id=incident_id,
        repository=repository,
        number=remote.number,
        url=remote.url,
        title=remote.title,
        body=remote.body,
        region=render.region_of(remote.body),
        labels=set(remote.labels) & managed,
        state=remote.state,
        etag=None,
    )


def created_record(
    incident_id: int, repository: str, created: CreatedIssue, desired: render.DesiredIssue
) -> IssueRecord:
    """What the bridge keeps of an issue it has just created as ``desired``."""
    return IssueRecord(
        incident_id=incident_id,
        repository=repository,
        number=created.number,
        url=created.url,
        title=desired.title,
        body=desired.body,
        region=desired.region,
        labels=set(desired.labels),
        state="open",
        etag=created.etag,
    )


class PermanentEffectError(Exception):
    """The effect can never succeed (its incident or event is gone)."""


class GitHubSync:
    """Runs ``github.sync``, ``github.comment`` and ``github.storm`` effects against one
    repository."""

    def __init__(
        self,
        store: Store,
        tracker: IssueTracker,
        options: render.RenderOptions,
        clock: Callable[[], datetime],
        budget: Budget | None = None,
    ) -> None:
        self._store = store
        self._tracker = tracker
        self._options = options
        self._clock = clock
        self._budget = budget

    async def _slot(self, urgent: bool) -> list[datetime]:
        """A slot in the budget for one write (BudgetExhausted, a retryable GitHubError, when
        there is none): the last hour's writes, to charge it against once sent."""
        return await self._budget.check(urgent=urgent) if self._budget is not None else []

    async def _write(
        self,
        urgent: bool,
        call: Callable[..., Awaitable[T]],
        *args: object,
        slot: list[datetime] | None = None,
    ) -> T:
        """One content-creating request, made only with a slot in the budget (``slot``, one
        already taken, else ``_slot``) and charged to it once sent, whatever the answer; a
        rate-limit refusal shrinks the budget."""
        budget = self._budget
        writes = slot if slot is not None else await self._slot(urgent)
        try:
            result = await call(*args)
        except GitHubError as error:
            if budget is not None and error.sent:
                await self._charge(budget, writes)
            limited = error.status in (403, 429) and error.retry_after is not None
            if limited and budget is not None:
                await budget.refused(error.retry_after)
            raise
        if budget is not None:
            await self._charge(budget, writes)
        return result

    async def _charge(self, budget: Budget, writes: list[datetime]) -> None:
        """Charge a sent write; the store failing then must not hide what GitHub answered (a
        create that worked would wait for its lease, a 429 would not shrink the budget): the
        write goes uncounted, which the budget's headroom below GitHub's limits absorbs."""
        try:
            await budget.charge(writes)
        except StoreUnavailable as error:
            log.warning("github_budget_not_charged", error=str(error))

    @property
    def repository(self) -> str:
        return self._tracker.repository

    async def run(self, effect: ClaimedEffect) -> None:
        """Run one effect. After an attempt whose outcome is unknown, a create or a comment is
        repeated only if its marker is not found on GitHub."""
        if effect.kind == "github.sync":
            await self.sync(
                effect.incident_id, recover=effect.outcome_unknown, urgent=effect.urgent
            )
        elif effect.kind == "github.comment":
            await self.comment(
                effect.incident_id,
                int(effect.payload["event_seq"]),
                recover_since=effect.created_at if effect.outcome_unknown else None,
                urgent=effect.urgent,
            )
        elif effect.kind == "github.storm":
            await self.storm(
                effect.incident_id,
                recover_since=effect.created_at if effect.outcome_unknown else None,
            )
        elif effect.kind == "github.pir":
            await self.review(
                effect.incident_id, recover=effect.outcome_unknown, urgent=effect.urgent
            )
        elif effect.kind == "github.pir_reminder":
            await self.remind_review(
                effect.incident_id,
                recover_since=effect.created_at if effect.outcome_unknown else None,
                urgent=effect.urgent,
            )
        else:
            raise PermanentEffectError(f"unknown effect kind {effect.kind!r}")

    async def _adopt(self, incident: Incident) -> IssueRecord | None:
        """The issue an earlier, interrupted create made, found by its marker, as a record."""
        assert incident.id is not None
        remote = await self._tracker.find_issue(render.marker(incident))
        if remote is None:
            return None
        log.info("github_issue_adopted", issue=remote.number, incident=incident.display_id)
        record = record_of(
            remote, incident.id, self.repository, render.managed_labels(self._options)
        )
        await self._store.save_issue_record(record)
        return record

    async def _adopt_reported(
        self, incident: Incident, desired: render.DesiredIssue, urgent: bool
    ) -> IssueRecord:
        """A reported incident's issue is the one people opened: never created, edited. One
        PATCH numbers its title and appends the bridge region and marker below what the
        reporter wrote (never overwritten); the labels follow one by one in ``_apply``."""
        assert incident.id is not None
        assert incident.reported_issue is not None
        number = incident.reported_issue
        remote = await self._tracker.get_issue(number, None)
        body = render.adopted_body(remote.body if remote else "", desired.region, incident)
        fields = {"body": body}
        if remote is None or remote.title != desired.title:
            fields["title"] = desired.title
        etag = await self._write(urgent, self._tracker.edit_issue, number, fields)
        record = IssueRecord(
            incident_id=incident.id,
            repository=self.repository,
            number=number,
            url=remote.url if remote else "",
            title=desired.title,
            body=body,
            region=desired.region,
            # Labels the reporter set that the bridge wants too are not added again (nor, as
            # they stay wanted, ever removed).
            labels=set(desired.labels & remote.labels) if remote else set(),
            state=remote.state if remote else "open",
            etag=etag,
        )
        # Recorded at once, like a create: later syncs edit this issue.
        await self._store.save_issue_record(record)
        log.info("github_issue_adopted_reported", issue=number, incident=incident.display_id)
        return record

    async def _create(
        self, incident: Incident, desired: render.DesiredIssue, urgent: bool, slot: list[datetime]
    ) -> IssueRecord:
        assert incident.id is not None
        created = await self._write(
            urgent,
            self._tracker.create_issue,
            desired.title,
            desired.body,
            sorted(desired.labels),
            slot=slot,
        )
        record = created_record(incident.id, self.repository, created, desired)
        # Recorded at once: a create must never be repeated once it is known to have happened.
        await self._store.save_issue_record(record)
        log.info("github_issue_created", issue=created.number, incident=incident.display_id)
        return record

    async def _apply(self, record: IssueRecord, desired: render.DesiredIssue, urgent: bool) -> None:
        """Make an existing issue match ``desired``: one PATCH, then labels one by one."""
        fields: dict[str, str] = {}
        if desired.title != record.title:
            fields["title"] = desired.title
        if desired.region != record.region:
            remote = await self._tracker.get_issue(record.number, record.etag)
            if remote is not None:
                record.body, record.etag = remote.body, remote.etag
            record.body = render.splice(record.body, desired.region)
            fields["body"] = record.body
        if desired.state != record.state:
            fields["state"] = desired.state
            if desired.state == "closed":
                fields["state_reason"] = "completed"
        number = record.number
        changed = False
        try:
            if fields:
                etag = await self._write(urgent, self._tracker.edit_issue, number, fields)
                record.title, record.region = desired.title, desired.region
                record.state, record.etag = desired.state, etag or record.etag
                changed = True
            for label in sorted(desired.labels - record.labels):
                await self._write(urgent, self._tracker.add_label, number, label)
                record.labels.add(label)
                changed = True
            for label in sorted(record.labels - desired.labels):
                await self._write(urgent, self._tracker.remove_label, number, label)
                record.labels.discard(label)
                changed = True
        finally:
            # Also when the budget or GitHub stops it half-way: what was done is not redone.
            if changed:
                await self._store.save_issue_record(record)

    async def sync(self, incident_id: int, *, recover: bool = False, urgent: bool = False) -> None:
        incident = await self._store.load_incident(incident_id)
        if incident is None:
            raise PermanentEffectError(f"incident {incident_id} is gone")
        record = await self._store.issue_record(incident_id, self.repository)
        storm_id = await self._store.storm_of(incident_id) if incident.kind == "incident" else None
        reported = incident.reported_issue is not None  # its issue is adopted, never created
        if record is None and not reported and recover:
            record = await self._adopt(incident)
        slot = None
        if record is None and not reported:
            if storm_id is not None and incident.state != "open":
                # Resolved while only listed in a storm's roll-up: never an issue of its own.
                await self._store.queue_storm(storm_id, self._clock())
                return
            try:
                # The budget before the rendering: a group it lists in the roll-up instead
                # (a storm's every P2/P3 group) costs no render.
                slot = await self._slot(urgent)
            except BudgetExhausted as refused:
                if not refused.spent or urgent or incident.urgent or incident.kind != "incident":
                    raise  # P0/P1 wait for the reserve; behind a P0/P1, wait for it
                # Storm mode: listed in the roll-up now; an own issue later if budget allows.
                storm_id = await self._store.join_storm(incident_id, self._clock())
                log.info("github_storm_listed", incident=incident.display_id, storm=storm_id)
                return
        desired = await self._render(incident)
        if record is None and reported:
            record = await self._adopt_reported(incident, desired, urgent)
        if record is None:
            assert slot is not None
            record = await self._create(incident, desired, urgent, slot)
        await self._apply(record, desired, urgent)
        if storm_id is not None:
            # The roll-up shows its groups' state: edit it (coalesced, at most once a minute).
            await self._store.queue_storm(storm_id, self._clock())

    async def _render(self, incident: Incident) -> render.DesiredIssue:
        """The issue as the incident and its last events want it."""
        assert incident.id is not None
        events = await self._store.load_events(incident.id, _TIMELINE_EVENTS)
        review_issue = None
        if incident.review_requested_at is not None:  # linked from its review and back
            review = await self._store.issue_record(incident.id, reviews.slot(self.repository))
            review_issue = review.number if review is not None else None
        return render.render_issue(incident, events, self._options, review_issue=review_issue)

    async def storm(self, storm_id: int, *, recover_since: datetime | None = None) -> None:
        """Make a storm's roll-up issue match the storm: create or edit it (at most one edit
        per storm.EDIT_GAP), announce once that the storm is over, close it when every listed
        group has resolved, and ask for own issues for groups still firing while the budget
        has P2/P3 writes to spare."""
        now = self._clock()
        storm = await self._store.load_storm(storm_id, self.repository)
        if storm is None:
            raise PermanentEffectError(f"storm {storm_id} is gone")
        waiting = [m for m in storm.members if m.waiting]
        over = storm.over_at is not None
        if not over and not waiting:
            over = await self._store.storm_over(storm_id, self.repository, now)
        desired = render.render_storm(storm.incident, storm.members, self._options, over=over)
        # Charged to the reserve only while a P0/P1 is inside (listed and open).
        urgent = any(m.incident.urgent and m.incident.state == "open" for m in storm.members)
        record = await self._store.issue_record(storm_id, self.repository)
        if record is None and recover_since is not None:
            record = await self._adopt(storm.incident)
        wrote = False
        if record is None:
            record = await self._create(storm.incident, desired, urgent, await self._slot(urgent))
            wrote = True
        if over and storm.announced_at is None:
            await self._storm_over(storm, record, urgent, recover_since)
        differs = (
            desired.title != record.title
            or desired.region != record.region
            or desired.state != record.state
            or desired.labels != record.labels
        )
        if differs:
            since = now - storm.edited_at if storm.edited_at is not None else None
            if not wrote and since is not None and since < storms.EDIT_GAP:
                wait = (storms.EDIT_GAP - since).total_seconds()
                raise GitHubError(f"roll-up edited {since} ago", retryable=True, retry_after=wait)
            await self._apply(record, desired, urgent)
            wrote = True
        if wrote:
            await self._store.record_storm_write(
                storm_id,
                now,
                priority=storms.highest(storm.members),
                resolved=desired.state == "closed",
            )
        if waiting:
            # Own issues for the groups still firing, as far as the P2/P3 share allows.
            room = await self._budget.spare() if self._budget is not None else len(waiting)
            ids = [m.incident.id for m in waiting if not m.incident.urgent and m.incident.id]
            if ids[:room]:
                await self._store.queue_syncs(ids[:room], now)
            await self._store.queue_storm(storm_id, now + storms.EDIT_GAP)  # look again then

    async def _storm_over(
        self,
        storm: Storm,
        record: IssueRecord,
        urgent: bool,
        recover_since: datetime | None,
    ) -> None:
        assert storm.incident.id is not None
        storm_marker = render.comment_marker(f"{storm.incident.display_id}.{render.STORM_OVER}")
        posted = recover_since is not None and await self._tracker.find_comment(
            record.number, storm_marker, recover_since - _CLOCK_SKEW
        )
        if not posted:
            body = render.render_storm_over(storm.incident, self._clock())
            await self._write(urgent, self._tracker.create_comment, record.number, body)
        await self._store.storm_announced(storm.incident.id, self._clock())

    async def comment(
        self,
        incident_id: int,
        event_seq: int,
        *,
        recover_since: datetime | None = None,
        urgent: bool = False,
    ) -> None:
        incident = await self._store.load_incident(incident_id)
        event = await self._store.load_event(incident_id, event_seq)
        if incident is None or event is None:
            raise PermanentEffectError(f"event {event_seq} of incident {incident_id} is gone")
        record = await self._store.issue_record(incident_id, self.repository)
        if record is None:
            storm_id = await self._store.storm_of(incident_id)
            if storm_id is not None:
                # Listed in a storm's roll-up without an issue of its own: no comment, the
                # roll-up shows the state (its edit is queued, at most once a minute).
                await self._store.queue_storm(storm_id, self._clock())
                return
            # The issue must exist first; the sync effect ahead of this one creates it. Reaching
            # here means it failed permanently: make the issue now — after an attempt of this
            # comment whose outcome is unknown, only if that attempt did not make it.
            await self.sync(incident_id, recover=recover_since is not None, urgent=urgent)
            record = await self._store.issue_record(incident_id, self.repository)
            if record is None:
                raise GitHubError("issue could not be created", retryable=True)
        event_marker = render.comment_marker(event.event_id(incident))
        if recover_since is not None:
            # The comment may have been posted by the attempt whose answer never came.
            since = recover_since - _CLOCK_SKEW
            if await self._tracker.find_comment(record.number, event_marker, since):
                log.info(
                    "github_comment_found", issue=record.number, event_id=event.event_id(incident)
                )
                return
        number, body = record.number, render.render_comment(incident, event)
        await self._write(urgent, self._tracker.create_comment, number, body)

    # -- post-incident reviews (bridge/review.py) ----------------------------------------------

    async def review(
        self, incident_id: int, *, recover: bool = False, urgent: bool = False
    ) -> None:
        """Create the incident's post-incident review, or bring the bridge's region of it up to
        date (people's sections, and its state — people close it — are never touched); set its
        reminder's due moment; and have the incident's issue link it."""
        incident = await self._store.load_incident(incident_id)
        if incident is None:
            raise PermanentEffectError(f"incident {incident_id} is gone")
        events = await self._store.load_events(incident_id, _REVIEW_EVENTS)
        sent = await self._store.notifications(incident_id)
        issue = await self._store.issue_record(incident_id, self.repository)
        desired = pir.render_review(
            incident, events, sent, self._options, issue.number if issue else None
        )
        slot = reviews.slot(self.repository)
        record = await self._store.issue_record(incident_id, slot)
        if record is None and recover:
            record = await self._adopt_review(incident, slot)
        if record is None:
            created = await self._write(
                urgent,
                self._tracker.create_issue,
                desired.title,
                desired.body,
                sorted(desired.labels),
            )
            record = created_record(incident_id, slot, created, desired)
            # Recorded at once, like every create: it is never repeated once known to be made.
            await self._store.save_issue_record(record)
            log.info("github_review_created", issue=created.number, incident=incident.display_id)
        else:
            # Never reopened by the bridge: a review people closed is done.
            await self._apply(record, dataclasses.replace(desired, state=record.state), urgent)
        await self._store.schedule_review(incident_id, reviews.due_at(incident))
        if issue is not None and f"**Post-incident review**: #{record.number}" not in issue.region:
            await self._store.queue_syncs([incident_id], self._clock())  # the link back

    async def _adopt_review(self, incident: Incident, slot: str) -> IssueRecord | None:
        """The review an earlier, interrupted create made, found by its marker."""
        assert incident.id is not None
        remote = await self._tracker.find_issue(pir.marker(incident))
        if remote is None:
            return None
        log.info("github_review_adopted", issue=remote.number, incident=incident.display_id)
        record = record_of(remote, incident.id, slot, pir.LABELS)
        await self._store.save_issue_record(record)
        return record

    async def remind_review(
        self,
        incident_id: int,
        *,
        recover_since: datetime | None = None,
        urgent: bool = False,
    ) -> None:
        """The one reminder on a review still open 48 h after the resolution: its state is read
        first (a conditional GET), and a review people closed gets none."""
        incident = await self._store.load_incident(incident_id)
        if incident is None:
            raise PermanentEffectError(f"incident {incident_id} is gone")
        record = await self._store.issue_record(incident_id, reviews.slot(self.repository))
        if record is None:  # its create failed for good: nothing to remind of
            log.info("github_review_reminder_skipped", incident=incident.display_id, why="none")
            return
        # A full read, not a conditional one: the stored ETag may be one the bridge's own edit
        # left after people closed the review, while the stored state still says open.
        remote = await self._tracker.get_issue(record.number, None)
        state = remote.state if remote is not None else record.state
        if state == "closed":
            log.info(
                "github_review_reminder_skipped",
                incident=incident.display_id,
                issue=record.number,
                why="closed",
            )
            return
        event_marker = render.comment_marker(f"{incident.display_id}.{reviews.REMINDER_ID}")
        if recover_since is not None and await self._tracker.find_comment(
            record.number, event_marker, recover_since - _CLOCK_SKEW
        ):
            return
        body = pir.render_reminder(incident, reviews.due_at(incident), self._clock())
        await self._write(urgent, self._tracker.create_comment, record.number, body)
        log.info("github_review_reminded", incident=incident.display_id, issue=record.number)
