"""Fuzzing ``POST /api/v1/alerts`` through HTTP (issue #10): 10,000 bodies, each answered as
CONTRACT.md says, the bridge up all along and its store consistent afterwards.

Every body goes through the real application (``create_app``, the :class:`support.Harness`: an
aiohttp server on 127.0.0.1 with the fake GitHub behind it, the outbox not running), one app
per test for all of its cases. The webhook has a bearer token and a 64 KiB body limit (small, so
that bodies over it are cheap to make). The cases (``tests/e2e/strategies.py`` makes them):

- 3,000 valid Alertmanager v4 webhooks on SQLite and 1,000 on PostgreSQL, under any content
  type: 200 (413 for the few that hostile text makes larger than the limit);
- 3,700 valid webhooks with one thing changed, one in eight with a wrong or missing token:
  exactly the answer the change calls for — 400, 401, or 200 for the changes a newer
  Alertmanager could make (unknown fields, an optional field left out, the zero time);
- 2,000 bodies that are not webhooks at all: 400;
- 300 bodies over the limit, with a Content-Length or streamed without one: 413 (401 first
  without the token).

After each test: ``/healthz`` and ``/readyz`` answer 200; ``incident_bridge_webhooks_total``
counted every answer by its code (never a 500 or 503); nothing was logged at error level, by the
bridge or by aiohttp; the store holds exactly the incidents the 200s named, every one with its
GitHub effect waiting in the outbox; ``/api/v1/incidents``, ``/status`` and ``/status.json``
show them.

All but one case in a hundred are built from a seed (one Hypothesis draw each: cheap; a
failure names its seed), the rest drawn choice by choice (those shrink when they fail); see
``strategies.py``. The SQLite store is in memory (``/dev/shm``) and PostgreSQL commits without
waiting for its fsync: durability is tested elsewhere, and here it would be most of a case's
cost. The three explicit tests at the end are what the fuzzing found.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    MutableMapping,
)
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from e2e.strategies import (
    Case,
    Mutant,
    Source,
    drawn,
    encode,
    encoded,
    junk,
    mutant,
    seeded,
    webhook,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.clock import FakeClock
from bridge.web.services import SERVICES
from fakes.github import FakeGitHub
from support import REPO, Harness, github_config, payload

pytestmark = pytest.mark.slow

Record = Callable[[Mapping[str, object]], None]  # the ``figures`` fixture (tests/e2e/conftest)

TOKEN = "fuzz-webhook-token"
LIMIT = 65_536  # webhook.max_body_bytes
# How many cases each test runs: 10,000 in all.
VALID_SQLITE = 3_000
VALID_POSTGRES = 1_000
NEAR_VALID = 3_700
JUNK = 2_000
OVERSIZED = 300
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",  # none at all
]
# bearer_ok: the scheme is case-insensitive and the token is stripped.
GOOD_AUTH = [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} "]
BAD_AUTH = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer wrong",
    f"Basic {TOKEN}",
    TOKEN,
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN.upper()}",
    f"Token {TOKEN}",
]
FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays stable
    database=None,  # so nothing is kept between runs
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one app for all cases, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@dataclass
class Tally:
    """What a test sent and what came back."""

    cases: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    incidents: set[str] = field(default_factory=set)  # ids named by 200 answers
    started: float = field(default_factory=time.perf_counter)

    def figures(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "answers": dict(sorted(self.codes.items())),
            "incidents": len(self.incidents),
            "seconds": round(time.perf_counter() - self.started, 1),
        }


@pytest.fixture
def bridge_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Everything the bridge logs through structlog during the test (nothing is rendered)."""
    with structlog.testing.capture_logs() as logs:
        yield logs


async def _bridge(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, store_url: str
) -> AsyncIterator[Harness]:
    extra = f"webhook:\n  bearer_token: {TOKEN}\n  max_body_bytes: {LIMIT}\n"
    h = Harness(tmp_path, github, clock, github_config(store_url=store_url) + extra)
    await h.start()
    yield h
    await h.stop()


