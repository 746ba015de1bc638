"""Configuration: loading, ${VAR} substitution, *_file secrets, validation and problem reports."""

from __future__ import annotations

import json
import textwrap
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bridge import config as config_module
from bridge.business_hours import BusinessHours
from bridge.config import (
    Config,
    ConfigError,
    GitHubConfig,
    Secret,
    describe,
    load_config,
)
from bridge.durations import format_duration, parse_duration

CONTRACT_EXAMPLE = """\
listen: 0.0.0.0:9095                 # default 127.0.0.1:9095
webhook:
  bearer_token: ${BRIDGE_TOKEN}      # when set, POST /api/v1/alerts requires a bearer token
  max_body_bytes: 1048576
api:
  read_token: ${READ_TOKEN}          # when set, GET /api/v1/* requires it as a bearer token
store:
  url: sqlite:////var/lib/incident-bridge/state.db  # SQLAlchemy-style
  retention: 90d                     # timeline events and finished outbox rows kept this long
identity: group_key                  # group_key (default) | group_labels
github:
  api_url: https://api.github.com    # GitHub Enterprise: https://ghe.example.com/api/v3
  repository: acme/incidents
  token: ${GITHUB_TOKEN}             # or app_id + installation_id + private_key_file
  webhook_secret: ${GH_HOOK_SECRET}  # verifies POST /api/v1/github/events
  close_on_resolve: true
  reopen_window: 24h                 # counted from the resolution
  labels: [phase-09]                 # extra labels on every incident issue
  budget: {per_minute: 60, per_hour: 400, reserve: 0.25}   # content-creating requests
rules_dir: ./rules                   # replaces the bundled rules directory when set
business_hours: {timezone: UTC, days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
slack:
  api_url: https://slack.com/api/
  token: ${SLACK_TOKEN}
  channel: "#incidents"
email:
  smtp_host: smtp.example.com
  smtp_port: 587
  starttls: true                     # username and password optional
  username: ...
  password: ${SMTP_PASSWORD}
  from: incident-bridge@example.com
sms:
  twilio:
    api_url: https://api.twilio.com
    account_sid: AC...
    auth_token: ${TWILIO_TOKEN}
    from: "+15550000000"
stakeholders:
  - {name: Ops lead, email: ops-lead@example.com, phone: "+15551230001"}
  - {name: CTO,      email: cto@example.com,      phone: "+15551230002"}
escalation:                          # who is paged when a response deadline is missed
  - {name: On-call, email: oncall@example.com, phone: "+15551230009"}
alertmanager:
  urls: [http://alertmanager-0:9093, http://alertmanager-1:9093]  # every peer
  group_wait: 30s                    # as in the Alertmanager route
heartbeat: {alertname: Watchdog, timeout: 10m}
status_page: {enabled: true, title: "Acme status"}
"""

CONTRACT_ENV = {
    "BRIDGE_TOKEN": "bridge-token-s3cr3t",
    "READ_TOKEN": "read-token-s3cr3t",
    "GITHUB_TOKEN": "ghp_github-token-s3cr3t",
    "GH_HOOK_SECRET": "hook-secret-s3cr3t",
    "SLACK_TOKEN": "xoxb-slack-token-s3cr3t",
    "SMTP_PASSWORD": "smtp-password-s3cr3t",
    "TWILIO_TOKEN": "twilio-token-s3cr3t",
}

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 -- an expected value, nothing binds in these tests

PEM_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIBfakefakefake\n-----END RSA PRIVATE KEY-----"

CONTACTS = {
    "stakeholders": [{"name": "Ops", "email": "ops@example.com", "phone": "+15551230001"}],
}

# Every secret: (section path, key, the other keys its section needs, extra top-level keys).
SECRET_CASES: list[tuple[tuple[str, ...], str, dict[str, Any], dict[str, Any]]] = [
    (("webhook",), "bearer_token", {}, {}),
    (("api",), "read_token", {}, {}),
    (("github",), "token", {"repository": "acme/incidents"}, {}),
    (("github",), "webhook_secret", {}, {}),
    (
        ("github",),
        "private_key",
        {"repository": "acme/incidents", "app_id": 1, "installation_id": 2},
        {},
    ),
    (("slack",), "token", {"channel": "#incidents"}, {}),
    (
        ("email",),
        "password",
        {"smtp_host": "smtp.example.com", "from": "bridge@example.com", "username": "bridge"},
        CONTACTS,
    ),
    (("sms", "twilio"), "auth_token", {"account_sid": "AC123", "from": "+15550000000"}, CONTACTS),
]
SECRET_IDS = [".".join((*section, key)) for section, key, _, _ in SECRET_CASES]


