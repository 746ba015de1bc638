"""The rules directory: the bundled data matches the guide, and bad files are reported precisely."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

import bridge
from bridge.model import Priority
from bridge.rules import NEXT_BUSINESS_DAY, Rules, RulesError, bundled_directory

# ---------------------------------------------------------------------------------------------
# The bundled rules carry the operations guide (CONTRACT.md, "Priorities and classification")


@pytest.fixture(scope="module")
def rules() -> Rules:
    """The bundled rules."""
    return Rules.bundled()


def test_bundled_directory_is_the_checkouts_rules_dir() -> None:
    """In a checkout, without ``bridge/bundled_rules``, the bundled rules are ``rules/``."""
    package = Path(bridge.__file__).resolve().parent
    expected = package / "bundled_rules"
    if not expected.is_dir():
        expected = package.parent / "rules"
    assert bundled_directory() == expected
    assert (expected / "thresholds.yaml").is_file()


def test_bundled_is_cached(rules: Rules) -> None:
    """``Rules.bundled()`` loads once; the object is immutable."""
    assert Rules.bundled() is rules


@pytest.mark.parametrize(
    ("priority", "label", "name", "respond", "resolve", "page", "stakeholders"),
    [
        (Priority.P0, "priority-critical", "Critical", timedelta(minutes=5), timedelta(hours=1),
         "always", ("email", "sms")),
        (Priority.P1, "priority-high", "High", timedelta(minutes=15), timedelta(hours=4),
         "business_hours", ("email",)),
        (Priority.P2, "priority-medium", "Medium", timedelta(hours=2), timedelta(hours=24),
         "never", ("status_page",)),
        (Priority.P3, "priority-low", "Low", NEXT_BUSINESS_DAY, timedelta(days=14),
         "never", ("status_page",)),
    ],
)  # fmt: skip
def test_priority_policies(
    rules: Rules,
    priority: Priority,
    label: str,
    name: str,
    respond: timedelta | str,
    resolve: timedelta,
    page: str,
    stakeholders: tuple[str, ...],
) -> None:
    """Each priority has the guide's label, name, deadlines, paging and stakeholder channels."""
    policy = rules.policy(priority)
    assert policy.priority is priority
    assert (policy.label, policy.name) == (label, name)
    assert (policy.respond, policy.resolve) == (respond, resolve)
    assert policy.page == page
    assert policy.stakeholders == stakeholders
    assert policy.meaning
    assert policy.examples


def test_severity_fallback(rules: Rules) -> None:
    """Step 5: critical → P1, warning → P2, anything else → P3 (case-insensitive)."""
    assert rules.severity_priority("critical") is Priority.P1
    assert rules.severity_priority(" Warning ") is Priority.P2
    assert rules.severity_priority("info") is None
    assert rules.severity_default is Priority.P3


@pytest.mark.parametrize(
    ("metric", "unit", "low", "high", "critical_above"),
    [
        ("response_time_p95", "ms", 200, 500, 500),
        ("error_rate", "percent", 0.1, 1, 1),
        ("requests_per_second", "per_second", 15_000, 20_000, 20_000),
        ("active_users", "count", 5_000, 8_000, 8_000),
        ("cpu_usage", "percent", 70, 85, 85),
        ("memory_usage", "percent", 80, 90, 90),
        ("disk_usage", "percent", 75, 85, 85),
        ("network_io", "percent", 70, 85, 85),
    ],
)
def test_threshold_rows(
    rules: Rules, metric: str, unit: str, low: float, high: float, critical_above: float
) -> None:
    """Every row of the guide's tables, with the bands exactly as CONTRACT.md lists them."""
    row = rules.threshold(metric)
    assert row is not None
    assert row.unit == unit
    assert row.warning == (low, high)
    assert row.critical_above == critical_above
    assert row.title
    assert row.normal
    assert row.table in ("application", "infrastructure")


def test_threshold_rows_are_exactly_the_guides(rules: Rules) -> None:
    """No row more, none less; the bands give P1 (critical) and P2 (warning)."""
    assert len(rules.thresholds) == 8
    assert (rules.bands.critical, rules.bands.warning) == (Priority.P1, Priority.P2)


