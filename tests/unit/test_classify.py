"""Classification: CONTRACT.md's precedence, every band edge, the fixtures, and no exceptions."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bridge.classify
from bridge.classify import classify, runbook_for
from bridge.model import Classification, Priority
from bridge.rules import Rules, bundled_directory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"

P0, P1, P2, P3 = Priority.P0, Priority.P1, Priority.P2, Priority.P3


@pytest.fixture(scope="module")
def rules() -> Rules:
    """The bundled rules."""
    return Rules.bundled()


_OPERATOR_RULES = """\
rules:
  - name: checkout-outage-is-p2
    match: ['alertname="ServiceUnavailable"', 'service="checkout-canary"']
    priority: P2
  - name: staging-is-p3
    match: ['env="staging"']
    priority: P3
    runbook: high-latency
  - name: capacity
    match: ['alertname=~"Disk.*Capacity.*"']
    kind: maintenance
    maintenance_type: preventive
  - name: never-reached-for-capacity
    match: ['alertname=~"Disk.*"']
    priority: P0
  - name: upgrades
    match: ['alertname="NodeNeedsUpgrade"']
    kind: maintenance
"""


@pytest.fixture(scope="module")
def operator_rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    """The bundled rules plus a few operator rules."""
    directory = tmp_path_factory.mktemp("operator") / "rules"
    shutil.copytree(bundled_directory(), directory)
    (directory / "rules.yaml").write_text(_OPERATOR_RULES, encoding="utf-8")
    return Rules.load(directory)


def _alert(metric: str, value: str | None, **labels: str) -> tuple[dict[str, str], dict[str, str]]:
    annotations = {} if value is None else {"value": value}
    return {"alertname": "Test", "metric": metric, **labels}, annotations


# ---------------------------------------------------------------------------------------------
# The fixtures


def _fixture_alerts(name: str) -> list[dict[str, Any]]:
    payload = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    alerts: list[dict[str, Any]] = payload["alerts"]
    return alerts


_FIXTURE_EXPECTATIONS: dict[str, Classification] = {
    "01_firing_single.json": Classification(P1, "severity critical"),
    "02_repeat_single.json": Classification(P1, "severity critical"),
    "03_resolved_single.json": Classification(P1, "severity critical"),
    "04_group_of_3_firing.json": Classification(P2, "severity warning"),
    "05_group_mixed_one_resolved.json": Classification(P2, "severity warning"),
    "06_truncated_max_alerts_2.json": Classification(P2, "severity warning"),
    "07_from_real_prometheus.json": Classification(P1, "severity critical"),
    "10_threshold_warning_latency.json": (
        Classification(P2, "threshold response_time_p95 warning (320 in 200\u2013500 ms)")
    ),
    "11_watchdog_heartbeat.json": Classification(P3, "default"),
    "12_priority_label_and_exponent_value.json": Classification(P2, "label priority=P2"),
    "13_critical_list_service_unavailable.json": (
        Classification(P0, "critical alertname ServiceUnavailable")
    ),
    "14_maintenance_kind_disk_capacity.json": (
        Classification(
            P1,
            "label kind=maintenance; priority by threshold disk_usage critical (87.2 > 85 percent)",
            maintenance=True,
            maintenance_type="perfective",
        )
    ),
    "15_threshold_critical_error_rate.json": (
        Classification(P1, "threshold error_rate critical (2.3 > 1 percent)")
    ),
    "16_threshold_critical_error_rate_resolved.json": (
        Classification(P1, "threshold error_rate critical (2.3 > 1 percent)")
    ),
}


@pytest.mark.parametrize(("fixture", "expected"), sorted(_FIXTURE_EXPECTATIONS.items()))
def test_fixtures(rules: Rules, fixture: str, expected: Classification) -> None:
    """Every alert of every captured Alertmanager payload classifies as the guide says."""
    alerts = _fixture_alerts(fixture)
    assert alerts
    for alert in alerts:
        assert classify(rules, alert["labels"], alert["annotations"]) == expected


def test_every_fixture_is_covered() -> None:
    """A new fixture file needs an expectation in _FIXTURE_EXPECTATIONS."""
    assert {path.name for path in FIXTURES.glob("*.json")} == set(_FIXTURE_EXPECTATIONS)


@pytest.mark.parametrize(
    ("fixture", "runbook"),
    [
        ("10_threshold_warning_latency.json", "high-latency"),
        ("13_critical_list_service_unavailable.json", "service-unavailable"),
        ("15_threshold_critical_error_rate.json", "high-error-rate"),
        ("01_firing_single.json", None),
        ("11_watchdog_heartbeat.json", None),
        ("12_priority_label_and_exponent_value.json", None),
    ],
)
def test_fixture_runbooks(rules: Rules, fixture: str, runbook: str | None) -> None:
    """The runbook comes from the matching critical entry or threshold row."""
    [alert, *_] = _fixture_alerts(fixture)
    found = runbook_for(rules, alert["labels"], alert["annotations"])
    assert (found.name if found else None) == runbook


# ---------------------------------------------------------------------------------------------
# Threshold bands: every edge of every row (no severity label, so falling through is P3)


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("response_time_p95", "199.9", P3),
        ("response_time_p95", "200", P2),
        ("response_time_p95", "500", P2),
        ("response_time_p95", "500.01", P1),
        ("response_time_p95", "320ms", P2),
        ("response_time_p95", "0.5s", P2),
        ("response_time_p95", "501ms", P1),
        ("response_time_p95", "1.5s", P1),
        ("response_time_p95", "1m 30s", P1),
        ("response_time_p95", "750m", P3),  # humanize's milli: 0.75 ms
        ("response_time_p95", "0", P3),
        ("error_rate", "0.09", P3),
        ("error_rate", "0.1", P2),
        ("error_rate", "1", P2),
        ("error_rate", "1.0", P2),
        ("error_rate", "1.0001", P1),
        ("error_rate", "2.3%", P1),
        ("error_rate", "5", P1),
        ("error_rate", "5.0001", P0),  # the critical list: error rate > 5 %
        ("error_rate", "6.2%", P0),
        ("error_rate", "500m", P2),  # 0.5 %
        ("requests_per_second", "14999", P3),
        ("requests_per_second", "15000", P2),
        ("requests_per_second", "15k", P2),
        ("requests_per_second", "20000", P2),
        ("requests_per_second", "20k", P2),
        ("requests_per_second", "20000.5", P1),
        ("requests_per_second", "20.1k", P1),
        ("active_users", "4999", P3),
        ("active_users", "5000", P2),
        ("active_users", "8000", P2),
        ("active_users", "8001", P1),
        ("active_users", "8.5k", P1),
        ("cpu_usage", "69.9", P3),
        ("cpu_usage", "70", P2),
        ("cpu_usage", "7.8e+01", P2),
        ("cpu_usage", "85", P2),
        ("cpu_usage", "85.01", P1),
        ("memory_usage", "79.99", P3),
        ("memory_usage", "80", P2),
        ("memory_usage", "90", P2),
        ("memory_usage", "90.5", P1),
        ("disk_usage", "74.9", P3),
        ("disk_usage", "75", P2),
        ("disk_usage", "85", P2),
        ("disk_usage", "85.1", P1),
        ("network_io", "69", P3),
        ("network_io", "70", P2),
        ("network_io", "85%", P2),
        ("network_io", "86", P1),
    ],
)
def test_band_edges(rules: Rules, metric: str, value: str, expected: Priority) -> None:
    """Warning from its low bound to its high bound inclusive; critical strictly above."""
    labels, annotations = _alert(metric, value)
    assert classify(rules, labels, annotations).priority is expected


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        ("cpu_usage", None),
        ("cpu_usage", ""),
        ("cpu_usage", "NaN"),
        ("cpu_usage", "+Inf"),
        ("cpu_usage", "<no value>"),
        ("cpu_usage", "90ms"),  # a duration on a percent row
        ("response_time_p95", "12%"),  # a percentage on a ms row
        ("error_rate", "-Inf"),
        ("unknown_metric", "99999"),
        ("", "99999"),
    ],
)
def test_unreadable_or_unknown_values_fall_through(
    rules: Rules, metric: str, value: str | None
) -> None:
    """A missing, NaN, infinite or mismatched value, or an unknown metric, falls to severity."""
    labels, annotations = _alert(metric, value, severity="warning")
    assert classify(rules, labels, annotations) == Classification(P2, "severity warning")


@pytest.mark.parametrize(
    ("metric", "value", "rule"),
    [
        ("response_time_p95", "1.5s", "threshold response_time_p95 critical (1500 > 500 ms)"),
        ("cpu_usage", "7.8e+01", "threshold cpu_usage warning (78 in 70\u201385 percent)"),
        ("error_rate", "0.1", "threshold error_rate warning (0.1 in 0.1\u20131 percent)"),
        ("error_rate", "6.2", "critical error_rate 6.2 > 5 percent"),
        ("requests_per_second", "15k", "threshold requests_per_second warning "
         "(15000 in 15000\u201320000 per_second)"),
    ],
)  # fmt: skip
def test_rule_text(rules: Rules, metric: str, value: str, rule: str) -> None:
    """The rule text names the step and shows the value read, the bound and the unit."""
    labels, annotations = _alert(metric, value)
    assert classify(rules, labels, annotations).rule == rule


# ---------------------------------------------------------------------------------------------
# Precedence: first match wins


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        # 1. a priority label beats everything below it
        (
            {"alertname": "ServiceUnavailable", "priority": "P2"},
            {},
            Classification(P2, "label priority=P2"),
        ),
        (
            {"metric": "error_rate", "priority": "P3", "severity": "critical"},
            {"value": "9"},
            Classification(P3, "label priority=P3"),
        ),
        ({"priority": "p1"}, {}, Classification(P1, "label priority=P1")),
        ({"priority": " P0 "}, {}, Classification(P0, "label priority=P0")),
        # an invalid priority label is ignored
        ({"priority": "P5", "severity": "warning"}, {}, Classification(P2, "severity warning")),
        ({"priority": "high"}, {}, Classification(P3, "default")),
        ({"priority": "P"}, {}, Classification(P3, "default")),
        # 3. the critical list beats thresholds and severity
        (
            {"alertname": "DatabaseDown", "severity": "warning"},
            {},
            Classification(P0, "critical alertname DatabaseDown"),
        ),
        (
            {"alertname": "SecurityIncident", "metric": "cpu_usage"},
            {"value": "75"},
            Classification(P0, "critical alertname SecurityIncident"),
        ),
        (
            {"alertname": "DataCorruption"},
            {},
            Classification(P0, "critical alertname DataCorruption"),
        ),
        # alertnames are exact and case-sensitive, as in Prometheus
        ({"alertname": "serviceunavailable"}, {}, Classification(P3, "default")),
        ({"alertname": "ServiceUnavailableX"}, {}, Classification(P3, "default")),
        # 4. thresholds beat severity
        (
            {"metric": "cpu_usage", "severity": "warning"},
            {"value": "90"},
            Classification(P1, "threshold cpu_usage critical (90 > 85 percent)"),
        ),
        (
            {"metric": "cpu_usage", "severity": "critical"},
            {"value": "75"},
            Classification(P2, "threshold cpu_usage warning (75 in 70\u201385 percent)"),
        ),
        # 5. severity, case-insensitively; anything else is the default
        ({"severity": "critical"}, {}, Classification(P1, "severity critical")),
        ({"severity": "Critical"}, {}, Classification(P1, "severity critical")),
        ({"severity": "WARNING"}, {}, Classification(P2, "severity warning")),
        ({"severity": "info"}, {}, Classification(P3, "default")),
        ({"severity": "none"}, {}, Classification(P3, "default")),
        ({"severity": "default"}, {}, Classification(P3, "default")),
        ({}, {}, Classification(P3, "default")),
    ],
)  # fmt: skip
def test_precedence(
    rules: Rules, labels: dict[str, str], annotations: dict[str, str], expected: Classification
) -> None:
    """CONTRACT.md's order: priority label, operator rules, critical list, thresholds, severity."""
    assert classify(rules, labels, annotations) == expected


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        # 2. operator rules beat the critical list ...
        (
            {"alertname": "ServiceUnavailable", "service": "checkout-canary"},
            {},
            Classification(P2, 'rule "checkout-outage-is-p2" (rules.yaml)'),
        ),
        (
            {"alertname": "ServiceUnavailable", "service": "checkout"},
            {},
            Classification(P0, "critical alertname ServiceUnavailable"),
        ),
        # ... and thresholds and severity ...
        (
            {"env": "staging", "metric": "error_rate", "severity": "critical"},
            {"value": "50"},
            Classification(P3, 'rule "staging-is-p3" (rules.yaml)'),
        ),
        # ... but not the alert's own priority label
        (
            {"env": "staging", "priority": "P1"},
            {},
            Classification(P1, "label priority=P1"),
        ),
        # a later rule that also matches does not count: the first match is the rule
        (
            {"alertname": "DiskFull", "env": "staging"},
            {},
            Classification(P3, 'rule "staging-is-p3" (rules.yaml)'),
        ),
        (
            {"alertname": "DiskFull"},
            {},
            Classification(P0, 'rule "never-reached-for-capacity" (rules.yaml)'),
        ),
    ],
)
def test_operator_rule_precedence(
    operator_rules: Rules,
    labels: dict[str, str],
    annotations: dict[str, str],
    expected: Classification,
) -> None:
    """Operator rules sit between the priority label and the critical list, in file order."""
    assert classify(operator_rules, labels, annotations) == expected


