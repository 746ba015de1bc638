"""Generated Prometheus rules: deterministic, complete, agreeing with classify and promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import cli
from bridge.classify import classify
from bridge.model import Priority
from bridge.promrules import (
    CAPACITY_TEST_FILE,
    HEADER,
    KUBERNETES_RULE_FILE,
    RULES_FILE,
    SERVICE,
    TEST_FILE,
    generate,
    go_float,
    prometheus_rule,
    rule_groups,
)
from bridge.rules import Rules, bundled_directory

COMMITTED = bundled_directory() / "prometheus"
CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rules() -> Rules:
    """The bundled rules."""
    return Rules.bundled()


@pytest.fixture(scope="module")
def files(rules: Rules) -> dict[str, str]:
    """What ``rules generate`` writes for the bundled rules."""
    return generate(rules)


def _alerts(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(files[RULES_FILE])
    return {rule["alert"]: rule for group in data["groups"] for rule in group["rules"]}


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (.ci/run does)")
    return found


def test_generation_is_deterministic(rules: Rules, files: dict[str, str]) -> None:
    """Generating twice gives byte-identical files, each with the do-not-edit header."""
    assert generate(rules) == files
    assert set(files) == {RULES_FILE, TEST_FILE, CAPACITY_TEST_FILE}
    for text in files.values():
        assert text.startswith(HEADER)


def test_every_row_has_a_warning_and_a_critical_alert(rules: Rules, files: dict[str, str]) -> None:
    """Each threshold row yields <Metric>Warning and <Metric>Critical with labels and value."""
    alerts = _alerts(files)
    for row in rules.thresholds.values():
        name = "".join(part.capitalize() for part in row.metric.split("_"))
        for band, priority in (
            ("warning", rules.bands.warning),
            ("critical", rules.bands.critical),
        ):
            alert = alerts[f"{name}{band.capitalize()}"]
            assert alert["labels"] == {
                "metric": row.metric,
                "priority": priority.value,
                "severity": band,
                "service": SERVICE,
            }
            assert alert["annotations"]["value"] == "{{ $value }}"
            assert "runbook_url" not in alert["annotations"]  # no row names a URL
            assert row.expr is not None
            assert row.expr in alert["expr"]
            if row.for_:
                assert alert["for"] == row.for_


def test_guide_lists_are_generated(files: dict[str, str]) -> None:
    """Critical list, sustained capacity, Watchdog and meta-alerts are all there."""
    alerts = _alerts(files)
    assert alerts["ServiceUnavailable"]["for"] == "1m"
    assert alerts["ServiceUnavailable"]["labels"]["priority"] == "P0"
    assert "DatabaseDown" in alerts
    assert alerts["HighErrorRate5xx"]["expr"].endswith(") > 5")
    assert "SecurityIncident" not in alerts
    assert "# Skipped: critical.yaml SecurityIncident" in files[RULES_FILE]
    for name, hold, bound in (
        ("CpuUsageSustained", "1w", "85"),
        ("MemoryUsageSustained", "1w", "90"),
        ("DiskUsageSustained", "1d", "85"),
    ):
        alert = alerts[name]
        assert alert["for"] == hold
        assert alert["expr"].endswith(f") > {bound}")
        assert alert["labels"]["kind"] == "maintenance"
        assert alert["labels"]["maintenance_type"] == "perfective"
        assert alert["labels"]["priority"] == "P3"
    assert alerts["Watchdog"]["expr"] == "vector(1)"
    assert alerts["Watchdog"]["labels"] == {"severity": "none"}
    meta = [name for name in alerts if name.startswith("IncidentBridge")]
    assert len(meta) == 7
    for name in meta:
        assert alerts[name]["labels"]["priority"] in {"P1", "P2"}


def _expected_alerts(files: dict[str, str]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(alertname, labels, rendered annotations) of every alert the unit tests expect."""
    found = []
    for name in (TEST_FILE, CAPACITY_TEST_FILE):
        for group in yaml.safe_load(files[name])["tests"]:
            for check in group["alert_rule_test"]:
                for alert in check["exp_alerts"]:
                    labels = {**alert["exp_labels"], "alertname": check["alertname"]}
                    found.append((check["alertname"], labels, alert["exp_annotations"]))
    return found


def test_priority_labels_agree_with_the_classifier(rules: Rules, files: dict[str, str]) -> None:
    """Without its priority label, a generated alert with its test value classifies the same."""
    expected = _expected_alerts(files)
    names = {name for name, _, _ in expected}
    assert {"CpuUsageWarning", "ErrorRateCritical", "HighErrorRate5xx", "Watchdog"} <= names
    checked = 0
    for name, labels, rendered in expected:
        if "priority" not in labels:
            continue
        label = Priority(labels["priority"])
        decided = classify(rules, labels, rendered)
        assert decided.priority == label
        if labels.get("kind") == "maintenance":
            # Planned work: its P3 label overrides the critical band its value is in.
            assert decided.maintenance
            assert decided.maintenance_type == "perfective"
            assert label == Priority.P3
            continue
        without = {k: v for k, v in labels.items() if k != "priority"}
        assert classify(rules, without, rendered).priority == label, name
        checked += 1
    assert checked == 2 * len(rules.thresholds) + 3 + 7  # rows, critical list, meta


def test_committed_files_are_fresh(rules: Rules, files: dict[str, str]) -> None:
    """rules/prometheus and the kustomize base's PrometheusRule hold exactly what generation
    gives (else: run rules generate)."""
    for name, text in files.items():
        assert (COMMITTED / name).read_text(encoding="utf-8") == text, name
    manifest = CHECKOUT / KUBERNETES_RULE_FILE
    assert manifest.read_text(encoding="utf-8") == prometheus_rule(rules)