def test_critical_list(rules: Rules) -> None:
    """The page-on-call list: four alertnames and error_rate above 5 percent, all P0."""
    assert rules.critical.priority is Priority.P0
    assert set(rules.critical_by_alertname) == {
        "ServiceUnavailable",
        "DatabaseDown",
        "SecurityIncident",
        "DataCorruption",
    }
    [condition] = rules.critical.conditions
    assert (condition.metric, condition.above, condition.unit) == ("error_rate", 5, "percent")


def test_operator_rules_ship_empty(rules: Rules) -> None:
    """The bundled ``rules.yaml`` has only commented examples."""
    assert rules.operator_rules == ()


@pytest.mark.parametrize(
    ("name", "title", "command"),
    [
        ("high-error-rate", "Runbook: High Error Rate", "kubectl rollout undo deployment/myapp"),
        ("high-latency", "Runbook: High Latency", "kubectl scale deployment myapp --replicas=10"),
        ("service-unavailable", "Runbook: Service Unavailable", "kubectl top nodes"),
    ],
)
def test_runbooks(rules: Rules, name: str, title: str, command: str) -> None:
    """The guide's three runbooks load by name, with their heading as title."""
    runbook = rules.runbook(name)
    assert runbook is not None
    assert (runbook.name, runbook.title) == (name, title)
    assert command in runbook.markdown


def test_runbook_references(rules: Rules) -> None:
    """Rows and critical entries name the right runbooks; unknown names give None."""
    assert rules.critical_by_alertname["ServiceUnavailable"].runbook == "service-unavailable"
    assert rules.critical.conditions[0].runbook == "high-error-rate"
    row = rules.threshold("response_time_p95")
    assert row is not None
    assert row.runbook == "high-latency"
    assert rules.runbook("nope") is None
    assert rules.runbook(None) is None


# ---------------------------------------------------------------------------------------------
# Bad rules files: every problem reported as file:line: key.path: message


def _copy_rules(tmp_path: Path, **files: str) -> Path:
    """A copy of the bundled rules with some files replaced (``name_yaml=text``)."""
    directory = tmp_path / "rules"
    shutil.copytree(bundled_directory(), directory)
    for name, text in files.items():
        (directory / name.replace("_yaml", ".yaml")).write_text(text, encoding="utf-8")
    return directory


def _problems(directory: Path) -> list[str]:
    with pytest.raises(RulesError) as info:
        Rules.load(directory)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


_THRESHOLDS = """\
bands:
  critical: P1
  warning: P2
rows:
  - metric: cpu_usage
    title: CPU Usage
    unit: percent
    warning: [70, 85]
    critical_above: 85
  - metric: disk_usage
    title: Disk Usage
    unit: percent
    warning: [75, 85]
    critical_above: 85
  - metric: memory_usage
    title: Memory Usage
    unit: percent
    warning: [80, 90]
    critical_above: 90
"""