def write(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def write_data(directory: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env or {})
    assert caught.value.problems, "a ConfigError always lists its problems"
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def nested(section: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = values
    for key in reversed(section):
        data = {key: data}
    return data


def secret_config(index: int, secret_keys: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid config for SECRET_CASES[index] with ``secret_keys`` in its section."""
    section, _, others, extra = SECRET_CASES[index]
    return {**nested(section, {**others, **secret_keys}), **extra}


def section_of(config: Config, section: tuple[str, ...]) -> Any:
    found: Any = config
    for key in section:
        found = getattr(found, key)
    return found


# --------------------------------------------------------------------------------------------
# Whole files


def test_contract_example_loads(tmp_path: Path) -> None:
    """The CONTRACT.md example loads as written once its variables are set."""
    (tmp_path / "rules").mkdir()
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE), CONTRACT_ENV)

    assert config.listen_host == ALL_INTERFACES
    assert config.listen_port == 9095
    assert config.webhook.bearer_token == Secret("bridge-token-s3cr3t")
    assert config.webhook.max_body_bytes == 1_048_576
    assert config.api.read_token is not None
    assert config.api.read_token.get() == "read-token-s3cr3t"
    assert config.store.sqlite_path == Path("/var/lib/incident-bridge/state.db")
    assert not config.store.is_postgres
    assert config.store.retention == timedelta(days=90)
    assert config.identity == "group_key"
    assert config.github.repository == "acme/incidents"
    assert config.github.token is not None
    assert config.github.token.get() == "ghp_github-token-s3cr3t"
    assert not config.github.dry_run
    assert config.github.reopen_window == timedelta(hours=24)
    assert config.github.labels == ("phase-09",)
    assert (config.github.budget.per_minute, config.github.budget.per_hour) == (60, 400)
    assert config.github.budget.reserve == 0.25
    assert config.rules_dir == tmp_path / "rules"
    assert config.business_hours.start == time(9, 0)
    assert config.business_hours.end == time(17, 0)
    assert config.slack is not None
    assert config.slack.channel == "#incidents"
    assert config.email is not None
    assert config.email.from_ == "incident-bridge@example.com"
    assert config.email.username == "..."
    assert config.sms is not None
    assert config.sms.twilio.from_ == "+15550000000"
    assert [person.name for person in config.stakeholders] == ["Ops lead", "CTO"]
    assert config.escalation[0].phone == "+15551230009"
    assert config.alertmanager is not None
    assert config.alertmanager.urls == ("http://alertmanager-0:9093", "http://alertmanager-1:9093")
    assert config.alertmanager.group_wait == timedelta(seconds=30)
    assert config.heartbeat.alertname == "Watchdog"
    assert config.heartbeat.timeout == timedelta(minutes=10)
    assert config.status_page.title == "Acme status"
    assert config.status_page.monitoring_window == timedelta(minutes=30)
    assert config.config_path == tmp_path / "config.yaml"
    assert config.config_dir == tmp_path


def test_zero_config_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a file every default applies: dry-run on 127.0.0.1:9095, SQLite in the cwd."""
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {})

    assert config.config_path is None
    assert config.config_dir == tmp_path
    assert config.listen == "127.0.0.1:9095"
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 9095)
    assert config.webhook.bearer_token is None
    assert config.webhook.max_body_bytes == 1_048_576
    assert config.api.read_token is None
    assert config.store.url == "sqlite:///incident-bridge.db"
    assert config.store.sqlite_path == tmp_path / "incident-bridge.db"
    assert config.store.retention == timedelta(days=90)
    assert config.identity == "group_key"
    github = config.github
    assert github.dry_run
    assert github.api_url == "https://api.github.com"
    assert github.repository is None
    assert github.close_on_resolve
    assert github.reopen_window == timedelta(hours=24)
    assert github.labels == ()
    assert (github.budget.per_minute, github.budget.per_hour, github.budget.reserve) == (
        60,
        400,
        0.25,
    )
    assert github.timeout == timedelta(seconds=5)
    assert config.rules_dir is None
    assert config.business_hours.calendar() == BusinessHours()
    assert config.slack is None
    assert config.email is None
    assert config.sms is None
    assert config.stakeholders == ()
    assert config.escalation == ()
    assert config.alertmanager is None
    assert config.heartbeat.alertname == "Watchdog"
    assert config.heartbeat.timeout == timedelta(minutes=10)
    assert config.status_page.enabled
    assert config.status_page.title == "Service status"
    assert config.status_page.monitoring_window == timedelta(minutes=30)
    assert config == Config()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_the_zero_config(tmp_path: Path, text: str) -> None:
    """An empty file (or one with only comments) means all defaults, paths relative to it."""
    config = load_config(write(tmp_path, text), {})
    assert config.github.dry_run
    assert config.store.sqlite_path == tmp_path / "incident-bridge.db"


def test_section_defaults_with_a_file_resolve_against_its_directory(tmp_path: Path) -> None:
    """The default store, when the file has no store section, lives next to the file."""
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load_config(write(sub, "listen: 127.0.0.1:1\n"), {})
    assert config.store.sqlite_path == sub / "incident-bridge.db"
    assert config.listen_port == 1


def test_every_model_forbids_extras_is_frozen_and_hides_input() -> None:
    """Each configuration model forbids unknown keys, is immutable and keeps input out of errors."""
    models = [
        value
        for value in vars(config_module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    ]
    assert len(models) >= 16
    for model in models:
        assert model.model_config.get("extra") == "forbid", model
        assert model.model_config.get("frozen") is True, model
        assert model.model_config.get("hide_input_in_errors") is True, model
    config = Config()
    with pytest.raises(ValidationError):
        config.listen = "0.0.0.0:1"  # type: ignore[misc]  # frozen: assignment is the point


# --------------------------------------------------------------------------------------------
# Problem reports


def test_unknown_top_level_key_is_named_with_file_and_line(tmp_path: Path) -> None:
    """An unknown top-level key is reported as file:line: key, with a suggestion."""
    path = write(tmp_path, "listen: 127.0.0.1:9095\ngithb:\n  token: x\n")
    assert problems_of(path) == [f"{path}:2: githb: unknown key (did you mean 'github'?)"]


def test_unknown_nested_key_is_named_with_file_and_line(tmp_path: Path) -> None:
    """An unknown nested key is reported with its dotted path and its own line."""
    path = write(
        tmp_path,
        """\
        github:
          repository: acme/incidents
          budget:
            per_minute: 10
            per_hour_: 20
        stakeholders:
          - name: A
            email: a@example.com
            pager: "+15551230001"
        """,
    )
    assert problems_of(path) == [
        f"{path}:5: github.budget.per_hour_: unknown key (did you mean 'per_hour'?)",
        f"{path}:9: stakeholders[0].pager: unknown key",
    ]


def test_missing_required_key_points_at_its_parent(tmp_path: Path) -> None:
    """A missing required key is reported at the line of the mapping that should hold it."""
    path = write(tmp_path, "listen: 127.0.0.1:9095\nslack:\n  channel: '#x'\n")
    assert problems_of(path) == [f"{path}:2: slack.token: required key is missing"]


def test_several_problems_are_reported_together_in_file_order(tmp_path: Path) -> None:
    """All problems come back at once, one per line, sorted by their line in the file."""
    path = write(
        tmp_path,
        """\
        listen: 0.0.0.0:99999
        webhook:
          max_body_bytes: 0
          bearer_token: ${UNSET_VARIABLE}
        github:
          budget: {per_minute: 90}
          timeout: 10s
        identity: by_magic
        store: {url: "mysql://db/x"}
        heartbeat: {timeout: 1x}
        """,
    )
    assert problems_of(path) == [
        f"{path}:1: listen: the port must be a number from 1 to 65535",
        f"{path}:3: webhook.max_body_bytes: must be greater than 0",
        f"{path}:4: webhook.bearer_token: environment variable UNSET_VARIABLE is not set "
        "(write ${UNSET_VARIABLE:-default} for a default)",
        f"{path}:6: github.budget.per_minute: must be at most 80 (GitHub's secondary limit)",
        f"{path}:7: github.timeout: must be at most 5s",
        f"{path}:8: identity: must be 'group_key' or 'group_labels'",
        f"{path}:9: store.url: must be sqlite:///relative.db, sqlite:////abs/path.db "
        "or postgresql://user:pw@host/db",
        f"{path}:10: heartbeat.timeout: not a valid duration: '1x' "
        "(use Prometheus units, e.g. 30s, 15m, 1h30m, 7d)",
    ]


def test_yaml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    """A YAML syntax error is one problem naming the file and the line."""
    path = write(tmp_path, "listen: 127.0.0.1:9095\ngithub:\n  token: [unclosed\nslack: {}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4: YAML syntax error:"), problem


def test_yaml_syntax_error_does_not_quote_the_source_line(tmp_path: Path) -> None:
    """PyYAML quotes the offending line in its message; a secret on it must not leak."""
    path = write(tmp_path, 'github:\n  token: "tok-LEAKED-s3cr3t\n')
    [problem] = problems_of(path)
    assert "YAML syntax error" in problem
    assert "LEAKED" not in problem


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    """A key given twice in one mapping is reported (YAML would silently keep the last)."""
    path = write(tmp_path, "listen: 127.0.0.1:1\nstatus_page: {}\nlisten: 127.0.0.1:2\n")
    assert problems_of(path) == [f"{path}:3: listen: duplicate key (also on line 1)"]


def test_recursive_alias_is_an_error(tmp_path: Path) -> None:
    """A YAML alias inside its own anchor is reported instead of recursing forever."""
    path = write(tmp_path, "status_page: {}\nstakeholders: &people [*people]\n")
    assert problems_of(path) == [f"{path}:2: stakeholders[0]: a YAML alias may not contain itself"]


def test_alias_bomb_is_an_error(tmp_path: Path) -> None:
    """Aliases expanding exponentially are refused before anything walks the expansion."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    [problem] = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert "YAML aliases expand to too much data" in problem


def test_control_character_is_a_syntax_error(tmp_path: Path) -> None:
    """Characters YAML refuses outright are a syntax problem, not a crash."""
    path = write(tmp_path, "listen: \x01\n")
    assert problems_of(path) == [f"{path}: YAML syntax error: unacceptable character #x0001"]


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "single value")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    """A document that is not a mapping is one clear problem."""
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}:1: the top level must be a mapping of keys, not a {kind}"]


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError naming it, not an OSError."""
    path = tmp_path / "nope.yaml"
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: cannot read the configuration file")


def test_section_of_the_wrong_shape(tmp_path: Path) -> None:
    """A section given as a scalar, or a list as a mapping, is named plainly."""
    path = write(tmp_path, "github: yes please\nstakeholders: {name: A}\n")
    assert problems_of(path) == [
        f"{path}:1: github: must be a mapping of keys",
        f"{path}:2: stakeholders: must be a list",
    ]


# --------------------------------------------------------------------------------------------
# ${VAR} substitution


def test_variables_are_substituted_after_parsing(tmp_path: Path) -> None:
    """${VAR} values may hold YAML-significant text (# and :) without breaking the document."""
    path = write(
        tmp_path,
        """\
        status_page: {title: "${TITLE}"}
        slack: {token: "${SLACK}", channel: "${CHANNEL}"}
        """,
    )
    env = {"TITLE": "Acme: status # all", "SLACK": "xoxb: #tok", "CHANNEL": "#ops"}
    config = load_config(path, env)
    assert config.status_page.title == "Acme: status # all"
    assert config.slack is not None
    assert config.slack.token.get() == "xoxb: #tok"
    assert config.slack.channel == "#ops"


def test_variable_defaults_and_embedding(tmp_path: Path) -> None:
    """${VAR:-default} uses the default when VAR is unset or empty; text around is kept."""
    path = write(
        tmp_path,
        """\
        listen: ${HOST:-127.0.0.1}:${PORT:-9095}
        status_page: {title: "${NAME:-Acme} status (${EMPTY:-none})"}
        """,
    )
    config = load_config(path, {"PORT": "9100", "EMPTY": ""})
    assert config.listen == "127.0.0.1:9100"
    assert config.status_page.title == "Acme status (none)"


def test_unset_variable_names_the_variable_and_the_key(tmp_path: Path) -> None:
    """An unset variable without a default is an error naming both the variable and the key."""
    path = write(
        tmp_path,
        """\
        stakeholders:
          - name: A
            email: ${A_EMAIL}
        """,
    )
    assert problems_of(path) == [
        f"{path}:3: stakeholders[0].email: environment variable A_EMAIL is not set "
        "(write ${A_EMAIL:-default} for a default)"
    ]


def test_dollar_dollar_escapes_a_literal(tmp_path: Path) -> None:
    """$${X} is the literal text ${X}, even when X is set."""
    path = write(tmp_path, 'status_page: {title: "cost $${X} and $$5"}\n')
    config = load_config(path, {"X": "substituted"})
    assert config.status_page.title == "cost ${X} and $$5"


def test_malformed_reference_is_an_error(tmp_path: Path) -> None:
    """A ${ that is not ${NAME} or ${NAME:-default} is reported rather than kept."""
    path = write(tmp_path, 'status_page: {title: "${not valid}"}\n')
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: status_page.title: malformed ${{...}}")


def test_keys_are_not_substituted(tmp_path: Path) -> None:
    """Substitution applies to values only: a ${VAR} key stays an unknown key."""
    path = write(tmp_path, "${SECTION}: {}\n")
    assert problems_of(path, {"SECTION": "github"}) == [f"{path}:1: ${{SECTION}}: unknown key"]


def test_numbers_and_booleans_arrive_as_strings(tmp_path: Path) -> None:
    """Ports, booleans, counts and durations given through variables are coerced."""
    path = write(
        tmp_path,
        """\
        webhook: {max_body_bytes: "${MAX}"}
        github:
          close_on_resolve: ${CLOSE}
          budget: {per_minute: "${PER_MINUTE}", reserve: "${RESERVE}"}
          app_id: ${APP_ID}
          installation_id: ${INSTALLATION_ID}
          private_key: ${KEY}
          repository: acme/incidents
          timeout: ${TIMEOUT}
        email:
          smtp_host: smtp.example.com
          smtp_port: ${SMTP_PORT}
          starttls: ${STARTTLS}
          from: bridge@example.com
        stakeholders: [{name: A, email: a@example.com}]
        status_page: {enabled: "${ENABLED}"}
        """,
    )
    env = {
        "MAX": "2048",
        "CLOSE": "false",
        "PER_MINUTE": "30",
        "RESERVE": "0.5",
        "APP_ID": "12345",
        "INSTALLATION_ID": "678",
        "KEY": PEM_KEY,
        "TIMEOUT": "3",
        "SMTP_PORT": "587",
        "STARTTLS": "true",
        "ENABLED": "off",
    }
    config = load_config(path, env)
    assert config.webhook.max_body_bytes == 2048
    assert config.github.close_on_resolve is False
    assert config.github.budget.per_minute == 30
    assert config.github.budget.reserve == 0.5
    assert (config.github.app_id, config.github.installation_id) == (12345, 678)
    assert config.github.uses_app
    assert not config.github.dry_run
    assert config.github.timeout == timedelta(seconds=3)
    assert config.email is not None
    assert config.email.smtp_port == 587
    assert config.email.starttls is True
    assert config.status_page.enabled is False


def test_bad_number_from_variable_is_reported(tmp_path: Path) -> None:
    """A variable that is not a number where one is needed is a normal validation problem."""
    path = write(tmp_path, "webhook: {max_body_bytes: '${MAX}'}\n")
    assert problems_of(path, {"MAX": "lots"}) == [
        f"{path}:1: webhook.max_body_bytes: must be a whole number"
    ]


# --------------------------------------------------------------------------------------------
# Secrets and *_file


@pytest.mark.parametrize("index", range(len(SECRET_CASES)), ids=SECRET_IDS)
def test_every_secret_accepts_a_file(tmp_path: Path, index: int) -> None:
    """x_file (relative to the config file) gives x, its trailing newline stripped."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    value = PEM_KEY if SECRET_CASES[index][1] == "private_key" else "file-s3cr3t-value"
    (secrets_dir / "value").write_text(value + "\n", encoding="utf-8")
    section, key, _, _ = SECRET_CASES[index]
    data = secret_config(index, {key + "_file": "secrets/value"})
    config = load_config(write_data(tmp_path, data), {})
    secret = getattr(section_of(config, section), key)
    assert isinstance(secret, Secret)
    assert secret.get() == value


@pytest.mark.parametrize("index", range(len(SECRET_CASES)), ids=SECRET_IDS)
def test_secret_and_its_file_together_are_an_error(tmp_path: Path, index: int) -> None:
    """Giving both x and x_file is an error naming x_file."""
    (tmp_path / "value").write_text(PEM_KEY, encoding="utf-8")
    key = SECRET_CASES[index][1]
    data = secret_config(index, {key: "inline-s3cr3t", key + "_file": "value"})
    problems = problems_of(write_data(tmp_path, data))
    dotted = SECRET_IDS[index]
    assert len(problems) == 1
    assert f": {dotted}_file: give either {key} or {key}_file, not both" in problems[0]
    assert "inline-s3cr3t" not in problems[0]


@pytest.mark.parametrize("index", range(len(SECRET_CASES)), ids=SECRET_IDS)
def test_unreadable_secret_file_is_an_error(tmp_path: Path, index: int) -> None:
    """A missing secret file is an error naming x_file and the resolved path, with its line."""
    key = SECRET_CASES[index][1]
    data = secret_config(index, {key + "_file": "missing/secret"})
    path = write_data(tmp_path, data)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:")
    assert f"{SECRET_IDS[index]}_file: cannot read {tmp_path / 'missing/secret'}" in problem


def test_secret_file_absolute_path_and_empty_file(tmp_path: Path) -> None:
    """An absolute x_file path is used as is; an empty file is an error, not an empty secret."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "token").write_text("abs-token\r\n", encoding="utf-8")
    (other / "empty").write_text("\n", encoding="utf-8")
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        f"webhook: {{bearer_token_file: {other / 'token'}}}\n"
        "api: {read_token_file: ../elsewhere/empty}\n",
    )
    assert problems_of(path) == [
        f"{path}:2: api.read_token_file: {conf_dir / '../elsewhere/empty'} is empty"
    ]
    path = write(conf_dir, f"webhook: {{bearer_token_file: {other / 'token'}}}\n")
    config = load_config(path, {})
    assert config.webhook.bearer_token == Secret("abs-token")


def test_file_key_for_a_non_secret_is_unknown(tmp_path: Path) -> None:
    """Only secrets have *_file twins; a _file suffix elsewhere is an unknown key."""
    path = write(tmp_path, "github:\n  repository_file: repo.txt\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: github.repository_file: unknown key")


def test_secret_prints_as_placeholder() -> None:
    """str, repr, format and equality of a Secret never show the value; get() does."""
    secret = Secret("hunter2")
    assert str(secret) == "<secret>"
    assert repr(secret) == "<secret>"
    assert f"{secret}" == "<secret>"
    assert secret.get() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("hunter3")
    assert hash(secret) == hash(Secret("hunter2"))


def test_secrets_are_masked_in_every_rendering(tmp_path: Path) -> None:
    """str/repr/model_dump/model_dump_json/describe of a loaded config show only <secret>."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "key.pem").write_text(PEM_KEY, encoding="utf-8")
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE), CONTRACT_ENV)
    app = GitHubConfig.model_validate(
        {
            "repository": "a/b",
            "app_id": 1,
            "installation_id": 2,
            "private_key_file": str(tmp_path / "key.pem"),
        }
    )
    renderings = [
        str(config),
        repr(config),
        str(config.model_dump()),
        config.model_dump_json(),
        json.dumps(describe(config)),
        repr(app),
        app.model_dump_json(),
    ]
    for text in renderings:
        for value in [*CONTRACT_ENV.values(), "MIIBfake"]:
            assert value not in text
        assert "<secret>" in text
    described = describe(config)
    assert described["github"]["token"] == "<secret>"
    assert described["sms"]["twilio"]["auth_token"] == "<secret>"
    assert described["email"]["from"] == "incident-bridge@example.com"
    assert described["store"]["retention"] == "90d"
    assert described["business_hours"]["start"] == "09:00"
    assert config.model_dump()["webhook"]["bearer_token"] == "<secret>"


def test_password_in_store_url_is_redacted(tmp_path: Path) -> None:
    """A PostgreSQL URL's password never appears in describe, dumps or repr."""
    path = write(tmp_path, "store: {url: 'postgresql://bridge:pg-s3cr3t@db:5432/bridge'}\n")
    config = load_config(path, {})
    assert config.store.is_postgres
    assert config.store.sqlite_path is None
    assert config.store.url == "postgresql://bridge:pg-s3cr3t@db:5432/bridge"
    assert describe(config)["store"]["url"] == "postgresql://bridge:<secret>@db:5432/bridge"
    for text in (repr(config), config.model_dump_json(), str(config.store)):
        assert "pg-s3cr3t" not in text


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("store: {retention: 90d}\ngithub: {reopen_window: 24h}\n", True),
        ("store: {retention: 30d}\ngithub: {reopen_window: 29d}\n", True),
        ("store: {retention: 30d}\ngithub: {reopen_window: 30d}\n", False),
        ("store: {retention: 1d}\ngithub: {reopen_window: 2d}\n", False),
    ],
)
def test_the_reopen_window_ends_before_retention_prunes(
    tmp_path: Path, text: str, accepted: bool
) -> None:
    """An incident reopened after retention pruned its timeline would lose it: the reopen
    window must be shorter than the retention, one line naming the key when it is not."""
    path = write(tmp_path, text)
    if accepted:
        load_config(path, {})
        return
    with pytest.raises(ConfigError) as error:
        load_config(path, {})
    [problem] = error.value.problems
    assert "github.reopen_window: must be shorter than store.retention" in problem


