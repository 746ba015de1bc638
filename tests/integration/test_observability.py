"""Metrics that pass promtool, canonical log lines, and no secret anywhere it could leak."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.metrics import GITHUB_OPERATIONS
from fakes.github import FakeGitHub
from support import TOKEN, Harness, github_config, payload

SECRETS = {
    "webhook": "whk-s3cret-AAAA",
    "read": "read-s3cret-BBBB",
    "hook": "hook-s3cret-CCCC",
    "slack": "xoxb-s3cret-DDDD",
    "smtp": "smtp-s3cret-EEEE",
    "twilio": "twilio-s3cret-FFFF",
}

EVERY_SECRET = github_config() + (
    f"webhook:\n  bearer_token: {SECRETS['webhook']}\n"
    f"api:\n  read_token: {SECRETS['read']}\n"
    "slack:\n  channel: '#incidents'\n"
    f"  token: {SECRETS['slack']}\n"
    "email:\n  smtp_host: 127.0.0.1\n  from: bridge@example.com\n  username: bridge\n"
    f"  password: {SECRETS['smtp']}\n"
    "sms:\n  twilio:\n    account_sid: AC0123\n    from: '+15550000000'\n"
    f"    auth_token: {SECRETS['twilio']}\n"
    "stakeholders:\n  - {name: Ops, email: ops@example.com, phone: '+15551230001'}\n"
).replace("  labels: [phase-09]\n", f"  labels: [phase-09]\n  webhook_secret: {SECRETS['hook']}\n")


@pytest.fixture
async def secretive(tmp_path: Path, github: FakeGitHub, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, github, clock, EVERY_SECRET)
    await h.start()
    yield h
    await h.stop()


async def test_no_secret_ever_appears_in_logs_or_answers(
    secretive: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every configured secret is absent from every log line and every HTTP answer, across
    successes, rejections and GitHub failures."""
    h = secretive
    auth = {"Authorization": f"Bearer {SECRETS['webhook']}"}
    answers: list[str] = []
    for headers in ({}, {"Authorization": "Bearer wrong"}, auth):
        _, answer = await h.post(payload("01_firing_single.json"), **headers)
        answers.append(json.dumps(answer))
    answers.append(json.dumps((await h.post("{broken", **auth))[1]))
    h.github.token = "rotated"  # GitHub now refuses the bridge's token: 401s
    await h.post(payload("03_resolved_single.json"), **auth)
    await h.drain()
    h.github.token = TOKEN
    for path in ("/api/v1/incidents", "/metrics", "/status", "/status.json", "/readyz"):
        for headers in ({}, {"Authorization": f"Bearer {SECRETS['read']}"}):
            response = await h.http.get(path, headers=headers)
            answers.append(await response.text())
    logs = capsys.readouterr().out
    assert "webhook" in logs  # the canonical lines were captured
    everything = logs + "\n".join(answers)
    for name, secret in {**SECRETS, "github": TOKEN}.items():
        assert secret not in everything, f"the {name} secret leaked"


async def test_one_canonical_line_per_webhook_and_per_effect(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each webhook and each effect is logged once, with its incident id."""
    capsys.readouterr()
    await harness.post(payload("01_firing_single.json"))
    await harness.drain()
    out = capsys.readouterr().out
    webhook_lines = [line for line in out.splitlines() if " webhook " in f" {line} "]
    effect_lines = [line for line in out.splitlines() if " effect " in f" {line} "]
    assert len(webhook_lines) == 1
    assert "incident=INC-001" in webhook_lines[0]
    assert "code=200" in webhook_lines[0]
    assert len(effect_lines) == 1
    assert "incident=INC-001" in effect_lines[0]
    assert "result=done" in effect_lines[0]


EXPECTED_SERIES = (
    'incident_bridge_webhooks_total{code="503"}',
    "incident_bridge_webhook_duration_seconds_bucket",
    'incident_bridge_notifications_total{outcome="opened"}',
    "incident_bridge_alerts_total",
    'incident_bridge_incidents_opened_total{priority="P3"}',
    'incident_bridge_incidents_open{priority="P0"}',
    "incident_bridge_github_rate_limit_remaining",
    "incident_bridge_github_rate_limit_reset_timestamp_seconds",
    'incident_bridge_effects_total{kind="github.comment",result="failed"}',
    "incident_bridge_outbox_pending",
    "incident_bridge_outbox_failed",
    "incident_bridge_outbox_oldest_pending_age_seconds",
    'incident_bridge_effect_latency_seconds_bucket{kind="github.sync"',
    'incident_bridge_github_requests_total{operation="create_issue",status="201"} 0.0',
    'incident_bridge_github_requests_total{operation="get_issue",status="304"} 0.0',
    'incident_bridge_github_requests_total{operation="create_comment",status="error"} 0.0',
)


async def test_every_series_exists_from_start_up(harness: Harness) -> None:
    """Dashboards and alerts see zeros, not absent series, before anything happened."""
    text = await (await harness.http.get("/metrics")).text()
    for series in EXPECTED_SERIES:
        assert series in text, series


async def test_metrics_pass_promtool(harness: Harness) -> None:
    """`promtool check metrics` accepts /metrics (names, help, types, units)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (.ci/run does)")
    await harness.post(payload("04_group_of_3_firing.json"))
    await harness.post("{bad")
    await harness.drain()
    text = await (await harness.http.get("/metrics")).text()
    check = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(check.communicate(text.encode()), 30)
    assert check.returncode == 0, out.decode()
    assert out.decode().strip() == "", out.decode()
    # Every GitHub operation the bridge made is one whose series exist from start-up.
    made = set(re.findall(r'incident_bridge_github_requests_total\{operation="(\w+)"', text))
    assert made <= set(GITHUB_OPERATIONS), made - set(GITHUB_OPERATIONS)
