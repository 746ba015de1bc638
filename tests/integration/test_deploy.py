"""The deployment files agree with the bridge and with the schemas they are written against.

``kubectl kustomize`` renders every overlay of ``deploy/kubernetes``. ``.ci/check-deploy``
validates the same output against Kubernetes' own schemas (``kubernetes-validate --strict``),
which know nothing of prometheus-operator's resources: their fields are checked here against the
``monitoring.coreos.com/v1`` CRD schema. The rest is consistency: ports, probe paths, the
config, the grace period, the security context, the overlays' replicas and storage, the
Dockerfile, and the Alertmanager example against the bridge's own defaults and promises.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bridge.app import create_app
from bridge.config import Config, load_config
from bridge.durations import parse_duration
from bridge.promrules import KUBERNETES_RULE_FILE, rule_groups
from bridge.rules import Rules

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgres", "postgres-hpa")
SECRET_EXAMPLE = KUSTOMIZE / "base" / "secret.example.yaml"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
DOCKERFILE = REPO / "Dockerfile"
CONTAINER = "incident-bridge"

# CONTRACT.md: on SIGTERM the bridge exits within 10 s.
SHUTDOWN_DEADLINE_SECONDS = 10
# A generous size for one alert in an Alertmanager webhook (labels, annotations, generatorURL,
# times, fingerprint) and for the rest of the notification (groupLabels, commonLabels,
# commonAnnotations, externalURL, groupKey).
ALERT_BYTES = 8 * 1024
ENVELOPE_BYTES = 16 * 1024

Doc = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Rendering and lookup


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: {package}")
    return found


@functools.cache
def _render(overlay: str) -> tuple[Doc, ...]:
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [
            _tool("kubectl", "install kubectl (v1.27+ for kustomize v5)"),
            "kustomize",
            str(KUSTOMIZE / "overlays" / overlay),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    """Each overlay's name."""
    name: str = request.param
    return name


@pytest.fixture
def docs(overlay: str) -> tuple[Doc, ...]:
    """The overlay, rendered."""
    return _render(overlay)


def _all(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: Sequence[Doc], kind: str) -> Doc:
    found = _all(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod(docs: Sequence[Doc]) -> Doc:
    spec: Doc = _one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(docs: Sequence[Doc]) -> Doc:
    found: list[Doc] = [c for c in _pod(docs)["containers"] if c["name"] == CONTAINER]
    assert len(found) == 1, f"one container named {CONTAINER}"
    return found[0]


def _pod_labels(docs: Sequence[Doc]) -> dict[str, str]:
    labels: dict[str, str] = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels only, as these manifests use) selects ``labels``."""
    assert set(selector) <= {"matchLabels"}, selector
    match: Mapping[str, str] = selector.get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _mounts(docs: Sequence[Doc]) -> dict[str, Doc]:
    """Volume name → the volume, for each volume the container mounts (with ``mountPath``)."""
    volumes = {v["name"]: v for v in _pod(docs)["volumes"]}
    return {m["name"]: {**volumes[m["name"]], **m} for m in _container(docs)["volumeMounts"]}


def _quantity(text: str | int | float) -> float:
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    found = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    assert found is not None, text
    return float(found[1]) * (units[found[2]] if found[2] else 1)


# ---------------------------------------------------------------------------------------------
# The bridge's side


@functools.cache
def _routes() -> frozenset[tuple[str, str]]:
    """(method, path) of every route the bridge serves."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bridge.yaml"
        path.write_text("store: {url: sqlite:///state.db}\n", encoding="utf-8")
        app = create_app(load_config(path))
        return frozenset(
            (r.method, r.resource.canonical) for r in app.router.routes() if r.resource
        )


def _secret_example() -> Doc:
    doc: Doc = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    return doc


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


