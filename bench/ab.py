"""Interleaved A/B: the webhook's cost in two source trees, measured in the same minutes.

    python -m bench.ab BASE_TREE [CANDIDATE_TREE] [--scenario new|repeat] [--phases 20]
        [--phase-seconds 1.5] [--drain]

This machine's speed drifts by ±20 % from one minute to the next, so two ``bench.ingest`` runs
minutes apart cannot tell a 4 % change from noise. Here both bridges run side by side (each
``serve`` importing ``bridge`` from its own tree through PYTHONPATH, the shipped bench config,
dry-run GitHub), and the closed-loop load (32 senders, as in ``bench.ingest``) alternates
between them in short phases, A B B A A B …, so the drift falls on both alike. Reported per
tree: requests per second, and the CPU seconds its process spent per request (from /proc,
every thread, user and system), with B/A ratios and the spread of the per-pair throughput
ratio. The CPU ratio is the steadier figure: A/A runs read 1.00 ± 0.01 for it, 1.00 ± 0.04
for the throughput ratio.

``--drain`` waits after each phase until the bridge is idle, so what a request leaves for the
outbox (the dry-run GitHub sync) is counted with it; without it, a bridge still draining its
outbox during the other's phase would slow that one down instead.

A tree is a directory holding ``bridge/`` (a ``git worktree add`` of a commit, or a copy);
CANDIDATE_TREE defaults to this checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.ingest import (
    FIXTURES,
    ROOT,
    bridge_config,
    fixture,
    free_port,
    new_group,
    start_server,
)

SENDERS = 32


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Bridge:
    name: str
    tree: Path
    process: asyncio.subprocess.Process
    url: str
    next_body: int
    cpu: float = 0.0
    requests: int = 0
    errors: int = 0
    rates: list[float] = field(default_factory=list)


async def start(name: str, tree: Path, workdir: Path, first_body: int) -> Bridge:
    port = free_port()
    run = workdir / name
    run.mkdir()
    (run / "bridge.yaml").write_text(bridge_config(port, None))
    argv = [sys.executable, "-m", "bridge", "serve", "--config", str(run / "bridge.yaml")]
    env = dict(os.environ, PYTHONPATH=str(tree))  # this tree's bridge/, not the installed one
    process = await start_server(argv, port, run, env)
    url = f"http://127.0.0.1:{port}/api/v1/alerts"
    return Bridge(name, tree, process, url, first_body)


async def phase(
    http: aiohttp.ClientSession, bridge: Bridge, bodies: Callable[[int], bytes], seconds: float
) -> tuple[int, int]:
    """Closed loop against one bridge for ``seconds``: requests answered, and not with 200."""
    end = time.perf_counter() + seconds
    answered = errors = 0
    headers = {"Content-Type": "application/json"}

    async def sender() -> None:
        nonlocal answered, errors
        while time.perf_counter() < end:
            bridge.next_body += 1
            body = bodies(bridge.next_body)
            async with http.post(bridge.url, data=body, headers=headers) as response:
                await response.read()
                errors += response.status != 200
            answered += 1

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return answered, errors


async def settle(bridge: Bridge, drain: bool) -> None:
    """Let the phase's last answers land; with ``drain``, until the bridge is idle."""
    await asyncio.sleep(0.05)
    if not drain:
        return
    last = process_cpu(bridge.process.pid)
    for _ in range(600):  # at most two minutes
        await asyncio.sleep(0.2)
        now = process_cpu(bridge.process.pid)
        if now - last < 0.02:  # under 10 % of a core
            return
        last = now


async def compare(
    trees: tuple[Path, Path], scenario: str, phases: int, seconds: float, drain: bool
) -> dict[str, object]:
    repeat = (FIXTURES / "04_group_of_3_firing.json").read_bytes()
    template = fixture("04_group_of_3_firing.json")
    room = 1_000_000  # new-group numbers per bridge: every body opens an incident of its own

    def bodies(n: int) -> bytes:
        return repeat if scenario == "repeat" else new_group(template, n)

    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        workdir = Path(tmp)
        bridges = [
            await start("A", trees[0], workdir, 0),
            await start("B", trees[1], workdir, room),
        ]
        try:
            connector = aiohttp.TCPConnector(limit=2 * SENDERS)
            async with aiohttp.ClientSession(connector=connector) as http:
                for bridge in bridges:  # warm-up, not counted
                    await phase(http, bridge, bodies, 1.0)
                    await settle(bridge, drain)
                for index in range(phases):
                    for bridge in bridges if index % 2 == 0 else bridges[::-1]:
                        cpu_before = process_cpu(bridge.process.pid)
                        started = time.perf_counter()
                        answered, errors = await phase(http, bridge, bodies, seconds)
                        elapsed = time.perf_counter() - started
                        await settle(bridge, drain)
                        bridge.cpu += process_cpu(bridge.process.pid) - cpu_before
                        bridge.requests += answered
                        bridge.errors += errors
                        bridge.rates.append(answered / elapsed)
        finally:
            for bridge in bridges:
                bridge.process.terminate()
                await bridge.process.wait()

    a, b = bridges
    pairs = [rb / ra for ra, rb in zip(a.rates, b.rates, strict=True)]
    out: dict[str, object] = {
        bridge.name: {
            "tree": str(bridge.tree),
            "requests_per_s": round(statistics.mean(bridge.rates)),
            "cpu_us_per_request": round(bridge.cpu / bridge.requests * 1e6),
            "errors": bridge.errors,
        }
        for bridge in bridges
    }
    out["b_over_a_cpu"] = round((b.cpu / b.requests) / (a.cpu / a.requests), 3)
    out["b_over_a_throughput"] = round(statistics.mean(pairs), 3)
    out["throughput_ratio_stdev"] = round(statistics.stdev(pairs), 3)
    out["command"] = (
        f"python -m bench.ab {trees[0]} {trees[1]} --scenario {scenario} --phases {phases}"
        f" --phase-seconds {seconds:g}" + (" --drain" if drain else "")
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="tree A (holds bridge/)")
    parser.add_argument("candidate", type=Path, nargs="?", default=ROOT, help="tree B")
    parser.add_argument("--scenario", choices=("new", "repeat"), default="new")
    parser.add_argument("--phases", type=int, default=20)
    parser.add_argument("--phase-seconds", type=float, default=1.5)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args()
    trees = (args.base.resolve(), args.candidate.resolve())
    for tree in trees:
        if not (tree / "bridge" / "__init__.py").exists():
            parser.error(f"{tree} holds no bridge/")
    result = asyncio.run(compare(trees, args.scenario, args.phases, args.phase_seconds, args.drain))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
