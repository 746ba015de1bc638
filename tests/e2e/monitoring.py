"""Real Prometheus and real Alertmanagers on 127.0.0.1, for the end-to-end tests.

* ``fast_rules(directory)``: the project's rules (``rules/prometheus/*.rules.yml``) copied with
  every ``for:`` shortened to ``FOR`` (parsed and rewritten, never edited in place), so a test
  sees an alert fire within seconds.
* ``alertmanager_config(...)``: the shipped ``deploy/alertmanager/alertmanager.yml`` — its routes,
  inhibition and bridge receiver — with second-scale timers, the bridge receiver's webhook URL(s)
  on loopback and the bearer token in a file, as the shipped config mounts it.
* ``Prometheus`` and ``Alertmanager``: the Debian binaries as child processes, each on a free
  port, storage in the test's directory, stopped (SIGTERM, then SIGKILL) by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from support import eventually

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "rules" / "prometheus").glob("*.rules.yml"))
SHIPPED_ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PROMETHEUS_BINARY = Path("/usr/bin/prometheus")
ALERTMANAGER_BINARY = Path("/usr/bin/prometheus-alertmanager")
BRIDGE_RECEIVER = "incident-bridge"  # the shipped config's receiver for the bridge
FOR = "2s"  # every rule's `for:` in the test copy (the shipped ones are 1m to 1w)
RESEND_DELAY = "3s"  # Prometheus re-sends active alerts this often (default 1m)


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def samples(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` (its full name, e.g. ``..._total``) whose labels
    include ``labels``, in a Prometheus text exposition; 0 when there is none."""
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in rest for key, val in labels.items()):
            total += float(value)
    return total


async def scrape(url: str) -> str:
    """``GET url`` (a ``/metrics`` endpoint) as text."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(url) as response,
    ):
        response.raise_for_status()
        return await response.text()


# -- config ------------------------------------------------------------------------------------


def fast_rules(directory: Path) -> list[Path]:
    """The project's Prometheus rule files, copied into ``directory`` with every ``for:`` set
    to ``FOR``; the rules themselves (expressions, labels, annotations) are untouched."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in RULES:
        data = yaml.safe_load(source.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = FOR
        target = directory / source.name
        target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        written.append(target)
    return written


def alertmanager_config(
    directory: Path, bridge_urls: Iterable[str], token: str, *, repeat_interval: str = "2s"
) -> dict[str, Any]:
    """The shipped Alertmanager config for a test: the default route's group_wait and
    group_interval 1s and repeat_interval ``repeat_interval`` (so repeats come within seconds),
    the bridge receiver's webhook — everything about it but the URL kept — once per URL in
    ``bridge_urls``, its bearer token in a file under ``directory``, and the fallback
    receiver's SMTP password file there too."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "bridge-token"
    token_file.write_text(token + "\n")
    password_file = directory / "smtp-password"
    password_file.write_text("not-used\n")
    if "smtp_auth_password_file" in config.get("global", {}):
        config["global"]["smtp_auth_password_file"] = str(password_file)
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval=repeat_interval)
    [receiver] = [r for r in config["receivers"] if r["name"] == BRIDGE_RECEIVER]
    [shipped] = receiver["webhook_configs"]
    hooks = []
    for url in bridge_urls:
        hook = copy.deepcopy(shipped)
        hook["url"] = url
        hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
        hooks.append(hook)
    receiver["webhook_configs"] = hooks
    return config


# -- processes ---------------------------------------------------------------------------------


class _Process:
    """A child process on a free loopback port, its output in ``<directory>/<name>.log``."""

    name = "process"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / f"{self.name}.log"
        self.process: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self, within: float = 30.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        await eventually(self._ready, f"{self.name} on {self.url} is ready", within)

    async def _ready(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"{self.url}/-/ready") as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent, never leaves the process behind."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def get_json(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"{self.url}{path}") as response,
        ):
            response.raise_for_status()
            return await response.json()

    async def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples with these labels on the process' own ``/metrics``."""
        return samples(await scrape(f"{self.url}/metrics"), name, **labels)


class Alertmanager(_Process):
    """``prometheus-alertmanager`` with ``config``, unclustered (``--cluster.listen-address=``
    empty: each one notifies on its own, as two peers that cannot see each other do)."""

    name = "alertmanager"

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        super().__init__(directory)
        self.config = config

    def command(self) -> list[str]:
        config_file = self.directory / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return [
            str(ALERTMANAGER_BINARY),
            f"--config.file={config_file}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    async def notifications(self) -> float:
        """Webhook notifications it has sent (``alertmanager_notifications_total``)."""
        return await self.metric("alertmanager_notifications_total", integration="webhook")

    async def failed(self) -> float:
        """Webhook notifications that failed (``alertmanager_notifications_failed_total``)."""
        return await self.metric("alertmanager_notifications_failed_total", integration="webhook")

    async def alerts(self, alertname: str) -> list[dict[str, Any]]:
        """Its active alerts named ``alertname`` (API v2)."""
        data: list[dict[str, Any]] = await self.get_json(
            f'/api/v2/alerts?filter=alertname%3D"{alertname}"'
        )
        return data


class Prometheus(_Process):
    """``prometheus`` scraping ``targets`` (job name → (target, extra target labels)) every
    second, evaluating ``rule_files`` every second and sending to ``alertmanagers``."""

    name = "prometheus"

    def __init__(
        self,
        directory: Path,
        targets: dict[str, tuple[str, dict[str, str]]],
        rule_files: list[Path],
        alertmanagers: list[Alertmanager],
    ) -> None:
        super().__init__(directory)
        self.targets = targets
        self.rule_files = rule_files
        self.alertmanagers = alertmanagers

    def command(self) -> list[str]:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in self.rule_files],
            "alerting": {
                "alertmanagers": [
                    {
                        "api_version": "v2",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{am.port}" for am in self.alertmanagers]}
                        ],
                    }
                ]
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [target], "labels": labels}],
                }
                for job, (target, labels) in self.targets.items()
            ],
        }
        config_file = self.directory / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return [
            str(PROMETHEUS_BINARY),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # An alert firing before the Alertmanagers are discovered (service discovery
            # updates come every 5 s: the Watchdog fires at the first evaluation) is sent
            # again after this, not after the default minute. Active alerts are valid for
            # four times this in Alertmanager (endsAt), so this also bounds how long a
            # stalled Prometheus may stay silent before Alertmanager resolves them itself.
            f"--rules.alert.resend-delay={RESEND_DELAY}",
            "--log.level=warn",
        ]

    async def ready_to_alert(self) -> bool:
        """Every target scraped and up, and every Alertmanager discovered (so a firing alert
        goes out at once, not at the next resend a minute later)."""
        targets = (await self.get_json("/api/v1/targets"))["data"]["activeTargets"]
        managers = (await self.get_json("/api/v1/alertmanagers"))["data"]["activeAlertmanagers"]
        return (
            len(targets) == len(self.targets)
            and all(t["health"] == "up" for t in targets)
            and len(managers) == len(self.alertmanagers)
        )

    async def rules_loaded(self) -> int:
        """How many alerting rules it evaluates."""
        groups = (await self.get_json("/api/v1/rules?type=alert"))["data"]["groups"]
        return sum(len(group["rules"]) for group in groups)
