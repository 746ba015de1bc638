"""The command line: check-config, simulate, rules export, and serve as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import FIXTURES, current_payload

BRIDGE = [sys.executable, "-m", "bridge"]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- our own CLI with fixed arguments
        [*BRIDGE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    """A valid config exits 0 and says whether GitHub is live or dry-run."""
    (tmp_path / "bridge.yaml").write_text("github:\n  repository: acme/incidents\n  token: ${T}\n")
    result = run("check-config", "--config", str(tmp_path / "bridge.yaml"), env={"T": "x"})
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert "acme/incidents" in result.stdout


def test_check_config_reports_every_problem_with_its_key_and_exits_2(tmp_path: Path) -> None:
    """Problems exit 2 with one line each naming file, line and key; secrets are never shown."""
    (tmp_path / "bridge.yaml").write_text(
        "listen: 127.0.0.1:99999\n"
        "github:\n"
        "  token: hunter2-secret\n"
        "  reopen_window: soon\n"
        "surprise: 1\n"
    )
    result = run("check-config", "--config", str(tmp_path / "bridge.yaml"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 3
    text = result.stderr
    assert "listen" in text
    assert "github.reopen_window" in text
    assert "surprise" in text
    assert "bridge.yaml:" in text
    assert "hunter2" not in text


def test_check_config_reads_the_path_from_the_environment(tmp_path: Path) -> None:
    """INCIDENT_BRIDGE_CONFIG names the config file when --config is not given."""
    (tmp_path / "c.yaml").write_text("identity: nonsense\n")
    result = run("check-config", env={"INCIDENT_BRIDGE_CONFIG": str(tmp_path / "c.yaml")})
    assert result.returncode == 2
    assert "identity" in result.stderr


def test_simulate_names_priority_rule_identity_and_actions() -> None:
    """simulate shows what a payload would do without touching anything outside the process."""
    result = run(
        "simulate", "--format", "json", str(FIXTURES / "15_threshold_critical_error_rate.json")
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["priority"] == "P1"
    assert "threshold error_rate critical" in out["priority_rule"]
    assert out["identity"]["mode"] == "group_key"
    assert len(out["identity"]["key"]) == 64
    assert out["outcome"] == "opened"
    assert any("create issue" in action for action in out["actions"])


def test_simulate_lists_the_messages_too(tmp_path: Path) -> None:
    """With Slack, email and SMS configured, a P0's simulation lists the Slack message and the
    stakeholder's email and text besides the issue — by name, never an address or number."""
    (tmp_path / "secret").write_text("s3cret")
    (tmp_path / "c.yaml").write_text(
        "slack: {token_file: secret, channel: '#incidents'}\n"
        "email: {smtp_host: 127.0.0.1, from: bridge@example.com}\n"
        "sms: {twilio: {account_sid: AC123, auth_token_file: secret, from: '+15550000000'}}\n"
        "stakeholders:\n  - {name: Alice Ops, email: alice@example.com, phone: '+15550001111'}\n"
    )
    result = run(
        "simulate",
        "--config",
        str(tmp_path / "c.yaml"),
        str(FIXTURES / "13_critical_list_service_unavailable.json"),
    )
    assert result.returncode == 0, result.stderr
    assert "action: slack: opened message in #incidents" in result.stdout
    assert "action: email: opened to Alice Ops" in result.stdout
    assert "action: sms: opened to Alice Ops" in result.stdout
    assert "alice@example.com" not in result.stdout
    assert "+15550001111" not in result.stdout


