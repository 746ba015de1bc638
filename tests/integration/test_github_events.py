"""``POST /api/v1/github/events``: GitHub's webhook, through the real app on loopback.

Each test opens an incident through the Alertmanager webhook (so it has an issue on the fake
GitHub), then delivers GitHub events the way GitHub does: the JSON body, ``X-GitHub-Event``,
``X-GitHub-Delivery`` and ``X-Hub-Signature-256`` (HMAC-SHA256 of the body with the secret).
What the bridge does is read back from ``/api/v1/incidents``, ``/status.json``, ``/metrics`` and
the fake GitHub's issues.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import create_app
from bridge.clock import FakeClock
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub, FakeIssue, make_app_key
from support import (
    APP_ID,
    INSTALLATION_ID,
    REPO,
    Harness,
    github_app_config,
    github_config,
    payload,
)

SECRET = "gh-hook-s3cret"
BOT = "incident-bridge[bot]"  # the fake GitHub's account for the bridge's token
HOOKED = f"  webhook_secret: {SECRET}\n"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores (the harness takes this URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


@pytest.fixture
async def hooked(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    """The bridge with ``github.webhook_secret`` configured."""
    h = Harness(tmp_path, github, clock, github_config(HOOKED, store_url=store_url))
    await h.start()
    yield h
    await h.stop()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver(
    h: Harness,
    event: str,
    body: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    signature: str | None = None,
    signed: bool = True,
) -> tuple[int, Any]:
    """One delivery as GitHub sends it; returns the status and the JSON answer."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "User-Agent": "GitHub-Hookshot/abc123",
    }
    if signed:
        headers["X-Hub-Signature-256"] = sign(raw) if signature is None else signature
    response = await h.http.post("/api/v1/github/events", data=raw, headers=headers)
    try:
        answer = await response.json()
    except ValueError:
        answer = await response.text()
    return response.status, answer


def issue_json(issue: FakeIssue) -> dict[str, Any]:
    """The ``issue`` object of an event, from the fake's state."""
    return {
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state,
        "labels": [{"name": name, "color": "ededed"} for name in issue.label_names],
        "user": {"login": issue.user.login, "type": issue.user.type},
        "assignees": [{"login": user.login} for user in issue.assignees],
    }


def issues_event(
    issue: FakeIssue, action: str, sender: str = "alice", **extra: Any
) -> dict[str, Any]:
    return {
        "action": action,
        "issue": issue_json(issue),
        "repository": {"full_name": REPO, "name": "incidents"},
        "sender": {"login": sender, "type": "Bot" if sender.endswith("[bot]") else "User"},
        **extra,
    }


def comment_event(issue: FakeIssue, author: str, body: str) -> dict[str, Any]:
    return {
        "action": "created",
        "issue": issue_json(issue),
        "comment": {"id": 1, "body": body, "user": {"login": author}},
        "repository": {"full_name": REPO},
        "sender": {"login": author},
    }


async def opened(h: Harness, name: str = "01_firing_single.json") -> FakeIssue:
    """An incident opened by Alertmanager, its issue created."""
    status, _ = await h.post(payload(name))
    assert status == 200
    await h.drain()
    return h.issues()[-1]


async def the_incident(h: Harness) -> dict[str, Any]:
    [row] = await h.incidents()
    return row


