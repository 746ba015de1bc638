"""``incident-bridge``: serve | check-config | simulate | rebuild | report | rules export |
rules generate."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import structlog
from aiohttp import web

from bridge import logs
from bridge.alertmanager import WebhookError, parse_webhook
from bridge.app import (
    StartupError,
    build_audience,
    build_policy,
    build_render_options,
    create_app,
    load_rules,
    make_store,
    make_tracker,
)
from bridge.clock import system_clock
from bridge.config import Config, ConfigError, load_config
from bridge.durations import parse_duration
from bridge.engine import apply_notification
from bridge.github import render
from bridge.github.client import GitHubError
from bridge.identity import identity_key, identity_of
from bridge.metrics import Metrics
from bridge.notify.policy import notifications
from bridge.promrules import KUBERNETES_RULE_FILE, generate, prometheus_rule, skipped
from bridge.rebuild import RebuildReport, rebuild
from bridge.report import build, targets_of
from bridge.report_render import render as render_report
from bridge.rules import Rules, RulesError, bundled_directory
from bridge.store.base import IncidentHistory, Store, StoreUnavailable
from bridge.store.sqlite import SqliteStore, StoreInUse
from bridge.store.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS
from bridge.web.services import SERVICES

log = structlog.get_logger("bridge.cli")

EXIT_INVALID = 2
EXIT_UNAVAILABLE = 1  # the store cannot be opened: a retry may succeed
# Kubernetes' default grace period is 30 s; CONTRACT.md promises exit within 10 s of SIGTERM.
_SHUTDOWN_TIMEOUT = 3.0


def _config_path(arg: str | None) -> Path | None:
    value = arg or os.environ.get("INCIDENT_BRIDGE_CONFIG")
    return Path(value) if value else None


def _load(arg: str | None) -> tuple[Config, Rules] | None:
    """The config and its rules, or None after printing every problem (exit 2)."""
    try:
        config = load_config(_config_path(arg))
        rules = load_rules(config)
    except (ConfigError, RulesError) as error:
        _print_problems(error.problems)
        return None
    return config, rules


def _print_problems(problems: Sequence[str]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


async def _serve(config: Config) -> None:
    # Signals first: a SIGTERM during start-up (a rolling update) is a clean stop once started.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, reuse_address=True)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # close the store and stop the workers before reporting
        raise
    # Everything built at start-up (rules, config, modules, the app) lives as long as the
    # process: moved out of the collector's sight, full collections stop walking it on every
    # pass, which were the longest pauses under load (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    log.info(
        "serving",
        listen=f"{config.listen_host}:{config.listen_port}",
        dry_run=config.github.dry_run,
        repository=config.github.repository,
        store=config.store.display,
    )
    await stop.wait()
    # /readyz answers 503 from now on; in-flight webhooks finish; the outbox finishes the effect
    # in hand and leaves the rest persisted for the next start.
    app[SERVICES].shutting_down = True
    log.info("shutting_down")
    await runner.cleanup()
    log.info("stopped")


def cmd_serve(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    config, _ = loaded
    if config.config_path is None:
        log.info("zero_config", note="no config file: dry-run, nothing is sent anywhere")
    try:
        asyncio.run(_serve(config))
    except StartupError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    except StoreUnavailable as error:  # in use by another serve, unreachable, unreadable
        print(f"store: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as error:  # the listen address is taken or not ours to bind
        print(
            f"listen: cannot listen on {config.listen}: {error.strerror or error}", file=sys.stderr
        )
        return EXIT_INVALID
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    config, _ = loaded
    where = config.config_path or "zero-config defaults"
    mode = (
        "dry-run (no GitHub credentials)"
        if config.github.dry_run
        else f"GitHub {config.github.repository}"
    )
    print(f"{where}: valid; {mode}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    config, rules = loaded
    try:
        notification = parse_webhook(Path(args.payload).read_bytes())
    except OSError as error:
        print(f"{args.payload}: {error.strerror}", file=sys.stderr)
        return EXIT_INVALID
    except WebhookError as error:
        print(f"{args.payload}: {error}", file=sys.stderr)
        return EXIT_INVALID
    policy = build_policy(config, rules)
    now = system_clock()
    identity = identity_of(notification, config.identity)
    decision = apply_notification(None, notification, now, policy)
    incident = decision.incident
    alerts: list[dict[str, object]] = []
    for a in notification.alerts:
        decided = policy.classify(a.labels, a.annotations)
        alerts.append(
            {
                "fingerprint": a.fingerprint,
                "alertname": a.labels.get("alertname", ""),
                "status": a.status,
                "heartbeat": a.labels.get("alertname") == policy.heartbeat_alertname,
                "priority": str(decided.priority),
                "rule": decided.rule,
                "maintenance": decided.maintenance,
            }
        )
    result: dict[str, object] = {
        "identity": {
            "mode": config.identity,
            "value": identity.replace("\x00", " "),
            "key": identity_key(identity),
        },
        "alerts": alerts,
        "outcome": decision.outcome,
    }
    actions: list[str] = []
    if incident is not None and decision.changed:
        incident.key = identity_key(identity)
        incident.number = 1 if incident.number is None else incident.number
        desired = render.render_issue(
            incident, decision.events, build_render_options(config, rules)
        )
        result["priority"] = str(incident.priority)
        result["priority_rule"] = incident.priority_rule
        result["kind"] = incident.kind
        target = "dry-run" if config.github.dry_run else config.github.repository
        for effect in decision.effects:
            if effect.kind == "github.sync":
                labels = sorted(desired.labels)
                actions.append(
                    f"github ({target}): create issue {desired.title!r} labels={labels}"
                    f" state={desired.state}"
                )
            else:
                actions.append(f"github ({target}): comment for event {effect.event_seq}")
        # The messages the notify policy sends for it (by name: never an address or number).
        channel = config.slack.channel if config.slack is not None else ""
        for message in notifications(decision, build_audience(config, rules)):
            way = message.kind.removeprefix("notify.")
            event = message.payload.get("event", "")
            if way == "slack":
                actions.append(f"slack: {event} message in {channel}")
            else:
                actions.append(f"{way}: {event} to {message.payload.get('name', '')}")
    result["actions"] = actions
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"identity: {result['identity']}")
    for alert in alerts:
        tag = " (heartbeat: never an incident)" if alert["heartbeat"] else ""
        what = f"{alert['alertname']} [{alert['status']}]"
        print(f"alert {what} → {alert['priority']} by {alert['rule']}{tag}")
    print(f"outcome: {decision.outcome}")
    if "priority" in result:
        print(f"incident priority: {result['priority']} ({result['priority_rule']})")
    for action in actions:
        print(f"action: {action}")
    if not actions:
        print("action: none")
    return 0


def cmd_rules_export(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        print(
            f"{target}: exists and is not an empty directory; choose an empty or new one",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        shutil.copytree(bundled_directory(), target, dirs_exist_ok=True)
    except OSError as error:  # no permission, a read-only file system, a file in the path
        print(f"rules export: {target}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"bundled rules written to {target}; point rules_dir at it")
    return 0


def _kubernetes_rule_path(args: argparse.Namespace, rules: Rules) -> Path | None:
    """Where the PrometheusRule goes: ``--prometheus-rule``, else, for the bundled rules of a
    source checkout with no DIR given, ``<checkout>/deploy/kubernetes/base/prometheusrule.yaml``."""
    if args.prometheus_rule:
        return Path(args.prometheus_rule)
    if args.dir or rules.directory.resolve() != bundled_directory().resolve():
        return None
    path = rules.directory.parent / KUBERNETES_RULE_FILE
    return path if path.parent.is_dir() else None


def cmd_rules_generate(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    _, rules = loaded
    target = Path(args.dir) if args.dir else rules.directory / "prometheus"
    try:
        outputs = {target / name: text for name, text in generate(rules).items()}
        manifest = _kubernetes_rule_path(args, rules)
        if manifest is not None:
            outputs[manifest] = prometheus_rule(rules)
    except ValueError as error:  # a threshold row the test generator cannot drive into its band
        print(f"rules generate: {error}", file=sys.stderr)
        return EXIT_INVALID
    for note in skipped(rules):
        print(f"note: skipped {note}", file=sys.stderr)
    if args.check:
        stale: list[Path] = []
        for path, text in outputs.items():
            try:
                current = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                current = None
            if current != text:
                stale.append(path)
        for path in stale:
            print(
                f"{path}: differs from what `incident-bridge rules generate` writes",
                file=sys.stderr,
            )
        if stale:
            return 1
        print(f"{target}: up to date")
        if manifest is not None:
            print(f"{manifest}: up to date")
        return 0
    for path, text in outputs.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:  # no permission, a read-only file system, a file in the path
            print(f"rules generate: {path}: {error.strerror or error}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
    return 0


async def _rebuild(config: Config, rules: Rules) -> RebuildReport:
    store = make_store(config, system_clock)
    metrics = Metrics()
    tracker = make_tracker(config, metrics, system_clock)
    try:
        await store.open()
    except StoreInUse as error:
        raise StoreInUse(f"{error}; rebuild needs serve stopped") from None
    try:
        return await rebuild(store, tracker, build_render_options(config, rules), system_clock)
    finally:
        await store.close()
        close = getattr(tracker, "close", None)
        if close is not None:
            await close()


def cmd_rebuild(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    config, rules = loaded
    if config.github.dry_run:
        print(
            "github: rebuild reads the repository's issues: set github.repository and credentials",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        report = asyncio.run(_rebuild(config, rules))
    except StartupError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    except StoreUnavailable as error:
        print(f"store: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except GitHubError as error:
        print(f"github: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.format == "json":
        # One line, after the JSON log lines the run wrote on stdout: the last line is the report.
        print(json.dumps({"event": "rebuild_report", **report.as_dict()}))
    else:
        print(
            f"restored {len(report.restored)} ({len(report.from_labels)} from labels only, "
            f"without a state line), {len(report.present)} already present, "
            f"{len(report.skipped)} skipped"
        )
        for kind, number in sorted(report.highest.items()):
            print(f"highest {kind}: {number}")
        for line in report.skipped:
            print(f"skipped {line}")
    return 0


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date and time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"not a date or time: {text!r} (e.g. 2026-11-01 or 2026-11-01T09:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def report_window(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``--since`` (a duration back from the end, like ``30d``, or a date or time) and
    ``--until`` (a date or time; default now) as a window; ValueError for anything else."""
    end = parse_moment(until) if until else now
    try:
        start = end - parse_duration(since)
    except OverflowError:
        raise ValueError(f"--since: {since} reaches before the year 1") from None
    except ValueError:
        if not since[:1].isdigit() or len(since) < 10:
            raise ValueError(
                f"--since: {since!r} is neither a duration (30d, 12h) nor a date (2026-11-01)"
            ) from None
        start = parse_moment(since)
    if start >= end:
        raise ValueError(f"--since: {since} must be before the report's end, {end.isoformat()}")
    return start, end


