"""``incident-bridge report`` on a seeded store, and the MTTx metrics of the same history.

The history is made the way production makes it: the captured Alertmanager payloads posted to
the bridge (``create_app`` on 127.0.0.1, fake GitHub, fake clock), an acknowledgement applied
through the app's Ingestor, the SLA timers fired by the app's scheduler. Then, while that bridge
still holds its store (SQLite's process lock, or PostgreSQL's pool), the report command runs as
a real process on the same config and reads it.

On 2026-11-26 (UTC), the clock at 21:45:

- INC-001 checkout P0 (ServiceUnavailable): fired 21:39:53.5, opened 21:45, acknowledged 21:47,
  resolution deadline (22:39:53) missed, resolved 22:50 — 70 min down;
- INC-002 payments P1 (HighErrorRate): fired 21:36:23.5, opened 21:45, never acknowledged,
  resolved as of its alert's end, 21:41:26.5 (Alertmanager told at 21:55);
- INC-003 search P2 (HighLatencyP95): fired 21:34:43.5, opened 21:45, still open.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sqlite3
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.app import SCHEDULER
from bridge.cli import report_window
from bridge.engine import Decision
from bridge.ingest import Step
from bridge.model import Incident, TimelineEvent
from bridge.web.services import SERVICES
from support import Harness, payload

BRIDGE = [sys.executable, "-m", "bridge"]
UNTIL = "2026-11-27T00:00:00Z"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The report reads either store."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The CLI as a process of its own, without blocking the loop serving the bridge."""
    process = await asyncio.create_subprocess_exec(
        *BRIDGE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GITHUB_URL": "http://127.0.0.1:9", **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def acknowledged_by(who: str) -> Step:
    """What bridge/acknowledge.py records when someone is assigned the issue."""

    def step(current: Incident | None, now: datetime) -> Decision:
        assert current is not None
        incident = copy.copy(current)
        incident.acknowledged_at, incident.acknowledged_by = now, who
        incident.acknowledged_via = "assigned"
        incident.event_seq += 1
        event = TimelineEvent(
            incident.event_seq, now, "acknowledged", f"Acknowledged by {who}", {"who": who}
        )
        return Decision("acknowledged", incident=incident, changed=True, events=[event])

    return step


def resolved(name: str, ends: datetime) -> dict[str, object]:
    """A captured firing payload, resolved at ``ends``."""
    body = payload(name)
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = ends.isoformat().replace("+00:00", "Z")
    return body


async def seed(harness: Harness) -> None:
    """The history of the module docstring."""
    for name in (
        "13_critical_list_service_unavailable.json",
        "15_threshold_critical_error_rate.json",
        "10_threshold_warning_latency.json",
    ):
        assert (await harness.post(payload(name)))[0] == 200
    rows = sorted(await harness.incidents(), key=lambda i: str(i["id"]))
    assert [(i["id"], i["priority"]) for i in rows] == [
        ("INC-001", "P0"),
        ("INC-002", "P1"),
        ("INC-003", "P2"),
    ]
    assert harness.app is not None
    services = harness.app[SERVICES]
    checkout = await services.store.load_incident(1)
    assert checkout is not None
    harness.clock.advance(timedelta(minutes=2))
    await services.ingestor.apply(checkout.key, checkout.identity, acknowledged_by("alice"))
    harness.clock.now = datetime(2026, 11, 26, 21, 55, tzinfo=UTC)
    await harness.post(payload("16_threshold_critical_error_rate_resolved.json"))
    harness.clock.now = datetime(2026, 11, 26, 22, 50, tzinfo=UTC)
    assert await harness.app[SCHEDULER].run_once() >= 1  # the P0's resolution deadline
    harness.clock.advance(timedelta(minutes=5))
    ends = datetime(2026, 11, 26, 22, 50, tzinfo=UTC)
    await harness.post(resolved("13_critical_list_service_unavailable.json", ends))
    states = {i["id"]: i["state"] for i in await harness.incidents()}
    assert states == {"INC-001": "resolved", "INC-002": "resolved", "INC-003": "open"}


async def test_the_report_reads_the_store_beside_the_running_bridge(
    harness: Harness, tmp_path: Path
) -> None:
    """Markdown on stdout (log lines on stderr), the figures of the seeded day, while the bridge
    that wrote them still runs on the same store."""
    await seed(harness)
    config = str(tmp_path / "bridge.yaml")
    code, out, err = await run("report", "--config", config, "--since", "1d", "--until", UNTIL)
    assert code == 0, err
    assert out.startswith(
        "# Incident report: 2026-11-26 00:00 UTC to 2026-11-27 00:00 UTC (1 day)\n"
    )
    assert "- 3 incidents opened (P0: 1, P1: 1, P2: 1, P3: 0); 3 open at some moment" in out
    assert "- ❌ MTTD 8m (p90 10m 16s), target < 5m: missed." in out
    assert "- ❌ MTTR P0 1h 10m over 1 resolved, target < 1h: missed." in out
    assert "- ✅ MTTR P1 5m 03s over 1 resolved, target < 4h: met." in out
    assert "| P0 | 1 | 1 | 0 | 5m 06s / 5m 06s | ❌ missed | 2m / 2m | < 5m ✅ met |" in out
    assert "| P0 | < 5m | 100.00% (1 of 1) | 0 | < 1h | 0.00% (0 of 1) | 1 |" in out
    assert "- INC-002 (P1) Payments error rate 2.3% \\(critical &gt; 1%\\) — opened" in out
    assert "- INC-003 (P2) Search p95 latency 320ms \\(warning 200-500ms\\) — opened" in out
    assert "| checkout | 1 | 70 | 1h 10m | 0s | 95.13% | ❌ missed |" in out
    assert "| payments | 1 | 5 | 0s | 5m 03s | 100.00% | ✅ met |" in out
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [line["event"] for line in logged] == ["report"]
    assert logged[0]["incidents"] == 3


async def test_the_html_report_is_written_to_a_file(harness: Harness, tmp_path: Path) -> None:
    """``--format html --output FILE``: the page in the file, nothing on stdout."""
    await seed(harness)
    target = tmp_path / "out" / "report.html"
    target.parent.mkdir()
    code, out, err = await run(
        "report",
        "--config",
        str(tmp_path / "bridge.yaml"),
        "--since",
        "2026-11-26",
        "--until",
        UNTIL,
        "--format",
        "html",
        "--output",
        str(target),
    )
    assert code == 0, err
    assert out == ""
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3
    unacknowledged = page.split("<h2>Unacknowledged incidents</h2>")[1].split("</section>")[0]
    assert "Payments error rate 2.3% (critical &gt; 1%)" in unacknowledged
    assert "Checkout service unavailable" not in unacknowledged  # alice acknowledged it


async def test_the_metrics_observe_the_same_history(harness: Harness) -> None:
    """/metrics: time to detect per priority at each opening, time to acknowledge from the
    acknowledgement applied through the Ingestor, time to resolve and incident seconds per
    service at each resolution — the figures the report shows."""
    await seed(harness)
    text = await (await harness.http.get("/metrics")).text()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("incident_bridge_time_to_") or line.startswith("incident_bridge_inc")
    }
    detect = "incident_bridge_time_to_detect_seconds"
    assert samples[f'{detect}_count{{priority="P0"}}'] == 1
    assert samples[f'{detect}_sum{{priority="P0"}}'] == pytest.approx(306.488, abs=1e-3)
    assert samples[f'{detect}_bucket{{le="300.0",priority="P0"}}'] == 0
    assert samples[f'{detect}_bucket{{le="900.0",priority="P0"}}'] == 1
    assert samples[f'{detect}_count{{priority="P2"}}'] == 1
    assert samples[f'{detect}_count{{priority="P3"}}'] == 0  # pre-created
    ack = "incident_bridge_time_to_acknowledge_seconds"
    assert samples[f'{ack}_sum{{priority="P0"}}'] == 120
    assert samples[f'{ack}_count{{priority="P1"}}'] == 0
    resolve = "incident_bridge_time_to_resolve_seconds"
    assert samples[f'{resolve}_sum{{priority="P0"}}'] == pytest.approx(4206.488, abs=1e-3)
    assert samples[f'{resolve}_sum{{priority="P1"}}'] == pytest.approx(303.003, abs=1e-3)
    assert samples[f'{resolve}_bucket{{le="3600.0",priority="P0"}}'] == 0
    assert samples[f'{resolve}_bucket{{le="14400.0",priority="P0"}}'] == 1
    seconds = "incident_bridge_incident_seconds_total"
    assert samples[f'{seconds}{{priority="P0",service="checkout"}}'] == pytest.approx(
        4206.488, 1e-6
    )
    assert samples[f'{seconds}{{priority="P1",service="payments"}}'] == pytest.approx(303.003, 1e-5)
    assert not any("search" in name for name in samples)  # still open: nothing counted yet