def test_custom_directory_loads(tmp_path: Path) -> None:
    """A valid replacement file loads; its rows replace the bundled ones."""
    directory = _copy_rules(tmp_path, thresholds_yaml=_THRESHOLDS)
    loaded = Rules.load(directory)
    assert list(loaded.thresholds) == ["cpu_usage", "disk_usage", "memory_usage"]
    assert loaded.directory == directory


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    critical_above: 85\n  - metric: memory_usage",
            "    critical_above: 85\n    colour: red\n  - metric: memory_usage",
            "thresholds.yaml:15: rows[1].colour: unknown key",
        ),
        (
            "warning: [80, 90]",
            "warning: [90, 80]",
            "thresholds.yaml:18: rows[2].warning: low must not exceed high",
        ),
        (
            "  critical: P1",
            "  critical: P5",
            "thresholds.yaml:2: bands.critical: Input should be 'P0', 'P1', 'P2' or 'P3'",
        ),
        (
            "    critical_above: 90",
            "    critical_above: 85",
            "thresholds.yaml:19: rows[2].critical_above: "
            "must not be below the warning band's high end (90)",
        ),
        (
            "warning: [75, 85]",
            'warning: ["75", 85]',
            "thresholds.yaml:13: rows[1].warning[0]: Input should be a valid number",
        ),
        (
            "    unit: percent\n    warning: [75, 85]",
            "    unit: percents\n    warning: [75, 85]",
            "thresholds.yaml:12: rows[1].unit: "
            "Input should be 'ms', 'percent', 'per_second' or 'count'",
        ),
        (
            "  - metric: memory_usage\n    title: Memory Usage\n",
            "  - metric: memory_usage\n",
            "thresholds.yaml:15: rows[2].title: required key is missing",
        ),
        (
            "  - metric: disk_usage",
            "  - metric: cpu_usage",
            "thresholds.yaml:10: rows[1].metric: cpu_usage has another row",
        ),
        (
            "    critical_above: 85\n  - metric: memory_usage",
            "    critical_above: 85\n    runbook: disk-full\n  - metric: memory_usage",
            "thresholds.yaml:15: rows[1].runbook: no runbook 'disk-full' in runbooks/ "
            "(high-error-rate, high-latency, service-unavailable)",
        ),
        (
            "    title: CPU Usage\n",
            "    title: CPU Usage\n    title: CPU\n",
            "thresholds.yaml:7: rows[0].title: key appears more than once",
        ),
        (
            "    critical_above: 90\n",
            "    critical_above: .nan\n",
            "thresholds.yaml:19: rows[2].critical_above: Input should be a finite number",
        ),
    ],
)
def test_bad_thresholds(tmp_path: Path, old: str, new: str, expected: str) -> None:
    """Each problem names the file, the line and the key path."""
    assert old in _THRESHOLDS
    directory = _copy_rules(tmp_path, thresholds_yaml=_THRESHOLDS.replace(old, new, 1))
    assert _problems(directory) == [f"{directory}/{expected}"]


_RULES = """\
rules:
  - name: db-disks
    match:
      - 'alertname=~"Disk.*"'
      - 'service="db"'
    priority: P1
  - name: certs
    match: ['alertname="CertificateExpiresSoon"']
    kind: maintenance
    maintenance_type: preventive
"""


def test_operator_rules_load(tmp_path: Path) -> None:
    """Operator rules load in file order with parsed matchers."""
    loaded = Rules.load(_copy_rules(tmp_path, rules_yaml=_RULES))
    first, second = loaded.operator_rules
    assert first.name == "db-disks"
    assert first.priority is Priority.P1
    assert first.kind is None
    assert [str(m) for m in first.match] == ['alertname=~"Disk.*"', 'service="db"']
    assert first.matches({"alertname": "DiskFull", "service": "db"})
    assert not first.matches({"alertname": "DiskFull", "service": "api"})
    assert (second.kind, second.maintenance_type, second.priority) == (
        "maintenance",
        "preventive",
        None,
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "'service=\"db\"'",
            "'service==\"db\"'",
            "rules.yaml:5: rules[0].match[1]: bad matcher 'service==\"db\"': "
            "the value contains an unescaped double quote",
        ),
        (
            "'alertname=~\"Disk.*\"'",
            "'alertname=~\"Disk(\"'",
            "rules.yaml:4: rules[0].match[0]: invalid regular expression 'Disk(': "
            "missing ), unterminated subpattern",
        ),
        (
            "priority: P1",
            "priority: P9",
            "rules.yaml:6: rules[0].priority: Input should be 'P0', 'P1', 'P2' or 'P3'",
        ),
        (
            "priority: P1",
            "priority: p1",
            "rules.yaml:6: rules[0].priority: Input should be 'P0', 'P1', 'P2' or 'P3'",
        ),
        (
            "priority: P1",
            "prio: P1",
            "rules.yaml:6: rules[0].prio: unknown key",
        ),
        (
            "    priority: P1\n",
            "",
            "rules.yaml:2: rules[0]: needs either priority (P0..P3) or kind: maintenance",
        ),
        (
            "    kind: maintenance\n",
            "    kind: maintenance\n    priority: P2\n",
            "rules.yaml:9: rules[1].kind: give either priority or kind, not both",
        ),
        (
            "    kind: maintenance\n",
            "    priority: P2\n",
            "rules.yaml:10: rules[1].maintenance_type: only with kind: maintenance",
        ),
        (
            "maintenance_type: preventive",
            "maintenance_type: corrective",
            "rules.yaml:10: rules[1].maintenance_type: "
            "Input should be 'perfective', 'adaptive' or 'preventive'",
        ),
        (
            "  - name: certs",
            "  - name: db-disks",
            "rules.yaml:7: rules[1].name: another rule is called 'db-disks'",
        ),
        (
            "    match: ['alertname=\"CertificateExpiresSoon\"']",
            "    match: []",
            "rules.yaml:8: rules[1].match: needs at least one matcher",
        ),
        (
            "    match: ['alertname=\"CertificateExpiresSoon\"']",
            "    match: [42]",
            "rules.yaml:8: rules[1].match[0]: expected a matcher string such as "
            'alertname=~"Disk.*"',
        ),
        (
            "    priority: P1\n",
            "    priority: P1\n    runbook: nope\n",
            "rules.yaml:7: rules[0].runbook: no runbook 'nope' in runbooks/ "
            "(high-error-rate, high-latency, service-unavailable)",
        ),
    ],
)
def test_bad_operator_rules(tmp_path: Path, old: str, new: str, expected: str) -> None:
    """Bad matchers, priorities, keys and rule shapes are reported with file, line and key."""
    assert old in _RULES
    directory = _copy_rules(tmp_path, rules_yaml=_RULES.replace(old, new, 1))
    assert _problems(directory) == [f"{directory}/{expected}"]