async def metric(h: Harness, line_start: str) -> float:
    text = await (await h.http.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not exported")


def events_metric(event: str, result: str) -> str:
    return f'incident_bridge_github_events_total{{event="{event}",result="{result}"}}'


# -- verification ----------------------------------------------------------------------------


async def test_a_signed_assignment_acknowledges(hooked: Harness) -> None:
    """Assigned, with a good signature: 200, and who and when are in the incidents API; the
    next sync puts the ``acknowledged`` label on the issue."""
    issue = await opened(hooked)
    hooked.clock.advance(timedelta(minutes=3))

    status, answer = await deliver(
        hooked, "issues", issues_event(issue, "assigned", assignee={"login": "bob"})
    )

    assert (status, answer) == (200, {"status": "accepted", "result": "applied"})
    row = await the_incident(hooked)
    assert row["acknowledged_by"] == "bob"
    assert row["acknowledged_at"] == hooked.clock().isoformat()
    await hooked.drain()
    assert "acknowledged" in hooked.github.issue(REPO, issue.number).label_names
    assert await metric(hooked, events_metric("issues", "applied")) == 1


@pytest.mark.parametrize(
    ("signature", "signed"),
    [
        (None, False),  # no X-Hub-Signature-256
        (sign(b"another body"), True),
        (sign(b"", "wrong-secret"), True),
        ("sha1=0123456789abcdef", True),
        ("", True),
    ],
)
async def test_a_bad_or_missing_signature_is_401(
    hooked: Harness, signature: str | None, signed: bool
) -> None:
    """Anything but the body's HMAC with the secret is refused, changes nothing and is counted."""
    issue = await opened(hooked)
    body = issues_event(issue, "assigned", assignee={"login": "bob"})

    status, answer = await deliver(hooked, "issues", body, signature=signature, signed=signed)

    assert status == 401
    assert "X-Hub-Signature-256" in answer["error"]
    assert (await the_incident(hooked))["acknowledged_at"] is None
    assert await metric(hooked, events_metric("issues", "bad_signature")) == 1


async def test_without_a_secret_the_endpoint_is_404(harness: Harness) -> None:
    """No ``github.webhook_secret``: the endpoint does not exist (the bridge polls instead)."""
    issue = await opened(harness)
    body = issues_event(issue, "assigned", assignee={"login": "bob"})

    status, answer = await deliver(harness, "issues", body)

    assert status == 404
    assert "webhook_secret" in answer["error"]
    assert (await the_incident(harness))["acknowledged_at"] is None


async def test_a_delivery_is_applied_once(hooked: Harness) -> None:
    """The same ``X-GitHub-Delivery`` twice (a redelivery, or a replayed capture) is applied
    once: a replayed "closed" cannot close the incident again after people reopened it."""
    issue = await opened(hooked)
    closing = issues_event(issue, "closed", sender="dave")
    reopening = issues_event(issue, "reopened", sender="dave")

    first = await deliver(hooked, "issues", closing, delivery="d-1")
    await deliver(hooked, "issues", reopening, delivery="d-2")
    replay = await deliver(hooked, "issues", closing, delivery="d-1")

    assert first == (200, {"status": "accepted", "result": "applied"})
    assert replay == (200, {"status": "accepted", "result": "duplicate"})
    assert (await the_incident(hooked))["state"] == "open"
    assert await metric(hooked, events_metric("issues", "duplicate")) == 1


# A real fault: every update of an incident aborts (and how to remove it), per store.
_NO_UPDATES = {
    "sqlite": (
        "CREATE TRIGGER no_update BEFORE UPDATE ON incidents"
        " BEGIN SELECT RAISE(ABORT, 'disk'); END",
        "DROP TRIGGER no_update",
    ),
    "postgres": (
        "CREATE FUNCTION no_update() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'disk'; END $$;"
        " CREATE TRIGGER no_update BEFORE UPDATE ON incidents"
        " FOR EACH ROW EXECUTE FUNCTION no_update()",
        "DROP TRIGGER no_update ON incidents; DROP FUNCTION no_update()",
    ),
}


async def test_a_delivery_the_store_could_not_take_is_applied_when_delivered_again(
    hooked: Harness, store_url: str
) -> None:
    """The store fails while the step is applied: 503, and the delivery is not remembered, so
    GitHub's (or a person's) redelivery of the same ``X-GitHub-Delivery`` acknowledges."""
    issue = await opened(hooked)
    assert hooked.app is not None
    store = hooked.app[SERVICES].store
    assert isinstance(store, SqliteStore | PostgresStore)
    add, remove = _NO_UPDATES["postgres" if store_url.startswith("postgresql") else "sqlite"]
    assigned = issues_event(issue, "assigned", assignee={"login": "bob"})

    await store.execute_for_test(add)
    failed, _ = await deliver(hooked, "issues", assigned, delivery="d-9")
    await store.execute_for_test(remove)
    again = await deliver(hooked, "issues", assigned, delivery="d-9")

    assert failed == 503
    assert again == (200, {"status": "accepted", "result": "applied"})
    assert (await the_incident(hooked))["acknowledged_by"] == "bob"


async def test_events_from_the_bridges_own_account_are_ignored(hooked: Harness) -> None:
    """The bridge learnt its login at start-up: its own label, close and comment change
    nothing (the ``acknowledged`` label it adds, the close of a resolution)."""
    issue = await opened(hooked)

    answers = [
        await deliver(
            hooked,
            "issues",
            issues_event(issue, "labeled", sender=BOT, label={"name": "acknowledged"}),
        ),
        await deliver(hooked, "issues", issues_event(issue, "closed", sender=BOT)),
        await deliver(hooked, "issue_comment", comment_event(issue, BOT, "✅ Resolved")),
    ]

    assert answers == [(200, {"status": "accepted", "result": "own_account"})] * 3
    row = await the_incident(hooked)
    assert (row["acknowledged_at"], row["state"]) == (None, "open")


async def test_a_comment_carrying_the_bridges_marker_is_not_a_humans(hooked: Harness) -> None:
    """A comment with the bridge's event marker (posted under another account) is the bridge's."""
    issue = await opened(hooked)
    body = "🔁 Reopened\n\n<!-- incident-bridge:event=INC-001.7 -->"

    status, answer = await deliver(hooked, "issue_comment", comment_event(issue, "ops-bot", body))

    assert (status, answer["result"]) == (200, "own_account")
    assert (await the_incident(hooked))["acknowledged_at"] is None


# -- malformed and other events ------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "body", "error"),
    [
        ("issues", b"{not json", "malformed JSON"),
        ("issues", b"[1, 2]", "not a GitHub issues event"),
        ("issues", b'{"action": "assigned"}', "issue"),
        ("issue_comment", b'{"action": "created", "issue": {"number": 1}}', "comment"),
        ("issues", b'{"action": "assigned", "issue": {"number": "one"}}', "issue.number"),
    ],
)
async def test_malformed_events_are_400(
    hooked: Harness, event: str, body: bytes, error: str
) -> None:
    """A signed body that is not the event it says is a 400 naming what is wrong, never a 500."""
    status, answer = await deliver(hooked, event, body)
    assert status == 400
    assert error in answer["error"]