class _NotReadable(Exception):
    """The report will not open this store: something to fix first (exit 2)."""


def _report_store(config: Config) -> Store:
    """The store opened beside a running ``serve``: SQLite without the process lock (the writer
    stays serve's), PostgreSQL as usual."""
    path = config.store.sqlite_path
    if path is None:
        return make_store(config, system_clock)
    if not Path(path).exists():  # opening would create an empty database
        raise _NotReadable(f"{path} does not exist: nothing to report on (store.url?)")
    version = _sqlite_schema(Path(path))
    if version < len(SQLITE_MIGRATIONS):  # opening would migrate it under the running serve
        raise _NotReadable(
            f"{path} has schema version {version}, older than this bridge's"
            f" ({len(SQLITE_MIGRATIONS)}); the report only reads: upgrade serve first"
        )
    return SqliteStore(Path(path), clock=system_clock, exclusive=False)


def _sqlite_schema(path: Path) -> int:
    """The database's schema version, read without writing anything."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as error:
        raise StoreUnavailable(f"cannot read {path}: {error}") from None
    return version


async def _histories(store: Store, since: datetime, until: datetime) -> list[IncidentHistory]:
    await store.open()
    try:
        return await store.incidents_between(since, until)
    finally:
        await store.close()


def _logs_to_stderr() -> None:
    """The report may be the whole of stdout: log lines go to stderr instead."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(name)s %(message)s", force=True
    )