def _bundled_text(name: str) -> str:
    return (bundled_directory() / name).read_text(encoding="utf-8")


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th ``needle`` in ``text``."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    return text[:index].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        ("respond: 15m", "respond: soon", "priorities.P1.respond",
         "expected a duration such as 15m or next_business_day, got 'soon'"),
        ("respond: 15m", "respond: 0s", "priorities.P1.respond",
         "a deadline must be longer than zero"),
        ("resolve: 4h", "resolve: 240", "priorities.P1.resolve",
         "expected a duration such as 15m or next_business_day"),
        ("page: business_hours", "page: sometimes", "priorities.P1.page",
         "Input should be 'always', 'business_hours' or 'never'"),
        ("stakeholders: [email]", "stakeholders: [email, pigeon]", "priorities.P1.stakeholders[1]",
         "Input should be 'email', 'sms' or 'status_page'"),
        ("  P1:", "  P7:", "priorities.P7", "Input should be 'P0', 'P1', 'P2' or 'P3'"),
        ("  default: P3", "  other: P3", "severity_fallback", "missing default"),
        ("  warning: P2", "  warning: P12", "severity_fallback.warning",
         "Input should be 'P0', 'P1', 'P2' or 'P3'"),
        ("    label: priority-high", "    label: priority-critical", "priorities.P1.label",
         "'priority-critical' is also P0's"),
    ],
)  # fmt: skip
def test_bad_priorities(tmp_path: Path, old: str, new: str, key: str, message: str) -> None:
    """Bad deadlines, paging, channels and priorities in priorities.yaml name file:line:key."""
    text = _bundled_text("priorities.yaml")
    assert old in text
    bad = text.replace(old, new, 1)
    line = _line_of(text, old if key != "severity_fallback" else "severity_fallback:")
    directory = _copy_rules(tmp_path, priorities_yaml=bad)
    assert _problems(directory) == [f"{directory}/priorities.yaml:{line}: {key}: {message}"]


def test_missing_priority(tmp_path: Path) -> None:
    """Every priority P0..P3 must have a policy."""
    text = _bundled_text("priorities.yaml")
    start, end = text.index("  P3:"), text.index("severity_fallback:")
    directory = _copy_rules(tmp_path, priorities_yaml=text[:start] + text[end:])
    line = _line_of(text, "priorities:")
    assert _problems(directory) == [f"{directory}/priorities.yaml:{line}: priorities: missing P3"]


def test_critical_unit_must_match_threshold_row(tmp_path: Path) -> None:
    """A critical condition reads the value in the same unit as the metric's threshold row."""
    text = _bundled_text("critical.yaml").replace("unit: percent", "unit: count")
    directory = _copy_rules(tmp_path, critical_yaml=text)
    line = _line_of(text, "unit: count")
    assert _problems(directory) == [
        f"{directory}/critical.yaml:{line}: conditions[0].unit: count differs from the unit "
        "of the error_rate row in thresholds.yaml (percent)"
    ]