@pytest.mark.parametrize("over", [1, 5000], ids=["just-over", "far-over"])
@pytest.mark.parametrize("declared", [True, False], ids=["with-length", "chunked"])
async def test_a_body_above_the_limit_is_413(hooked: Harness, over: int, declared: bool) -> None:
    """Deliveries above webhook.max_body_bytes are refused (counted as malformed), whether they
    declare their length or arrive chunked, just over the limit or far over it."""
    assert hooked.app is not None
    limit = hooked.app[SERVICES].config.webhook.max_body_bytes
    raw = json.dumps({"action": "opened", "pad": "x" * (limit + over)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield raw

    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(raw),
    }
    response = await hooked.http.post(
        "/api/v1/github/events", data=raw if declared else chunks(), headers=headers
    )
    assert response.status == 413
    assert str(limit) in (await response.json())["error"]
    assert await metric(hooked, events_metric("issues", "malformed")) == 1


async def test_an_assignment_without_an_assignee_is_400(hooked: Harness) -> None:
    issue = await opened(hooked)
    status, answer = await deliver(hooked, "issues", issues_event(issue, "assigned"))
    assert (status, answer["error"]) == (400, "not a GitHub issues event: assignee")


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("ping", None),
        ("push", None),
        ("pull_request", "opened"),
        ("issues", "edited"),
        ("issues", "milestoned"),
        ("issue_comment", "deleted"),
    ],
)
async def test_events_the_bridge_does_not_act_on_are_200(
    hooked: Harness, event: str, action: str | None
) -> None:
    """GitHub's ping, other events and other actions: 200, counted, nothing changes."""
    issue = await opened(hooked)
    body = issues_event(issue, action) if action else {"zen": "Keep it logically awesome."}
    if event == "issue_comment":
        body = {**comment_event(issue, "alice", "typo"), "action": action}

    status, answer = await deliver(hooked, event, body)

    assert (status, answer["result"]) == (200, "ignored")
    assert (await the_incident(hooked))["acknowledged_at"] is None


