"""deploy/grafana/incident-bridge.json: a Grafana dashboard that imports, whose every query
names only series the bridge really exports, with labels they really have, and parses as PromQL.

The series come from a real scrape of ``/metrics`` of the app (``create_app``'s own registry)
after an incident opened and resolved, so the labelled counters have samples too. The PromQL is
checked by ``promtool check rules`` (offline): each query becomes a recording rule, with
Grafana's variables replaced by values of their kind.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import Harness, payload

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "incident-bridge.json"
# Grafana's variables, as Prometheus would see them once Grafana has interpolated them.
VARIABLES = {"$__rate_interval": "5m", "$__range_s": "2592000", "$__range": "30d", "$job": ".*"}
# Labels Prometheus adds at scrape time; ``le`` is the histogram buckets'.
TARGET_LABELS = {"job", "instance"}
METRIC = re.compile(r"\bincident_bridge_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(incident_bridge_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found: list[dict[str, Any]] = []
    for panel in data["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(data: dict[str, Any]) -> list[tuple[int, str, str]]:
    """(panel id, refId, PromQL with Grafana's variables interpolated) of every query."""
    found = []
    for panel in panels(data):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["id"], target["refId"], expr))
    return found


@pytest.fixture
async def exported(harness: Harness) -> dict[str, set[str]]:
    """Every sample name /metrics exports, with the label names its samples carry: after an
    incident opened and resolved, so the per-service counter has a sample."""
    await harness.post(payload("15_threshold_critical_error_rate.json"))
    await harness.post(payload("16_threshold_critical_error_rate_resolved.json"))
    await harness.drain()
    text = await (await harness.http.get("/metrics")).text()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition("{")
        labels = {m.group(1) for m in MATCHER.finditer(rest.rpartition("}")[0])} if rest else set()
        names.setdefault(name.split(" ")[0], set()).update(labels)
    assert "incident_bridge_incident_seconds_total" in names
    return names


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    """What Grafana's import needs: a uid and a title, a ``datasource`` template variable of
    Prometheus data sources, and panels each with an id, a type, a title, a place on the
    24-column grid that no other panel takes, and queries on that data source."""
    data = dashboard()
    assert data["uid"] == "incident-bridge"
    assert data["title"] == "incident-bridge"
    assert isinstance(data["schemaVersion"], int)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    every = panels(data)
    assert len({p["id"] for p in every}) == len(every)
    taken: set[tuple[int, int]] = set()
    for panel in every:
        assert panel["type"], panel
        assert panel["title"], panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["refId"]
            assert target["expr"]
    rows = [p["title"] for p in data["panels"] if p["type"] == "row"]
    assert [r.split(" (")[0] for r in rows] == [
        "Continuous improvement",
        "Ingest",
        "Outbox",
        "GitHub budget",
        "Notifications",
    ]


async def test_every_query_names_only_what_the_bridge_exports(
    exported: dict[str, set[str]],
) -> None:
    """Each metric a query names is a sample name of the scrape, each label it matches or
    groups by is one those samples carry (or Prometheus adds); the improvement metrics and the
    ingest, outbox, budget and notification ones are all on the dashboard."""
    used: set[str] = set()
    for panel_id, ref, expr in queries(dashboard()):
        names = set(METRIC.findall(expr))
        assert names, (panel_id, ref)
        missing = names - exported.keys()
        assert not missing, f"panel {panel_id} {ref}: not exported: {sorted(missing)}"
        used |= names
        for name, matchers in SELECTOR.findall(expr):
            for matcher in MATCHER.finditer(matchers):
                assert matcher.group(1) in exported[name] | TARGET_LABELS, (panel_id, matcher)
        known = set().union(*(exported[n] for n in names)) | TARGET_LABELS
        for grouping in GROUPING.findall(expr):
            labels = {label.strip() for label in grouping.split(",") if label.strip()}
            assert labels <= known, f"panel {panel_id} {ref}: no such labels {labels - known}"
    for name in (
        "incident_bridge_time_to_detect_seconds_sum",
        "incident_bridge_time_to_acknowledge_seconds_bucket",
        "incident_bridge_time_to_resolve_seconds_count",
        "incident_bridge_sla_breaches_total",
        "incident_bridge_incidents_open",
        "incident_bridge_incident_seconds_total",
        "incident_bridge_webhooks_total",
        "incident_bridge_outbox_pending",
        "incident_bridge_github_budget_used",
        "incident_bridge_effects_total",
    ):
        assert name in used, name


def test_the_legends_name_only_labels_the_query_keeps() -> None:
    """``{{label}}`` in a legend is a label the query's outer aggregation keeps."""
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            kept = set()
            for grouping in GROUPING.findall(target["expr"]):
                kept |= {label.strip() for label in grouping.split(",")}
            assert wanted <= kept, (panel["title"], wanted - kept)


async def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """``promtool check rules`` parses each query as a recording rule's expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (.ci/run does)")
    rules = [
        {"record": f"dashboard:panel_{panel_id}:{ref.lower()}", "expr": expr}
        for panel_id, ref, expr in queries(dashboard())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "rules",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(check.communicate(), 30)
    assert check.returncode == 0, out.decode()
    assert f"SUCCESS: {len(rules)} rules found" in out.decode()
