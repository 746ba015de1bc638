"""What people do on an incident's GitHub issue, as pure lifecycle steps.

Each function here returns a step for ``Ingestor.apply``: ``(incident | None, now) -> Decision``,
run inside the store transaction on the incident's identity, so a webhook delivery and a poll
that see the same change meet there and the second one changes nothing. Steps copy the incident
before changing it and number their events after its last one (``incident.event_seq``).

CONTRACT.md, "Identity and the incident lifecycle":

* **acknowledged** — assigning the issue, labelling it ``acknowledged`` or ``identified``, or a
  comment by a human (never what a bot or the bridge's own account does: ``is_person``). The
  first acknowledgement wins (who = the GitHub login, when, how); only an open incident is
  acknowledged.
* **identified** — the ``identified`` label: the status page moves to Identified. It
  acknowledges too, once per episode (an incident reopened by its alerts starts a new one).
* **closed by a human** — the incident is resolved manually (``resolution: manual``) and held
  closed (``manual_hold``) until an alert of the group starts firing anew; if alerts still fire,
  a comment on the issue says so.
* **reopened by a human** — the incident is open again (the engine then treats it as open).
* **reported** — an issue people opened with the ``incident`` label (the guide's "user
  reports") is adopted as an incident of its own: identity ``reported:<repository>#<number>``,
  priority from a priority label on the issue, else P2.

The web handler (``bridge/web/github_events.py``) and the poller (``bridge/github/poller.py``)
decide *which* step applies; nothing here does I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bridge.engine import Decision, Policy, Timeline, mark_resolved, synced
from bridge.ingest import Step
from bridge.model import EffectSpec, Incident, Priority, TimelineEvent

# How an incident was acknowledged on GitHub (``Incident.acknowledged_via``).
AckVia = Literal["assigned", "label", "comment"]

INCIDENT_LABEL = "incident"
ACK_LABELS = frozenset({"acknowledged", "identified"})
DEFAULT_REPORTED_PRIORITY = Priority.P2
# Every issue the bridge makes carries this marker; every comment it posts carries ``_BRIDGE``.
_ISSUE_MARKER = "<!-- incident-bridge:v1 "
_BRIDGE = "<!-- incident-bridge:"
_VIA_TEXT: dict[str, str] = {
    "assigned": "assigned the issue",
    "label": "labelled it",
    "comment": "commented",
}


def same_login(login: str | None, own: str | None) -> bool:
    """Whether ``login`` is the account ``own`` (GitHub logins compare case-insensitively)."""
    return bool(login) and bool(own) and str(login).lower() == str(own).lower()


def is_bot(login: str | None, user_type: str | None = None) -> bool:
    """Whether the account is a bot: a login ending in ``[bot]`` (a GitHub App's, such as
    ``github-actions[bot]``) or GitHub's ``type: "Bot"`` on its user object."""
    return str(login or "").lower().endswith("[bot]") or (user_type or "").lower() == "bot"


def is_person(login: str | None, own_login: str | None, user_type: str | None = None) -> bool:
    """Whether what ``login`` did is a person's doing: neither the bridge's own account nor a
    bot (an auto-assign or welcome workflow acting seconds after an issue opens must not
    acknowledge it and stop the SLA paging)."""
    return bool(login) and not same_login(login, own_login) and not is_bot(login, user_type)


def by_bridge(body: str | None) -> bool:
    """Whether a comment or issue body carries one of the bridge's markers."""
    return _BRIDGE in (body or "")


def human_comment(
    author: str | None,
    body: str | None,
    own_login: str | None,
    author_type: str | None = None,
) -> bool:
    """A comment by a human: its author is a person (not the bridge's account, not a bot) and
    it carries no marker of the bridge's (so a comment the bridge posted under another account
    still does not count)."""
    return is_person(author, own_login, author_type) and not by_bridge(body)


def reportable(
    labels: Iterable[str], body: str | None, author: str | None, own_login: str | None
) -> bool:
    """An issue people opened to report an incident: labelled ``incident``, without the bridge's
    issue marker, opened by someone other than the bridge."""
    return (
        any(label.lower() == INCIDENT_LABEL for label in labels)
        and _ISSUE_MARKER not in (body or "")
        and bool(author)
        and not same_login(author, own_login)
    )


def reported_identity(repository: str, number: int) -> str:
    """The identity of a reported incident: stable, so a redelivery or a poll that sees the
    issue again makes no second incident."""
    return f"reported:{repository}#{number}"