async def test_events_on_other_issues_are_200_and_counted(hooked: Harness) -> None:
    """An issue that is no incident's (a feature request in the same repository), a pull
    request's comment, another repository: 200, nothing changes."""
    issue = await opened(hooked)
    other = hooked.github.human_create_issue(REPO, "Feature request: dark mode")
    on_pr = {**comment_event(issue, "alice", "LGTM")}
    on_pr["issue"] = {**on_pr["issue"], "pull_request": {"url": "https://x"}}
    elsewhere = issues_event(issue, "assigned", assignee={"login": "bob"})
    elsewhere["repository"] = {"full_name": "acme/other"}

    answers = [
        await deliver(hooked, "issues", issues_event(other, "assigned", assignee={"login": "b"})),
        await deliver(hooked, "issue_comment", on_pr),
        await deliver(hooked, "issues", elsewhere),
    ]

    assert [a[1]["result"] for a in answers] == ["not_incident", "ignored", "ignored"]
    assert (await the_incident(hooked))["acknowledged_at"] is None
    assert await metric(hooked, events_metric("issues", "not_incident")) == 1


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["assigned", "labeled", "closed", "reopened", "created"])
        | st.text(max_size=10),
        "issue": st.fixed_dictionaries(
            {},
            optional={
                "number": st.integers(min_value=-5, max_value=2**40) | JSON_VALUES,
                "labels": st.lists(st.fixed_dictionaries({"name": st.text(max_size=8)})),
                "title": JSON_VALUES,
                "user": st.fixed_dictionaries({"login": st.text(max_size=12)}) | JSON_VALUES,
            },
        )
        | JSON_VALUES,
        "repository": st.just({"full_name": REPO}) | JSON_VALUES,
        "sender": st.fixed_dictionaries({"login": st.text(max_size=12)}) | JSON_VALUES,
        "label": st.fixed_dictionaries({"name": st.text(max_size=12)}) | JSON_VALUES,
        "assignee": st.fixed_dictionaries({"login": st.text(max_size=12)}) | JSON_VALUES,
        "comment": st.fixed_dictionaries({"body": st.text(max_size=12), "user": JSON_VALUES}),
    },
)
JUNK = (
    st.binary(max_size=200)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
    | FIELDS.map(lambda v: json.dumps(v).encode())
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=st.sampled_from(["issues", "issue_comment", "ping", "x"]), body=JUNK)
async def test_signed_junk_is_never_a_500(hooked: Harness, event: str, body: bytes) -> None:
    """Whatever a correctly signed body holds, the answer is 200 or 400, never 500."""
    status, _ = await deliver(hooked, event, body)
    assert status in (200, 400)