@pytest.mark.parametrize("value", ["99999999999999999", "'99999999999999999'"])
def test_a_duration_too_long_for_a_date_is_one_problem_not_a_crash(
    tmp_path: Path, value: str
) -> None:
    """A number of seconds too large for any date: exit-2 material (one line naming the key),
    never a traceback."""
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, f"store: {{retention: {value}}}\n"), {})
    [problem] = error.value.problems
    assert problem.endswith("store.retention: is too long a duration")


def test_passwords_in_alertmanager_peer_urls_are_redacted(tmp_path: Path) -> None:
    """Peers given as a list of URLs with credentials: no password in repr, str or dumps."""
    path = write(
        tmp_path,
        "alertmanager:\n  urls: ['http://u:am-s3cr3t@am-0:9093', 'http://am-1:9093']\n",
    )
    config = load_config(path, {})
    assert config.alertmanager is not None
    assert config.alertmanager.urls[0] == "http://u:am-s3cr3t@am-0:9093"  # what it connects with
    for text in (
        repr(config),
        str(config),
        repr(config.alertmanager),
        str(config.alertmanager),
        config.model_dump_json(),
        str(describe(config)),
    ):
        assert "am-s3cr3t" not in text, text
        assert "am-0:9093" in text


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("github:\n  token: [tok-s3cr3t-list]\n", "tok-s3cr3t-list"),
        ("github:\n  token: 123456789\n  repository: a/b\n", "123456789"),
        ("webhook:\n  bearer_token: ''\n", None),
        ("github:\n  private_key: not-a-pem-s3cr3t\n  app_id: 1\n", "not-a-pem-s3cr3t"),
        ("github:\n  tokn: typo-s3cr3t\n", "typo-s3cr3t"),
        ("slack:\n  token: sl-s3cr3t\n  channel: ''\n", "sl-s3cr3t"),
        ("store:\n  url: 'mysql://u:db-s3cr3t@host/db'\n", "db-s3cr3t"),
        ("alertmanager:\n  urls: ['ftp://u:am-s3cr3t@host']\n", "am-s3cr3t"),
        ("email:\n  smtp_host: h\n  from: a@b.c\n  password: pw-s3cr3t\n", "pw-s3cr3t"),
        ("webhook:\n  bearer_token: ${TOKEN}\n  max_body_bytes: -1\n", "env-s3cr3t"),
    ],
)
def test_problems_never_contain_secret_values(
    tmp_path: Path, text: str, leaked: str | None
) -> None:
    """Whatever is wrong, including the secret field itself, its value stays out of the report."""
    problems = problems_of(write(tmp_path, text), {"TOKEN": "env-s3cr3t"})
    report = "\n".join(problems)
    if leaked is not None:
        assert leaked not in report
    assert "s3cr3t" not in report


