"""The Slack adapter's pure parts: Block Kit rendering (escaping hostile alert text) and the
classification of failures for the outbox; plus a real refused connection on loopback."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bridge.config import SlackConfig
from bridge.effects import EffectError
from bridge.model import AlertState, Incident, Priority, TimelineEvent
from bridge.notify.base import Notice
from bridge.notify.slack import SlackNotifier, classify, escape, root_message, slack_blocks

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
HOSTILE = "<!channel> <!here> @here @everyone <@U123> <script>x</script> *bold* a&b"
TOKEN = "xoxb-unit-secret-token"  # never sent anywhere real


def incident(
    summary: str = "Disk full on db-1",
    *,
    runbook: str = "https://runbooks.example.com/disk",
    state: str = "open",
    priority: Priority = Priority.P0,
) -> Incident:
    alert = AlertState(
        fingerprint="f1",
        status="firing" if state == "open" else "resolved",
        labels={"alertname": "DiskFull"},
        annotations={"summary": summary, "runbook_url": runbook},
        starts_at=T0,
        ends_at=None,
        generator_url="",
        priority=priority,
        rule="test",
        updated_at=T0,
    )
    return Incident(
        key="k" * 64,
        identity="id",
        kind="incident",
        receiver="r",
        group_key="g",
        group_labels={},
        state=state,  # type: ignore[arg-type]  # the tests pass "open" or "resolved"
        priority=priority,
        priority_rule="test",
        summary=summary,
        opened_at=T0,
        earliest_starts_at=T0,
        respond_by=None,
        resolve_by=None,
        alerts={"f1": alert},
        number=7,
    )


def notice(
    inc: Incident,
    kind: str = "opened",
    *,
    text: str = "Incident opened as P0 (test)",
    data: dict[str, Any] | None = None,
    state: dict[str, str] | None = None,
    issue_url: str | None = "https://github.example/acme/incidents/issues/7",
) -> Notice:
    event = TimelineEvent(seq=1, at=T0, kind=kind, text=text, data=data or {})  # type: ignore[arg-type]  # valid kinds only
    return Notice(
        incident=inc, event=event, recipient="#incidents", issue_url=issue_url, state=state or {}
    )


def everything(text: str, blocks: list[dict[str, Any]]) -> str:
    def walk(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for v in value.values() for s in walk(v)]
        if isinstance(value, list):
            return [s for v in value for s in walk(v)]
        return []

    return "\n".join([text, *walk(blocks)])


def test_escape_defuses_control_characters_and_mentions() -> None:
    """&, <, > become entities; every @ gets a word joiner, so nothing can mention anyone."""
    assert escape("<!here> a&b @channel") == "&lt;!here&gt; a&amp;b @\u2060channel"


def test_the_root_message_shows_priority_summary_state_and_links() -> None:
    """Header with the id and priority, the summary in bold, priority and state fields, the
    issue and runbook links, and a text fallback that says the same."""
    text, blocks = slack_blocks(notice(incident()))
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔴 INC-007 · P0 Critical", "emoji": True},
    }
    assert blocks[1]["text"]["text"] == "*Disk full on db-1*"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields == ["*Priority*\n🔴 P0 Critical", "*State*\n🚨 Open"]
    links = blocks[3]["text"]["text"]
    assert "<https://github.example/acme/incidents/issues/7|GitHub issue INC-007>" in links
    assert "<https://runbooks.example.com/disk|Runbook>" in links
    assert text.startswith("🔴 P0 Critical · INC-007: Disk full on db-1 · Open · <https://")


def test_hostile_summary_cannot_ping_or_inject() -> None:
    """Broadcasts, user mentions and markup in the summary are inert; an unsafe runbook URL is
    not linked."""
    text, blocks = slack_blocks(notice(incident(HOSTILE, runbook="javascript:alert(1)")))
    shown = everything(text, blocks)
    for bad in ("<!", "<@", "<script", "@here", "@channel", "@everyone", "javascript:"):
        assert bad not in shown
    assert "&lt;!channel&gt;" in shown
    assert "&lt;@\u2060U123&gt;" in shown
    assert "a&amp;b" in shown
    assert "Runbook" not in shown


def test_links_cannot_break_out_of_the_mrkdwn_link() -> None:
    """A ``|`` or ``>`` in a URL is percent-encoded, an ``&`` is an entity; a non-http(s) issue
    URL is left out."""
    inc = incident(runbook="https://rb.example.com/a?x=1&y=2|<!channel>")
    _, blocks = slack_blocks(notice(inc, issue_url="ftp://example.com/x"))
    links = blocks[3]["text"]["text"]
    assert links == "<https://rb.example.com/a?x=1&amp;y=2%7C%3C!channel%3E|Runbook>"


def test_a_resolved_root_shows_the_tick_and_the_duration() -> None:
    """The root after resolution: ✅ in the header and the state with the event's duration."""
    inc = incident(state="resolved")
    inc.resolved_at = T0 + timedelta(minutes=10)
    resolved = notice(inc, "resolved", text="Resolved after 10m", data={"duration": "10m"})

    text, blocks = root_message(resolved)
    assert blocks[0]["text"]["text"].startswith("✅ INC-007")
    assert "*State*\n✅ Resolved after 10m" in [f["text"] for f in blocks[2]["fields"]]
    assert "Resolved after 10m" in text


