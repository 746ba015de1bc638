"""Reported incidents: an issue people open with the ``incident`` label (the operations guide's
"user reports") is adopted as an incident — through the real app on loopback, GitHub's webhook
signed as GitHub signs it, the fake GitHub and the fake Slack.

Adopted once: the next ``INC-NNN`` in its title, a priority label (P2 unless one is set),
deadlines, the bridge's labels, its region appended below what the reporter wrote (never
overwritten), a Slack message and a post on the status page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.github.render import BEGIN, END
from fakes.github import FakeGitHub, FakeIssue
from fakes.slack import FakeSlack
from support import REPO, SLACK_CHANNEL, SLACK_TOKEN, Harness, github_config, payload, slack_config

SECRET = "gh-hook-s3cret"
REPORT = (
    "Customers in EU cannot pay: the checkout page spins forever.\n\n"
    "Seen by @support at 21:40. Steps: add anything to the cart, pay."
)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def hooked(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, slack: FakeSlack, store_url: str
) -> AsyncIterator[Harness]:
    """The bridge with a webhook secret and the responders' Slack channel."""
    config = github_config(f"  webhook_secret: {SECRET}\n", store_url=store_url) + slack_config(
        slack.base_url, SLACK_TOKEN, SLACK_CHANNEL
    )
    h = Harness(tmp_path, github, clock, config)
    await h.start()
    yield h
    await h.stop()
    assert github.internal_errors == []


async def deliver(h: Harness, event: str, body: dict[str, Any]) -> tuple[int, Any]:
    """One signed delivery, as GitHub sends it."""
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = await h.http.post(
        "/api/v1/github/events",
        data=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
    )
    return response.status, await response.json()


def issues_event(issue: FakeIssue, action: str, sender: str | None = None, **extra: Any) -> dict:  # type: ignore[type-arg]
    return {
        "action": action,
        "issue": {
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "labels": [{"name": name} for name in issue.label_names],
            "user": {"login": issue.user.login},
        },
        "repository": {"full_name": REPO},
        "sender": {"login": sender or issue.user.login},
        **extra,
    }


async def report(
    h: Harness, *labels: str, title: str = "Checkout hangs for EU customers"
) -> FakeIssue:
    """Someone opens an issue labelled ``incident``; GitHub sends ``opened`` and one
    ``labeled`` per label, as it does for an issue created with labels."""
    issue = h.github.human_create_issue(REPO, title, REPORT, ["incident", *labels], login="alice")
    answers = [await deliver(h, "issues", issues_event(issue, "opened"))]
    for label in ["incident", *labels]:
        answers.append(
            await deliver(h, "issues", issues_event(issue, "labeled", label={"name": label}))
        )
    assert {status for status, _ in answers} == {200}
    return issue


def shown(message: Any) -> str:
    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    return "\n".join([message.text, *strings(message.blocks or [])])


async def test_a_reported_issue_is_adopted_once(hooked: Harness, slack: FakeSlack) -> None:
    """The reporter's issue becomes INC-001 (P2: no priority label): numbered title, the
    bridge's labels added beside the reporter's, the region and marker appended below the
    reporter's untouched text; no second issue and no second incident for the ``labeled``
    deliveries that follow ``opened``; Slack hears of it."""
    issue = await report(hooked, "bug")
    hooked.github.reset_log()
    await hooked.drain()

    [row] = await hooked.incidents()
    assert (row["id"], row["priority"], row["state"]) == ("INC-001", "P2", "open")
    assert row["issue_number"] == issue.number
    assert row["title"] == "Checkout hangs for EU customers"
    assert row["respond_by"] is not None
    assert len(hooked.issues()) == 1  # edited, never created
    assert [r for r in hooked.github.calls("POST") if r.path == f"/repos/{REPO}/issues"] == []
    adopted = hooked.github.issue(REPO, issue.number)
    assert adopted.title == "[INC-001] Checkout hangs for EU customers"
    assert set(adopted.label_names) == {
        "incident",
        "bug",
        "incident-bridge",
        "priority-medium",
        "maintenance-corrective",
        "phase-09",
    }
    body = adopted.body or ""
    assert body.startswith(REPORT + "\n\n" + BEGIN)  # the reporter's text first, untouched
    assert "**Severity**: Medium (P2)" in body
    assert "Reported by alice in issue \\#1" in body  # escaped Markdown
    assert body.rstrip().endswith("-->")
    assert "<!-- incident-bridge:v1 kind=incident id=INC-001 key=" in body
    # The labels the reporter set are not added again: one read, one edit, then labels.
    writes = [f"{r.method} {r.path}" for r in hooked.github.requests if r.is_write]
    assert writes[0] == f"PATCH /repos/{REPO}/issues/{issue.number}"
    assert f"POST /repos/{REPO}/issues/{issue.number}/labels" in writes
    assert not any(r.method == "DELETE" for r in hooked.github.requests)
    [message] = slack.messages(SLACK_CHANNEL)
    text = shown(message)
    assert "INC-001" in text
    assert "Checkout hangs for EU customers" in text

    # Seen again (a redelivery, another label): nothing new.
    again = await deliver(
        hooked, "issues", issues_event(adopted, "labeled", label={"name": "incident"})
    )
    await hooked.drain()
    assert again == (200, {"status": "accepted", "result": "unchanged"})
    assert len(await hooked.incidents()) == 1
    assert len(slack.messages(SLACK_CHANNEL)) == 1