def test_secret_type_and_emptiness_problems(tmp_path: Path) -> None:
    """A secret must be a non-empty string; the messages say so without the value."""
    path = write(
        tmp_path, "github:\n  token: 123456789\n  repository: a/b\nwebhook:\n  bearer_token: ''\n"
    )
    assert problems_of(path) == [
        f"{path}:2: github.token: must be a string (quote it in YAML, or use a *_file key)",
        f"{path}:5: webhook.bearer_token: must not be empty (leave the key out instead)",
    ]


def test_validation_error_str_hides_secret_input() -> None:
    """hide_input_in_errors: a raw pydantic ValidationError does not echo the input either."""
    with pytest.raises(ValidationError) as caught:
        GitHubConfig.model_validate({"token": ["raw-s3cr3t"], "tokn": "typo-s3cr3t"})
    assert "s3cr3t" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Durations

VALID_DURATIONS = [
    ("0", timedelta(0)),
    ("0s", timedelta(0)),
    ("500ms", timedelta(milliseconds=500)),
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("2w", timedelta(weeks=2)),
    ("1y", timedelta(days=365)),
    (
        "1y2w3d4h5m6s7ms",
        timedelta(days=365 + 14 + 3, hours=4, minutes=5, seconds=6, milliseconds=7),
    ),
    ("90m", timedelta(minutes=90)),
    ("1m500ms", timedelta(minutes=1, milliseconds=500)),
]