def test_a_later_event_is_a_reply_unless_there_is_no_root() -> None:
    """With the root known a later event renders as a short reply; without it, as a new root
    that also says what just happened."""
    state = {"root_ts": "1700000000.000100", "channel": "C0000000001"}
    event = "Alert fired: DiskFull <@U1>"
    text, blocks = slack_blocks(notice(incident(), "alert_firing", text=event, state=state))
    assert text == "🔥 Alert fired: DiskFull &lt;@\u2060U1&gt; (21:00 UTC)"
    assert blocks == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    text, blocks = slack_blocks(notice(incident(), "alert_firing", text=event))
    assert blocks[0]["type"] == "header"
    assert blocks[-1]["elements"][0]["text"].startswith("🔥 Alert fired")


def api_error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.example/api/chat.postMessage",
        req_args={},
        data=body,
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError("failed", response)  # type: ignore[no-untyped-call]  # slack-sdk leaves __init__ unannotated


@pytest.mark.parametrize(
    ("status", "code", "retryable", "unknown"),
    [
        (200, "invalid_auth", False, False),
        (200, "not_authed", False, False),
        (200, "account_inactive", False, False),
        (200, "token_revoked", False, False),
        (200, "channel_not_found", False, False),
        (200, "not_in_channel", False, False),
        (200, "is_archived", False, False),
        (200, "msg_too_long", False, False),
        (200, "invalid_blocks", False, False),
        (200, "invalid_arguments", False, False),
        (200, "internal_error", True, False),
        (200, "fatal_error", True, False),
        (500, "internal_error", True, False),
        (503, "service_unavailable", True, False),
        (502, "", True, False),
        (504, "request_timeout", True, True),
    ],
)
def test_slack_answers_are_classified(
    status: int, code: str, retryable: bool, unknown: bool
) -> None:
    """Slack's error codes and HTTP statuses: permanent, retryable, or possibly applied."""
    body = {"ok": False, "error": code} if code else {}
    error = classify(api_error(status, body), "chat.postMessage")
    assert (error.retryable, error.outcome_unknown, error.status) == (retryable, unknown, status)
    assert code in str(error)


def test_a_rate_limit_is_retryable_after_retry_after() -> None:
    """429 ratelimited: retryable, after the Retry-After seconds."""
    error = classify(
        api_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}), "x.y"
    )
    assert (error.retryable, error.retry_after, error.outcome_unknown) == (True, 30.0, False)


def test_a_connection_lost_after_sending_is_an_unknown_outcome() -> None:
    """A server disconnect or a timeout may come after Slack applied the request."""
    for lost in (aiohttp.ServerDisconnectedError(), TimeoutError(), aiohttp.ClientPayloadError()):
        error = classify(lost, "chat.postMessage")
        assert (error.retryable, error.outcome_unknown) == (True, True)


async def test_slack_unreachable_is_retryable_and_nothing_was_sent() -> None:
    """A refused connection on loopback (nothing listening): retryable, outcome known (nothing
    sent), and the token is nowhere in the error; close() closes the session."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = SlackConfig.model_validate(
        {"api_url": f"http://127.0.0.1:{port}/api", "token": TOKEN, "channel": "#incidents"}
    )
    notifier = SlackNotifier(config)
    with pytest.raises(EffectError) as info:
        await notifier.send(notice(incident()))
    assert (info.value.retryable, info.value.outcome_unknown) == (True, False)
    assert TOKEN not in str(info.value)
    await notifier.close()
    await notifier.close()  # twice is harmless


def test_the_rules_name_of_the_priority_is_shown_when_they_rename_it() -> None:
    """An operator's rules_dir may call P0 something else: Slack shows their name, escaped."""
    base = notice(incident())
    renamed = Notice(
        incident=base.incident,
        event=base.event,
        recipient="#incidents",
        priority_name="Sev-1 <!channel>",
    )
    text, blocks = root_message(renamed)
    rendered = everything(text, blocks)
    assert "Sev-1" in rendered
    assert "<!channel>" not in rendered
    assert "Critical" not in rendered
