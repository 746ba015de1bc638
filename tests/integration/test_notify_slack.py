"""The responders' Slack channel through the real app, against FakeSlack on loopback (slack-sdk
talks to it unchanged) and a real SMTP server for the email lane beside it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from fakes.slack import FakeSlack, SlackMessage
from fakes.smtp import Mailbox, smtp_server
from support import REPO, SLACK_CHANNEL, SLACK_TOKEN, Harness, github_config, payload


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback."""
    with smtp_server() as mailbox:
        yield mailbox, mailbox.port


def notify_config(slack: FakeSlack, smtp_port: int) -> str:
    return (
        "slack:\n"
        f"  api_url: {slack.base_url}\n"
        f"  token: {SLACK_TOKEN}\n"
        f'  channel: "{SLACK_CHANNEL}"\n'
        "email:\n"
        "  smtp_host: 127.0.0.1\n"
        f"  smtp_port: {smtp_port}\n"
        "  starttls: false\n"
        "  from: incident-bridge@example.com\n"
        "stakeholders:\n"
        "  - {name: Alice Ops, email: alice@example.com}\n"
    )


@pytest.fixture
async def harness(
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    slack: FakeSlack,
    smtp: tuple[Mailbox, int],
) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, github_config(notify_config(slack, smtp[1])))
    await h.start()
    yield h
    await h.stop()


def strings(value: Any) -> list[str]:
    """Every string inside a JSON value (a message's text and blocks)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def shown(message: SlackMessage) -> str:
    """A message's text and every string of its blocks, one string."""
    return "\n".join([message.text, *strings(message.blocks or [])])


def root(slack: FakeSlack) -> SlackMessage:
    [message] = slack.messages(SLACK_CHANNEL)
    return message


async def timeline_kinds(harness: Harness) -> list[tuple[str, str]]:
    assert harness.app is not None
    store = harness.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    return [(e.kind, e.text) for e in await store.load_events(row.incident.id, 50)]


async def test_a_p2_gets_a_root_message_with_priority_summary_and_issue_link(
    harness: Harness, slack: FakeSlack
) -> None:
    """Slack hears every priority: a P2 gets one root message in the channel (Block Kit and a
    text fallback) with the priority, the summary, the state and the GitHub issue's link."""
    status, answer = await harness.post(payload("04_group_of_3_firing.json"))
    assert (status, answer["priority"]) == (200, "P2")
    await harness.drain()
    message = root(slack)
    assert message.blocks is not None
    assert message.blocks[0]["type"] == "header"
    assert message.text.startswith("🟡 P2 Medium · INC-001: ")
    text = shown(message)
    [issue] = harness.issues()
    assert "P2 Medium" in text
    assert "*DiskFull on db-1:9100*" in text  # the summary
    assert "Open" in text
    assert f"{harness.github.html_base}/{REPO}/issues/{issue.number}|" in text
    assert "Runbook" in text
    [call] = slack.calls("chat.postMessage")  # the opening alerts are in it: no replies
    assert call.args["channel"] == SLACK_CHANNEL
    assert "thread_ts" not in call.args


async def test_an_update_is_threaded_under_the_root(harness: Harness, slack: FakeSlack) -> None:
    """One alert of the group resolving is a threaded reply; the root is not edited for it
    and no second top-level message appears."""
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    harness.clock.advance(60)
    await harness.post(payload("05_group_mixed_one_resolved.json"))
    await harness.drain()
    first = root(slack)
    [reply] = slack.thread(SLACK_CHANNEL, first.ts)
    assert reply.thread_ts == first.ts
    assert "resolved" in reply.text.lower()
    assert first.edited_ts is None