class Materialized:
    """An overlay's config as the container sees it, laid out under a temporary root: the
    ConfigMap and the example Secret written as files at their mount paths (rewritten into the
    root), and the container's environment with its Secret references resolved."""

    def __init__(self, docs: Sequence[Doc], root: Path) -> None:
        self.root = root
        secret = _secret_example()
        mounts = _mounts(docs)
        self.rewrites = {
            m["mountPath"]: str(root / m["mountPath"].lstrip("/")) for m in mounts.values()
        }
        config_maps = {c["metadata"]["name"]: c for c in _all(docs, "ConfigMap")}
        for mount in mounts.values():
            target = root / mount["mountPath"].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in mount:
                data = config_maps[mount["configMap"]["name"]]["data"]
                for key, value in data.items():
                    (target / key).write_text(self.rewrite(value), encoding="utf-8")
            elif "secret" in mount:
                assert mount["secret"]["secretName"] == secret["metadata"]["name"]
                for key, value in secret["stringData"].items():
                    (target / key).write_text(value, encoding="utf-8")
        self.env: dict[str, str] = {}
        for var in _container(docs).get("env", []):
            if "value" in var:
                self.env[var["name"]] = self.rewrite(var["value"])
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] == secret["metadata"]["name"], var
                assert ref["key"] in secret["stringData"], f"{ref['key']}: not in the example"
                self.env[var["name"]] = secret["stringData"][ref["key"]]
        args = _container(docs)["args"]
        self.config_path = Path(self.rewrite(args[args.index("--config") + 1]))

    def rewrite(self, text: str) -> str:
        """``text`` with every mount path moved under the temporary root."""
        paths = sorted(self.rewrites, key=len, reverse=True)
        pattern = r"(?<![\w.-])(" + "|".join(map(re.escape, paths)) + r")(?![\w.-])"
        return re.sub(pattern, lambda m: self.rewrites[m[1]], text)  # one pass: no re-rewrites

    def config(self) -> Config:
        return load_config(self.config_path, env=self.env)


@pytest.fixture
def bridge_config(docs: Sequence[Doc], tmp_path: Path) -> Config:
    """The overlay's config, loaded as the container would load it."""
    return Materialized(docs, tmp_path).config()


# ---------------------------------------------------------------------------------------------
# prometheus-operator resources against the monitoring.coreos.com/v1 CRD schema

# The CRD's Duration pattern (monitoringv1.Duration).
_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_SERVICE_MONITOR_SPEC = {
    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "endpoints",
    "fallbackScrapeProtocol", "jobLabel", "keepDroppedTargets", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "namespaceSelector",
    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor", "podTargetLabels",
    "sampleLimit", "scrapeClass", "scrapeClassicHistograms", "scrapeProtocols", "selector",
    "selectorMechanism", "targetLabels", "targetLimit",
}  # fmt: skip
_ENDPOINT = {
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "interval",
    "metricRelabelings", "noProxy", "oauth2", "params", "path", "port", "proxyConnectHeader",
    "proxyFromEnvironment", "proxyUrl", "relabelings", "scheme", "scrapeTimeout", "targetPort",
    "tlsConfig", "trackTimestampsStaleness",
}  # fmt: skip
_RULE_GROUP = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset",
               "labels"}  # fmt: skip
_RULE = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _duration_problems(where: str, value: Any) -> list[str]:
    if isinstance(value, str) and value and _DURATION.fullmatch(value):
        return []
    return [f"{where}: {value!r} is not a Duration"]


