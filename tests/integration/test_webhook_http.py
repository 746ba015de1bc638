"""``POST /api/v1/alerts``: every status code CONTRACT.md names, and what is counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.clock import FakeClock
from bridge.store.sqlite import SqliteStore
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from support import Harness, fixture_names, github_config, payload


async def metric(h: Harness, name: str) -> str:
    response = await h.http.get("/metrics")
    text = await response.text()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("name", fixture_names())
async def test_every_captured_payload_is_accepted(harness: Harness, name: str) -> None:
    """Every payload captured from Alertmanager 0.25 gets a 200."""
    status, answer = await harness.post(payload(name))
    assert status == 200, answer
    assert answer["status"] == "accepted"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{not json", "malformed JSON"),
        ("", "malformed JSON"),
        ("[]", "not an Alertmanager webhook"),
        ('"a string"', "not an Alertmanager webhook"),
        ("{}", "not an Alertmanager webhook"),
    ],
)
async def test_bad_bodies_get_400(harness: Harness, body: str, error: str) -> None:
    """Malformed JSON and non-webhook JSON are 400 with an error message; nothing is stored."""
    status, answer = await harness.post(body)
    assert status == 400
    assert error in answer["error"]
    assert await harness.incidents() == []


def _mutations() -> list[tuple[str, Any]]:
    def set_(path: list[Any], value: Any) -> Any:
        def apply(data: dict[str, Any]) -> None:
            target: Any = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return apply

    def drop(key: str) -> Any:
        return lambda data: data.pop(key)

    return [
        ("version 3", set_(["version"], "3")),
        ("version as number", set_(["version"], 4)),
        ("no alerts", drop("alerts")),
        ("empty alerts", set_(["alerts"], [])),
        ("alerts not a list", set_(["alerts"], {"a": 1})),
        ("alert not an object", set_(["alerts"], ["x"])),
        ("bad alert status", set_(["alerts", 0, "status"], "pending")),
        ("label value a number", set_(["alerts", 0, "labels", "severity"], 3)),
        ("labels a list", set_(["alerts", 0, "labels"], ["a"])),
        ("bad startsAt", set_(["alerts", 0, "startsAt"], "yesterday")),
        ("no groupKey", drop("groupKey")),
        ("negative truncatedAlerts", set_(["truncatedAlerts"], -1)),
        ("truncatedAlerts a string", set_(["truncatedAlerts"], "3")),
        ("status unknown", set_(["status"], "silenced")),
    ]


@pytest.mark.parametrize(("what", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
async def test_payloads_that_are_not_webhooks_get_400(
    harness: Harness, what: str, mutate: Any
) -> None:
    """Wrong versions, types and missing fields are the sender's error: 400, never 500."""
    body = payload("01_firing_single.json")
    mutate(body)
    status, answer = await harness.post(body)
    assert status == 400, what
    assert "error" in answer


async def test_unknown_fields_are_ignored(harness: Harness) -> None:
    """A field a newer Alertmanager adds must not become a 400 (Alertmanager never retries 4xx)."""
    body = payload("01_firing_single.json")
    body["newTopLevelField"] = {"x": 1}
    body["alerts"][0]["silencedBy"] = ["abc"]
    status, _ = await harness.post(body)
    assert status == 200


async def test_rejections_are_counted_by_code(harness: Harness) -> None:
    """incident_bridge_webhooks_total counts every answer by its code."""
    await harness.post("{bad")
    await harness.post(payload("01_firing_single.json"))
    text = await metric(harness, "incident_bridge_webhooks_total")
    assert 'incident_bridge_webhooks_total{code="400"} 1.0' in text
    assert 'incident_bridge_webhooks_total{code="200"} 1.0' in text
    assert 'incident_bridge_webhooks_total{code="503"} 0.0' in text


async def test_a_body_that_cannot_be_decoded_is_a_counted_400(harness: Harness) -> None:
    """A body declared gzip that is not: 400 (never a 500), counted and logged like every
    rejection, naming only the encoding."""
    response = await harness.http.post(
        "/api/v1/alerts",
        data=b"not gzip at all",
        # aiohttp drops the connection after a body it could not decode: not reused.
        headers={
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Connection": "close",
        },
    )
    assert response.status == 400
    assert (await response.json())["error"] == "body could not be read (Content-Encoding: gzip)"
    text = await metric(harness, "incident_bridge_webhooks_total")
    assert 'incident_bridge_webhooks_total{code="400"} 1.0' in text
    assert 'incident_bridge_webhooks_total{code="500"}' not in text


@pytest.fixture
async def guarded(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> Any:
    extra = "webhook:\n  bearer_token: s3cret-webhook-token\n  max_body_bytes: 4096\n"
    h = Harness(tmp_path, github, clock, github_config() + extra)
    await h.start()
    yield h
    await h.stop()


async def test_bearer_token_required_when_configured(guarded: Harness) -> None:
    """With webhook.bearer_token set, a missing or wrong token is 401 and the right one passes."""
    body = payload("01_firing_single.json")
    assert (await guarded.post(body))[0] == 401
    assert (await guarded.post(body, Authorization="Bearer wrong"))[0] == 401
    assert (await guarded.post(body, Authorization="Basic s3cret-webhook-token"))[0] == 401
    status, answer = await guarded.post(body, Authorization="Bearer s3cret-webhook-token")
    assert status == 200
    assert "s3cret" not in json.dumps(answer)


async def test_body_above_the_limit_is_413(guarded: Harness) -> None:
    """Bodies above webhook.max_body_bytes are refused before parsing, with or without a length."""
    body = payload("01_firing_single.json")
    body["alerts"][0]["annotations"]["description"] = "x" * 5000
    status, answer = await guarded.post(body, Authorization="Bearer s3cret-webhook-token")
    assert status == 413
    assert "4096" in answer["error"]

    async def chunks() -> Any:
        yield json.dumps(body).encode()

    response = await guarded.http.post(
        "/api/v1/alerts",
        data=chunks(),
        headers={
            "Authorization": "Bearer s3cret-webhook-token",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 413


async def test_disk_full_is_503_and_nothing_is_half_written(harness: Harness) -> None:
    """A full disk (SQLite's real SQLITE_FULL) answers 503 so Alertmanager retries; once space is
    back, the retry is accepted and makes exactly one incident."""
    assert harness.app is not None
    store = harness.app[SERVICES].store
    assert isinstance(store, SqliteStore)
    await store.execute_for_test("PRAGMA max_page_count = 1")  # clamped to the file's size: full
    big = payload("01_firing_single.json")
    big["alerts"][0]["annotations"]["description"] = "x" * 50_000  # needs new pages

    status, answer = await harness.post(big)
    assert status == 503
    assert answer["error"] == "store unavailable, retry later"
    ready = await harness.http.get("/readyz")
    assert ready.status == 200  # reads still work; only writes are refused

    await store.execute_for_test("PRAGMA max_page_count = 1073741823")
    assert await harness.incidents() == []
    status, _ = await harness.post(big)
    assert status == 200
    assert len(await harness.incidents()) == 1