INVALID_DURATIONS = [
    "",
    " ",
    "5",
    "-5m",
    "+5m",
    "1.5h",
    "5 m",
    " 5m",
    "5M",
    "5x",
    "h",
    "30s1m",
    "1h1h",
    "1ms1s",
    "1d1w",
    "abc",
    "1h30",
    "\uff11m",  # FULLWIDTH DIGIT ONE
    "\u0663s",  # ARABIC-INDIC DIGIT THREE
    "99999999999999y",
]


@pytest.mark.parametrize(("text", "expected"), VALID_DURATIONS)
def test_parse_valid_durations(text: str, expected: timedelta) -> None:
    """Prometheus durations parse to the same timedelta Prometheus would mean."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", INVALID_DURATIONS)
def test_parse_invalid_durations(text: str) -> None:
    """Empty, signed, fractional, unit-less, out-of-order and non-ASCII forms are rejected."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=5), "5ms"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=90), "90d"),
        (timedelta(days=14), "2w"),
        (timedelta(days=730), "2y"),
        (timedelta(days=1, seconds=1, microseconds=999), "1d1s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    """format_duration writes the shortest natural Prometheus form, at millisecond precision."""
    assert format_duration(value) == text


def test_format_negative_duration_fails() -> None:
    """A negative timedelta has no Prometheus spelling."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=0, max_value=10**14))
def test_duration_round_trip(milliseconds: int) -> None:
    """Formatting then parsing gives back the same duration, for any millisecond count."""
    value = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        (45, timedelta(seconds=45)),
        ("45", timedelta(seconds=45)),
        ("0", timedelta(0)),
    ],
)
def test_duration_fields_accept_strings_and_seconds(
    tmp_path: Path, raw: object, expected: timedelta
) -> None:
    """A duration key takes a Prometheus string or a whole number of seconds."""
    config = load_config(
        write_data(tmp_path, {"alertmanager": {"urls": ["http://am:9093"], "group_wait": raw}}), {}
    )
    assert config.alertmanager is not None
    assert config.alertmanager.group_wait == expected


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("group_wait", 1.5, "must be a duration such as 30s, 15m, 1h30m or 7d"),
        ("group_wait", True, "must be a duration such as 30s, 15m, 1h30m or 7d"),
        ("group_wait", -3, "must not be negative"),
        ("group_wait", "1h30", "not a valid duration: '1h30'"),
    ],
)
def test_duration_fields_reject_garbage(
    tmp_path: Path, key: str, raw: object, message: str
) -> None:
    """Floats, booleans, negatives and malformed strings are duration problems."""
    path = write_data(tmp_path, {"alertmanager": {"urls": ["http://am:9093"], key: raw}})
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:4: alertmanager.{key}: {message}")  # urls take 2-3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("github: {timeout: 6s}", "github.timeout: must be at most 5s"),
        ("github: {timeout: 0s}", "github.timeout: must be longer than 0s"),
        ("email: {timeout: 5001ms}", "email.timeout: must be at most 5s"),
        ("store: {retention: 0s}", "store.retention: must be longer than 0s"),
        ("heartbeat: {timeout: 0}", "heartbeat.timeout: must be longer than 0s"),
    ],
)
def test_duration_bounds(tmp_path: Path, text: str, message: str) -> None:
    """Timeouts are above 0 and at most 5s; retention and heartbeat timeout are positive."""
    problems = problems_of(write(tmp_path, text + "\n"))
    assert any(problem.endswith(message) for problem in problems), problems