def episode_started(incident: Incident, events: Sequence[TimelineEvent]) -> datetime:
    """When the incident's current episode began: its last reopening by alerts in ``events``
    (the timeline's tail), else when it opened. What people did before that belongs to an
    episode that is over (the reopening cleared its acknowledgement). The same episode
    resumed (``episode: same``: alerts resolved by absence firing again) is no new one."""
    for event in reversed(events):
        if _new_episode(event):
            return max(event.at, incident.opened_at)
    return incident.opened_at


def _new_episode(event: TimelineEvent) -> bool:
    return event.kind == "reopened" and event.data.get("episode") != "same"


def identified_in_episode(events: Sequence[TimelineEvent]) -> bool:
    """Whether ``events`` (the timeline's tail, oldest first) hold an ``identified`` event
    since the last reopening by alerts."""
    for event in reversed(events):
        if event.kind == "identified":
            return True
        if _new_episode(event):
            return False
    return False


def _unchanged(current: Incident | None) -> Decision:
    return Decision(outcome="unchanged", incident=current)


def _moment(at: datetime | None, incident: Incident, now: datetime) -> datetime:
    """When something people did happened: ``at`` (GitHub's time for it, when known) kept
    between the incident's opening and now; else now."""
    if at is None:
        return now
    return max(min(at, now), incident.opened_at)


def _ack(
    incident: Incident, timeline: Timeline, who: str, via: str, at: datetime, detail: str = ""
) -> None:
    incident.acknowledged_at = at
    incident.acknowledged_by = who
    incident.acknowledged_via = via
    how = _VIA_TEXT.get(via, via)
    timeline.add(at, "acknowledged", f"Acknowledged by {who} ({how}{detail})", who=who, via=via)


def acknowledge(who: str, via: AckVia, at: datetime | None = None) -> Step:
    """``who`` assigned the issue, labelled it ``acknowledged`` or commented (``via``), at
    ``at`` when GitHub says (else now): the open incident is acknowledged, unless it already
    was (the first acknowledgement wins)."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if (
            current is None
            or current.kind != "incident"
            or current.state != "open"
            or current.acknowledged_at is not None
        ):
            return _unchanged(current)
        incident = copy.copy(current)
        timeline = Timeline(incident)
        detail = " acknowledged" if via == "label" else ""
        _ack(incident, timeline, who, via, _moment(at, incident, now), detail)
        return synced("acknowledged", incident, timeline.events)

    return step


def identify(who: str, at: datetime | None = None, *, identified_before: bool = False) -> Step:
    """``who`` labelled the issue ``identified``: an ``identified`` event (the status page says
    Identified), once per episode — ``identified_before`` says the timeline already has one —
    and the acknowledgement, unless the incident already was acknowledged."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if current is None or current.kind != "incident" or current.state != "open":
            return _unchanged(current)
        needs_ack = current.acknowledged_at is None
        if identified_before and not needs_ack:
            return _unchanged(current)
        incident = copy.copy(current)
        timeline = Timeline(incident)
        moment = _moment(at, incident, now)
        if needs_ack:
            _ack(incident, timeline, who, "label", moment, " identified")
        if not identified_before:
            timeline.add(moment, "identified", f"Cause identified ({who} labelled it)", who=who)
        return synced("acknowledged", incident, timeline.events)

    return step


