"""Storm benchmark: 10,000 alerts in 500 groups within 10 s, GitHub slow and enforcing its limits.

    python -m bench.storm [--groups 500] [--alerts-per-group 20] [--urgent 10] [--latency-ms 100]

The bridge runs as shipped (``serve``, SQLite, the default ``github.budget``: 60 writes a minute,
400 an hour, 25 % reserved for P0/P1) against the fake GitHub on loopback, which answers every
request after ``--latency-ms`` and enforces GitHub's real limits (80 content-creating requests a
minute, 500 an hour: a 403 with ``Retry-After`` beyond). The groups are sent over 10 s, open
loop; the P0/P1 ones are spread through the second half of the storm, behind the P3 flood.

Measured (real time, from the first webhook): when every P0/P1 group has its own issue, when
every group is visible on GitHub (its own issue, or listed in the storm roll-up), the 403s
received, the GitHub calls made, the bridge's peak RSS, and the webhook latency during the storm.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bench.ingest import REPO, TOKEN, fixture, free_port, start_server, stop_server  # noqa: E402
from fakes.github import FakeGitHub  # noqa: E402 -- the test fake, found through tests/ above

SEND_SECONDS = 10.0
DEADLINE = 240.0  # seconds: give up waiting for GitHub after this long


def group_body(template: dict[str, Any], n: int, alerts: int, priority: str) -> bytes:
    """Group ``n``: ``alerts`` alerts of one alertname on distinct instances."""
    body = copy.deepcopy(template)
    first = body["alerts"][0]
    body["groupKey"] = f'{{}}:{{alertname="StormAlert", service="svc-{n:04d}"}}'
    body["groupLabels"] = {"alertname": "StormAlert", "service": f"svc-{n:04d}"}
    body["commonLabels"] = {"alertname": "StormAlert", "service": f"svc-{n:04d}"}
    body["commonAnnotations"] = {"summary": f"storm group {n:04d}"}
    body["alerts"] = []
    for i in range(alerts):
        alert = copy.deepcopy(first)
        alert["fingerprint"] = f"{n:08x}{i:08x}"
        alert["labels"] = {
            "alertname": "StormAlert",
            "service": f"svc-{n:04d}",
            "instance": f"host-{i:03d}:9100",
            "priority": priority,
        }
        alert["annotations"] = {"summary": f"storm group {n:04d}"}
        body["alerts"].append(alert)
    return json.dumps(body).encode()


def reads_by_kind(github: FakeGitHub) -> dict[str, int]:
    """The GETs made, by what they read (an issue, its comments, the issue list, …); ``…_304``:
    conditional reads answered Not Modified."""
    kinds: dict[str, int] = {}
    for r in github.calls("GET"):
        path = r.path.split("?")[0]
        kind = re.sub(r"/\d+", "/N", path.replace(f"/repos/{REPO}", ""))
        kind += "_304" if r.status == 304 else ""
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def storm(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    template = fixture("04_group_of_3_firing.json")
    urgent_at = {
        args.groups // 2 + k * (args.groups // 2) // args.urgent for k in range(args.urgent)
    }
    priorities = {n: ("P0" if k % 2 == 0 else "P1") for k, n in enumerate(sorted(urgent_at))}
    bodies = [
        group_body(template, n, args.alerts_per_group, priorities.get(n, "P3"))
        for n in range(args.groups)
    ]
    async with FakeGitHub(token=TOKEN, repos=[REPO], enforce_limits=True) as github:
        github.inject("*", r".*", 0, delay=args.latency_ms / 1000, times=10**9)
        port = free_port()
        (workdir / "bridge.yaml").write_text(
            f"listen: 127.0.0.1:{port}\nstore:\n  url: sqlite:///state.db\n"
            f"github:\n  api_url: {github.base_url}\n  repository: {REPO}\n  token: {TOKEN}\n"
        )
        argv = [sys.executable, "-m", "bridge", "serve", "--config", str(workdir / "bridge.yaml")]
        bridge = await start_server(argv, port, ROOT)
        await asyncio.sleep(2.0)  # start-up: labels created
        github.reset_log()
        url = f"http://127.0.0.1:{port}/api/v1/alerts"
        incident_of: dict[int, str] = {}
        latencies: list[float] = []
        errors = 0
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

                async def send(n: int) -> None:
                    nonlocal errors
                    started = time.perf_counter()
                    headers = {"Content-Type": "application/json"}
                    async with http.post(url, data=bodies[n], headers=headers) as response:
                        answer = await response.json()
                        errors += response.status != 200
                    latencies.append(time.perf_counter() - started)
                    incident_of[n] = answer.get("incident", "")

                began = time.perf_counter()
                tasks = []
                for n in range(args.groups):
                    delay = began + n * SEND_SECONDS / args.groups - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(send(n)))
                await asyncio.gather(*tasks)
                sent = time.perf_counter() - began

                urgent_ids = {incident_of[n] for n in priorities}
                all_ids = set(incident_of.values())
                urgent_done = visible_done = None
                while time.perf_counter() - began < DEADLINE:
                    issues = github.issues(REPO)
                    own = {
                        m.group(1)
                        for i in issues
                        if (m := re.match(r"\[(INC-\d+)\] storm group", i.title or ""))
                    }
                    listed: set[str] = set()
                    for issue in issues:
                        if "Alert storm" in (issue.title or ""):
                            listed |= set(re.findall(r"INC-\d+", issue.body or ""))
                    now = time.perf_counter() - began
                    if urgent_done is None and urgent_ids <= own:
                        urgent_done = now
                    if visible_done is None and all_ids <= own | listed:
                        visible_done = now
                    if urgent_done is not None and visible_done is not None:
                        break
                    await asyncio.sleep(0.25)
            rss = peak_rss_mb(bridge.pid)
        finally:
            await stop_server(bridge)
        ordered = sorted(latencies)
        writes = github.count_writes()
        return {
            "groups": args.groups,
            "alerts": args.groups * args.alerts_per_group,
            "urgent_groups": len(priorities),
            "sent_in_s": round(sent, 2),
            "webhook_errors": errors,
            "webhook_p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
            "webhook_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
            "every_p0_p1_own_issue_s": None if urgent_done is None else round(urgent_done, 1),
            "every_group_visible_s": None if visible_done is None else round(visible_done, 1),
            "github_403": sum(1 for r in github.requests if r.status == 403),
            "github_requests": len(github.requests),
            "github_writes": writes,
            "github_reads": reads_by_kind(github),
            "issues": len(github.issues(REPO)),
            "peak_rss_mb": round(rss, 1),
        }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        result = await storm(args, Path(tmp))
    result["command"] = (
        f"python -m bench.storm --groups {args.groups} --alerts-per-group"
        f" {args.alerts_per_group} --urgent {args.urgent} --latency-ms {args.latency_ms:g}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--alerts-per-group", type=int, default=20)
    parser.add_argument("--urgent", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