async def test_an_assignment_delivered_before_the_opening_acknowledges(hooked: Harness) -> None:
    """GitHub sends an issue's ``opened`` and ``assigned`` at once and they may be handled in
    either order: the assignment handled first adopts the issue, then acknowledges it; the
    opening after it changes nothing."""
    issue = hooked.github.human_create_issue(
        REPO, "Checkout hangs", REPORT, ["incident"], login="alice"
    )
    hooked.github.human_assign(REPO, issue.number, "bob", login="alice")
    status, answer = await deliver(
        hooked, "issues", issues_event(issue, "assigned", assignee={"login": "bob"})
    )
    assert (status, answer["result"]) == (200, "applied")
    status, answer = await deliver(hooked, "issues", issues_event(issue, "opened"))
    assert (status, answer["result"]) == (200, "unchanged")
    await hooked.drain()
    [found] = await hooked.incidents()
    assert (found["id"], found["acknowledged_by"]) == ("INC-001", "bob")
    assert len(hooked.issues()) == 1


async def test_a_priority_label_sets_the_priority(hooked: Harness) -> None:
    """A priority label on the reported issue gives its priority (``priority-high`` → P1), and
    the bridge does not add a second priority label."""
    issue = await report(hooked, "priority-high")
    await hooked.drain()

    [row] = await hooked.incidents()
    assert row["priority"] == "P1"
    assert "labelled priority-high" in row["priority_rule"]
    labels = hooked.github.label_names(REPO, issue.number)
    assert "priority-medium" not in labels
    assert labels.count("priority-high") == 1


async def test_the_reporters_later_edits_survive_the_bridges_updates(hooked: Harness) -> None:
    """After adoption the bridge rewrites only its region: the reporter's text, edited since,
    stays as they wrote it when an acknowledgement updates the issue."""
    issue = await report(hooked)
    await hooked.drain()
    body = hooked.github.issue(REPO, issue.number).body or ""
    edited = body.replace(REPORT, REPORT + "\n\nUpdate: it also fails in the US.")
    hooked.github.human_edit_body(REPO, issue.number, edited)

    status, answer = await deliver(
        hooked,
        "issue_comment",
        {
            "action": "created",
            "issue": issues_event(issue, "opened")["issue"],
            "comment": {"body": "On it", "user": {"login": "bob"}},
            "repository": {"full_name": REPO},
            "sender": {"login": "bob"},
        },
    )
    await hooked.drain()

    assert (status, answer["result"]) == (200, "applied")
    after = hooked.github.issue(REPO, issue.number).body or ""
    assert after.startswith(REPORT + "\n\nUpdate: it also fails in the US.\n\n" + BEGIN)
    region = after[after.index(BEGIN) : after.index(END)]
    assert "Acknowledged by bob" in region


async def test_a_reported_incident_closed_by_the_reporter_is_resolved(hooked: Harness) -> None:
    """The reporter closes it: resolved manually (no alert fires, so no comment) and the status
    page moves to Monitoring."""
    issue = await report(hooked)
    await hooked.drain()
    hooked.github.human_close(REPO, issue.number, login="alice")

    status, answer = await deliver(hooked, "issues", issues_event(issue, "closed", sender="alice"))
    await hooked.drain()

    assert (status, answer["result"]) == (200, "applied")
    [row] = await hooked.incidents()
    assert (row["state"], row["resolution"]) == ("resolved", "manual")
    assert hooked.github.comments(REPO, issue.number) == []
    page = await (await hooked.http.get("/status.json")).json()
    [shown_incident] = page["incidents"]
    assert shown_incident["status"] == "Monitoring"
    assert shown_incident["title"] == "Service disruption"  # never the issue's own text


@pytest.mark.parametrize(
    ("labels", "body", "author", "sender", "result"),
    [
        ([], REPORT, "alice", "alice", "ignored"),  # no ``incident`` label: an ordinary issue
        (
            ["incident"],
            "x\n<!-- incident-bridge:v1 kind=incident id=INC-009 key=abc -->",
            "alice",
            "alice",
            "ignored",
        ),  # the bridge's marker: a copy of one of its issues
        (["incident"], REPORT, "incident-bridge[bot]", "incident-bridge[bot]", "own_account"),
    ],
)
async def test_issues_that_are_not_reports_are_not_adopted(
    hooked: Harness,
    labels: list[str],
    body: str,
    author: str,
    sender: str,
    result: str,
) -> None:
    """Only issues labelled ``incident``, without the bridge's marker, opened by someone other
    than the bridge are adopted."""
    issue = hooked.github.human_create_issue(REPO, "Something", body, labels, login=author)

    status, answer = await deliver(hooked, "issues", issues_event(issue, "opened", sender=sender))
    await hooked.drain()

    assert (status, answer["result"]) == (200, result)
    assert await hooked.incidents() == []
    assert hooked.github.issue(REPO, issue.number).title == "Something"


async def test_numbering_is_shared_with_alert_incidents(hooked: Harness) -> None:
    """A report takes the next number after the incidents Alertmanager opened, and the next
    alert group the one after it."""
    await hooked.post(payload("01_firing_single.json"))
    await hooked.drain()
    await report(hooked)
    await hooked.drain()
    await hooked.post(payload("04_group_of_3_firing.json"))
    await hooked.drain()

    ids = sorted(row["id"] for row in await hooked.incidents())
    assert ids == ["INC-001", "INC-002", "INC-003"]
    assert hooked.github.issue(REPO, 2).title.startswith("[INC-002] Checkout hangs")
