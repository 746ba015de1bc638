"""``incident-bridge rebuild``: the store reconstructed from the repository's issues.

For a lost or damaged store. Every issue with the ``incident-bridge`` label is read through the
list API (all states, every page); its marker gives the kind, number and identity key, its
hidden state line (``bridge.snapshot``) the incident as the bridge last wrote it. An issue
whose state line is missing or damaged (edited by hand) is rebuilt from what is visible: the
priority label, the title, open or closed, and GitHub's timestamps; its alerts come back with
the group's next notification.

What people did after the bridge's last write wins: an issue closed by hand is a manual
resolution. Incidents the store already has (same kind and number) are left alone, so rebuild
can be run again, and on PostgreSQL beside running replicas. Numbering continues after the
highest number restored. A post-incident review (``kind=pir``) is linked back to its incident
(found by the incident's issue), so its updates edit it rather than open another; its reminder
is not scheduled again (the store lost whether it was sent).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from bridge import review, snapshot
from bridge import storm as storms
from bridge.clock import Clock
from bridge.github import pir, render
from bridge.github.client import GitHubError, IssuePage, IssueTracker, RemoteIssue
from bridge.github.sync import record_of
from bridge.model import Incident, Priority
from bridge.store.base import Store

log = structlog.get_logger(__name__)

MARKER = re.compile(
    r"<!-- incident-bridge:v1 kind=(?P<kind>[a-z]+) id=(?P<prefix>INC|MAINT)-(?P<number>\d{3,})"
    r" key=(?P<key>[0-9a-f]{64}) -->"
)
_TITLE_HEAD = re.compile(r"^\[[A-Z]+-[A-Z0-9]+\] ")
# Without a state line the comments' event numbers are unknown; new events start far above
# any an incident plausibly had, so their comment markers never match an old comment.
EVENT_SEQ_FLOOR = 1000
_MAX_ATTEMPTS = 8  # per page, on retryable GitHub errors


@dataclass
class RebuildReport:
    restored: list[str] = field(default_factory=list)  # INC-001, MAINT-002
    present: list[str] = field(default_factory=list)  # already in the store
    from_labels: list[str] = field(default_factory=list)  # no usable state line
    skipped: list[str] = field(default_factory=list)  # "#12: why"
    highest: dict[str, int] = field(default_factory=dict)  # kind → highest number seen
    reviews: list[str] = field(default_factory=list)  # INC-001: its review linked back

    def as_dict(self) -> dict[str, object]:
        return {
            "restored": self.restored,
            "already_present": self.present,
            "rebuilt_from_labels": self.from_labels,
            "skipped": self.skipped,
            "highest": self.highest,
            "reviews": self.reviews,
        }


@dataclass(frozen=True, slots=True)
class Marker:
    kind: str
    number: int
    key: str


def find_marker(body: str) -> Marker | None:
    """The issue's marker: the last one in the body (the bridge writes it at the very end)."""
    found = None
    for match in MARKER.finditer(body):
        found = match
    if found is None:
        return None
    return Marker(found["kind"], int(found["number"]), found["key"])


def _priority_from_labels(labels: frozenset[str], options: render.RenderOptions) -> Priority:
    by_label = {style.label: p for p, style in options.styles.items()}
    found = [by_label[label] for label in labels if label in by_label]
    return Priority.highest(*found) if found else Priority.P3


def _from_labels(
    issue: RemoteIssue, marker: Marker, options: render.RenderOptions, now: datetime
) -> Incident:
    """What the visible issue says, when there is no state line to read."""
    opened = issue.created_at or now
    closed = issue.state == "closed" or (
        "resolved" in issue.labels and not options.close_on_resolve
    )
    return Incident(
        key=marker.key,
        identity="",
        kind="maint" if marker.kind == "maint" else "incident",
        receiver="",
        group_key="",
        group_labels={},
        state="resolved" if closed else "open",
        priority=_priority_from_labels(issue.labels, options),
        priority_rule="rebuilt from the issue's labels",
        summary=_TITLE_HEAD.sub("", issue.title) or "alert group",
        opened_at=opened,
        earliest_starts_at=opened,
        respond_by=None,
        resolve_by=None,
        resolved_at=(issue.closed_at or issue.updated_at or opened) if closed else None,
        resolution="alerts" if closed else None,
        event_seq=EVENT_SEQ_FLOOR,
        number=marker.number,
    )