# -- acknowledgement ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "make", "who", "via"),
    [
        (
            "issues",
            lambda i: issues_event(i, "labeled", sender="carol", label={"name": "acknowledged"}),
            "carol",
            "label",
        ),
        (
            "issues",
            lambda i: issues_event(i, "labeled", sender="carol", label={"name": "Identified"}),
            "carol",
            "label",
        ),
        ("issue_comment", lambda i: comment_event(i, "erin", "Looking into it"), "erin", "comment"),
        (
            "issues",
            lambda i: issues_event(i, "assigned", sender="lead", assignee={"login": "bob"}),
            "bob",
            "assigned",
        ),
    ],
)
async def test_people_acknowledge_on_the_issue(
    hooked: Harness, event: str, make: Any, who: str, via: str
) -> None:
    """Labelled ``acknowledged`` or ``identified``, commented on by a human, or assigned (the
    assignee acknowledges): acknowledged, and Slack-less configs still record who and when."""
    issue = await opened(hooked)

    status, answer = await deliver(hooked, event, make(issue))

    assert (status, answer["result"]) == (200, "applied")
    row = await the_incident(hooked)
    assert row["acknowledged_by"] == who
    await hooked.drain()
    [comment_or_none] = [hooked.github.issue(REPO, issue.number)]
    body = comment_or_none.body or ""
    assert f"Acknowledged by {who}" in body  # the timeline in the issue


async def test_the_first_acknowledgement_wins(hooked: Harness) -> None:
    """A later comment changes nothing: who acknowledged stays the first."""
    issue = await opened(hooked)
    await deliver(hooked, "issues", issues_event(issue, "assigned", assignee={"login": "bob"}))
    hooked.clock.advance(timedelta(minutes=1))

    status, answer = await deliver(hooked, "issue_comment", comment_event(issue, "erin", "+1"))

    assert (status, answer["result"]) == (200, "unchanged")
    assert (await the_incident(hooked))["acknowledged_by"] == "bob"


async def test_the_identified_label_moves_the_status_page_to_identified(hooked: Harness) -> None:
    """Labelled ``identified``: the public post says Identified; a second label changes nothing."""
    issue = await opened(hooked)
    hooked.clock.advance(timedelta(minutes=4))
    body = issues_event(issue, "labeled", sender="carol", label={"name": "identified"})

    first = await deliver(hooked, "issues", body)
    again = await deliver(hooked, "issues", body)  # removed and added again: a new delivery

    assert [first[1]["result"], again[1]["result"]] == ["applied", "unchanged"]
    page = await (await hooked.http.get("/status.json")).json()
    [shown] = page["incidents"]
    assert shown["status"] == "Identified"
    assert shown["posts"][0]["posted_at"] == hooked.clock().isoformat()
    # The label is people's: the bridge's sync keeps it and adds ``acknowledged`` beside it.
    hooked.github.human_add_label(REPO, issue.number, "identified")
    await hooked.drain()
    assert {"identified", "acknowledged"} <= set(hooked.github.label_names(REPO, issue.number))


# -- closed and reopened by people ---------------------------------------------------------


async def test_closed_by_hand_while_alerts_fire_stays_closed_until_they_fire_anew(
    hooked: Harness,
) -> None:
    """Closed by a human while the alert still fires: resolved manually, a comment says the
    alerts still fire; Alertmanager repeating the same firing alert changes nothing (the issue
    stays closed, no GitHub call); a new ``startsAt`` reopens it."""
    issue = await opened(hooked)
    hooked.github.human_close(REPO, issue.number, login="dave")
    hooked.clock.advance(timedelta(minutes=2))

    status, answer = await deliver(hooked, "issues", issues_event(issue, "closed", sender="dave"))
    await hooked.drain()

    assert (status, answer["result"]) == (200, "applied")
    row = await the_incident(hooked)
    assert (row["state"], row["resolution"]) == ("resolved", "manual")
    [comment] = hooked.github.comments(REPO, issue.number)
    assert "Closed by hand" in comment.body
    assert "1 alert of this group is still firing" in comment.body
    assert "<!-- incident-bridge:event=INC-001." in comment.body
    assert hooked.github.issue(REPO, issue.number).state == "closed"

    hooked.github.reset_log()
    _, repeat = await hooked.post(payload("02_repeat_single.json"))
    await hooked.drain()
    assert repeat["outcome"] == "unchanged"
    assert hooked.github.requests == []
    assert (await the_incident(hooked))["state"] == "resolved"

    refire = payload("01_firing_single.json")
    refire["alerts"][0]["startsAt"] = "2026-11-26T21:50:00Z"
    _, anew = await hooked.post(refire)
    await hooked.drain()
    assert anew["outcome"] == "reopened"
    assert hooked.github.issue(REPO, issue.number).state == "open"


