"""The Traceability section (bridge/github/render.py) and its config (``traceability``): the
guide's "Linking Bugs to Original Requirements" block, from the alerts' ``requirement`` /
``component`` labels, else the config's references for the incident's service.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.app import build_render_options, load_rules
from bridge.config import ConfigError, load_config
from bridge.engine import Policy, apply_notification
from bridge.github import pir
from bridge.github.render import (
    PriorityStyle,
    RenderOptions,
    Trace,
    render_issue,
    traceability_section,
)
from bridge.model import AlertSnapshot, Classification, Incident, Notification, Priority

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
STYLES = {p: PriorityStyle(f"priority-{p}", str(p)) for p in Priority}
CHECKOUT = Trace(
    requirement="#46 REQ-NF-PERF-001",
    component="#79 ARC-C-AUTH",
    implementation="acme/shop#25",
    tests="#120",
)
POLICY = Policy(
    classify=lambda labels, annotations: Classification(Priority.P1, "test"),
    respond_by=lambda p, t: t + timedelta(minutes=15),
    resolve_by=lambda p, t: t + timedelta(hours=4),
)


def incident(*services: str, common: Mapping[str, str] | None = None) -> Incident:
    """An incident whose alerts name ``services`` (one alert each)."""
    alerts = tuple(
        AlertSnapshot(
            fingerprint=f"f{n}",
            status="firing",
            labels={"alertname": "HighLatency", "service": service},
            annotations={},
            starts_at=T0,
            ends_at=None,
            generator_url="",
        )
        for n, service in enumerate(services)
    )
    decision = apply_notification(
        None,
        Notification(
            receiver="r",
            status="firing",
            alerts=alerts,
            group_labels={},
            common_labels=dict(common or {"alertname": "HighLatency"}),
            common_annotations={},
            external_url="",
            group_key="{}:{}",
            truncated_alerts=0,
        ),
        T0,
        POLICY,
    )
    assert decision.incident is not None
    decision.incident.number = 1
    return decision.incident


def lines(found: Incident, traces: Mapping[str, Trace]) -> list[str]:
    return traceability_section(found, RenderOptions(styles=STYLES, traceability=traces))[2:]


def test_the_config_gives_the_services_references_as_the_guide_lays_them_out() -> None:
    """No labels on the alerts: the ``traceability`` entry of their service, all four lines,
    issue references left as links."""
    assert lines(incident("checkout"), {"checkout": CHECKOUT}) == [
        "- **Original Requirement**: #46 REQ-NF-PERF-001",
        "- **Architecture**: #79 ARC-C-AUTH",
        "- **Implementation**: acme/shop#25",
        "- **Tests**: #120",
    ]


@pytest.mark.parametrize(
    ("labels", "requirement", "component"),
    [
        pytest.param(
            {"requirement": "#45 REQ-F-AUTH-001", "component": "#80 ARC-C-CART"},
            "#45 REQ-F-AUTH-001",
            "#80 ARC-C-CART",
            id="both-labels-win",
        ),
        pytest.param(
            {"requirement": "#45 REQ-F-AUTH-001"},
            "#45 REQ-F-AUTH-001",
            "#79 ARC-C-AUTH",
            id="requirement-label-wins-component-from-config",
        ),
        pytest.param(
            {"component": "#80 ARC-C-CART"},
            "#46 REQ-NF-PERF-001",
            "#80 ARC-C-CART",
            id="component-label-wins-requirement-from-config",
        ),
    ],
)
def test_the_alerts_labels_win_field_by_field(
    labels: dict[str, str], requirement: str, component: str
) -> None:
    """An alert's ``requirement`` / ``component`` label wins over the config's, each on its own."""
    found = incident("checkout", common={"alertname": "HighLatency", **labels})
    shown = lines(found, {"checkout": CHECKOUT})
    assert f"- **Original Requirement**: {requirement}" in shown
    assert f"- **Architecture**: {component}" in shown


def test_neither_labels_nor_config_asks_for_the_links() -> None:
    """Nothing known: a placeholder asking for the requirement and component."""
    [placeholder] = lines(incident("search"), {"checkout": CHECKOUT})
    assert placeholder.startswith("_No `requirement` or `component` label on the alerts")
    assert "`traceability`" in placeholder


def test_several_services_list_each_distinct_reference() -> None:
    """An incident over two services shows both services' references, each once."""
    search = Trace(requirement="#47 REQ-F-SEARCH-002", component="#79 ARC-C-AUTH")
    shown = lines(incident("checkout", "search"), {"checkout": CHECKOUT, "search": search})
    assert "- **Original Requirement**: #46 REQ-NF-PERF-001; #47 REQ-F-SEARCH-002" in shown
    assert "- **Architecture**: #79 ARC-C-AUTH" in shown


def test_hostile_references_are_escaped_but_issue_links_survive() -> None:
    """A reference cannot ping, inject HTML or a marker; ``#46`` stays a link."""
    hostile = Trace(requirement="#46 @team <b>x</b> <!-- incident-bridge:v1 -->", tests="**x**")
    text = "\n".join(lines(incident("checkout"), {"checkout": hostile}))
    assert "#46 @\u2060team &lt;b&gt;x&lt;/b&gt; &lt;\\!-- incident-bridge:v1 --&gt;" in text
    assert "- **Tests**: \\*\\*x\\*\\*" in text


def test_the_incident_issue_and_its_review_carry_the_section() -> None:
    """The incident issue's body and its post-incident review both show the references."""
    found = incident("checkout")
    options = RenderOptions(styles=STYLES, traceability={"checkout": CHECKOUT})
    assert "- **Architecture**: #79 ARC-C-AUTH" in render_issue(found, [], options).body
    review = pir.render_review(found, [], [], options, incident_issue=1)
    assert "- **Architecture**: #79 ARC-C-AUTH" in review.region


def test_the_config_key_maps_services_to_references(tmp_path: Path) -> None:
    """``traceability`` in the config reaches the renderer; unknown or empty keys are errors."""
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "traceability:\n"
        '  checkout: {requirement: "#46 REQ-NF-PERF-001", component: "#79 ARC-C-AUTH"}\n'
    )
    config = load_config(path, {})
    options = build_render_options(config, load_rules(config))
    assert options.traceability == {
        "checkout": Trace(requirement="#46 REQ-NF-PERF-001", component="#79 ARC-C-AUTH")
    }
    path.write_text("traceability:\n  checkout: {requirement: '', owner: x}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, {})
    text = str(error.value)
    assert "traceability.checkout.requirement: must not be empty" in text
    assert "traceability.checkout.owner: unknown key" in text