def incident_from_issue(
    issue: RemoteIssue, marker: Marker, options: render.RenderOptions, now: datetime
) -> tuple[Incident, bool]:
    """The incident an issue describes, and whether it came from its state line."""
    line = snapshot.find_state_line(issue.body)
    incident = None
    if line is not None:
        try:
            incident = snapshot.read_state_line(
                line, updated_at=issue.updated_at or issue.created_at or now
            )
        except snapshot.SnapshotError as error:
            log.warning("rebuild_state_line_unreadable", issue=issue.number, error=str(error))
        else:
            if (incident.key, incident.number, incident.kind) != (
                marker.key,
                marker.number,
                "maint" if marker.kind == "maint" else "incident",
            ):
                log.warning("rebuild_state_line_mismatch", issue=issue.number)
                incident = None
    if incident is None:
        return _from_labels(issue, marker, options, now), False
    # A person closed it after the bridge's last write: a manual resolution, held until an
    # alert of the group starts firing anew (as if the bridge had seen the close).
    if issue.state == "closed" and incident.state == "open" and incident.kind == "incident":
        incident.state = "resolved"
        incident.resolution = "manual"
        incident.manual_hold = True
        incident.resolved_at = issue.closed_at or issue.updated_at
        incident.paused_at = None  # a silence ends with its incident
    return incident, True


async def _page(
    tracker: IssueTracker, page: int, wait: Callable[[float], Awaitable[None]]
) -> IssuePage:
    """One page of bridge issues, waiting out rate limits and outages (a command may wait)."""
    delay = 1.0
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        try:
            # Oldest first: a group's incidents come back in the order they were opened, so
            # the store's latest incident of a key (the highest id) is its newest again — and
            # issues opened while the rebuild pages through are appended, never skipped.
            return await tracker.list_issues(page, oldest_first=True)
        except GitHubError as error:
            if not error.retryable or attempt == _MAX_ATTEMPTS:
                raise
            pause = error.retry_after if error.retry_after is not None else delay
            log.warning("rebuild_github_retry", page=page, error=str(error), retry_in=pause)
            await wait(pause)
            delay = min(delay * 2, 60.0)
    raise AssertionError("unreachable")  # the loop returns or raises


async def rebuild(
    store: Store,
    tracker: IssueTracker,
    options: render.RenderOptions,
    clock: Clock,
    *,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RebuildReport:
    """Restore every incident and maintenance request the repository's issues describe."""
    report = RebuildReport()
    incident_issues: dict[int, int] = {}  # INC number → its issue's number
    found_reviews: list[tuple[Marker, RemoteIssue]] = []
    page = 1
    while True:
        listed = await _page(tracker, page, wait)
        for issue in listed.issues:
            marker = find_marker(issue.body)
            if marker is None:
                report.skipped.append(f"#{issue.number}: no incident-bridge marker")
                continue
            if marker.kind == "pir":  # linked once every incident is back
                found_reviews.append((marker, issue))
                continue
            if marker.kind == "incident":
                incident_issues[marker.number] = issue.number
            prefix = "MAINT" if marker.kind == "maint" else "INC"
            label = f"{prefix}-{marker.number:03d}"
            report.highest[marker.kind] = max(report.highest.get(marker.kind, 0), marker.number)
            if marker.kind == "storm":
                # Its number is the incidents' (it must never be given out again); its listed
                # groups are not in the store any more, so it comes back ended and is never
                # edited again. Listed groups without an issue of their own return with their
                # next notification.
                roll_up = storms.new_storm(marker.number, issue.created_at or clock())
                roll_up.key = marker.key
                roll_up.state = "resolved"
                roll_up.resolved_at = issue.closed_at or clock()
                if await store.restore(roll_up, None):
                    report.restored.append(label)
                else:
                    report.present.append(label)
                continue
            if marker.kind not in ("incident", "maint"):
                report.skipped.append(f"#{issue.number}: {label} is a {marker.kind} issue")
                continue
            incident, from_state = incident_from_issue(issue, marker, options, clock())
            # restore sets the id
            record = record_of(issue, 0, tracker.repository, render.managed_labels(options))
            if await store.restore(incident, record):
                report.restored.append(label)
                if not from_state:
                    report.from_labels.append(label)
            else:
                report.present.append(label)
        if listed.last:
            break
        page += 1
    for marker, issue in found_reviews:
        await _link_review(store, tracker.repository, marker, issue, incident_issues, report)
    log.info(
        "rebuild_done",
        restored=len(report.restored),
        present=len(report.present),
        from_labels=len(report.from_labels),
        skipped=len(report.skipped),
    )
    return report


async def _link_review(
    store: Store,
    repository: str,
    marker: Marker,
    issue: RemoteIssue,
    incident_issues: dict[int, int],
    report: RebuildReport,
) -> None:
    """Record a post-incident review's issue as its incident's review, unless it has one."""
    label = f"INC-{marker.number:03d}"
    number = incident_issues.get(marker.number)
    incident = await store.incident_by_issue(repository, number) if number is not None else None
    if incident is None or incident.id is None or incident.key != marker.key:
        report.skipped.append(f"#{issue.number}: the review of {label}, not found")
        return
    slot = review.slot(repository)
    if await store.issue_record(incident.id, slot) is not None:
        return
    await store.save_issue_record(record_of(issue, incident.id, slot, pir.LABELS))
    report.reviews.append(label)