# ---------------------------------------------------------------------------------------------
# Maintenance requests


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        # the kind label beats even a priority label; the priority is still computed
        (
            {"kind": "maintenance", "priority": "P0"},
            {},
            Classification(P0, "label kind=maintenance; priority by label priority=P0", True),
        ),
        (
            {"kind": "Maintenance", "alertname": "ServiceUnavailable"},
            {},
            Classification(
                P0,
                "label kind=maintenance; priority by critical alertname ServiceUnavailable",
                True,
            ),
        ),
        (
            {"kind": "maintenance", "maintenance_type": "adaptive"},
            {},
            Classification(P3, "label kind=maintenance; priority by default", True, "adaptive"),
        ),
        (
            {"kind": "maintenance", "maintenance_type": " Preventive ", "severity": "warning"},
            {},
            Classification(
                P2, "label kind=maintenance; priority by severity warning", True, "preventive"
            ),
        ),
        # corrective maintenance is an incident; an unknown type is perfective
        (
            {"kind": "maintenance", "maintenance_type": "corrective"},
            {},
            Classification(P3, "label kind=maintenance; priority by default", True, "perfective"),
        ),
        # other kinds, or a type without the kind, are incidents
        ({"kind": "incident"}, {}, Classification(P3, "default")),
        ({"maintenance_type": "adaptive"}, {}, Classification(P3, "default")),
    ],
)
def test_maintenance_label(
    rules: Rules, labels: dict[str, str], annotations: dict[str, str], expected: Classification
) -> None:
    """``kind: maintenance`` makes a maintenance request, typed by ``maintenance_type``."""
    assert classify(rules, labels, annotations) == expected


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        # a maintenance rule gives no priority: the steps after the operator rules decide it,
        # never a later operator rule ("never-reached-for-capacity" also matches)
        (
            {"alertname": "DiskCapacityPlanning", "metric": "disk_usage"},
            {"value": "87.2"},
            Classification(
                P1,
                'rule "capacity" (rules.yaml); priority by threshold disk_usage critical '
                "(87.2 > 85 percent)",
                True,
                "preventive",
            ),
        ),
        # the alert's own maintenance_type beats the rule's; the priority label still counts
        (
            {"alertname": "DiskCapacityPlanning", "maintenance_type": "adaptive", "priority": "P2"},
            {},
            Classification(
                P2,
                'rule "capacity" (rules.yaml); priority by label priority=P2',
                True,
                "adaptive",
            ),
        ),
        # a rule without maintenance_type is perfective
        (
            {"alertname": "NodeNeedsUpgrade", "severity": "warning"},
            {},
            Classification(P2, 'rule "upgrades" (rules.yaml); priority by severity warning', True),
        ),
        # with both the label and a maintenance rule, the label is named and the rule's type used
        (
            {"alertname": "DiskCapacityPlanning", "kind": "maintenance"},
            {},
            Classification(P3, "label kind=maintenance; priority by default", True, "preventive"),
        ),
        # an earlier priority rule wins over a later maintenance rule: an incident
        (
            {"alertname": "DiskCapacityPlanning", "env": "staging"},
            {},
            Classification(P3, 'rule "staging-is-p3" (rules.yaml)'),
        ),
    ],
)
def test_maintenance_rule(
    operator_rules: Rules,
    labels: dict[str, str],
    annotations: dict[str, str],
    expected: Classification,
) -> None:
    """An operator rule with ``kind: maintenance`` makes a maintenance request."""
    assert classify(operator_rules, labels, annotations) == expected