async def test_resolution_threads_a_reply_and_edits_the_root_and_a_repeat_posts_nothing(
    harness: Harness, slack: FakeSlack
) -> None:
    """A repeat of the same alert posts nothing; resolution is a reply in the thread and the
    root now shows ✅ and how long it lasted."""
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    await harness.post(payload("02_repeat_single.json"))
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 1
    harness.clock.advance(600)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    first = root(slack)
    alert_reply, reply = slack.thread(SLACK_CHANNEL, first.ts)  # the alert, then the incident
    assert alert_reply.text.startswith("🟢 Alert resolved")
    assert reply.text.startswith("✅ Resolved")
    assert first.edited_ts is not None
    assert len(first.history) == 1
    assert "Resolved after" in shown(first)
    assert first.text.startswith("🟠 P1 High")
    assert first.blocks is not None
    assert first.blocks[0]["text"]["text"].startswith("✅ INC-001")
    [update] = slack.calls("chat.update")
    assert update.args["channel"] == slack.channel(SLACK_CHANNEL).id
    assert len(slack.calls("chat.postMessage")) == 3
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 3


async def test_hostile_alert_text_cannot_ping_or_inject(harness: Harness, slack: FakeSlack) -> None:
    """Broadcasts, user mentions, markup and an unsafe runbook URL in the alert text reach the
    channel as inert text: no ``<!…>``/``<@…>`` control sequence, no bare ``@here``, no link
    except the bridge's own."""
    body = payload("04_group_of_3_firing.json")
    hostile = "<!channel> <!here> @here @channel <@U123> <script>alert(1)</script> a&b"
    body["commonAnnotations"]["summary"] = hostile
    for alert in body["alerts"]:
        alert["annotations"]["summary"] = hostile
        alert["annotations"]["runbook_url"] = "javascript:alert(1)"
    body["commonAnnotations"]["runbook_url"] = "javascript:alert(1)"
    await harness.post(body)
    await harness.drain()
    harness.clock.advance(60)
    body["alerts"][1]["status"] = "resolved"
    body["alerts"][1]["endsAt"] = "2026-11-26T21:45:30Z"
    await harness.post(body)
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 2
    for call in slack.calls("chat.postMessage"):
        sent = "\n".join(strings({"text": call.args["text"], "blocks": call.args["blocks"]}))
        for bad in ("<!", "<@", "<script", "@here", "@channel", "javascript:"):
            assert bad not in sent
        assert "&lt;!channel&gt;" in sent or call.args.get("thread_ts")
        assert call.args.get("link_names") in (None, False)
    text = shown(root(slack))
    assert "&lt;script&gt;" in text
    assert "a&amp;b" in text
    assert "@\u2060here" in text
    assert "Runbook" not in text


async def test_slack_rate_limit_waits_for_retry_after_and_delays_nothing_else(
    harness: Harness, slack: FakeSlack, smtp: tuple[Mailbox, int]
) -> None:
    """429 with Retry-After: 30 → no request to Slack inside the window, then exactly one
    post; meanwhile the GitHub issue is made and the email lane delivers at once."""
    mailbox, _ = smtp
    slack.inject("POST", r"chat\.postMessage$", 429, headers={"Retry-After": "30"})
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert len(harness.issues()) == 1
    assert [rcpt for rcpt, _ in mailbox.received] == ["alice@example.com"]
    assert slack.messages(SLACK_CHANNEL) == []
    assert [r.status for r in slack.calls("chat.postMessage")] == [429]
    harness.clock.advance(25)
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 1  # nothing inside the window
    harness.clock.advance(10)
    await harness.drain()
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 200]
    assert root(slack).text.startswith("🔴 P0 Critical · INC-001: ")
    harness.clock.advance(3600)
    await harness.drain()
    assert len(slack.messages(SLACK_CHANNEL)) == 1
    assert len(mailbox.received) == 1


async def test_a_day_long_retry_after_holds_the_channel_a_quarter_of_an_hour_at_most(
    harness: Harness, slack: FakeSlack
) -> None:
    """One 429 holds the whole Slack channel (the limit is the account's) — but a day-long
    Retry-After (a proxy's, say) does not silence every page for a day: the channel waits at
    most 15 minutes, the refused message itself at most an hour."""
    slack.inject("POST", r"chat\.postMessage$", 429, headers={"Retry-After": "86400"})
    await harness.post(payload("13_critical_list_service_unavailable.json"))
    await harness.drain()
    assert [r.status for r in slack.calls("chat.postMessage")] == [429]
    await harness.post(payload("04_group_of_3_firing.json"))  # another incident
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 1  # held: inside the channel's window
    harness.clock.advance(901)
    await harness.drain()
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 200]
    harness.clock.advance(3600)
    await harness.drain()
    assert [r.status for r in slack.calls("chat.postMessage")] == [429, 200, 200]
    assert len(slack.messages(SLACK_CHANNEL)) == 2