def test_rules_commands_say_what_is_wrong_with_a_path_in_one_line(tmp_path: Path) -> None:
    """A file where a directory should be: one line naming the path, no traceback."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    exported = run("rules", "export", str(a_file))
    assert exported.returncode == 2
    assert "not an empty directory" in exported.stderr
    assert "Traceback" not in exported.stderr
    generated = run("rules", "generate", str(a_file / "out"))
    assert generated.returncode == 1
    assert f"rules generate: {a_file / 'out'}" in generated.stderr
    assert generated.stderr.rstrip().endswith("Not a directory")
    assert "Traceback" not in generated.stderr


def test_simulate_text_output_for_a_heartbeat() -> None:
    """The Watchdog payload is shown as a heartbeat with no action."""
    result = run("simulate", str(FIXTURES / "11_watchdog_heartbeat.json"))
    assert result.returncode == 0
    assert "heartbeat" in result.stdout
    assert "action: none" in result.stdout


def test_simulate_rejects_a_bad_payload(tmp_path: Path) -> None:
    """A file that is not a webhook exits 2 with the reason."""
    (tmp_path / "p.json").write_text('{"version": "3"}')
    result = run("simulate", str(tmp_path / "p.json"))
    assert result.returncode == 2
    assert "webhook" in result.stderr


def test_rules_export_writes_the_bundled_rules(tmp_path: Path) -> None:
    """rules export copies the bundled rules for editing, and refuses a non-empty directory."""
    target = tmp_path / "rules"
    assert run("rules", "export", str(target)).returncode == 0
    assert (target / "priorities.yaml").is_file()
    assert (target / "thresholds.yaml").is_file()
    assert run("rules", "export", str(target)).returncode == 2


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 -- loopback URL
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 -- loopback URL
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 -- loopback URL
        return response.status, response.read()


@pytest.fixture
def zero_config_server(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    if not _free(9095):
        pytest.fail("127.0.0.1:9095 is taken; the zero-config test needs the contract's port")
    env = {k: v for k, v in os.environ.items() if k != "INCIDENT_BRIDGE_CONFIG"}
    process = subprocess.Popen(  # noqa: S603 -- our own CLI
        [*BRIDGE, "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if _get("http://127.0.0.1:9095/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_zero_config_serve_runs_dry_and_stops_cleanly(
    zero_config_server: subprocess.Popen[str], tmp_path: Path
) -> None:
    """No config: dry-run on 127.0.0.1:9095 with ./incident-bridge.db; SIGTERM: exit 0 in 10 s."""
    base = "http://127.0.0.1:9095"
    # Today's times: on the real clock, the capture's startsAt would make the resolution
    # deadline already missed, and the SLA timer could label the issue before it is created.
    body = json.dumps(current_payload("13_critical_list_service_unavailable.json")).encode()
    status, answer = _post(f"{base}/api/v1/alerts", body)
    assert status == 200
    assert json.loads(answer)["priority"] == "P0"
    assert (tmp_path / "incident-bridge.db").is_file()

    incidents = json.loads(_get(f"{base}/api/v1/incidents")[1])
    assert [i["id"] for i in incidents] == ["INC-001"]
    assert incidents[0]["issue_number"] is None  # dry-run: no issue exists anywhere
    page = json.loads(_get(f"{base}/status.json")[1])
    assert page["incidents"][0]["title"] == "Service disruption: checkout"
    assert "checkout-7d9f" not in json.dumps(page)  # no hostnames on the public page
    assert _get(f"{base}/readyz")[0] == 200
    metrics = _get(f"{base}/metrics")[1].decode()
    assert 'incident_bridge_incidents_opened_total{priority="P0"} 1.0' in metrics

    time.sleep(0.5)  # let the outbox log the dry-run action
    started = time.monotonic()
    zero_config_server.send_signal(signal.SIGTERM)
    out, _ = zero_config_server.communicate(timeout=10)
    assert zero_config_server.returncode == 0
    assert time.monotonic() - started < 10
    logs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    events = [entry["event"] for entry in logs]
    assert "zero_config" in events
    assert "stopped" in events
    dry = [
        entry
        for entry in logs
        if entry["event"] == "dry_run" and entry.get("action") == "create_issue"
    ]
    assert dry, "the dry-run create_issue action is logged"
    assert dry[0]["labels"] == [
        "incident",
        "incident-bridge",
        "maintenance-corrective",
        "priority-critical",
    ]


def test_a_postgresql_store_that_is_not_there_stops_serve_with_one_line(tmp_path: Path) -> None:
    """check-config accepts a PostgreSQL URL (it connects to nothing); serve against a server
    that is not listening exits 1 with one line naming the store, the password never shown."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "bridge.yaml").write_text(
        f"store:\n  url: postgresql://bridge:pg-s3cr3t@127.0.0.1:{port}/bridge\n"
    )
    checked = run("check-config", "--config", str(tmp_path / "bridge.yaml"))
    assert checked.returncode == 0, checked.stderr
    served = run("serve", "--config", str(tmp_path / "bridge.yaml"), cwd=tmp_path)
    assert served.returncode == 1
    assert served.stderr.startswith("store: postgresql: ")
    assert len(served.stderr.strip().splitlines()) == 1
    for result in (checked, served):
        assert "pg-s3cr3t" not in result.stdout + result.stderr


def test_serve_on_a_taken_port_exits_2_with_one_line(tmp_path: Path) -> None:
    """A listen address in use is a clear one-line error naming the key, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "bridge.yaml").write_text(f"listen: 127.0.0.1:{port}\n")
        result = run("serve", "--config", str(tmp_path / "bridge.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("listen: cannot listen on")
    assert "Traceback" not in result.stderr


def test_a_bad_rules_file_is_refused_at_start_up_and_by_check_config(tmp_path: Path) -> None:
    """rules_dir replaces the bundled rules; a broken file stops serve and check-config with
    its file, line and key, before anything listens."""
    rules = tmp_path / "rules"
    assert run("rules", "export", str(rules)).returncode == 0
    text = (rules / "thresholds.yaml").read_text()
    (rules / "thresholds.yaml").write_text(text.replace("unit: ms", "unit: fortnights", 1))
    (tmp_path / "bridge.yaml").write_text("rules_dir: rules\nlisten: 127.0.0.1:19199\n")
    for command in ("check-config", "serve"):
        result = run(command, "--config", str(tmp_path / "bridge.yaml"), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "thresholds.yaml:" in result.stderr
        assert "unit" in result.stderr


def test_a_second_serve_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    """SQLite has one writer: a second serve on the same file exits 1 with one line naming the
    file and the holder's pid, and the first keeps serving; once it stops, the file is free."""
    port, other = 19231, 19232
    (tmp_path / "a.yaml").write_text(f"listen: 127.0.0.1:{port}\nstore:\n  url: sqlite:///s.db\n")
    (tmp_path / "b.yaml").write_text(f"listen: 127.0.0.1:{other}\nstore:\n  url: sqlite:///s.db\n")
    first = subprocess.Popen(  # noqa: S603 -- our own CLI
        [*BRIDGE, "serve", "--config", str(tmp_path / "a.yaml")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "s.db").exists() or _free(port):
            assert time.monotonic() < deadline, "the first serve did not start"
            time.sleep(0.1)
        second = run("serve", "--config", str(tmp_path / "b.yaml"), cwd=tmp_path)
        assert second.returncode == 1
        assert second.stderr.startswith("store: ")
        assert "s.db is in use by another incident-bridge process" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=10) == 0
    # The lock went with the process: the file can be served again.
    again = subprocess.Popen(  # noqa: S603 -- our own CLI
        [*BRIDGE, "serve", "--config", str(tmp_path / "b.yaml")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while _free(other):
            assert again.poll() is None, "the file stayed locked after the first serve stopped"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=10) == 0