def cmd_report(args: argparse.Namespace) -> int:
    _logs_to_stderr()
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_INVALID
    config, rules = loaded
    try:
        since, until = report_window(args.since, args.until, system_clock())
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return EXIT_INVALID
    try:
        store = _report_store(config)
        histories = asyncio.run(_histories(store, since, until))
    except (StartupError, _NotReadable) as error:
        print(f"store: {error}", file=sys.stderr)
        return EXIT_INVALID
    except StoreUnavailable as error:
        print(f"store: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    report = build(histories, since, until, targets_of(rules))
    text = render_report(report, args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            print(f"--output: cannot write {args.output}: {error.strerror}", file=sys.stderr)
            return EXIT_INVALID
    else:
        sys.stdout.write(text)
    log.info(
        "report",
        since=since.isoformat(),
        until=until.isoformat(),
        incidents=report.incidents,
        format=args.format,
        output=args.output or "stdout",
        store=config.store.display,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="incident-bridge", description=__doc__)
    top.add_argument("--log-format", choices=["json", "console"], default="json")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="receive Alertmanager webhooks and keep issues current")
    serve.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate the config and rules; exit 2 on problems")
    check.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    check.set_defaults(func=cmd_check_config)

    simulate = sub.add_parser(
        "simulate", help="show what a webhook payload would do, touching nothing"
    )
    simulate.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    simulate.add_argument("--format", choices=["text", "json"], default="text")
    simulate.add_argument("payload", help="an Alertmanager webhook JSON file")
    simulate.set_defaults(func=cmd_simulate)

    rebuild_cmd = sub.add_parser(
        "rebuild",
        help="reconstruct the store from the markers in the repository's issues (serve stopped)",
    )
    rebuild_cmd.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    rebuild_cmd.add_argument("--format", choices=["text", "json"], default="text")
    rebuild_cmd.set_defaults(func=cmd_rebuild)

    report_cmd = sub.add_parser(
        "report",
        help="MTTD / MTTA / MTTR, SLA compliance, noisy groups and availability over a window",
    )
    report_cmd.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    report_cmd.add_argument(
        "--since",
        default="30d",
        help="the window's start: a duration back from its end (30d, 12h) or a date or time"
        " (2026-11-01, 2026-11-01T09:00:00Z); default 30d",
    )
    report_cmd.add_argument(
        "--until", help="the window's end: a date or time (default: now); UTC unless it says"
    )
    report_cmd.add_argument("--format", choices=["markdown", "html"], default="markdown")
    report_cmd.add_argument(
        "--output", metavar="FILE", help="write the report to FILE instead of stdout"
    )
    report_cmd.set_defaults(func=cmd_report)

    rules = sub.add_parser("rules", help="work with the rules directory")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    export = rules_sub.add_parser("export", help="write the bundled rules to DIR for editing")
    export.add_argument("dir")
    export.set_defaults(func=cmd_rules_export)
    generate_cmd = rules_sub.add_parser(
        "generate",
        help="write Prometheus alerting rules and promtool unit tests from thresholds.yaml",
    )
    generate_cmd.add_argument(
        "dir", nargs="?", help="output directory (default: <rules_dir or bundled>/prometheus)"
    )
    generate_cmd.add_argument("--config", help="YAML config file (or INCIDENT_BRIDGE_CONFIG)")
    generate_cmd.add_argument(
        "--prometheus-rule",
        metavar="FILE",
        help="also write the rules as a prometheus-operator PrometheusRule to FILE (default, for"
        f" the bundled rules of a source checkout without DIR: {KUBERNETES_RULE_FILE})",
    )
    generate_cmd.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file differs from what would be written",
    )
    generate_cmd.set_defaults(func=cmd_rules_generate)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