# --------------------------------------------------------------------------------------------
# Individual values


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9095", "127.0.0.1", 9095),
        ("0.0.0.0:80", ALL_INTERFACES, 80),
        ("[::]:9095", "::", 9095),
        ("[::1]:1", "::1", 1),
        ("bridge.internal:65535", "bridge.internal", 65535),
        (":9095", ALL_INTERFACES, 9095),
        ("${HOST}:${PORT}", "10.0.0.1", 9200),
    ],
)
def test_listen_addresses(tmp_path: Path, listen: str, host: str, port: int) -> None:
    """listen is host:port (IPv6 in brackets); listen_host/listen_port split it."""
    config = load_config(
        write_data(tmp_path, {"listen": listen}), {"HOST": "10.0.0.1", "PORT": "9200"}
    )
    assert (config.listen_host, config.listen_port) == (host, port)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1", "must be host:port"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:65536", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
        ("::1:9095", "write an IPv6 host in brackets"),
        ("[nope]:9095", "the host in brackets must be an IPv6 address"),
        ("bad host:9095", "the host must be a host name or an IP address"),
        (9095, "must be host:port"),
    ],
)
def test_bad_listen_addresses(tmp_path: Path, listen: object, message: str) -> None:
    """A listen value that is not host:port with a valid port is reported."""
    path = write_data(tmp_path, {"listen": listen})
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: listen: {message}")


def test_relative_store_and_rules_paths_resolve_against_the_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///x.db and rules_dir are relative to the config file, not to the cwd."""
    conf_dir = tmp_path / "etc" / "bridge"
    (conf_dir / "rules").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    path = write(conf_dir, "store: {url: 'sqlite:///data/state.db'}\nrules_dir: ./rules\n")
    config = load_config(Path("etc/bridge/config.yaml"), {})
    assert config.store.sqlite_path == conf_dir / "data" / "state.db"
    assert config.rules_dir == conf_dir / "rules"
    assert config.config_path == path
    assert config.config_dir == conf_dir


def test_absolute_sqlite_path(tmp_path: Path) -> None:
    """sqlite:////abs/path.db is an absolute path."""
    config = load_config(write(tmp_path, f"store: {{url: 'sqlite:///{tmp_path}/x.db'}}\n"), {})
    assert config.store.sqlite_path == tmp_path / "x.db"


@pytest.mark.parametrize(
    "url", ["postgresql://u:p@db:5432/bridge", "postgres://db/bridge", "postgresql:///bridge"]
)
def test_postgres_urls(tmp_path: Path, url: str) -> None:
    """postgresql:// and postgres:// URLs select PostgreSQL."""
    config = load_config(write_data(tmp_path, {"store": {"url": url}}), {})
    assert config.store.is_postgres
    assert config.store.sqlite_path is None


@pytest.mark.parametrize(
    "url",
    ["mysql://db/x", "sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///x.db?x=1", "x.db"],
)
def test_bad_store_urls(tmp_path: Path, url: str) -> None:
    """Anything but a SQLite file or PostgreSQL URL is an error."""
    path = write_data(tmp_path, {"store": {"url": url}})
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: store.url: ")


def test_missing_rules_dir_is_an_error(tmp_path: Path) -> None:
    """rules_dir must name an existing directory (resolved path shown)."""
    path = write(tmp_path, "rules_dir: rules\n")
    assert problems_of(path) == [f"{path}:1: rules_dir: {tmp_path / 'rules'} is not a directory"]


def test_business_hours(tmp_path: Path) -> None:
    """Business hours parse days, HH:MM times (even unquoted) and the zone into a calendar."""
    path = write(
        tmp_path,
        "business_hours:\n"
        "  {timezone: Europe/Berlin, days: [Mon, wed, sat], start: 8:30, end: 17:00}\n",
    )
    config = load_config(path, {})
    assert config.business_hours.calendar() == BusinessHours(
        timezone="Europe/Berlin", days=frozenset({0, 2, 5}), start=time(8, 30), end=time(17, 0)
    )
    assert describe(config)["business_hours"]["days"] == ["mon", "wed", "sat"]


def test_business_hours_until_midnight(tmp_path: Path) -> None:
    """end: "24:00" means the end of the day."""
    config = load_config(write(tmp_path, "business_hours: {start: '00:00', end: '24:00'}\n"), {})
    assert config.business_hours.end == time.max
    assert describe(config)["business_hours"]["end"] == "24:00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{timezone: Mars/Olympus}", "business_hours.timezone: unknown time zone 'Mars/Olympus'"),
        ("{timezone: ../etc}", "business_hours.timezone: unknown time zone '../etc'"),
        ("{days: []}", "business_hours.days: must list at least one day"),
        ("{days: [mon, tue, mon]}", "business_hours.days: lists mon more than once"),
        ("{days: [mon, funday]}", "business_hours.days[1]: must be one of mon, tue,"),
        ("{start: '9am'}", 'business_hours.start: must be a time of day as "HH:MM"'),
        ("{end: '25:00'}", 'business_hours.end: must be a time of day as "HH:MM"'),
        ("{start: '17:00', end: '09:00'}", "business_hours.end: must be later than start (17:00)"),
        ("{start: '09:00', end: '09:00'}", "business_hours.end: must be later than start (09:00)"),
    ],
)
def test_bad_business_hours(tmp_path: Path, value: str, message: str) -> None:
    """Bad zones, days and times are each named."""
    path = write(tmp_path, f"business_hours: {value}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: {message}"), problem


@pytest.mark.parametrize(
    ("github", "message"),
    [
        ({"repository": "nope"}, "github.repository: must be owner/name"),
        ({"repository": "a/.."}, "github.repository: must be owner/name"),
        ({"api_url": "ftp://x"}, "github.api_url: must be an http:// or https:// URL"),
        ({"labels": ["x" * 51]}, "github.labels[0]: a label name must be at most 50 characters"),
        ({"labels": ["a", "A"]}, "github.labels: label 'A' is listed twice"),
        ({"budget": {"per_minute": 0}}, "github.budget.per_minute: must be at least 1"),
        ({"budget": {"per_minute": 81}}, "github.budget.per_minute: must be at most 80"),
        ({"budget": {"per_hour": 501}}, "github.budget.per_hour: must be at most 500"),
        (
            {"budget": {"per_minute": 50, "per_hour": 40}},
            "github.budget.per_hour: must be at least per_minute (50)",
        ),
        ({"budget": {"reserve": 1}}, "github.budget.reserve: must be less than 1"),
        ({"budget": {"reserve": -0.1}}, "github.budget.reserve: must be at least 0"),
        ({"app_id": 0}, "github.app_id: must be greater than 0"),
    ],
)
def test_bad_github_values(tmp_path: Path, github: dict[str, Any], message: str) -> None:
    """GitHub values are checked against GitHub's own limits."""
    path = write_data(tmp_path, {"github": github})
    problems = problems_of(path)
    assert any(message in problem for problem in problems), problems


