"""An alert's priority (P0-P3) and whether it is a maintenance request. Pure; never raises.

The priority, first match wins (CONTRACT.md, "Priorities (P0-P3) and classification"):

1. the alert's ``priority`` label, ``P0``..``P3`` — compared case-insensitively after trimming
   (``p1`` counts); any other value is ignored and classification goes on;
2. the first operator rule in ``rules.yaml`` (file order) whose matchers all match: a
   ``priority`` rule decides; a ``kind: maintenance`` rule gives no priority, so the steps
   below decide it (and later operator rules are not consulted: the first match is the rule);
3. the critical list: the ``alertname`` label (exact), or the ``metric`` label naming a condition
   whose ``value`` annotation, read in the condition's unit, is strictly above its bound;
4. the threshold tables: the ``metric`` label names a row and the ``value`` annotation, read in
   the row's unit, is above ``critical_above`` (critical band) or inside ``warning`` (warning
   band); a normal, missing, NaN or unreadable value falls through;
5. the ``severity`` label (case-insensitive) through ``severity_fallback``, else its ``default``.

Maintenance requests sit beside that order, not inside it, because a maintenance request is not
an incident whatever priority it would have: an alert is one when its ``kind`` label is
``maintenance`` (case-insensitive) — this beats everything, even a ``priority`` label — or when the
first matching operator rule is a ``kind: maintenance`` rule. Its priority is still computed by
the steps above. Its type is the alert's ``maintenance_type`` label when that is perfective,
adaptive or preventive, else the matching maintenance rule's ``maintenance_type``, else
perfective.

Every number, name and priority comes from the rules directory (:mod:`bridge.rules`); the
``rule`` text of the result names what decided, e.g. ``label priority=P2``,
``rule "db-disks" (rules.yaml)``, ``critical alertname ServiceUnavailable``,
``critical error_rate 6.2 > 5 percent``, ``threshold error_rate critical (2.3 > 1 percent)``,
``threshold response_time_p95 warning (320 in 200\u2013500 ms)`` (an en dash),
``severity critical``, ``default``.
It only ever contains text from the rules files and numbers, never raw label values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast, get_args

from bridge.model import Classification, Priority
from bridge.rules import RULES_FILE, MaintenanceType, OperatorRule, Rules, Runbook
from bridge.values import parse_value

__all__ = ["classify", "runbook_for"]

_MAINTENANCE = "maintenance"
_MAINTENANCE_TYPES: frozenset[str] = frozenset(get_args(MaintenanceType))
_DEFAULT_MAINTENANCE_TYPE: MaintenanceType = "perfective"
_PRIORITIES: Mapping[str, Priority] = {p.value: p for p in Priority}


@dataclass(frozen=True, slots=True)
class _Match:
    """One step that matched: the priority it gives (None: a maintenance rule) and why."""

    priority: Priority | None
    rule: str
    runbook: str | None = None


def classify(
    rules: Rules, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> Classification:
    """The alert's priority, the rule that decided it and whether it is a maintenance request."""
    operator_rule = _first_operator_rule(rules, labels)
    priority, rule = _severity(rules, labels)
    for match in _matches(rules, labels, annotations, operator_rule):
        if match.priority is not None:
            priority, rule = match.priority, match.rule
            break
    if _get(labels, "kind").strip().lower() == _MAINTENANCE:
        why = f"label kind={_MAINTENANCE}"
    elif operator_rule is not None and operator_rule.kind == _MAINTENANCE:
        why = _rule_text(operator_rule)
    else:
        return Classification(priority=priority, rule=rule)
    return Classification(
        priority=priority,
        rule=f"{why}; priority by {rule}",
        maintenance=True,
        maintenance_type=_maintenance_type(labels, operator_rule),
    )


def runbook_for(
    rules: Rules, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> Runbook | None:
    """The runbook of the first matching entry, in precedence order, that names one.

    That is the deciding entry's runbook when it names one; otherwise a lower entry the alert
    also matches (an alert with ``priority: P0`` and ``alertname: ServiceUnavailable`` still gets
    the Service Unavailable runbook).
    """
    operator_rule = _first_operator_rule(rules, labels)
    for match in _matches(rules, labels, annotations, operator_rule):
        runbook = rules.runbook(match.runbook)
        if runbook is not None:
            return runbook
    return None


def _matches(
    rules: Rules,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    operator_rule: OperatorRule | None,
) -> Iterator[_Match]:
    """Steps 1 to 4 the alert matches, in precedence order (step 5 is :func:`_severity`)."""
    # 1. the alert's own priority label
    label = _PRIORITIES.get(_get(labels, "priority").strip().upper())
    if label is not None:
        yield _Match(label, f"label priority={label.value}")

    # 2. the first matching operator rule
    if operator_rule is not None:
        yield _Match(operator_rule.priority, _rule_text(operator_rule), operator_rule.runbook)

    # 3. the critical list
    critical = rules.critical
    entry = rules.critical_by_alertname.get(_get(labels, "alertname"))
    if entry is not None:
        yield _Match(critical.priority, f"critical alertname {entry.alertname}", entry.runbook)
    metric = _get(labels, "metric")
    raw_value = _get(annotations, "value")
    for cond in critical.conditions:
        if cond.metric != metric:
            continue
        value = parse_value(raw_value, cond.unit)
        if value is not None and value > cond.above:
            text = f"critical {metric} {_num(value)} > {_num(cond.above)} {cond.unit}"
            yield _Match(critical.priority, text, cond.runbook)

    # 4. the threshold tables
    row = rules.threshold(metric)
    value = parse_value(raw_value, row.unit) if row is not None else None
    if row is not None and value is not None:
        band = row.band(value)
        if band == "critical":
            text = f"({_num(value)} > {_num(row.critical_above)} {row.unit})"
            yield _Match(rules.bands.critical, f"threshold {metric} critical {text}", row.runbook)
        elif band == "warning":
            low, high = row.warning
            text = f"({_num(value)} in {_num(low)}\u2013{_num(high)} {row.unit})"  # en dash
            yield _Match(rules.bands.warning, f"threshold {metric} warning {text}", row.runbook)


def _severity(rules: Rules, labels: Mapping[str, str]) -> tuple[Priority, str]:
    """Step 5: the severity label through the fallback table, else its default."""
    severity = _get(labels, "severity").strip().lower()
    priority = rules.severity_priority(severity)
    if priority is not None:
        return priority, f"severity {severity}"
    return rules.severity_default, "default"


def _first_operator_rule(rules: Rules, labels: Mapping[str, str]) -> OperatorRule | None:
    return next((rule for rule in rules.operator_rules if rule.matches(labels)), None)


def _rule_text(rule: OperatorRule) -> str:
    return f'rule "{rule.name}" ({RULES_FILE})'


def _maintenance_type(labels: Mapping[str, str], rule: OperatorRule | None) -> MaintenanceType:
    wanted = _get(labels, "maintenance_type").strip().lower()
    if wanted in _MAINTENANCE_TYPES:
        return cast(MaintenanceType, wanted)
    if rule is not None and rule.maintenance_type is not None:
        return rule.maintenance_type
    return _DEFAULT_MAINTENANCE_TYPE


def _get(mapping: Mapping[str, str], key: str) -> str:
    """``mapping[key]``, or ``""`` when missing or (defensively) not a string."""
    value = mapping.get(key, "")
    return value if isinstance(value, str) else ""


def _num(value: float) -> str:
    """A number as people write it: ``320``, ``2.3``, ``1.0001``, ``15000``."""
    return format(value, ".10g")
