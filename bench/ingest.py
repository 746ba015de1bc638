"""Ingest benchmark: the bridge's webhook against a bare aiohttp receiver, same machine, same run.

    python -m bench.ingest [--seconds 10] [--concurrency 32] [--rounds 3] [--github-latency-ms 100]

Each server runs in its own process on 127.0.0.1; this process is a closed-loop aiohttp load
generator (``--concurrency`` senders, each posting again as soon as it has its answer). The
bridge runs exactly as shipped: SQLite in WAL mode with ``synchronous=FULL`` (every 200 is on
disk), JSON logs (to /dev/null), dry-run GitHub (no GitHub load in the ingest figures).

Scenarios: repeats of fixture 04 (the common case: Alertmanager's repeat_interval and HA
duplicates) and a stream of new alert groups (each opens an incident and queues an effect).
Then, with the fake GitHub on loopback: the time from the 200 to the issue existing, and the
GitHub calls a new group, a repeat and a resolution cost.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "alertmanager"
sys.path.insert(0, str(ROOT / "tests"))

from fakes.github import FakeGitHub  # noqa: E402 -- the test fake, found through tests/ above

PACED_RATE = 300.0  # requests per second in the open-loop latency runs: a heavy storm
REPO = "acme/incidents"
TOKEN = "bench-token"  # noqa: S105 -- the fake GitHub's token, on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def new_group(template: dict[str, Any], n: int) -> bytes:
    body = copy.deepcopy(template)
    body["groupKey"] = f'{{}}:{{alertname="DiskFull", service="db-{n}"}}'
    body["groupLabels"]["service"] = f"db-{n}"
    for i, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{n:012x}{i:04x}"
        alert["labels"]["service"] = f"db-{n}"
    return json.dumps(body).encode()


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(
    url: str, bodies: Callable[[int], bytes], seconds: float, concurrency: int, name: str
) -> Result:
    """Closed loop: ``concurrency`` senders; the first second is warm-up and not counted."""
    counter = 0
    latencies: list[float] = []
    errors = 0
    warmup_end = time.perf_counter() + 1.0
    end = warmup_end + seconds
    headers = {"Content-Type": "application/json"}

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal counter, errors
        while (now := time.perf_counter()) < end:
            counter += 1
            body = bodies(counter)
            start = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                ok = response.status == 200
            if start >= warmup_end:
                latencies.append(time.perf_counter() - start)
                errors += not ok
            del now

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
    return Result(name, len(latencies), seconds, latencies, errors)


async def paced(
    url: str, bodies: Callable[[int], bytes], rate: float, seconds: float, name: str
) -> Result:
    """Open loop: requests start on a fixed schedule (``rate`` per second) whatever the answers
    take, so latency is measured at a given load rather than at saturation."""
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}

    async def one(http: aiohttp.ClientSession, n: int) -> None:
        nonlocal errors
        start = time.perf_counter()
        async with http.post(url, data=bodies(n), headers=headers) as response:
            await response.read()
            errors += response.status != 200
        latencies.append(time.perf_counter() - start)

    total = int(rate * seconds)
    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        tasks = []
        for n in range(total):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, n)))
        await asyncio.gather(*tasks)
    return Result(name, len(latencies), seconds, latencies, errors)


async def start_server(
    argv: list[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start a server and wait for its ``/healthz`` (``env``: the environment, else ours)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{argv} did not start")


async def stop_server(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await asyncio.wait_for(process.wait(), 15)


def bridge_config(port: int, github: FakeGitHub | None) -> str:
    text = f"listen: 127.0.0.1:{port}\nstore:\n  url: sqlite:///state.db\n"
    if github is not None:
        text += f"github:\n  api_url: {github.base_url}\n  repository: {REPO}\n  token: {TOKEN}\n"
    return text


async def one_round(
    seconds: float, concurrency: int, workdir: Path, offset: int, github_latency: float | None
) -> dict[str, Result]:
    """Bare receiver, then the bridge (a fresh store), on both streams. With ``github_latency``
    the bridge talks to the fake GitHub answering every request after that many seconds (its
    outbox then works at GitHub's pace, as in production) instead of running dry."""
    repeat_body = (FIXTURES / "04_group_of_3_firing.json").read_bytes()
    template = fixture("04_group_of_3_firing.json")
    new_bodies = [new_group(template, offset + n) for n in range(60_000)]
    results: dict[str, Result] = {}
    headers = {"Content-Type": "application/json"}

    port = free_port()
    bare = await start_server([sys.executable, "-m", "bench.bare_receiver", str(port)], port, ROOT)
    url = f"http://127.0.0.1:{port}/api/v1/alerts"
    try:
        results["bare_repeat"] = await load(
            url, lambda _n: repeat_body, seconds, concurrency, "bare"
        )
        # The bare receiver only parses: the same bodies again cost it the same (it outruns
        # the 60,000 prepared ones on a quiet machine).
        results["bare_new"] = await load(
            url, lambda n: new_bodies[n % 50_000], seconds, concurrency, "bare"
        )
    finally:
        await stop_server(bare)

    for scenario in ("repeat", "new"):
        port = free_port()
        run = workdir / f"{scenario}-{offset}"
        run.mkdir()
        github = None
        if github_latency is not None:
            github = FakeGitHub(token=TOKEN, repos=[REPO])
            await github.start()
            github.inject("*", r".*", 0, delay=github_latency, times=10**9)
        (run / "bridge.yaml").write_text(bridge_config(port, github))
        argv = [sys.executable, "-m", "bridge", "serve", "--config", str(run / "bridge.yaml")]
        bridge = await start_server(argv, port, ROOT)
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        try:
            if scenario == "repeat":
                async with aiohttp.ClientSession() as http:
                    await http.post(url, data=repeat_body, headers=headers)
                results["bridge_repeat"] = await load(
                    url, lambda _n: repeat_body, seconds, concurrency, "bridge repeat"
                )
                results["bridge_repeat_paced"] = await paced(
                    url, lambda _n: repeat_body, PACED_RATE, seconds, "bridge repeat paced"
                )
            else:
                results["bridge_new"] = await load(
                    url, lambda n: new_bodies[n], seconds, concurrency, "bridge new"
                )
                results["bridge_new_paced"] = await paced(
                    url, lambda n: new_bodies[50_000 + n], PACED_RATE, seconds, "bridge new paced"
                )
        finally:
            await stop_server(bridge)
            if github is not None:
                await github.close()
    return results


def summary(r: Result) -> dict[str, Any]:
    return {
        "requests": r.requests,
        "errors": r.errors,
        "throughput_per_s": round(r.throughput, 1),
        "p50_ms": round(r.percentile(0.50), 2),
        "p99_ms": round(r.percentile(0.99), 2),
    }


async def ingest(
    seconds: float, concurrency: int, workdir: Path, rounds: int, github_latency: float | None
) -> dict[str, Any]:
    """``rounds`` rounds, interleaved; each scenario's median round (by throughput) is reported,
    with every round's throughput, since one 2-core machine is noisy."""
    runs = [
        await one_round(seconds, concurrency, workdir, i * 1_000_000, github_latency)
        for i in range(rounds)
    ]
    out: dict[str, Any] = {}
    for key in runs[0]:
        ordered = sorted((run[key] for run in runs), key=lambda r: r.throughput)
        out[key] = summary(ordered[len(ordered) // 2])
        out[key]["rounds_throughput_per_s"] = [round(run[key].throughput, 1) for run in runs]
    for scenario in ("repeat", "new"):
        ratios = sorted(
            run[f"bridge_{scenario}"].throughput / run[f"bare_{scenario}"].throughput
            for run in runs
        )
        out[f"ratio_{scenario}"] = round(ratios[len(ratios) // 2], 3)
        out[f"ratio_{scenario}_rounds"] = [round(r, 3) for r in ratios]
    return out


async def github_path(workdir: Path, samples: int = 50) -> dict[str, Any]:
    """200 → issue latency, and GitHub calls per new / repeat / resolved notification."""
    async with FakeGitHub(token=TOKEN, repos=[REPO]) as github:
        port = free_port()
        run = workdir / "github"
        run.mkdir()
        (run / "bridge.yaml").write_text(
            f"listen: 127.0.0.1:{port}\nstore:\n  url: sqlite:///state.db\n"
            f"github:\n  api_url: {github.base_url}\n  repository: {REPO}\n  token: {TOKEN}\n"
            # GitHub's own limits, no reserve: this measures latency, not the budget's pacing.
            "  budget: {per_minute: 80, per_hour: 500, reserve: 0}\n"
        )
        argv = [sys.executable, "-m", "bridge", "serve", "--config", str(run / "bridge.yaml")]
        bridge = await start_server(argv, port, ROOT)
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        template = fixture("04_group_of_3_firing.json")
        headers = {"Content-Type": "application/json"}
        latencies: list[float] = []
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.sleep(1.0)  # start-up label creation done
                for n in range(samples):
                    before = len(github.issues(REPO))
                    async with http.post(
                        url, data=new_group(template, 10_000 + n), headers=headers
                    ) as r:
                        await r.read()
                    answered = time.perf_counter()
                    while len(github.issues(REPO)) == before:
                        if time.perf_counter() - answered > 30:
                            raise RuntimeError("no issue 30 s after the 200")
                        await asyncio.sleep(0.0005)
                    latencies.append(time.perf_counter() - answered)

                calls: dict[str, dict[str, int]] = {}
                first = fixture("01_firing_single.json")

                async def measure(
                    name: str, body: dict[str, Any], settle: Callable[[], bool]
                ) -> None:
                    github.reset_log()
                    async with http.post(url, data=json.dumps(body), headers=headers) as r:
                        await r.read()
                    deadline = time.monotonic() + 10
                    # Polls the fake's state, which has no event to await; bounded by the deadline.
                    while not settle() and time.monotonic() < deadline:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.5)  # anything else it would do, it has done by now
                    # A P0/P1 resolution also opens its post-incident review: its own effect
                    # (CONTRACT.md: "Other effects (reviews, escalations) are their own").
                    review = [
                        q
                        for q in github.requests
                        if q.is_write and "kind=pir" in json.dumps(q.json or {})
                    ]
                    calls[name] = {
                        "writes": github.count_writes() - len(review),
                        "reads": len(github.requests) - github.count_writes(),
                        "reads_not_modified": sum(1 for q in github.requests if q.status == 304),
                        "review_writes": len(review),
                    }

                # Fresh timestamps, as Alertmanager sends them: the captured fixture's startsAt
                # is hours old, so its resolution deadline (counted from startsAt) would already
                # have passed and the SLA breach comment would be counted as the group's.
                started = datetime.now(UTC)
                first["alerts"][0]["startsAt"] = started.isoformat()
                count = len(github.issues(REPO))
                await measure("new", first, lambda: len(github.issues(REPO)) > count)
                await measure("repeat", first, lambda: True)
                resolved = fixture("03_resolved_single.json")
                resolved["alerts"][0]["startsAt"] = started.isoformat()
                resolved["alerts"][0]["endsAt"] = datetime.now(UTC).isoformat()
                number = max(i.number for i in github.issues(REPO))
                await measure(
                    "resolved", resolved, lambda: github.issue(REPO, number).state == "closed"
                )
        finally:
            await stop_server(bridge)
    return {
        "issue_after_200_ms": {
            "samples": len(latencies),
            "p50": round(statistics.median(latencies) * 1000, 2),
            "p99": round(sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000, 2),
            "max": round(max(latencies) * 1000, 2),
        },
        "github_calls": calls,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        latency = None if args.github_latency_ms is None else args.github_latency_ms / 1000
        result = await ingest(args.seconds, args.concurrency, workdir, args.rounds, latency)
        result.update(await github_path(workdir))
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    result["command"] = (
        f"python -m bench.ingest --seconds {args.seconds:g} --concurrency {args.concurrency}"
        f" --rounds {args.rounds}"
        + (f" --github-latency-ms {args.github_latency_ms:g}" if args.github_latency_ms else "")
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--github-latency-ms",
        type=float,
        default=None,
        help="run the bridge against the fake GitHub answering after this delay (default: dry-run)",
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