async def test_reopened_by_hand_is_open_again(hooked: Harness) -> None:
    """Reopened by a human after a manual close: open again, the issue stays open."""
    issue = await opened(hooked)
    await deliver(hooked, "issues", issues_event(issue, "closed", sender="dave"))
    await hooked.drain()
    hooked.github.human_reopen(REPO, issue.number, login="dave")

    status, answer = await deliver(hooked, "issues", issues_event(issue, "reopened", sender="dave"))
    await hooked.drain()

    assert (status, answer["result"]) == (200, "applied")
    row = await the_incident(hooked)
    assert (row["state"], row["resolved_at"], row["resolution"]) == ("open", None, None)
    assert hooked.github.issue(REPO, issue.number).state == "open"
    assert "Reopened by dave" in (hooked.github.issue(REPO, issue.number).body or "")


# -- the bridge's own login ------------------------------------------------------------------


async def test_github_down_at_start_up_does_not_hold_it_up(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock
) -> None:
    """GitHub not telling the bridge who it is at start-up: the bridge serves anyway; a
    delivery that needs the bridge's login meanwhile is a 503 (an event of its own must not
    pass for a person's), and once GitHub answers the next delivery learns it and applies."""
    whoami = github.inject("GET", r"/user$", 503, times=10_000)
    h = Harness(tmp_path, github, clock, github_config(HOOKED))
    app = h.app = create_app(h.config, clock=clock, run_outbox=False)
    h.client = TestClient(TestServer(app, host="127.0.0.1"))
    await h.client.start_server()
    try:
        assert (await h.http.get("/healthz")).status == 200
        issue = await opened(h)
        body = issues_event(issue, "assigned", assignee={"login": "bob"})

        unavailable = await deliver(h, "issues", body, delivery="d-1")
        github.clear_faults()
        applied = await deliver(h, "issues", body, delivery="d-1")  # GitHub redelivers

        assert whoami.hits >= 2  # the start-up attempt and the delivery's own
        assert unavailable == (503, {"error": "GitHub did not tell the bridge's own login yet"})
        assert applied == (200, {"status": "accepted", "result": "applied"})
        assert (await the_incident(h))["acknowledged_by"] == "bob"
    finally:
        await h.stop()


async def test_a_github_app_knows_its_bot_login(tmp_path: Path, clock: FakeClock) -> None:
    """Authenticated as a GitHub App, the bridge is ``<slug>[bot]`` (``GET /app`` with the
    App's JWT): events sent by that account are its own, others' still apply."""
    key = make_app_key()
    (tmp_path / "app.pem").write_text(key.private_pem)
    async with FakeGitHub(
        token="",
        repos=[REPO],
        clock=clock,
        bot_login="acme-oncall[bot]",
        app_id=APP_ID,
        app_public_key_pem=key.public_pem,
        installation_id=INSTALLATION_ID,
    ) as fake:
        h = Harness(tmp_path, fake, clock, github_app_config(extra=f"  webhook_secret: {SECRET}\n"))
        await h.start()
        try:
            issue = await opened(h)
            own = issues_event(
                issue, "labeled", sender="acme-oncall[bot]", label={"name": "acknowledged"}
            )
            theirs = issues_event(issue, "labeled", sender="carol", label={"name": "acknowledged"})

            assert (await deliver(h, "issues", own))[1]["result"] == "own_account"
            assert (await deliver(h, "issues", theirs))[1]["result"] == "applied"
            assert [r.status for r in fake.calls("GET", "/app")][-1:] == [200]
            assert fake.calls("GET", "/user") == []
        finally:
            await h.stop()
        assert fake.internal_errors == []