def test_budget_at_githubs_limits_is_accepted(tmp_path: Path) -> None:
    """80 per minute and 500 per hour are the highest allowed values."""
    config = load_config(
        write(tmp_path, "github: {budget: {per_minute: 80, per_hour: 500, reserve: 0}}\n"), {}
    )
    assert (config.github.budget.per_minute, config.github.budget.per_hour) == (80, 500)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"stakeholders": [{"name": "A", "email": "not an address"}]},
            "stakeholders[0].email: must be an email address",
        ),
        (
            {"stakeholders": [{"name": "A", "phone": "+1 555 123"}]},
            "stakeholders[0].phone: must be an E.164 phone number",
        ),
        (
            {"escalation": [{"name": "A", "phone": 15551230001}]},
            'escalation[0].phone: must be a quoted string like "+15550000000"',
        ),
        (
            {"escalation": [{"email": "a@example.com"}]},
            "escalation[0].name: required key is missing",
        ),
        (
            {"escalation": [{"name": " ", "email": "a@example.com"}]},
            "escalation[0].name: must not be empty",
        ),
        (
            {"sms": {"twilio": {"account_sid": "XY1", "auth_token": "t", "from": "+15550000000"}}},
            "sms.twilio.account_sid: must be a Twilio account SID",
        ),
        (
            {"alertmanager": {"urls": []}},
            "alertmanager.urls: must list at least one Alertmanager URL",
        ),
        (
            {"alertmanager": {"urls": ["am:9093"]}},
            "alertmanager.urls[0]: must be an http:// or https:// URL",
        ),
        ({"alertmanager": {}}, "alertmanager.urls: required key is missing"),
        ({"slack": {"token": "t", "channel": ""}}, "slack.channel: must not be empty"),
        (
            {"email": {"smtp_host": "h", "from": "a@b.c", "smtp_port": 0}},
            "email.smtp_port: must be at least 1",
        ),
        ({"email": {"smtp_host": "h"}}, "email.from: required key is missing"),
        ({"status_page": {"title": ""}}, "status_page.title: must not be empty"),
        ({"heartbeat": {"alertname": ""}}, "heartbeat.alertname: must not be empty"),
        ({"webhook": {"max_body_bytes": -1}}, "webhook.max_body_bytes: must be greater than 0"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    """Each malformed value is reported under its dotted key path."""
    problems = problems_of(write_data(tmp_path, data))
    assert any(message in problem for problem in problems), problems


def test_yaml_12_scalars(tmp_path: Path) -> None:
    """Unquoted 17:00 stays a time (not YAML 1.1's 1020); yes/on are accepted booleans."""
    path = write(
        tmp_path,
        """\
        business_hours: {start: 9:00, end: 17:00}
        status_page: {enabled: no, title: on}
        github: {close_on_resolve: yes}
        """,
    )
    config = load_config(path, {})
    assert (config.business_hours.start, config.business_hours.end) == (time(9), time(17))
    assert config.status_page.enabled is False
    assert config.status_page.title == "on"
    assert config.github.close_on_resolve is True


# --------------------------------------------------------------------------------------------
# Cross-field checks


def test_token_and_app_are_mutually_exclusive(tmp_path: Path) -> None:
    """A token and a GitHub App together are an error at github.token."""
    (tmp_path / "key.pem").write_text(PEM_KEY, encoding="utf-8")
    path = write(
        tmp_path,
        """\
        github:
          repository: acme/incidents
          token: t
          app_id: 1
          installation_id: 2
          private_key_file: key.pem
        """,
    )
    assert problems_of(path) == [
        f"{path}:3: github.token: give either token or a GitHub App "
        "(app_id, installation_id, private_key), not both"
    ]


def test_partial_app_names_each_missing_field(tmp_path: Path) -> None:
    """An App needs app_id, installation_id and private_key; each missing one is named."""
    path = write(tmp_path, "github:\n  repository: acme/incidents\n  app_id: 1\n")
    message = (
        "required for a GitHub App: app_id, installation_id and private_key "
        "(or private_key_file) go together"
    )
    assert problems_of(path) == [
        f"{path}:1: github.installation_id: {message}",
        f"{path}:1: github.private_key: {message}",
    ]


@pytest.mark.parametrize(
    "github",
    [
        "{token: t}",
        "{app_id: 1, installation_id: 2, private_key_file: key.pem}",
    ],
)
def test_credentials_need_a_repository(tmp_path: Path, github: str) -> None:
    """repository is required once a token or an App is configured."""
    (tmp_path / "key.pem").write_text(PEM_KEY, encoding="utf-8")
    path = write(tmp_path, f"github: {github}\n")
    assert problems_of(path) == [
        f"{path}:1: github.repository: required when GitHub credentials (token or an App) are given"
    ]


def test_github_app_is_not_dry_run(tmp_path: Path) -> None:
    """A complete GitHub App configuration leaves dry-run."""
    (tmp_path / "key.pem").write_text(PEM_KEY + "\n", encoding="utf-8")
    path = write(
        tmp_path,
        "github: {repository: a/b, app_id: 1, installation_id: 2, private_key_file: key.pem}\n",
    )
    config = load_config(path, {})
    assert config.github.uses_app
    assert not config.github.dry_run
    assert config.github.private_key is not None
    assert config.github.private_key.get() == PEM_KEY


def test_repository_without_credentials_is_dry_run(tmp_path: Path) -> None:
    """A repository alone (or with only a webhook secret) is still dry-run."""
    config = load_config(write(tmp_path, "github: {repository: a/b, webhook_secret: s}\n"), {})
    assert config.github.dry_run


@pytest.mark.parametrize(
    ("login", "missing"), [("username: bridge", "password"), ("password: pw", "username")]
)
def test_email_username_and_password_come_together(
    tmp_path: Path, login: str, missing: str
) -> None:
    """username without password (or the reverse) is an error naming the missing one."""
    path = write(
        tmp_path,
        f"""\
        email:
          smtp_host: smtp.example.com
          from: bridge@example.com
          {login}
        stakeholders: [{{name: A, email: a@example.com}}]
        """,
    )
    other = "username" if missing == "password" else "password"
    assert problems_of(path) == [f"{path}:1: email.{missing}: required when {other} is set"]


def test_email_without_login_is_fine(tmp_path: Path) -> None:
    """username and password are optional (an open relay inside the network)."""
    path = write(
        tmp_path,
        "email: {smtp_host: relay, from: bridge@example.com}\n"
        "escalation: [{name: A, email: a@example.com}]\n",
    )
    config = load_config(path, {})
    assert config.email is not None
    assert config.email.username is None
    assert config.email.password is None
    assert config.email.smtp_port == 587
    assert config.email.starttls is True
    assert config.email.timeout == timedelta(seconds=5)


def test_sms_needs_somebody_with_a_phone(tmp_path: Path) -> None:
    """sms configured while no stakeholder or escalation contact has a phone is an error at sms."""
    path = write(
        tmp_path,
        """\
        sms:
          twilio: {account_sid: AC1, auth_token: t, from: "+15550000000"}
        stakeholders: [{name: A, email: a@example.com}]
        """,
    )
    assert problems_of(path) == [
        f"{path}:1: sms: is configured but no stakeholder or escalation contact has a phone"
    ]


def test_email_needs_somebody_with_an_email(tmp_path: Path) -> None:
    """email configured while nobody has an address is an error at email."""
    path = write(
        tmp_path,
        """\
        stakeholders: [{name: A, phone: "+15551230001"}]
        email: {smtp_host: relay, from: bridge@example.com}
        """,
    )
    assert problems_of(path) == [
        f"{path}:2: email: is configured but no stakeholder or escalation contact has an email"
    ]


def test_escalation_contacts_count_for_the_channel_checks(tmp_path: Path) -> None:
    """An escalation contact with a phone (or email) satisfies the sms (or email) check."""
    path = write(
        tmp_path,
        """\
        sms:
          twilio: {account_sid: AC1, auth_token: t, from: "+15550000000"}
        email: {smtp_host: relay, from: bridge@example.com}
        stakeholders: [{name: A, email: a@example.com}]
        escalation: [{name: B, phone: "+15551230009"}]
        """,
    )
    config = load_config(path, {})
    assert config.sms is not None
    assert config.sms.twilio.api_url == "https://api.twilio.com"


def test_phones_without_sms_are_fine(tmp_path: Path) -> None:
    """Stakeholders may have phones while SMS is not configured."""
    config = load_config(write(tmp_path, 'stakeholders: [{name: A, phone: "+15551230001"}]\n'), {})
    assert config.stakeholders[0].email is None


def test_person_needs_an_email_or_a_phone(tmp_path: Path) -> None:
    """A contact with neither an email nor a phone is reported at the list entry."""
    path = write(tmp_path, "stakeholders:\n  - {name: A, email: a@example.com}\n  - {name: B}\n")
    assert problems_of(path) == [f"{path}:3: stakeholders[1]: needs an email or a phone"]


def test_both_channel_checks_reported_together(tmp_path: Path) -> None:
    """With nobody reachable, both the email and the sms problem are listed."""
    path = write(
        tmp_path,
        """\
        email: {smtp_host: relay, from: bridge@example.com}
        sms:
          twilio: {account_sid: AC1, auth_token: t, from: "+15550000000"}
        """,
    )
    assert problems_of(path) == [
        f"{path}:1: email: is configured but no stakeholder or escalation contact has an email",
        f"{path}:2: sms: is configured but no stakeholder or escalation contact has a phone",
    ]


def test_blank_sections_mean_defaults(tmp_path: Path) -> None:
    """A section whose children are all commented out (YAML null) gets its defaults."""
    path = write(
        tmp_path,
        """\
        webhook:
          # bearer_token: ${BRIDGE_TOKEN}
        github:
          budget:
        stakeholders:
        slack:
        """,
    )
    config = load_config(path, {})
    assert config.webhook.max_body_bytes == 1_048_576
    assert config.github.budget.per_minute == 60
    assert config.stakeholders == ()
    assert config.slack is None


def test_identity_group_labels(tmp_path: Path) -> None:
    """identity accepts group_labels."""
    assert load_config(write(tmp_path, "identity: group_labels\n"), {}).identity == "group_labels"


def test_describe_is_json_and_complete(tmp_path: Path) -> None:
    """describe() gives every section as JSON-able data with the contract's key names."""
    described = describe(load_config(None, {}))
    assert json.loads(json.dumps(described)) == described
    assert set(described) == {
        "listen",
        "webhook",
        "api",
        "store",
        "identity",
        "github",
        "rules_dir",
        "business_hours",
        "slack",
        "email",
        "sms",
        "stakeholders",
        "escalation",
        "alertmanager",
        "heartbeat",
        "flapping",
        "status_page",
        "traceability",
    }
    assert described["github"]["reopen_window"] == "1d"
    assert described["heartbeat"]["timeout"] == "10m"


def test_the_store_is_shown_in_logs_without_its_password(tmp_path: Path) -> None:
    """``store.display`` (start-up log lines): the SQLite path, or the URL with ``<secret>``."""
    sqlite = load_config(write(tmp_path, "store:\n  url: sqlite:///s.db\n"), {})
    assert sqlite.store.display == str(tmp_path / "s.db")
    text = "store:\n  url: postgresql://bridge:hunter2@db:5432/bridge\n"
    postgres = load_config(write(tmp_path, text), {})
    assert "hunter2" not in postgres.store.display
    assert postgres.store.display == "postgresql://bridge:<secret>@db:5432/bridge"


def test_the_claim_lease_has_a_floor(tmp_path: Path) -> None:
    """``store.lease`` below 5s is refused: one GitHub request may take that long."""
    assert load_config(write(tmp_path, "store:\n  lease: 30s\n"), {}).store.lease == timedelta(
        seconds=30
    )
    with pytest.raises(ConfigError, match=r"store\.lease: must be at least 5s"):
        load_config(write(tmp_path, "store:\n  lease: 2s\n"), {})


def test_throttles_default_per_channel_and_can_be_set(tmp_path: Path) -> None:
    """Storm control: email 20 and SMS 5 per person per 15 minutes unless configured."""
    path = write(
        tmp_path,
        """\
        email: {smtp_host: relay, from: bridge@example.com}
        sms:
          twilio: {account_sid: AC1, auth_token: t, from: "+15550000000"}
          throttle: {max: 3, per: 1h}
        stakeholders: [{name: A, email: a@example.com, phone: "+15550000001"}]
        """,
    )
    config = load_config(path, {})
    assert config.email is not None
    assert config.sms is not None
    assert (config.email.throttle.max, config.email.throttle.per) == (20, timedelta(minutes=15))
    assert (config.sms.throttle.max, config.sms.throttle.per) == (3, timedelta(hours=1))


def test_a_throttle_needs_a_positive_bound_and_window(tmp_path: Path) -> None:
    """``max`` at least 1, ``per`` positive, nothing else."""
    path = write(
        tmp_path,
        """\
        email: {smtp_host: relay, from: bridge@example.com, throttle: {max: 0, per: 0s, x: 1}}
        stakeholders: [{name: A, email: a@example.com}]
        """,
    )
    problems = problems_of(path)
    assert len(problems) == 3
    assert any("email.throttle.max" in p for p in problems)
    assert any("email.throttle.per" in p for p in problems)
    assert any("email.throttle.x" in p for p in problems)