# ---------------------------------------------------------------------------------------------
# Runbooks


@pytest.mark.parametrize(
    ("labels", "annotations", "runbook"),
    [
        # a priority label decides, but the critical entry still has the runbook
        ({"alertname": "ServiceUnavailable", "priority": "P1"}, {}, "service-unavailable"),
        ({"metric": "error_rate"}, {"value": "7"}, "high-error-rate"),  # critical condition
        ({"metric": "response_time_p95"}, {"value": "900"}, "high-latency"),
        ({"metric": "response_time_p95"}, {"value": "100"}, None),  # normal band
        ({"metric": "cpu_usage"}, {"value": "99"}, None),  # the row names no runbook
        ({"env": "staging"}, {}, "high-latency"),  # the operator rule's runbook
        ({"env": "staging", "alertname": "ServiceUnavailable"}, {}, "high-latency"),
        ({}, {}, None),
    ],
)
def test_runbook_for(
    operator_rules: Rules, labels: dict[str, str], annotations: dict[str, str], runbook: str | None
) -> None:
    """The first matching entry, in precedence order, that names a runbook."""
    found = runbook_for(operator_rules, labels, annotations)
    assert (found.name if found else None) == runbook


# ---------------------------------------------------------------------------------------------
# Robustness and the data-not-code principle

