"""``store.retention``: what is old and finished goes; open incidents keep everything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.app import RETENTION
from bridge.metrics import Metrics
from bridge.retention import Retention
from bridge.store.base import PruneResult
from bridge.web.services import SERVICES
from support import Harness, payload


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Retention runs on both stores."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_db")
        return url
    return "sqlite:///state.db"


async def events_of(h: Harness, incident: str) -> int:
    assert h.app is not None
    store = h.app[SERVICES].store
    rows = await store.list_incidents("acme/incidents")
    [row] = [r for r in rows if r.incident.display_id == incident]
    assert row.incident.id is not None
    return len(await store.load_events(row.incident.id, 1000))


async def test_old_resolved_incidents_lose_their_timeline_open_ones_keep_it(
    harness: Harness,
) -> None:
    """90 days (the default) after a resolution, its events and finished effects are pruned;
    an incident still open keeps its events however old; the prune is counted."""
    await harness.post(payload("01_firing_single.json"))  # INC-001, resolved below
    await harness.post(payload("04_group_of_3_firing.json"))  # INC-002, stays open
    await harness.drain()
    harness.clock.advance(600)
    await harness.post(payload("03_resolved_single.json"))
    await harness.drain()
    assert await events_of(harness, "INC-001") > 0
    open_events = await events_of(harness, "INC-002")
    assert harness.app is not None
    retention = harness.app[RETENTION]

    harness.clock.advance(timedelta(days=89).total_seconds())
    early = await retention.run_once()
    assert early is not None
    assert (early.events, early.effects) == (0, 0)

    harness.clock.advance(timedelta(days=2).total_seconds())
    result = await retention.run_once()
    assert result is not None
    assert result.events > 0
    # INC-001's create, comment, post-incident review (a P1) and close; INC-002's create
    assert result.effects == 5
    assert await events_of(harness, "INC-001") == 0
    assert await events_of(harness, "INC-002") == open_events

    text = await (await harness.http.get("/metrics")).text()
    assert f'incident_bridge_pruned_rows_total{{kind="events"}} {float(result.events)}' in text
    assert 'incident_bridge_pruned_rows_total{kind="effects"} 5.0' in text

    # The incidents themselves stay: listings, numbering and reopening still work.
    assert [i["id"] for i in await harness.incidents()] == ["INC-002", "INC-001"]


async def test_a_prune_with_the_store_gone_is_skipped_not_fatal(harness: Harness) -> None:
    """The store closed under it: the run says None and logs; the next run tries again."""
    assert harness.app is not None
    retention = harness.app[RETENTION]
    await harness.app[SERVICES].store.close()
    assert await retention.run_once() is None


async def test_a_retention_longer_than_anything_ever_existed_prunes_nothing(
    harness: Harness,
) -> None:
    """``retention: 10000y`` is a valid way to say "keep everything": the run prunes nothing
    (its cut-off would be before year 1, which no date can hold) rather than fail."""
    assert harness.app is not None
    store = harness.app[SERVICES].store
    keep_all = Retention(store, harness.clock, Metrics(), timedelta(days=3_650_000))
    assert await keep_all.run_once() == PruneResult(events=0, effects=0)