def test_prometheus_rule_wraps_the_same_groups(rules: Rules, files: dict[str, str]) -> None:
    """The PrometheusRule is a monitoring.coreos.com/v1 manifest whose spec is the rule file."""
    text = prometheus_rule(rules)
    assert text.startswith(HEADER)
    assert "# Skipped: critical.yaml SecurityIncident" in text
    manifest = yaml.safe_load(text)
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"] == "incident-bridge"
    assert manifest["spec"] == yaml.safe_load(files[RULES_FILE]) == rule_groups(rules)
    assert prometheus_rule(rules) == text


def _run_cli(*argv: str) -> int:
    """The command's exit code (without ``main``: it would point structlog at captured stdout)."""
    args = cli.parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_generate_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rules generate DIR`` writes the files; ``--check`` passes then, fails after an edit."""
    assert _run_cli("rules", "generate", str(tmp_path)) == 0
    assert (tmp_path / RULES_FILE).is_file()
    assert _run_cli("rules", "generate", "--check", str(tmp_path)) == 0
    (tmp_path / RULES_FILE).write_text("groups: []\n", encoding="utf-8")
    assert _run_cli("rules", "generate", "--check", str(tmp_path)) == 1
    assert "differs" in capsys.readouterr().err


def test_cli_generate_and_check_the_prometheus_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--prometheus-rule FILE`` writes the manifest too; ``--check`` fails when it is stale."""
    manifest = tmp_path / "k8s" / "prometheusrule.yaml"
    args = ("rules", "generate", "--prometheus-rule", str(manifest), str(tmp_path / "rules"))
    assert _run_cli(*args) == 0
    assert manifest.read_text(encoding="utf-8") == prometheus_rule(Rules.bundled())
    assert _run_cli(*args[:2], "--check", *args[2:]) == 0
    manifest.write_text(manifest.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    capsys.readouterr()
    assert _run_cli(*args[:2], "--check", *args[2:]) == 1
    assert f"{manifest}: differs" in capsys.readouterr().err


def test_cli_check_covers_the_checkout_prometheus_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without DIR, in a source checkout, ``rules generate --check`` (as CI runs it) checks
    rules/prometheus and the kustomize base's PrometheusRule; with DIR, only DIR."""
    monkeypatch.delenv("INCIDENT_BRIDGE_CONFIG", raising=False)
    assert _run_cli("rules", "generate", "--check") == 0
    out = capsys.readouterr().out
    assert f"{COMMITTED}: up to date" in out
    assert f"{CHECKOUT / KUBERNETES_RULE_FILE}: up to date" in out
    assert _run_cli("rules", "generate", str(tmp_path)) == 0
    assert "prometheusrule" not in capsys.readouterr().out


def test_rows_without_expr_are_skipped(tmp_path: Path) -> None:
    """An operator's thresholds.yaml without expr still loads and gets no threshold rules."""
    directory = tmp_path / "rules"
    shutil.copytree(bundled_directory(), directory)
    path = directory / "thresholds.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("    expr:")) + "\n",
        encoding="utf-8",
    )
    custom = Rules.load(directory)
    names = {r["alert"] for g in rule_groups(custom)["groups"] for r in g["rules"]}
    assert not any(name.endswith(("Warning", "Critical")) for name in names)
    assert {"ServiceUnavailable", "Watchdog"} <= names
    assert "HighErrorRate5xx" not in names  # its expr comes from the error_rate row
    assert "# Skipped: thresholds.yaml row cpu_usage: no expr" in generate(custom)[RULES_FILE]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (22500.0, "22500"),
        (649.8000000000001, "649.8000000000001"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5, "-2.5"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    """Values render as Go's %v does, which is what ``{{ $value }}`` prints."""
    assert go_float(value) == text


def test_promtool_check_rules() -> None:
    """``promtool check rules`` accepts the committed rule file."""
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [_promtool(), "check", "rules", str(COMMITTED / RULES_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_promtool_test_rules() -> None:
    """``promtool test rules`` passes the generated unit tests (a week of samples: ~10 s)."""
    tests = sorted(str(p) for p in COMMITTED.glob("*_test.yml"))
    assert len(tests) == 2
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [_promtool(), "test", "rules", *tests],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_name_their_service_by_the_series_service_label_else_its_job(
    tmp_path: Path,
) -> None:
    """The shipped route groups by ``[alertname, service]``: every generated threshold,
    critical and capacity alert carries ``service`` — the series' own when the expression keeps
    one, else its ``job`` — so one alert on two jobs is two alert groups (two incidents), not
    one. Shown by promtool on the committed rules: ``up == 0`` for a target with a service
    label and for one without."""
    test = {
        "rule_files": [str(COMMITTED / RULES_FILE)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'up{job="web", instance="a:80", service="checkout"}',
                        "values": "0x5",
                    },
                    {"series": 'up{job="search", instance="b:80"}', "values": "0x5"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "ServiceUnavailable",
                        "exp_alerts": [
                            {"exp_labels": labels, "exp_annotations": annotations}
                            for labels, annotations in _service_unavailable(
                                [("web", "a:80", "checkout"), ("search", "b:80", "search")]
                            )
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "service_test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _service_unavailable(
    targets: list[tuple[str, str, str]],
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """The labels and annotations ``ServiceUnavailable`` fires with for each (job, instance,
    service), read from the committed rule itself."""
    rule = _alerts({RULES_FILE: (COMMITTED / RULES_FILE).read_text()})["ServiceUnavailable"]
    out = []
    for job, instance, service in targets:
        labels = {"job": job, "instance": instance, **rule["labels"], "service": service}
        annotations = {k: v.replace("{{ $value }}", "0") for k, v in rule["annotations"].items()}
        out.append((labels, annotations))
    return out