_KEYS = st.sampled_from(
    ["alertname", "priority", "severity", "metric", "kind", "maintenance_type", "env", "service"]
)
_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["P0", "p3", "ServiceUnavailable", "error_rate", "cpu_usage", "response_time_p95",
         "maintenance", "staging", "critical", "DiskCapacity", "NaN", "1e999", "5m", "1m 30s"]
    ),
)  # fmt: skip
_LABELS = st.dictionaries(st.one_of(_KEYS, st.text(max_size=8)), _VALUES, max_size=8)
_ANNOTATIONS = st.dictionaries(st.one_of(st.just("value"), st.text(max_size=8)), _VALUES)


@given(_LABELS, _ANNOTATIONS)
def test_classify_never_raises(
    operator_rules: Rules, labels: dict[str, str], annotations: dict[str, str]
) -> None:
    """Any labels and annotations give a classification (and a runbook or None), never an error."""
    result = classify(operator_rules, labels, annotations)
    assert isinstance(result.priority, Priority)
    assert result.rule
    assert result.maintenance_type in ("perfective", "adaptive", "preventive")
    runbook_for(operator_rules, labels, annotations)
    classify(Rules.bundled(), labels, annotations)


def _code_constants(module: Any) -> tuple[set[str], set[float]]:
    """String and number literals of a module's code, docstrings left out."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings: set[str] = set()
    numbers: set[float] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            if isinstance(node.value, str):
                strings.add(node.value)
            elif isinstance(node.value, int | float) and not isinstance(node.value, bool):
                numbers.add(node.value)
    return strings, numbers


def test_classify_code_holds_no_guide_values(rules: Rules) -> None:
    """No threshold number, alert name, metric name or priority literal lives in classify.py."""
    strings, numbers = _code_constants(bridge.classify)
    guide_names = {p.value for p in Priority}
    guide_names |= set(rules.critical_by_alertname) | set(rules.thresholds)
    guide_names |= {policy.label for policy in rules.policies.values()}
    assert not {s for s in strings if any(name in s for name in guide_names)}
    assert not numbers