def close_manually(who: str) -> Step:
    """``who`` closed the issue: the open incident is resolved manually and stays closed until
    an alert of its group starts firing anew (``manual_hold``). If alerts still fire, the
    ``closed_manually`` event's comment says so. An incident already resolved by its alerts
    (``close_on_resolve: false`` leaves its issue open) is only marked manual, quietly: its
    resolution was told already, and its issue must stay closed."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if current is None or current.kind not in ("incident", "maint"):
            return _unchanged(current)
        if current.kind == "maint":
            return _close_request(current, who, now)
        incident = copy.copy(current)
        incident.manual_hold = True
        if current.state != "open":
            if current.manual_hold and current.resolution == "manual":
                return _unchanged(current)
            incident.resolution = "manual"
            return synced("closed", incident, [])
        firing = len(current.firing_alerts())
        mark_resolved(incident, now, "manual")  # a flapping close and a silence end with it
        timeline = Timeline(incident)
        text = f"Closed by {who}: resolved manually"
        if firing:
            plural = "s" if firing != 1 else ""
            text += (
                f" while {firing} alert{plural} still fire{'' if plural else 's'};"
                " it stays closed until an alert of the group fires anew"
            )
        event = timeline.add(now, "closed_manually", text, who=who, firing=firing)
        effects = [EffectSpec("github.comment", event_seq=event.seq)] if firing else []
        effects.append(EffectSpec("github.sync"))
        return Decision(
            outcome="closed",
            incident=incident,
            changed=True,
            events=timeline.events,
            effects=effects,
        )

    return step


def _close_request(current: Incident, who: str, now: datetime) -> Decision:
    """A maintenance request closed by people: the work is done. It stays closed (the sync
    keeps it so) until its condition fires anew, which reopens the same request."""
    if current.manual_hold:
        return _unchanged(current)
    incident = copy.copy(current)
    incident.manual_hold = True
    incident.resolution = "manual"
    if incident.state == "open":
        incident.state = "resolved"
        incident.resolved_at = now
    timeline = Timeline(incident)
    timeline.add(now, "closed_manually", f"Closed by {who}: the work is done", who=who)
    return synced("closed", incident, timeline.events)


def reopen_manually(who: str) -> Step:
    """``who`` reopened the issue: the resolved incident is open again (people undid a close,
    the alerts did not come back), and the engine treats it as open from now on. Its
    acknowledgement is kept, else ``who`` — evidently on it — acknowledges it (via
    ``reopened``). Its deadlines not yet missed move later by the time it spent resolved (they
    did not run then), and no silence pause survives (the resolution ended it)."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if current is not None and current.kind == "maint" and current.manual_hold:
            return _reopen_request(current, who, now)
        if current is None or current.kind != "incident" or current.state != "resolved":
            return _unchanged(current)
        incident = copy.copy(current)
        resolved_for = max(timedelta(0), now - (current.resolved_at or now))
        incident.state = "open"
        incident.resolved_at = None
        incident.resolution = None
        incident.manual_hold = False
        incident.paused_at = None
        if incident.respond_by is not None and incident.response_breached_at is None:
            incident.respond_by += resolved_for
        if incident.resolve_by is not None and incident.resolution_breached_at is None:
            incident.resolve_by += resolved_for
        timeline = Timeline(incident)
        timeline.add(now, "reopened_manually", f"Reopened by {who}", who=who)
        if incident.acknowledged_at is None:
            _ack(incident, timeline, who, "reopened", now)
        return synced("reopened", incident, timeline.events)

    return step


def _reopen_request(current: Incident, who: str, now: datetime) -> Decision:
    """A maintenance request people closed and reopened: it is theirs again, open on GitHub;
    its state follows its condition (open while an alert fires)."""
    incident = copy.copy(current)
    incident.manual_hold = False
    incident.resolution = None if incident.firing_alerts() else "alerts"
    if incident.firing_alerts():
        incident.state, incident.resolved_at = "open", None
    timeline = Timeline(incident)
    timeline.add(now, "reopened_manually", f"Reopened by {who}", who=who)
    return synced("reopened", incident, timeline.events)


@dataclass(frozen=True, slots=True)
class Report:
    """An issue people opened with the ``incident`` label, as GitHub shows it."""

    repository: str
    number: int
    title: str
    author: str
    labels: frozenset[str]


def priority_labels(policies: Mapping[Priority, str]) -> dict[str, Priority]:
    """Priority label (lower-cased) → priority, from each priority's label in the rules."""
    return {label.lower(): priority for priority, label in policies.items()}


def report(issue: Report, priorities: Mapping[str, Priority], policy: Policy) -> Step:
    """Adopt a reported issue as an incident, once: the next ``INC-NNN``, the priority of its
    priority label (the most urgent if several; ``priorities`` maps lower-cased labels), else
    P2, deadlines from now, and a ``reported`` event (Slack and the stakeholders hear of it as
    of an opening). ``reported_issue`` tells the sync to edit that issue, never to create one."""

    def step(current: Incident | None, now: datetime) -> Decision:
        if current is not None:
            return _unchanged(current)  # adopted before: a redelivery, a poll, a second label
        labelled = sorted(
            (priorities[label.lower()], label)
            for label in issue.labels
            if label.lower() in priorities
        )
        if labelled:
            priority, label = labelled[0]
            rule = f"reported issue labelled {label}"
        else:
            priority, rule = DEFAULT_REPORTED_PRIORITY, "reported issue (P2 unless labelled)"
        summary = " ".join(issue.title.split()) or f"Reported issue #{issue.number}"
        incident = Incident(
            key="",  # the store fills key and identity
            identity="",
            kind="incident",
            receiver="",
            group_key="",
            group_labels={},
            state="open",
            priority=priority,
            priority_rule=rule,
            summary=summary,
            opened_at=now,
            earliest_starts_at=now,
            respond_by=policy.respond_by(priority, now),
            resolve_by=policy.resolve_by(priority, now),
            reported_issue=issue.number,
        )
        timeline = Timeline(incident)
        timeline.add(
            now,
            "reported",
            f"Reported by {issue.author} in issue #{issue.number}; adopted as {priority}",
            who=issue.author,
            issue=issue.number,
            priority=str(priority),
        )
        return synced("reported", incident, timeline.events, is_new=True)

    return step