@pytest.fixture
def fast_disk(tmp_path: Path) -> Iterator[Path]:
    """Where the SQLite store goes: a directory in memory (``/dev/shm``) when the machine has
    one. Durability is tested elsewhere (tests/integration/test_crash.py); here a commit's
    fsync would be most of a case's cost."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="incident-bridge-fuzz-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def bridge(
    bridge_logs: list[MutableMapping[str, Any]],
    fast_disk: Path,
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
) -> AsyncIterator[Harness]:
    """The bridge on SQLite (its logs captured from before it starts)."""
    async for h in _bridge(tmp_path, github, clock, f"sqlite:///{fast_disk}/state.db"):
        yield h


@pytest.fixture
async def bridge_pg(
    bridge_logs: list[MutableMapping[str, Any]],
    tmp_path: Path,
    github: FakeGitHub,
    clock: FakeClock,
    postgres_db: str,
) -> AsyncIterator[Harness]:
    """The bridge on PostgreSQL (this run's database, emptied). Its sessions commit without
    waiting for the WAL's fsync (``synchronous_commit=off``, passed in the URL): as above,
    durability is not what is fuzzed here."""
    url = f"{postgres_db}?synchronous_commit=off"
    async for h in _bridge(tmp_path, github, clock, url):
        yield h


async def send(
    h: Harness,
    body: bytes,
    tally: Tally,
    *,
    auth: str | None = GOOD_AUTH[0],
    content_type: str = "application/json",
    stream: bool = False,
) -> tuple[int, Any]:
    """POST ``body`` as it is (streamed without a Content-Length when ``stream``); the answer's
    code and JSON, which every answer of this endpoint is."""
    headers = {"Authorization": auth} if auth is not None else {}
    if content_type:
        headers["Content-Type"] = content_type

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    response = await h.http.post(
        "/api/v1/alerts",
        data=chunks() if stream else body,
        headers=headers,
        skip_auto_headers=["Content-Type"],
    )
    answer = json.loads(await response.read())
    tally.cases += 1
    tally.codes[response.status] += 1
    return response.status, answer


def accepted(status: int, answer: Any, tally: Tally) -> None:
    """A 200 says what the notification did, and names its incident when it has one."""
    assert status == 200, answer
    assert answer["status"] == "accepted"
    assert answer["outcome"] in {
        "opened",
        "reopened",
        "updated",
        "resolved",
        "unchanged",
        "heartbeat",
        "unknown_resolved",
    }
    if "incident" in answer:
        assert re.fullmatch(r"(INC|MAINT)-\d{3,}", answer["incident"])
        tally.incidents.add(answer["incident"])


def refused(status: int, answer: Any, expected: int) -> None:
    """A refusal is the expected code with an error the sender can read."""
    assert status == expected, answer
    assert isinstance(answer["error"], str)
    assert answer["error"]


async def fuzz(
    examples: int,
    test: Callable[..., Coroutine[Any, Any, None]],
    body: Callable[[Source], Any],
    **strategies: st.SearchStrategy[Any],
) -> None:
    """Run ``test`` on ``examples`` cases: a ``body`` made by that generator (one in a hundred
    drawn choice by choice, the rest from seeds) and the other arguments drawn from
    ``strategies``. Hypothesis drives them from a worker thread; each case runs on this loop,
    where the app lives, so that the test can look at the whole store once every case has
    run."""
    loop = asyncio.get_running_loop()
    few = max(1, examples // 100)
    for count, bodies in ((examples - few, seeded(body)), (few, drawn(body))):

        @settings(FUZZ, max_examples=count)
        @given(body=bodies, **strategies)
        def case(**drawn_values: Any) -> None:
            asyncio.run_coroutine_threadsafe(test(**drawn_values), loop).result(timeout=60)

        await asyncio.to_thread(case)


async def metric_counts(h: Harness) -> dict[int, float]:
    """``incident_bridge_webhooks_total`` by code."""
    response = await h.http.get("/metrics")
    assert response.status == 200
    text = await response.text()
    return {
        int(code): float(value)
        for code, value in re.findall(
            r'^incident_bridge_webhooks_total\{code="(\d+)"\} (\S+)$', text, re.MULTILINE
        )
    }


async def assert_consistent(
    h: Harness,
    tally: Tally,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After the cases: alive, every answer counted, nothing logged as an error, and the store
    holds exactly the incidents the 200s named, each with its GitHub effect."""
    for path in ("/healthz", "/readyz"):
        assert (await h.http.get(path)).status == 200, path
    counted = await metric_counts(h)
    assert {code: n for code, n in counted.items() if n} == dict(tally.codes)
    assert not any(code >= 500 for code in tally.codes)
    errors = [e for e in logs if e.get("log_level") in ("error", "critical", "exception")]
    assert errors == []
    assert Counter(e["code"] for e in logs if e.get("event") == "webhook") == tally.codes
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    assert h.app is not None
    store = h.app[SERVICES].store
    rows = await store.list_incidents(REPO, limit=1_000_000)
    assert {row.incident.display_id for row in rows} == tally.incidents
    assert await store.incident_count() == len(tally.incidents)
    # Nothing ran: every incident's first effect (its issue) waits in the GitHub lane — one
    # claim per incident, each its github.sync.
    claimed = await store.claim_effects(
        h.clock(), limit=1_000_000, lease=timedelta(seconds=60), lane="github"
    )
    assert sorted(e.incident_label for e in claimed) == sorted(tally.incidents)
    assert {e.kind for e in claimed} <= {"github.sync"}

    response = await h.http.get("/api/v1/incidents", params={"limit": "1000"})
    assert response.status == 200
    listed = await response.json()
    assert len(listed) == min(1000, len(tally.incidents))
    assert {item["id"] for item in listed} <= tally.incidents
    for path in ("/status", "/status.json"):
        response = await h.http.get(path)
        assert response.status == 200, path
        await response.read()


# -- valid webhooks -------------------------------------------------------------------------


async def _valid(
    h: Harness,
    examples: int,
    logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> Tally:
    tally = Tally()

    async def case(body: Case[bytes], content_type: str) -> None:
        status, answer = await send(h, body.value, tally, content_type=content_type)
        if len(body.value) > LIMIT:  # thousands of hostile characters in many fields
            refused(status, answer, 413)
        else:
            accepted(status, answer, tally)

    await fuzz(examples, case, encoded, content_type=st.sampled_from(CONTENT_TYPES))
    assert tally.cases >= examples
    await assert_consistent(h, tally, logs, caplog)
    return tally


async def test_valid_webhooks_are_accepted(
    bridge: Harness,
    bridge_logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    figures: Record,
) -> None:
    """Webhooks Alertmanager could send — any receiver, group, labels, annotations, timestamps
    in every spelling incl. the zero time, truncatedAlerts up to Go's uint64, under any content
    type (the body decides, not the header) — are each stored and answered 200."""
    tally = await _valid(bridge, VALID_SQLITE, bridge_logs, caplog)
    figures({"store": "sqlite", **tally.figures()})


async def test_valid_webhooks_are_accepted_on_postgresql(
    bridge_pg: Harness,
    bridge_logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    figures: Record,
) -> None:
    """The same on PostgreSQL, whose text columns refuse what SQLite's take (NUL)."""
    tally = await _valid(bridge_pg, VALID_POSTGRES, bridge_logs, caplog)
    figures({"store": "postgresql", **tally.figures()})


# -- one thing changed ----------------------------------------------------------------------


async def test_a_webhook_with_one_thing_changed_gets_the_answer_the_change_calls_for(
    bridge: Harness,
    bridge_logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    figures: Record,
) -> None:
    """A required field missing, a known field of the wrong type (numbers as strings, strings
    as numbers, null, a list for an object), an empty alerts list, a start at the zero time, a
    lone surrogate, bytes that are not UTF-8, a BOM, nesting deeper than the parser follows,
    trailing garbage: 400 with an error. Unknown fields (nested up to 150 deep), an optional
    field left out, a null or zero endsAt, a duplicated key: 200. A missing or wrong bearer
    token: 401 before anything else."""
    tally = Tally()
    changes: Counter[str] = Counter()

    async def case(body: Case[Mutant], auth: str | None, content_type: str) -> None:
        changed = body.value
        status, answer = await send(
            bridge, changed.body, tally, auth=auth, content_type=content_type
        )
        expected = (
            401 if auth not in GOOD_AUTH else 413 if len(changed.body) > LIMIT else changed.expected
        )
        changes[changed.change.split(" ")[0] if expected != 401 else "unauthorised"] += 1
        if expected == 200:
            accepted(status, answer, tally)
        else:
            refused(status, answer, expected)

    auth = st.sampled_from([False] + [True] * 7).flatmap(
        lambda good: st.sampled_from(GOOD_AUTH if good else BAD_AUTH)
    )
    await fuzz(
        NEAR_VALID,
        case,
        mutant,
        auth=auth,
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    assert tally.cases >= NEAR_VALID
    await assert_consistent(bridge, tally, bridge_logs, caplog)
    figures({**tally.figures(), "changes": dict(sorted(changes.items()))})


# -- not webhooks ---------------------------------------------------------------------------


async def test_bodies_that_are_not_webhooks_get_400(
    bridge: Harness,
    bridge_logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    figures: Record,
) -> None:
    """Random bytes, any JSON document, a webhook cut short, 100,000 open brackets, NaN, a BOM,
    60,000 NUL bytes: 400 with an error, and nothing stored."""
    tally = Tally()

    async def case(body: Case[bytes], content_type: str) -> None:
        status, answer = await send(bridge, body.value, tally, content_type=content_type)
        refused(status, answer, 413 if len(body.value) > LIMIT else 400)

    await fuzz(JUNK, case, junk, content_type=st.sampled_from(CONTENT_TYPES))
    assert tally.cases >= JUNK
    await assert_consistent(bridge, tally, bridge_logs, caplog)
    figures(tally.figures())


# -- over the limit -------------------------------------------------------------------------


def _padded(webhook_body: dict[str, Any], size: int) -> bytes:
    """``webhook_body`` with an annotation that makes its JSON exactly ``size`` bytes."""
    webhook_body["commonAnnotations"] = {"padding": ""}
    raw = encode(webhook_body)
    webhook_body["commonAnnotations"]["padding"] = "x" * (size - len(raw))
    raw = encode(webhook_body)
    assert len(raw) == size
    return raw


async def test_bodies_over_the_limit_get_413(
    bridge: Harness,
    bridge_logs: list[MutableMapping[str, Any]],
    caplog: pytest.LogCaptureFixture,
    figures: Record,
) -> None:
    """A body of more than max_body_bytes — a valid webhook or junk, announced by its
    Content-Length or streamed without one — is 413 (401 first without the token); exactly
    max_body_bytes is still read."""
    tally = Tally()
    sizes: list[int] = []

    async def case(body: Case[dict[str, Any]], over: int, stream: bool, authorised: bool) -> None:
        size = LIMIT + over
        sizes.append(size)
        raw = _padded(body.value, size) if over % 2 else (b"x" * size)
        auth = GOOD_AUTH[0] if authorised else None
        status, answer = await send(bridge, raw, tally, auth=auth, stream=stream)
        refused(status, answer, 413 if authorised else 401)

    await fuzz(
        OVERSIZED - 4,
        case,
        webhook,
        over=st.integers(1, 3 * LIMIT),
        stream=st.booleans(),
        authorised=st.sampled_from([False] + [True] * 9),
    )
    # The boundary: exactly the limit is read (and accepted), one byte more is not.
    for stream in (False, True):
        status, answer = await send(
            bridge, _padded(payload("01_firing_single.json"), LIMIT), tally, stream=stream
        )
        accepted(status, answer, tally)
        raw = _padded(payload("01_firing_single.json"), LIMIT + 1)
        refused(*(await send(bridge, raw, tally, stream=stream)), 413)
    assert tally.cases >= OVERSIZED
    await assert_consistent(bridge, tally, bridge_logs, caplog)
    figures({**tally.figures(), "largest": max(sizes)})


# -- what the fuzzing found -----------------------------------------------------------------
# Each was answered 503 (Alertmanager retries a 5xx for ever, so the group was stuck); the
# smallest payload that showed it, now an explicit case.


async def test_truncated_alerts_beyond_a_uint64_is_400_not_503(bridge: Harness) -> None:
    """Found by the near-valid fuzzing: ``truncatedAlerts`` of 2**64 passed validation and the
    store's JSON encoder (orjson, 64-bit integers) refused it: 503 "internal error" on every
    retry. Alertmanager's field is a Go uint64, so anything larger is not from it: 400."""
    tally = Tally()
    body = payload("01_firing_single.json")
    body["truncatedAlerts"] = 2**64
    status, answer = await send(bridge, encode(body), tally)
    refused(status, answer, 400)
    assert "truncatedAlerts" in answer["error"]
    body["truncatedAlerts"] = 2**64 - 1  # the largest Alertmanager can send is kept
    status, answer = await send(bridge, encode(body), tally)
    accepted(status, answer, tally)


async def test_nul_in_alert_text_is_stored_on_postgresql(bridge_pg: Harness) -> None:
    """Found by the valid-webhook fuzzing on PostgreSQL: an alertname (or instance) holding
    NUL went into the timeline's text column ("Alert fired: …"), which PostgreSQL refuses
    (``invalid byte sequence for encoding "UTF8": 0x00``): 503 "store unavailable" for ever.
    SQLite took it. Now stored without the NUL, on both."""
    tally = Tally()
    body = payload("01_firing_single.json")
    body["alerts"][0]["labels"]["alertname"] = "High\x00CPU"
    body["alerts"][0]["labels"]["instance"] = "api-1\x00:9100"
    status, answer = await send(bridge_pg, encode(body), tally)
    accepted(status, answer, tally)
    assert bridge_pg.app is not None
    store = bridge_pg.app[SERVICES].store
    [row] = await store.list_incidents(REPO)
    assert row.incident.id is not None
    texts = [e.text for e in await store.load_events(row.incident.id, 10)]
    assert "Alert fired: HighCPU on api-1:9100" in texts


async def test_one_fingerprint_twice_in_a_notification_is_200_not_503(bridge: Harness) -> None:
    """Found by the near-valid fuzzing: a resolved incident, then a notification listing its
    alert twice — firing with a new startsAt, then resolved — counted as "fired anew" while the
    merged alert ended up resolved, and the engine's reopening asserted a firing alert:
    503 "internal error" for ever. One alert per fingerprint now, its newest episode counting
    (Alertmanager never repeats one; two alerts with equal labels and no fingerprint do)."""
    tally = Tally()
    first = payload("01_firing_single.json")
    accepted(*(await send(bridge, encode(first), tally)), tally)
    resolved = payload("03_resolved_single.json")
    status, answer = await send(bridge, encode(resolved), tally)
    accepted(status, answer, tally)
    assert answer["outcome"] == "resolved"
    again = payload("01_firing_single.json")
    [alert] = again["alerts"]
    later = {**alert, "startsAt": "2026-11-26T21:40:00Z"}
    ended = {
        **alert,
        "status": "resolved",
        "startsAt": "2026-11-26T21:41:00Z",
        "endsAt": "2026-11-26T21:42:00Z",
    }
    again["alerts"] = [later, ended]
    status, answer = await send(bridge, encode(again), tally)
    accepted(status, answer, tally)
    assert answer["outcome"] == "unchanged"  # the newest episode: resolved
    anew = {**alert, "startsAt": "2026-11-26T21:43:00Z"}
    again["alerts"] = [ended, anew]
    status, answer = await send(bridge, encode(again), tally)
    accepted(status, answer, tally)
    assert answer["outcome"] == "reopened"  # the newest episode: firing anew
