"""Gauges read from the shared PostgreSQL database are exported once across replicas."""

from __future__ import annotations

from pathlib import Path

from bridge.clock import FakeClock
from fakes.github import FakeGitHub
from support import Harness, github_config, payload


def gauge(metrics: str, name: str) -> float:
    [line] = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


async def test_only_the_github_writer_exports_the_shared_gauges(
    tmp_path: Path, github: FakeGitHub, clock: FakeClock, postgres_db: str
) -> None:
    """Two replicas on one database: the one holding the GitHub writer lease exports the
    outbox and open-incident gauges, the other exports zeros, so a sum over replicas (what a
    dashboard does) counts every incident once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Harness(tmp_path / "a", github, clock, github_config(store_url=postgres_db))
    b = Harness(tmp_path / "b", github, clock, github_config(store_url=postgres_db))
    await a.start()
    await b.start()
    try:
        await a.post(payload("01_firing_single.json"))
        await b.post(payload("04_group_of_3_firing.json"))
        await a.drain()  # a takes the writer lease and runs both effects
        await b.drain()  # b finds the lease taken: it runs nothing
        assert len(a.issues()) == 2
        name = 'incident_bridge_incidents_open{priority="P1"}'
        a_metrics = await (await a.http.get("/metrics")).text()
        b_metrics = await (await b.http.get("/metrics")).text()
        assert gauge(a_metrics, name) == 1.0
        assert gauge(b_metrics, name) == 0.0
        p2 = 'incident_bridge_incidents_open{priority="P2"}'
        assert gauge(a_metrics, p2) + gauge(b_metrics, p2) == 1.0
    finally:
        await b.stop()
        await a.stop()