def test_critical_duplicate_alertname_and_bad_for(tmp_path: Path) -> None:
    """A bad ``for`` duration is reported; once fixed, the duplicate alertname is."""
    text = _bundled_text("critical.yaml")
    text = text.replace("alertname: DatabaseDown", "alertname: ServiceUnavailable")
    text = text.replace("for: 1m", "for: 1 minute")
    directory = _copy_rules(tmp_path, critical_yaml=text)
    assert _problems(directory) == [
        f"{directory}/critical.yaml:{_line_of(text, 'for: 1 minute')}: alertnames[0].for: "
        "not a valid duration: '1 minute' (use Prometheus units, e.g. 30s, 15m, 1h30m, 7d)",
    ]
    text = text.replace("for: 1 minute", "for: 1m")
    (directory / "critical.yaml").write_text(text, encoding="utf-8")
    assert _problems(directory) == [
        f"{directory}/critical.yaml:{_line_of(text, '  - alertname: ServiceUnavailable', 2)}: "
        "alertnames[1].alertname: ServiceUnavailable is listed twice"
    ]


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """Problems in several files are all reported, not only the first."""
    directory = _copy_rules(
        tmp_path,
        thresholds_yaml=_THRESHOLDS.replace("warning: [80, 90]", "warning: [90, 80]"),
        rules_yaml=_RULES.replace("priority: P1", "priority: P9"),
    )
    problems = _problems(directory)
    assert len(problems) == 2
    assert any("thresholds.yaml:18: rows[2].warning" in p for p in problems)
    assert any("rules.yaml:6: rules[0].priority" in p for p in problems)


def test_invalid_yaml(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line."""
    directory = _copy_rules(tmp_path, rules_yaml="rules:\n  - name: [unclosed\n")
    [problem] = _problems(directory)
    assert problem.startswith(f"{directory}/rules.yaml:3: invalid YAML: ")


def test_not_a_mapping(tmp_path: Path) -> None:
    """A file whose top level is not a mapping is one problem at line 1."""
    directory = _copy_rules(tmp_path, thresholds_yaml="- just\n- a list\n")
    assert _problems(directory) == [
        f"{directory}/thresholds.yaml:1: Input should be a valid dictionary or instance of "
        "_ThresholdsFile"
    ]


def test_missing_required_file(tmp_path: Path) -> None:
    """priorities.yaml, critical.yaml and thresholds.yaml are required."""
    directory = _copy_rules(tmp_path)
    (directory / "critical.yaml").unlink()
    assert _problems(directory) == [f"{directory}/critical.yaml: required file is missing"]


def test_not_a_directory(tmp_path: Path) -> None:
    """A rules_dir that does not exist is one clear problem."""
    assert _problems(tmp_path / "nowhere") == [f"{tmp_path / 'nowhere'}: not a directory"]


@pytest.mark.parametrize("text", ["", "# all commented out\n", "rules:\n", "rules: []\n"])
def test_rules_yaml_may_be_empty(tmp_path: Path, text: str) -> None:
    """rules.yaml with no rules (even without the key, or empty) means no operator rules."""
    assert Rules.load(_copy_rules(tmp_path, rules_yaml=text)).operator_rules == ()


def test_rules_yaml_and_runbooks_are_optional(tmp_path: Path) -> None:
    """Without rules.yaml and runbooks/ (and no references to runbooks) the directory loads."""
    directory = _copy_rules(tmp_path)
    (directory / "rules.yaml").unlink()
    shutil.rmtree(directory / "runbooks")
    for name in ("critical.yaml", "thresholds.yaml"):
        path = directory / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(x for x in lines if "runbook:" not in x), encoding="utf-8")
    loaded = Rules.load(directory)
    assert loaded.operator_rules == ()
    assert dict(loaded.runbooks) == {}


def test_runbook_title_falls_back_to_name(tmp_path: Path) -> None:
    """A runbook without a heading is titled by its file name."""
    directory = _copy_rules(tmp_path)
    (directory / "runbooks" / "plain.md").write_text("Just do it.\n", encoding="utf-8")
    runbook = Rules.load(directory).runbook("plain")
    assert runbook is not None
    assert runbook.title == "plain"