def _string_map_problems(where: str, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: must be a map of strings"]
    return [
        f"{where}.{k}: keys and values must be strings"
        for k, v in value.items()
        if not (isinstance(k, str) and isinstance(v, str))
    ]


def _metadata_problems(doc: Doc) -> list[str]:
    meta = doc.get("metadata") or {}
    problems = [] if isinstance(meta.get("name"), str) and meta["name"] else ["metadata.name"]
    return problems + _string_map_problems("metadata.labels", meta.get("labels", {}))


def service_monitor_problems(doc: Doc) -> list[str]:
    """What in ``doc`` a ``monitoring.coreos.com/v1`` ServiceMonitor does not allow."""
    problems = _metadata_problems(doc)
    if (doc.get("apiVersion"), doc.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
        problems.append("apiVersion/kind")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec: required"]
    problems += [f"spec.{k}: unknown field" for k in spec if k not in _SERVICE_MONITOR_SPEC]
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        problems.append("spec.selector: required (a LabelSelector)")
    else:
        problems += [
            f"spec.selector.{k}: unknown field"
            for k in selector
            if k not in {"matchLabels", "matchExpressions"}
        ]
        problems += _string_map_problems("spec.selector.matchLabels", selector.get("matchLabels"))
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return [*problems, "spec.endpoints: a non-empty list"]
    for i, endpoint in enumerate(endpoints):
        where = f"spec.endpoints[{i}]"
        if not isinstance(endpoint, dict):
            problems.append(f"{where}: must be an object")
            continue
        problems += [f"{where}.{k}: unknown field" for k in endpoint if k not in _ENDPOINT]
        if not isinstance(endpoint.get("port"), str) or not endpoint["port"]:
            problems.append(f"{where}.port: the Service port's name (a string)")
        path = endpoint.get("path", "/metrics")
        if not (isinstance(path, str) and path.startswith("/")):
            problems.append(f"{where}.path: {path!r} is not a path")
        if endpoint.get("scheme", "http").lower() not in {"http", "https"}:
            problems.append(f"{where}.scheme: http or https")
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                problems += _duration_problems(f"{where}.{key}", endpoint[key])
        timed = not problems and {"interval", "scrapeTimeout"} <= set(endpoint)
        if timed and parse_duration(endpoint["scrapeTimeout"]) > parse_duration(
            endpoint["interval"]
        ):
            problems.append(f"{where}.scrapeTimeout: longer than interval")
    return problems


def prometheus_rule_problems(doc: Doc) -> list[str]:
    """What in ``doc`` a ``monitoring.coreos.com/v1`` PrometheusRule does not allow."""
    problems = _metadata_problems(doc)
    if (doc.get("apiVersion"), doc.get("kind")) != ("monitoring.coreos.com/v1", "PrometheusRule"):
        problems.append("apiVersion/kind")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return [*problems, "spec: required"]
    problems += [f"spec.{k}: unknown field" for k in spec if k != "groups"]
    groups = spec.get("groups")
    if not isinstance(groups, list) or not groups:
        return [*problems, "spec.groups: a non-empty list"]
    names: set[str] = set()
    for i, group in enumerate(groups):
        where = f"spec.groups[{i}]"
        problems += [f"{where}.{k}: unknown field" for k in group if k not in _RULE_GROUP]
        name = group.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name: required")
        elif name in names:
            problems.append(f"{where}.name: {name!r} twice")
        names.add(str(name))
        if "interval" in group:
            problems += _duration_problems(f"{where}.interval", group["interval"])
        rules = group.get("rules")
        if not isinstance(rules, list):
            problems.append(f"{where}.rules: a list")
            continue
        for j, rule in enumerate(rules):
            problems += _rule_problems(f"{where}.rules[{j}]", rule)
    return problems


def _rule_problems(where: str, rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{where}: must be an object"]
    problems = [f"{where}.{k}: unknown field" for k in rule if k not in _RULE]
    if ("alert" in rule) == ("record" in rule):
        problems.append(f"{where}: exactly one of alert and record")
    if "alert" in rule and not (isinstance(rule["alert"], str) and rule["alert"]):
        problems.append(f"{where}.alert: a non-empty string")
    if "record" in rule:
        if not (isinstance(rule["record"], str) and _METRIC_NAME.fullmatch(rule["record"])):
            problems.append(f"{where}.record: a metric name")
        problems += [
            f"{where}.{k}: alerting rules only" for k in ("for", "annotations") if k in rule
        ]
    expr = rule.get("expr")
    if not ((isinstance(expr, str) and expr.strip()) or type(expr) is int):
        problems.append(f"{where}.expr: required (int or string)")
    for key in ("for", "keep_firing_for"):
        if key in rule:
            problems += _duration_problems(f"{where}.{key}", rule[key])
    for key in ("labels", "annotations"):
        if key in rule:
            problems += _string_map_problems(f"{where}.{key}", rule[key])
            problems += [
                f"{where}.{key}.{k}: not a label name"
                for k in rule[key]
                if isinstance(k, str) and not _LABEL_NAME.fullmatch(k)
            ]
    return problems


def test_service_monitor_fits_the_crd_schema(docs: Sequence[Doc]) -> None:
    """The ServiceMonitor has the fields and types of monitoring.coreos.com/v1."""
    assert service_monitor_problems(_one(docs, "ServiceMonitor")) == []


def test_prometheus_rule_fits_the_crd_schema(docs: Sequence[Doc]) -> None:
    """The PrometheusRule has the fields and types of monitoring.coreos.com/v1."""
    assert prometheus_rule_problems(_one(docs, "PrometheusRule")) == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["spec"]["endpoints"][0].update(port=9095), "port"),
        (lambda d: d["spec"]["endpoints"][0].update(interval="30 s"), "interval"),
        (lambda d: d["spec"]["endpoints"][0].update(scrapeTimeout="1m"), "scrapeTimeout"),
        (lambda d: d["spec"]["endpoints"][0].update(honourLabels=True), "honourLabels"),
        (lambda d: d["spec"].pop("selector"), "selector"),
        (lambda d: d["spec"].update(endpoints=[]), "endpoints"),
    ],
)
def test_service_monitor_check_catches_mistakes(mutate: Any, problem: str) -> None:
    """The hand-written schema check is not vacuous."""
    doc = json.loads(json.dumps(_one(_render("sqlite"), "ServiceMonitor")))
    mutate(doc)
    assert any(problem in p for p in service_monitor_problems(doc))


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda r: r.update(record="x"), "exactly one"),
        (lambda r: r.pop("expr"), "expr"),
        (lambda r: r.update({"for": "5 minutes"}), "for"),
        (lambda r: r["labels"].update(priority=1), "labels"),
        (lambda r: r.update(severity="critical"), "severity"),
    ],
)
def test_prometheus_rule_check_catches_mistakes(mutate: Any, problem: str) -> None:
    """The hand-written schema check is not vacuous."""
    doc = json.loads(json.dumps(_one(_render("sqlite"), "PrometheusRule")))
    mutate(doc["spec"]["groups"][0]["rules"][0])
    assert any(problem in p for p in prometheus_rule_problems(doc))