# -- bots are not people ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "result", "acknowledged_by"),
    [
        ({"login": "github-actions[bot]", "type": "Bot"}, "bot", None),  # an auto-assign workflow
        ({"login": "assign-o-matic[bot]"}, "bot", None),  # no type: the [bot] login says it
        ({"login": "triage-robot", "type": "Bot"}, "bot", None),  # GitHub's type says it
        ({"login": "lead", "type": "User"}, "applied", "bob"),  # a person assigning a person
    ],
)
async def test_only_a_persons_assignment_acknowledges(
    hooked: Harness, sender: dict[str, str], result: str, acknowledged_by: str | None
) -> None:
    """Assigned by a bot (the sender is checked, not only the assignee): a code owner assigned
    by a workflow seconds after the issue opened has not seen it, so the SLA paging goes on;
    assigned by a person: acknowledged by the assignee."""
    issue = await opened(hooked)

    event = issues_event(issue, "assigned", assignee={"login": "bob", "type": "User"})
    status, answer = await deliver(hooked, "issues", {**event, "sender": sender})

    assert (status, answer["result"]) == (200, result)
    assert (await the_incident(hooked))["acknowledged_by"] == acknowledged_by
    assert await metric(hooked, events_metric("issues", result)) == 1


async def test_bot_comments_and_labels_do_not_acknowledge(hooked: Harness) -> None:
    """A welcome bot's comment (a ``[bot]`` login, or GitHub's ``type: "Bot"``) and a bot's
    ``acknowledged`` / ``identified`` label are nobody's acknowledgement: ignored, counted as
    ``bot``."""
    issue = await opened(hooked)
    typed = comment_event(issue, "greeter", "Thanks for opening this issue!")
    typed["comment"]["user"]["type"] = "Bot"

    answers = [
        await deliver(
            hooked,
            "issue_comment",
            comment_event(issue, "welcome[bot]", "Thanks for opening this issue!"),
        ),
        await deliver(hooked, "issue_comment", typed),
        await deliver(
            hooked,
            "issues",
            issues_event(issue, "labeled", sender="labeler[bot]", label={"name": "acknowledged"}),
        ),
        await deliver(
            hooked,
            "issues",
            issues_event(issue, "labeled", sender="labeler[bot]", label={"name": "identified"}),
        ),
    ]

    assert [result for _, result in answers] == [{"status": "accepted", "result": "bot"}] * 4
    assert (await the_incident(hooked))["acknowledged_at"] is None
    assert await metric(hooked, events_metric("issue_comment", "bot")) == 2
    assert await metric(hooked, events_metric("issues", "bot")) == 2


async def test_a_bots_close_or_reopening_changes_nothing(hooked: Harness) -> None:
    """A stale-issue bot closing the issue does not resolve the incident; a bot reopening an
    issue a person closed does not reopen it."""
    issue = await opened(hooked)

    status, answer = await deliver(
        hooked, "issues", issues_event(issue, "closed", sender="stale[bot]")
    )
    assert (status, answer["result"]) == (200, "bot")
    assert (await the_incident(hooked))["state"] == "open"

    await deliver(hooked, "issues", issues_event(issue, "closed", sender="dave"))
    reopen = issues_event(issue, "reopened", sender="reopener")
    reopen["sender"]["type"] = "Bot"
    status, answer = await deliver(hooked, "issues", reopen)

    assert (status, answer["result"]) == (200, "bot")
    row = await the_incident(hooked)
    assert (row["state"], row["resolution"]) == ("resolved", "manual")
    assert await metric(hooked, events_metric("issues", "bot")) == 2