async def test_invalid_auth_fails_permanently_in_the_timeline_and_is_not_retried(
    harness: Harness, slack: FakeSlack
) -> None:
    """A revoked token (invalid_auth): the message fails for good, the incident's timeline
    says so (without the token), and nothing is sent again."""
    slack.token = "xoxb-rotated"  # the fake now refuses the bridge's token
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    assert [r.error for r in slack.calls("chat.postMessage")] == ["invalid_auth"]
    failed = [text for kind, text in await timeline_kinds(harness) if kind == "effect_failed"]
    assert any("notify.slack" in text and "invalid_auth" in text for text in failed)
    assert not any(SLACK_TOKEN in text for text in failed)
    harness.clock.advance(3600)
    await harness.drain()
    assert len(slack.calls("chat.postMessage")) == 1
    assert slack.messages(SLACK_CHANNEL) == []


def slack_effects(harness: Harness) -> list[tuple[str, int, int, str | None]]:
    """The Slack effects' outbox rows: (state, attempts, outcome_unknown, last_error)."""
    path = harness.config.store.sqlite_path
    assert path is not None
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT state, attempts, outcome_unknown, last_error FROM outbox"
            " WHERE kind = 'notify.slack' ORDER BY id"
        ).fetchall()
    return [(str(s), int(a), int(u), e) for s, a, u, e in rows]


async def test_an_error_page_labelled_json_is_a_retryable_5xx(
    harness: Harness, slack: FakeSlack
) -> None:
    """A proxy in front of Slack answers 502 with an HTML page labelled JSON: classified as
    Slack's 5xx (retried, then posted), not a crash of the classifier."""
    slack.inject(
        "POST",
        r"chat\.postMessage$",
        502,
        body="<html>Bad gateway</html>",
        headers={"Content-Type": "application/json"},
    )
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    [(state, attempts, unknown, error)] = slack_effects(harness)
    assert (state, attempts, unknown) == ("pending", 1, 0)
    assert error == "Slack chat.postMessage: HTTP 502 (no error code)"
    harness.clock.advance(600)
    await harness.drain()
    assert [s for s, *_ in slack_effects(harness)] == ["done"]
    assert len(slack.messages(SLACK_CHANNEL)) == 1


async def test_a_connection_dropped_after_slack_posted_is_repeated_at_least_once(
    harness: Harness, slack: FakeSlack
) -> None:
    """Slack applies the post, then the connection drops before the answer: the bridge cannot
    know, so the effect is retried with its outcome unknown and the message goes out again.
    Per the contract Slack is at least once — never lost, and here visibly duplicated."""
    slack.inject("POST", r"chat\.postMessage$", 0, drop=True, apply_first=True)
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.drain()
    assert len(slack.messages(SLACK_CHANNEL)) == 1  # applied, though the bridge never heard
    [(state, attempts, unknown, error)] = slack_effects(harness)
    assert (state, attempts, unknown) == ("pending", 1, 1)
    assert error is not None
    assert "after sending" in error
    assert SLACK_TOKEN not in error
    harness.clock.advance(600)
    await harness.drain()
    assert [r.dropped for r in slack.calls("chat.postMessage")] == [True, False]
    first, second = slack.messages(SLACK_CHANNEL)
    assert first.text == second.text  # the documented duplicate
    assert [s for s, *_ in slack_effects(harness)] == ["done"]
    # The incident's later messages thread under the root the bridge knows: the second.
    harness.clock.advance(60)
    await harness.post(payload("05_group_mixed_one_resolved.json"))
    await harness.drain()
    assert len(slack.thread(SLACK_CHANNEL, second.ts)) == 1
    assert json.dumps(slack.thread(SLACK_CHANNEL, first.ts)) == "[]"