# -- what it refuses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: 'yesterday' is neither a duration"),
        (["--since", "30x"], "--since: '30x' is neither a duration"),
        (["--since", "2026-13-01"], "not a date or time: '2026-13-01'"),
        (["--until", "soon"], "not a date or time: 'soon'"),
        (["--since", "2026-12-01", "--until", "2026-11-01"], "must be before the report's end"),
        (["--since", "9999y"], "--since: 9999y reaches before the year 1"),
    ],
)
async def test_a_bad_window_exits_2_naming_the_flag(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bridge.yaml").write_text("store:\n  url: sqlite:///state.db\n")
    code, out, err = await run("report", "--config", str(tmp_path / "bridge.yaml"), *args)
    assert (code, out) == (2, "")
    assert message in err


async def test_a_missing_sqlite_store_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    """Opening would create an empty database; the report says what is wrong instead."""
    (tmp_path / "bridge.yaml").write_text("store:\n  url: sqlite:///nowhere/state.db\n")
    code, _, err = await run("report", "--config", str(tmp_path / "bridge.yaml"))
    assert code == 2
    assert f"store: {tmp_path / 'nowhere' / 'state.db'} does not exist" in err
    assert not (tmp_path / "nowhere").exists()


async def test_an_older_sqlite_schema_is_never_migrated_by_the_report(tmp_path: Path) -> None:
    """Opening would migrate the database under the serve still running the older version:
    the report only reads, so it says to upgrade serve first and leaves the file as it was."""
    (tmp_path / "bridge.yaml").write_text("store:\n  url: sqlite:///state.db\n")
    with closing(sqlite3.connect(tmp_path / "state.db")) as conn:
        conn.execute("CREATE TABLE incidents (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 1")
    code, _, err = await run("report", "--config", str(tmp_path / "bridge.yaml"))
    assert code == 2
    assert "has schema version 1, older than this bridge's" in err
    assert "upgrade serve first" in err
    with closing(sqlite3.connect(tmp_path / "state.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("incidents",)]


async def test_a_file_that_is_no_database_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bridge.yaml").write_text("store:\n  url: sqlite:///state.db\n")
    (tmp_path / "state.db").write_text("not a database, " * 100)
    code, out, err = await run("report", "--config", str(tmp_path / "bridge.yaml"))
    assert (code, out) == (1, "")
    assert f"store: cannot read {tmp_path / 'state.db'}: file is not a database" in err


async def test_an_invalid_config_exits_2_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bridge.yaml").write_text("store:\n  url: mysql://x\nsurprise: 1\n")
    code, _, err = await run("report", "--config", str(tmp_path / "bridge.yaml"))
    assert code == 2
    assert "store.url" in err
    assert "surprise" in err


async def test_an_unreachable_postgresql_exits_1(tmp_path: Path) -> None:
    """The store cannot be read now; a retry may succeed (as serve and rebuild say)."""
    (tmp_path / "bridge.yaml").write_text(
        "store:\n  url: postgresql://postgres:hunter2@127.0.0.1:9/bridge\n"
    )
    code, out, err = await run("report", "--config", str(tmp_path / "bridge.yaml"))
    assert (code, out) == (1, "")
    assert err.startswith("store: ")
    assert "hunter2" not in err


async def test_an_unwritable_output_exits_2(harness: Harness, tmp_path: Path) -> None:
    await seed(harness)
    missing = tmp_path / "no" / "such" / "dir" / "report.md"
    code, _, err = await run(
        "report", "--config", str(tmp_path / "bridge.yaml"), "--output", str(missing)
    )
    assert code == 2
    assert f"--output: cannot write {missing}: No such file or directory" in err


# -- the window ----------------------------------------------------------------------------------

NOW = datetime(2026, 11, 26, 21, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "until", "window"),
    [
        ("30d", None, (NOW - timedelta(days=30), NOW)),
        ("12h", None, (NOW - timedelta(hours=12), NOW)),
        (
            "7d",
            "2026-12-01",
            (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        ),
        ("2026-11-01", None, (datetime(2026, 11, 1, tzinfo=UTC), NOW)),
        (
            "2026-11-01T09:00:00+02:00",
            "2026-11-02T00:00:00Z",
            (datetime(2026, 11, 1, 7, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
        ),
        ("2026-11-01T09:00", None, (datetime(2026, 11, 1, 9, tzinfo=UTC), NOW)),
    ],
)
def test_the_window_is_a_duration_back_from_its_end_or_a_date(
    since: str, until: str | None, window: tuple[datetime, datetime]
) -> None:
    """``--since`` is a Prometheus duration or an ISO 8601 date or time (UTC unless it says);
    ``--until`` a date or time, now by default."""
    assert report_window(since, until, NOW) == window