def test_prometheus_rule_holds_the_generated_groups(docs: Sequence[Doc], tmp_path: Path) -> None:
    """The PrometheusRule carries the generated groups unchanged, and Prometheus accepts them."""
    spec = _one(docs, "PrometheusRule")["spec"]
    assert spec == rule_groups(Rules.bundled())
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [_tool("promtool", "apt-get install prometheus"), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (KUSTOMIZE / "base" / "prometheusrule.yaml") == REPO / KUBERNETES_RULE_FILE


# ---------------------------------------------------------------------------------------------
# The Deployment against the bridge


def test_ports_and_probes_match_the_bridge(docs: Sequence[Doc], bridge_config: Config) -> None:
    """The container port is the bridge's default port, the config listens on every interface
    there, and the probes ask routes the bridge serves: /healthz alive, /readyz ready."""
    container = _container(docs)
    (port,) = container["ports"]
    assert port == {"name": "http", "containerPort": Config().listen_port, "protocol": "TCP"}
    assert Config().listen_port == 9095
    assert bridge_config.listen_host == "0.0.0.0"  # noqa: S104 - in a pod, every interface
    assert bridge_config.listen_port == port["containerPort"]
    probes = {
        k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"] == {"path": "/healthz", "port": "http"}
    assert probes["startupProbe"] == {"path": "/healthz", "port": "http"}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "http"}
    for probe in probes.values():
        assert ("GET", probe["path"]) in _routes()


def test_grace_period_covers_prestop_and_the_shutdown_deadline(docs: Sequence[Doc]) -> None:
    """Kubernetes waits at least the preStop pause plus the bridge's 10 s drain before SIGKILL."""
    pre_stop = _container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop > 0
    grace = _pod(docs)["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + SHUTDOWN_DEADLINE_SECONDS


def test_pod_runs_locked_down(docs: Sequence[Doc]) -> None:
    """Non-root (the image's user), read-only root filesystem, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, no API token; /tmp is a writable emptyDir."""
    pod = _pod(docs)
    container = _container(docs)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == _one(docs, "ServiceAccount")["metadata"]["name"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    mounts = _mounts(docs)
    assert "emptyDir" in mounts["tmp"]
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert not mounts["tmp"].get("readOnly", False)
    for mount in mounts.values():
        if "configMap" in mount or "secret" in mount:
            assert mount["readOnly"] is True
    (user,) = [args for word, args in _dockerfile() if word == "USER"]
    assert user == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"


def test_resources_are_requested_and_limited(docs: Sequence[Doc]) -> None:
    """CPU and memory requests (the HPA's utilization needs them) at or below the limits."""
    resources = _container(docs)["resources"]
    for kind in ("cpu", "memory"):
        assert _quantity(resources["requests"][kind]) <= _quantity(resources["limits"][kind])
    assert _quantity(resources["limits"]["memory"]) >= 256 * 2**20  # ~80 MiB resident idle


def test_image_command_and_config_agree(docs: Sequence[Doc]) -> None:
    """The container runs the image's CMD with the config mounted from the ConfigMap; the image
    is the project's version, and the Dockerfile exposes the same port."""
    container = _container(docs)
    instructions = _dockerfile()
    (cmd,) = [json.loads(args) for word, args in instructions if word == "CMD"]
    (entrypoint,) = [json.loads(args) for word, args in instructions if word == "ENTRYPOINT"]
    assert entrypoint == ["incident-bridge"]
    assert container["args"] == cmd
    assert "command" not in container
    config_path = PurePosixPath(cmd[cmd.index("--config") + 1])
    mount = _mounts(docs)["config"]
    assert PurePosixPath(mount["mountPath"]) == config_path.parent
    (config_map,) = [
        c for c in _all(docs, "ConfigMap") if c["metadata"]["name"] == mount["configMap"]["name"]
    ]
    assert set(config_map["data"]) == {config_path.name}
    image, _, tag = container["image"].rpartition(":")
    assert image == "ghcr.io/acme/incident-bridge"
    assert tag == metadata.version("incident-bridge")
    assert ("EXPOSE", str(container["ports"][0]["containerPort"])) in instructions
    healthcheck = next(args for word, args in instructions if word == "HEALTHCHECK")
    assert f"http://127.0.0.1:{Config().listen_port}/healthz" in healthcheck


def test_config_passes_check_config(docs: Sequence[Doc], tmp_path: Path) -> None:
    """``incident-bridge check-config`` accepts the ConfigMap's config with the example Secret's
    files and the container's environment, as the pod would see them."""
    laid = Materialized(docs, tmp_path)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_BRIDGE_")}
    env = {**inherited, **laid.env}
    result = subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [sys.executable, "-m", "bridge", "check-config", "--config", str(laid.config_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("valid; GitHub acme/incidents")


def _strings(value: Any) -> Iterator[str]:
    """Every string value inside ``value`` (parsed YAML)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_secret_files_exist_in_the_example(docs: Sequence[Doc], bridge_config: Config) -> None:
    """Every secret the config reads from the Secret's mount is a key of secret.example.yaml."""
    mount = _mounts(docs)["secrets"]["mountPath"]
    config = yaml.safe_load(next(iter(_one(docs, "ConfigMap")["data"].values())))
    used = {PurePosixPath(v).name for v in _strings(config) if v.startswith(mount + "/")}
    assert used == {"github-token", "webhook-bearer-token", "api-read-token"}
    assert used <= set(_secret_example()["stringData"])
    assert bridge_config.webhook.bearer_token is not None
    assert not bridge_config.github.dry_run


# ---------------------------------------------------------------------------------------------
# Service, ServiceMonitor, NetworkPolicy


def test_service_and_service_monitor_find_the_pods(docs: Sequence[Doc]) -> None:
    """Service → pods by label and port name; ServiceMonitor → Service by label and port name,
    scraping the bridge's /metrics."""
    pod_labels = _pod_labels(docs)
    service = _one(docs, "Service")
    assert _selects({"matchLabels": service["spec"]["selector"]}, pod_labels)
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == _container(docs)["ports"][0]["name"]
    assert port["port"] == Config().listen_port
    monitor = _one(docs, "ServiceMonitor")
    assert _selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] == port["name"]
        assert ("GET", endpoint["path"]) in _routes()
    assert endpoint["path"] == "/metrics"


def test_network_policy_admits_alertmanager_and_prometheus(docs: Sequence[Doc]) -> None:
    """Ingress on the bridge's port from Alertmanager and Prometheus; egress to DNS and HTTPS."""
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"], _pod_labels(docs))
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["http"]
    sources = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in ingress["from"]
    }
    assert sources == {"alertmanager", "prometheus"}
    ports = {
        (p["port"], p.get("protocol", "TCP")) for rule in policy["egress"] for p in rule["ports"]
    }
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP")} <= ports


def test_every_object_is_namespaced_and_labelled(docs: Sequence[Doc]) -> None:
    """The overlay's own objects land in the same namespace with the app.kubernetes.io labels."""
    namespace = _one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] != "Namespace":
            assert meta["namespace"] == namespace, doc["kind"]
        assert meta["labels"]["app.kubernetes.io/name"] == "incident-bridge", doc["kind"]
        assert meta["labels"]["app.kubernetes.io/instance"] == "incident-bridge", doc["kind"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "incident-bridge", doc["kind"]


# ---------------------------------------------------------------------------------------------
# The overlays


def test_sqlite_overlay_is_one_replica_on_a_volume() -> None:
    """SQLite: one writer, so 1 replica, Recreate, and the database on a PersistentVolumeClaim."""
    docs = _render("sqlite")
    deployment = _one(docs, "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    claim = _one(docs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    data = _mounts(docs)["data"]
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not data.get("readOnly", False)
    with tempfile.TemporaryDirectory() as tmp:
        config = Materialized(docs, Path(tmp)).config()
        assert config.store.sqlite_path is not None
        assert config.store.sqlite_path.parent == Path(tmp) / data["mountPath"].lstrip("/")
    assert not _all(docs, "PodDisruptionBudget")
    assert not _all(docs, "HorizontalPodAutoscaler")


@pytest.mark.parametrize("name", ["postgres", "postgres-hpa"])
def test_postgres_overlays_are_highly_available(name: str) -> None:
    """PostgreSQL: at least two replicas, rolling updates that never drop below the replica
    count, a PodDisruptionBudget that leaves a replica, and the store URL from the Secret."""
    docs = _render(name)
    deployment = _one(docs, "Deployment")["spec"]
    hpas = _all(docs, "HorizontalPodAutoscaler")
    replicas = hpas[0]["spec"]["minReplicas"] if hpas else deployment["replicas"]
    assert 2 <= replicas <= 3
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = _one(docs, "PodDisruptionBudget")["spec"]
    assert _selects(budget["selector"], _pod_labels(docs))
    assert budget["maxUnavailable"] < replicas
    assert not _all(docs, "PersistentVolumeClaim")
    with tempfile.TemporaryDirectory() as tmp:
        laid = Materialized(docs, Path(tmp))
        assert laid.config().store.is_postgres
    egress = {
        p["port"] for rule in _one(docs, "NetworkPolicy")["spec"]["egress"] for p in rule["ports"]
    }
    assert 5432 in egress


def test_hpa_example_follows_the_guide() -> None:
    """The optional HPA: the guide's 70 % CPU and 80 % memory, owning the replica count."""
    docs = _render("postgres-hpa")
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    deployment = _one(docs, "Deployment")
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert hpa["maxReplicas"] >= hpa["minReplicas"] >= 2


# ---------------------------------------------------------------------------------------------
# Alertmanager


@functools.cache
def _alertmanager() -> Doc:
    doc: Doc = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    return doc


def _bridge_receiver() -> tuple[str, Doc]:
    """The receiver that posts to the bridge's webhook, and its webhook config."""
    found = [
        (receiver["name"], hook)
        for receiver in _alertmanager()["receivers"]
        for hook in receiver.get("webhook_configs", [])
        if urllib.parse.urlsplit(hook["url"]).path == "/api/v1/alerts"
    ]
    assert len(found) == 1, found
    return found[0]


def _walk(route: Doc) -> Iterator[Doc]:
    yield route
    for child in route.get("routes", []):
        yield from _walk(child)


def _amtool_receivers(labels: Mapping[str, str]) -> set[str]:
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [
            _tool("amtool", "apt-get install prometheus-alertmanager"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER}",
            *(f"{k}={v}" for k, v in sorted(labels.items())),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(result.stdout.strip().split(","))


def test_alertmanager_posts_to_the_service_with_the_bearer_token() -> None:
    """The bridge receiver: the Service's in-cluster address, resolved notifications, the bearer
    token (the Secret's webhook-bearer-token)."""
    docs = _render("sqlite")
    service = _one(docs, "Service")
    _, hook = _bridge_receiver()
    url = urllib.parse.urlsplit(hook["url"])
    meta = service["metadata"]
    assert url.hostname == f"{meta['name']}.{meta['namespace']}.svc"
    assert url.port == service["spec"]["ports"][0]["port"]
    assert ("POST", url.path) in _routes()
    assert hook["send_resolved"] is True
    authorization = hook["http_config"]["authorization"]
    assert authorization.get("type", "Bearer") == "Bearer"
    assert authorization.get("credentials_file") or authorization.get("credentials")


def test_alertmanager_notifications_fit_max_body_bytes(bridge_config: Config) -> None:
    """max_alerts generous-sized alerts fit the bridge's max_body_bytes (a 413 is not retried),
    for the deployed config and the default; the generated alerts are well under that size."""
    _, hook = _bridge_receiver()
    max_alerts = hook["max_alerts"]
    assert max_alerts > 0  # 0 is unlimited: a large group would be refused whole
    for limit in (bridge_config.webhook.max_body_bytes, Config().webhook.max_body_bytes):
        assert max_alerts * ALERT_BYTES + ENVELOPE_BYTES <= limit
    labels = {"job": "payments-api", "instance": "payments-api-7d9f8b6c5d-x2k4q:8080"}
    for group in rule_groups(Rules.bundled())["groups"]:
        for rule in group["rules"]:
            expr = urllib.parse.quote(rule["expr"])
            alert = {
                "status": "firing",
                "labels": {"alertname": rule["alert"], **labels, **rule["labels"]},
                "annotations": rule["annotations"],
                "startsAt": "2025-11-12T03:04:05.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"https://prometheus.example.com/graph?g0.expr={expr}&g0.tab=1",
                "fingerprint": "0123456789abcdef",
            }
            assert len(json.dumps(alert).encode()) < ALERT_BYTES / 2, rule["alert"]


def test_watchdog_repeats_within_the_heartbeat_timeout(bridge_config: Config) -> None:
    """The Watchdog reaches the bridge at least every repeat_interval + group_interval, shorter
    than heartbeat.timeout (deployed and default); the rule and the route use its name."""
    name = bridge_config.heartbeat.alertname
    assert name == Config().heartbeat.alertname
    (route,) = [
        r for r in _walk(_alertmanager()["route"]) if f'alertname="{name}"' in r.get("matchers", [])
    ]
    assert _amtool_receivers({"alertname": name, "severity": "none"}) == {route["receiver"]}
    assert route["receiver"] == _bridge_receiver()[0]
    gap = parse_duration(route["repeat_interval"]) + parse_duration(route["group_interval"])
    for timeout in (bridge_config.heartbeat.timeout, Config().heartbeat.timeout):
        assert gap < timeout
    alerts = {r["alert"] for g in rule_groups(Rules.bundled())["groups"] for r in g["rules"]}
    assert name in alerts


def test_alerts_about_the_bridge_also_reach_another_receiver() -> None:
    """Each meta-alert, and an alert on the bridge's scrape job (the Service's name), goes to a
    receiver that is not the bridge and that sends somewhere."""
    bridge, _ = _bridge_receiver()
    receivers = {r["name"]: r for r in _alertmanager()["receivers"]}
    (meta,) = [
        g for g in rule_groups(Rules.bundled())["groups"] if g["name"] == "incident-bridge-meta"
    ]
    job = _one(_render("sqlite"), "Service")["metadata"]["name"]
    cases = [{"alertname": r["alert"], "job": job, **r["labels"]} for r in meta["rules"]]
    cases.append({"alertname": "ServiceUnavailable", "job": job, "priority": "P0"})
    for labels in cases:
        others = _amtool_receivers(labels) - {bridge}
        assert others, labels
        for name in others:
            assert any(k.endswith("_configs") and v for k, v in receivers[name].items()), name


def _matches(matcher: str, labels: Mapping[str, str]) -> bool:
    found = re.fullmatch(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
    assert found is not None, matcher
    name, op, value = found.groups()
    have = labels.get(name, "")
    if op in {"=~", "!~"}:
        return (re.fullmatch(value, have) is not None) == (op == "=~")
    return (have == value) == (op == "=")


def test_inhibit_rules_never_mute_the_watchdog(bridge_config: Config) -> None:
    """There are inhibit rules, and none of them can mute the heartbeat."""
    rules = _alertmanager()["inhibit_rules"]
    assert rules
    watchdog = {"alertname": bridge_config.heartbeat.alertname, "severity": "none"}
    for rule in rules:
        assert not all(_matches(m, watchdog) for m in rule["target_matchers"]), rule
