"""The YAML configuration: loading, ``${VAR}`` substitution, ``*_file`` secrets and validation.

``load_config(path)`` is the single entry point. Every problem it finds — YAML syntax, unknown or
missing keys, bad values, unset variables, unreadable secret files, cross-field conflicts — is
collected and raised together as one :class:`ConfigError`, one line per problem, each naming the
dotted key path and, where known, ``file:line``::

    config.yaml:12: github.budget.per_minute: must be at most 80 (GitHub's secondary limit)

Secrets are :class:`Secret` objects: they print, repr, dump and serialise as ``<secret>``;
``.get()`` reveals the value. Problem messages never contain a secret or the input given for a
secret field.

YAML is read with YAML 1.2 core scalar rules: only ``true``/``false`` are booleans (``on``,
``yes``, ``no`` stay strings, which lax booleans still accept) and there are no sexagesimal
numbers, so ``end: 17:00`` is the string ``"17:00"`` and not the number 1020.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import os
import re
import ssl
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from bridge.business_hours import BusinessHours
from bridge.durations import format_duration, parse_duration
from bridge.keypath import Loc, key_path
from bridge.yaml12 import Yaml12Loader

__all__ = [
    "AlertmanagerConfig",
    "ApiConfig",
    "BudgetConfig",
    "BusinessHoursConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EmailConfig",
    "GitHubConfig",
    "HeartbeatConfig",
    "Person",
    "Secret",
    "SlackConfig",
    "SmsConfig",
    "StatusPageConfig",
    "StoreConfig",
    "ThrottleConfig",
    "TwilioConfig",
    "WebhookConfig",
    "describe",
    "load_config",
]


SECRET_MASK = "<secret>"  # noqa: S105 -- the placeholder printed instead of a secret


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------------------------
# Secrets


class Secret:
    """A secret string: ``str()``, ``repr()`` and every pydantic serialisation give ``<secret>``.

    ``get()`` returns the value. Equality compares values in constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def get(self) -> str:
        """The secret value itself: hand it to the one call that needs it, never to a log."""
        return self._value

    def __str__(self) -> str:
        return SECRET_MASK

    def __repr__(self) -> str:
        return SECRET_MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_secret,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _mask_secret, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "password", "writeOnly": True}


@dataclass(frozen=True, slots=True)
class _FileProblem:
    """Put in place of a secret whose ``<key>_file`` could not be used; fails its validation."""

    key: str
    message: str


def _mask_secret(value: object) -> str:
    return SECRET_MASK


def _validate_secret(value: object) -> Secret:
    # No message here may contain the value: it is a secret, even when it is malformed.
    if isinstance(value, Secret):
        return value
    if isinstance(value, _FileProblem):
        raise PydanticCustomError(
            "secret_file", "{message}", {"message": value.message, "key": value.key}
        )
    if not isinstance(value, str):
        raise PydanticCustomError(
            "secret_type", "must be a string (quote it in YAML, or use a *_file key)"
        )
    if not value:
        raise PydanticCustomError("secret_empty", "must not be empty (leave the key out instead)")
    return Secret(value)


def _check_private_key(value: Secret) -> Secret:
    text = value.get().strip()
    if not (text.startswith("-----BEGIN") and "PRIVATE KEY-----" in text):
        raise ValueError(
            "must be a PEM-encoded private key (-----BEGIN ... PRIVATE KEY-----), "
            "normally given with private_key_file"
        )
    return value


PrivateKey = Annotated[Secret, AfterValidator(_check_private_key)]


def _mentions_secret(annotation: Any) -> bool:
    if annotation is Secret:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _mentions_secret(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_mentions_secret(arg) for arg in get_args(annotation))
    return False


def _context_dir(context: Any) -> Path:
    """The directory relative paths are resolved against: the config file's, else the cwd."""
    if isinstance(context, Mapping):
        found = context.get("config_dir")
        if isinstance(found, Path):
            return found
    return Path.cwd()


def _read_secret_file(raw: object, file_key: str, base: Path) -> str | _FileProblem:
    if not isinstance(raw, str) or not raw:
        return _FileProblem(file_key, "must be the path of a file holding the secret")
    path = base / raw
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return _FileProblem(file_key, f"{path} is not UTF-8 text")
    except OSError as exc:
        return _FileProblem(file_key, f"cannot read {path}: {exc.strerror or type(exc).__name__}")
    text = text.rstrip("\r\n")
    if not text:
        return _FileProblem(file_key, f"{path} is empty")
    return text


# --------------------------------------------------------------------------------------------
# Model bases


def _redact_url(url: str) -> str:
    """``url`` with any password in it (user:password@, ?password=) replaced by ``<secret>``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:{SECRET_MASK}@{hostport}"
    query = SECRET_MASK if "password" in parts.query.lower() else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # Sections (and lists of them) that fall back to their default when left blank: a
    # `webhook:` whose children are all commented out is YAML null, and means "defaults".
    blank_means_default: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.blank_means_default = frozenset(
            field.alias or name
            for name, field in cls.model_fields.items()
            if not field.is_required()
            and _model_of(field.annotation) is not None
            and type(None) not in get_args(field.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _blank_sections(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(
            data.get(key, ...) is None for key in cls.blank_means_default
        ):
            return {
                key: value
                for key, value in data.items()
                if not (value is None and key in cls.blank_means_default)
            }
        return data

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if isinstance(value, str) and "://" in value:
                yield name, _redact_url(value)
            elif isinstance(value, tuple | list) and any(
                isinstance(item, str) and "://" in item for item in value
            ):  # Alertmanager's peers: a list of URLs, each of which may carry a password
                yield (
                    name,
                    type(value)(
                        _redact_url(item) if isinstance(item, str) else item for item in value
                    ),
                )
            else:
                yield name, value


class _SecretModel(_Model):
    """A model with :class:`Secret` fields: each ``x`` may instead be given as ``x_file``.

    ``x_file`` is a path (relative to the config file) whose contents, without the trailing
    newline, are the value. The secret fields are found from the annotations, so a new secret
    field gets its ``_file`` twin without further code.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.secret_fields = tuple(
            name for name, field in cls.model_fields.items() if _mentions_secret(field.annotation)
        )

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or not any(
            f"{name}_file" in data for name in cls.secret_fields
        ):
            return data
        result = dict(data)
        base = _context_dir(info.context)
        for name in cls.secret_fields:
            file_key = f"{name}_file"
            if file_key not in result:
                continue
            raw = result.pop(file_key)
            if result.get(name) is not None:
                result[name] = _FileProblem(file_key, f"give either {name} or {file_key}, not both")
            else:
                result[name] = _read_secret_file(raw, file_key, base)
        return result


def _section() -> Any:
    """A section's default: validated from ``{}`` so it too sees the validation context."""
    return Field(default_factory=dict, validate_default=True)


def _fail(title: str, problems: list[tuple[Loc, str]]) -> None:
    """Raise several problems at once, each at its own key (relative to the model raising)."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("config", "{message}", {"message": message}),
                    loc=loc,
                    input=None,
                )
                for loc, message in problems
            ],
        )


# --------------------------------------------------------------------------------------------
# Value types


def _to_timedelta(value: object) -> timedelta:
    try:
        return _timedelta_of(value)
    except OverflowError:
        raise ValueError("is too long a duration") from None


def _timedelta_of(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        if value.isascii() and value.isdigit():  # a number of seconds, e.g. from ${VAR}
            return timedelta(seconds=int(value))
        return parse_duration(value)
    raise ValueError("must be a duration such as 30s, 15m, 1h30m or 7d")


def _dump_duration(value: timedelta) -> str:
    return format_duration(value)


Duration = Annotated[
    timedelta,
    PlainValidator(_to_timedelta),
    PlainSerializer(_dump_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "description": "Prometheus duration, e.g. 1h30m"}),
]
"""A Prometheus duration (``"1h30m"``) or a number of seconds, held as a ``timedelta``."""


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _timeout(value: timedelta) -> timedelta:
    _positive_duration(value)
    if value > timedelta(seconds=5):
        raise ValueError("must be at most 5s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]
Timeout = Annotated[Duration, AfterValidator(_timeout)]


def _non_empty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, AfterValidator(_non_empty)]

_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep:
        raise ValueError("must be host:port, e.g. 127.0.0.1:9095 or [::]:9095")
    if host.startswith("[") or host.endswith("]"):
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError(
                "the host in brackets must be an IPv6 address, e.g. [::]:9095"
            ) from None
        host = inner
    elif ":" in host:
        raise ValueError("write an IPv6 host in brackets, e.g. [::1]:9095")
    elif host == "":
        host = "0.0.0.0"  # noqa: S104 -- ":9095" means every interface, as in Alertmanager
    elif not _HOSTNAME_RE.fullmatch(host):
        raise ValueError("the host must be a host name or an IP address")
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    return host, int(port_text)


def _check_listen(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be host:port, e.g. 127.0.0.1:9095 or [::]:9095")
    _split_listen(value)
    return value


ListenAddress = Annotated[str, BeforeValidator(_check_listen)]


def _check_http_url(value: str) -> str:
    # The URL is not repeated in the message: it may carry credentials.
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("must be an http:// or https:// URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


HttpUrl = Annotated[
    str,
    AfterValidator(_check_http_url),
    PlainSerializer(_redact_url, return_type=str),
]

_EMAIL_RE = re.compile(
    r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL_RE.fullmatch(value):
        raise ValueError(f"must be an email address like ops@example.com, not {value!r}")
    return value


EmailAddress = Annotated[str, AfterValidator(_check_email)]

_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


def _check_phone(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('must be a quoted string like "+15550000000" (YAML reads it as a number)')
    if isinstance(value, str) and not _E164_RE.fullmatch(value):
        raise ValueError(f"must be an E.164 phone number like +15550000000, not {value!r}")
    return value


PhoneNumber = Annotated[str, BeforeValidator(_check_phone)]

_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")


def _to_time(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _TIME_RE.fullmatch(value.strip())
        if match:
            hour, minute = int(match.group(1)), int(match.group(2))
            if (hour, minute) == (24, 0):
                return time.max
            if hour < 24 and minute < 60:
                return time(hour, minute)
    raise ValueError('must be a time of day as "HH:MM", e.g. "09:00"')


def _dump_time(value: time) -> str:
    return "24:00" if value == time.max else value.strftime("%H:%M")


TimeOfDay = Annotated[
    time,
    PlainValidator(_to_time),
    PlainSerializer(_dump_time, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,2}:[0-9]{2}$"}),
]

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_day(value: str) -> str:
    day = value.strip().lower()
    if day not in DAY_NAMES:
        raise ValueError(f"must be one of {', '.join(DAY_NAMES)}, not {value!r}")
    return day


DayName = Annotated[str, AfterValidator(_check_day)]


def _check_label(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a label name must not be empty")
    if len(value) > 50:
        raise ValueError("a label name must be at most 50 characters (GitHub's limit)")
    return value


LabelName = Annotated[str, AfterValidator(_check_label)]

_REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", re.ASCII)


def _check_repository(value: str) -> str:
    value = value.strip()
    if not _REPOSITORY_RE.fullmatch(value) or value.split("/")[1] in (".", ".."):
        raise ValueError(f"must be owner/name, e.g. acme/incidents, not {value!r}")
    return value


Repository = Annotated[str, AfterValidator(_check_repository)]


# --------------------------------------------------------------------------------------------
# Sections


class WebhookConfig(_SecretModel):
    """``POST /api/v1/alerts``."""

    bearer_token: Secret | None = None
    max_body_bytes: int = Field(1_048_576, gt=0)


class ApiConfig(_SecretModel):
    """``GET /api/v1/*``."""

    read_token: Secret | None = None


class StoreConfig(_Model):
    """Where the state lives: SQLite (path relative to the config file) or PostgreSQL."""

    url: str = "sqlite:///incident-bridge.db"
    retention: PositiveDuration = timedelta(days=90)
    # How long an outbox claim is held before another worker (replica) may take it over. A
    # worker releases what it has not started by half of it; a request takes at most 5 s.
    lease: PositiveDuration = timedelta(seconds=60)

    @field_validator("lease")
    @classmethod
    def _lease_fits_a_request(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=5):
            raise ValueError("must be at least 5s (one GitHub request may take that long)")
        return value

    _sqlite_path: Path | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # Never repeat the URL in a message: a PostgreSQL URL may hold a password.
        if value.startswith("sqlite:///"):
            rest = value[len("sqlite:///") :]
            if not rest or rest == "/" or rest == ":memory:":
                raise ValueError(
                    "a SQLite URL needs a file: sqlite:///relative.db or sqlite:////abs/path.db"
                )
            if "?" in rest:
                raise ValueError("SQLite URLs take no query parameters")
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError(
            "must be sqlite:///relative.db, sqlite:////abs/path.db or postgresql://user:pw@host/db"
        )

    def model_post_init(self, context: Any) -> None:
        if self.url.startswith("sqlite:///"):
            relative = Path(self.url[len("sqlite:///") :])
            self._sqlite_path = Path(os.path.normpath(_context_dir(context) / relative))

    @property
    def sqlite_path(self) -> Path | None:
        """The absolute SQLite database path, or None for PostgreSQL."""
        return self._sqlite_path

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def display(self) -> str:
        """Where the store is, for logs: the SQLite path, or the URL with its password hidden."""
        return str(self._sqlite_path) if self._sqlite_path is not None else _redact_url(self.url)

    @field_serializer("url")
    def _dump_url(self, value: str) -> str:
        return _redact_url(value)


class BudgetConfig(_Model):
    """GitHub content-creating requests; below GitHub's own 80/min and 500/h."""

    per_minute: int = Field(60, ge=1)
    per_hour: int = Field(400, ge=1)
    reserve: float = Field(0.25, ge=0, lt=1)

    @field_validator("per_minute")
    @classmethod
    def _per_minute_limit(cls, value: int) -> int:
        if value > 80:
            raise ValueError("must be at most 80 (GitHub's secondary limit)")
        return value

    @field_validator("per_hour")
    @classmethod
    def _per_hour_limit(cls, value: int) -> int:
        if value > 500:
            raise ValueError("must be at most 500 (GitHub's secondary limit)")
        return value

    @model_validator(mode="after")
    def _hour_covers_minute(self) -> BudgetConfig:
        if self.per_hour < self.per_minute:
            _fail(
                "BudgetConfig",
                [(("per_hour",), f"must be at least per_minute ({self.per_minute})")],
            )
        return self


class GitHubConfig(_SecretModel):
    """The incident repository and the credentials for it; none at all means dry-run."""

    api_url: HttpUrl = "https://api.github.com"
    repository: Repository | None = None
    token: Secret | None = None
    app_id: int | None = Field(None, gt=0)
    installation_id: int | None = Field(None, gt=0)
    private_key: PrivateKey | None = None
    webhook_secret: Secret | None = None
    close_on_resolve: bool = True
    reopen_window: Duration = timedelta(hours=24)
    labels: tuple[LabelName, ...] = ()
    budget: BudgetConfig = _section()
    timeout: Timeout = timedelta(seconds=5)
    poll: PollConfig = _section()

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for label in value:
            if label.lower() in seen:
                raise ValueError(f"label {label!r} is listed twice")
            seen.add(label.lower())
        return value

    @model_validator(mode="after")
    def _credentials(self) -> GitHubConfig:
        app_fields = {
            "app_id": self.app_id,
            "installation_id": self.installation_id,
            "private_key": self.private_key,
        }
        uses_app = any(value is not None for value in app_fields.values())
        problems: list[tuple[Loc, str]] = []
        if self.token is not None and uses_app:
            problems.append(
                (
                    ("token",),
                    "give either token or a GitHub App (app_id, installation_id, private_key), "
                    "not both",
                )
            )
        if uses_app:
            for name, value in app_fields.items():
                if value is None:
                    problems.append(
                        (
                            (name,),
                            "required for a GitHub App: app_id, installation_id and private_key "
                            "(or private_key_file) go together",
                        )
                    )
        if (self.token is not None or uses_app) and self.repository is None:
            problems.append(
                (("repository",), "required when GitHub credentials (token or an App) are given")
            )
        _fail("GitHubConfig", problems)
        return self

    @property
    def uses_app(self) -> bool:
        """True when a GitHub App (app_id + installation_id + private_key) is configured."""
        return (
            self.app_id is not None
            and self.installation_id is not None
            and self.private_key is not None
        )

    @property
    def dry_run(self) -> bool:
        """True when there are no GitHub credentials: actions are logged, not taken."""
        return self.token is None and not self.uses_app


class BusinessHoursConfig(_Model):
    """Working days and hours in one IANA time zone."""

    timezone: str = "UTC"
    days: tuple[DayName, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: TimeOfDay = time(9, 0)
    end: TimeOfDay = time(17, 0)

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        value = value.strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one day")
        duplicates = sorted({day for day in value if value.count(day) > 1}, key=DAY_NAMES.index)
        if duplicates:
            raise ValueError(f"lists {', '.join(duplicates)} more than once")
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHoursConfig:
        if self.start >= self.end:
            _fail(
                "BusinessHoursConfig",
                [(("end",), f"must be later than start ({_dump_time(self.start)})")],
            )
        return self

    def calendar(self) -> BusinessHours:
        """The :class:`~bridge.business_hours.BusinessHours` this section describes."""
        return BusinessHours(
            timezone=self.timezone,
            days=frozenset(DAY_NAMES.index(day) for day in self.days),
            start=self.start,
            end=self.end,
        )


class SlackConfig(_SecretModel):
    """The responders' channel."""

    api_url: HttpUrl = "https://slack.com/api/"
    token: Secret
    channel: Text


class ThrottleConfig(_Model):
    """Storm control for one channel: at most ``max`` messages per person in any ``per``; what
    comes beyond is held and told in one summary message when the window frees a slot."""

    max: int = Field(ge=1, le=1000)
    per: PositiveDuration


class EmailConfig(_SecretModel):
    """SMTP for stakeholder email. ``from`` is ``from_`` in Python."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    smtp_host: Text
    smtp_port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: Text | None = None
    password: Secret | None = None
    from_: EmailAddress = Field(alias="from")
    timeout: Timeout = timedelta(seconds=5)
    throttle: ThrottleConfig = ThrottleConfig(max=20, per=timedelta(minutes=15))
    # The CA certificates (PEM) trusted for the server's STARTTLS certificate instead of the
    # system's: a private CA. Relative to the config file.
    ca_file: Path | None = None

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca_file_text(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be the path of a PEM file of CA certificates")
        return value

    @field_validator("ca_file")
    @classmethod
    def _load_ca_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = Path(os.path.normpath(_context_dir(info.context) / value))
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError:
            raise ValueError(f"{path} holds no PEM certificate") from None
        except OSError as error:
            raise ValueError(
                f"cannot read {path}: {error.strerror or type(error).__name__}"
            ) from None
        return path

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        if self.username is not None and self.password is None:
            _fail("EmailConfig", [(("password",), "required when username is set")])
        if self.password is not None and self.username is None:
            _fail("EmailConfig", [(("username",), "required when password is set")])
        if self.ca_file is not None and not self.starttls:
            _fail(
                "EmailConfig",
                [(("ca_file",), "is set but starttls is false: mail would go unencrypted")],
            )
        return self


class TwilioConfig(_SecretModel):
    """Twilio's Messages API. ``from`` is ``from_`` in Python."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    api_url: HttpUrl = "https://api.twilio.com"
    account_sid: str
    auth_token: Secret
    from_: PhoneNumber = Field(alias="from")

    @field_validator("account_sid")
    @classmethod
    def _check_sid(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("AC") or len(value) < 3 or re.search(r"\s", value):
            raise ValueError("must be a Twilio account SID (it starts with AC)")
        return value


class SmsConfig(_Model):
    """SMS, through Twilio."""

    twilio: TwilioConfig
    throttle: ThrottleConfig = ThrottleConfig(max=5, per=timedelta(minutes=15))


class Person(_Model):
    """A stakeholder or escalation contact: an email address, a phone number or both."""

    name: Text
    email: EmailAddress | None = None
    phone: PhoneNumber | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Person:
        if self.email is None and self.phone is None:
            raise ValueError("needs an email or a phone")
        return self


class AlertmanagerConfig(_Model):
    """Every Alertmanager peer; enables reconciliation and silence awareness."""

    urls: tuple[HttpUrl, ...]
    group_wait: Duration = timedelta(seconds=30)
    # How often every peer is asked for its alert groups (reconciliation, silences).
    interval: PositiveDuration = timedelta(minutes=1)
    timeout: Timeout = timedelta(seconds=5)
    # The receivers in the Alertmanager config that send to the bridge: only their groups can
    # be "missed". Empty: the receivers of the incidents the bridge has (so a route to a
    # `null` receiver or to another tool is never taken for a lost webhook).
    receivers: tuple[Text, ...] = ()

    @field_validator("urls")
    @classmethod
    def _some_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must list at least one Alertmanager URL")
        return value


class HeartbeatConfig(_Model):
    """The always-firing alert that proves the alerting pipeline works; never an incident."""

    alertname: Text = "Watchdog"
    timeout: PositiveDuration = timedelta(minutes=10)


class FlappingConfig(_Model):
    """A group that fires and resolves more than ``max_flips`` times within ``window`` is
    flapping: labelled, its notifications damped, its close deferred until quiet for the
    window."""

    max_flips: int = Field(3, ge=1, le=100)
    window: PositiveDuration = timedelta(hours=1)


class PollConfig(_Model):
    """Without ``github.webhook_secret`` the bridge polls every open incident issue (with
    conditional requests: an unchanged issue costs no rate limit), P0/P1 more often."""

    urgent: PositiveDuration = timedelta(minutes=1)
    other: PositiveDuration = timedelta(minutes=5)


class StatusPageConfig(_Model):
    """The public ``/status`` page."""

    enabled: bool = True
    title: Text = "Service status"
    monitoring_window: Duration = timedelta(minutes=30)


class TraceConfig(_Model):
    """One service's references, shown in its incidents' Traceability section (the guide's
    "Linking Bugs to Original Requirements"); an alert's ``requirement`` / ``component`` label
    wins over the entry's."""

    requirement: Text | None = None
    component: Text | None = None
    implementation: Text | None = None
    tests: Text | None = None


class Config(_Model):
    """The whole configuration. ``Config()`` is the zero-config (dry-run) configuration."""

    listen: ListenAddress = "127.0.0.1:9095"
    webhook: WebhookConfig = _section()
    api: ApiConfig = _section()
    store: StoreConfig = _section()
    identity: Literal["group_key", "group_labels"] = "group_key"
    github: GitHubConfig = _section()
    rules_dir: Path | None = None
    business_hours: BusinessHoursConfig = _section()
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    sms: SmsConfig | None = None
    stakeholders: tuple[Person, ...] = ()
    escalation: tuple[Person, ...] = ()
    alertmanager: AlertmanagerConfig | None = None
    heartbeat: HeartbeatConfig = _section()
    flapping: FlappingConfig = _section()
    status_page: StatusPageConfig = _section()
    # By service (an alert's ``service`` label, else its ``job``).
    traceability: dict[Text, TraceConfig] = Field(default_factory=dict)

    _config_path: Path | None = PrivateAttr(default=None)
    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("rules_dir", mode="before")
    @classmethod
    def _rules_dir_text(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a directory path (leave the key out for the bundled rules)")
        return value

    @field_validator("rules_dir")
    @classmethod
    def _resolve_rules_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        resolved = Path(os.path.normpath(_context_dir(info.context) / value))
        if not resolved.is_dir():
            raise ValueError(f"{resolved} is not a directory")
        return resolved

    @model_validator(mode="after")
    def _reopen_within_retention(self) -> Config:
        # An incident can reopen for ``reopen_window`` after it resolved; retention deletes
        # its timeline ``retention`` after: the window must end first.
        if self.github.reopen_window >= self.store.retention:
            _fail(
                "Config",
                [
                    (
                        ("github", "reopen_window"),
                        "must be shorter than store.retention"
                        f" ({format_duration(self.store.retention)}): an"
                        " incident reopened after its timeline was pruned would lose it",
                    )
                ],
            )
        return self

    @model_validator(mode="after")
    def _contacts(self) -> Config:
        people = self.stakeholders + self.escalation
        problems: list[tuple[Loc, str]] = []
        if self.email is not None and not any(person.email for person in people):
            problems.append(
                (("email",), "is configured but no stakeholder or escalation contact has an email")
            )
        if self.sms is not None and not any(person.phone for person in people):
            problems.append(
                (("sms",), "is configured but no stakeholder or escalation contact has a phone")
            )
        _fail("Config", problems)
        return self

    def model_post_init(self, context: Any) -> None:
        self._config_dir = _context_dir(context)
        if isinstance(context, Mapping) and isinstance(context.get("config_path"), Path):
            self._config_path = context["config_path"]

    @property
    def config_path(self) -> Path | None:
        """The file this was loaded from (absolute), or None for the zero-config."""
        return self._config_path

    @property
    def config_dir(self) -> Path:
        """The directory relative paths were resolved against (absolute)."""
        return self._config_dir

    @property
    def listen_host(self) -> str:
        """The host to bind, without IPv6 brackets (``"::"`` for ``[::]:9095``)."""
        return _split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return _split_listen(self.listen)[1]


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration as plain JSON-able data, every secret shown as ``<secret>``."""
    return config.model_dump(mode="json", by_alias=True)


# --------------------------------------------------------------------------------------------
# YAML


@dataclass(frozen=True, slots=True)
class _Problem:
    loc: Loc
    message: str
    line: int | None = None  # when the node tree cannot give it (duplicate keys)


_MAX_NODES = 100_000  # far above any real configuration; stops alias "billion laughs" bombs


class _ShapeError(Exception):
    """The document cannot be walked (a recursive alias, or aliases expanding beyond reason)."""

    def __init__(self, loc: Loc, line: int, message: str) -> None:
        super().__init__(message)
        self.loc, self.line, self.message = loc, line, message


def _index_lines(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    problems: list[_Problem],
    ancestors: frozenset[int] = frozenset(),
) -> None:
    """Record the line of every key and list item; report duplicate keys.

    Aliases are walked like the data they expand to (so their keys get lines too); a node
    containing itself, or a document expanding to more than ``_MAX_NODES``, is a _ShapeError.
    """
    if len(lines) > _MAX_NODES:
        raise _ShapeError(loc, node.start_mark.line + 1, "YAML aliases expand to too much data")
    if not isinstance(node, yaml.CollectionNode):
        return
    if id(node) in ancestors:
        raise _ShapeError(loc, node.start_mark.line + 1, "a YAML alias may not contain itself")
    inside = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            child = (*loc, key)
            if key in seen:
                problems.append(_Problem(child, f"duplicate key (also on line {seen[key]})", line))
            seen[key] = line
            lines[child] = line
            _index_lines(value_node, child, lines, problems, inside)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            _index_lines(item, child, lines, problems, inside)


def _yaml_problem(label: str, exc: yaml.YAMLError) -> str:
    # Built from the parts, not str(exc): that quotes the source line, which may hold a secret.
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        return f"{where}: YAML syntax error: {what or 'invalid YAML'}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"{label}: YAML syntax error: unacceptable character #x{exc.character:04x}"
    return f"{label}: YAML syntax error"


# --------------------------------------------------------------------------------------------
# ${VAR} substitution

_VAR_RE = re.compile(
    r"\$\$\{"  # $${ -> a literal ${
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$\{"  # anything else after ${ is malformed
)


def _substitute(value: Any, loc: Loc, env: Mapping[str, str], problems: list[_Problem]) -> Any:
    """Replace ``${VAR}`` in every string value (never in keys), recursively."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            text = match.group(0)
            if text == "$${":
                return "${"
            name = match.group("name")
            if name is None:
                problems.append(
                    _Problem(loc, "malformed ${...}: use ${NAME} or ${NAME:-default} ($${ for ${)")
                )
                return text
            found = env.get(name)
            default = match.group("default")
            if default is not None and not found:
                return default
            if found is None:
                problems.append(
                    _Problem(
                        loc,
                        f"environment variable {name} is not set "
                        f"(write ${{{name}:-default}} for a default)",
                    )
                )
                return text
            return found

        return _VAR_RE.sub(replace, value)
    if isinstance(value, dict):
        return {key: _substitute(item, (*loc, key), env, problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, (*loc, index), env, problems) for index, item in enumerate(value)]
    return value


# --------------------------------------------------------------------------------------------
# Problems from pydantic


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        model = _model_of(field.annotation)
    return model


def _unknown_key_message(loc: Loc) -> str:
    key = loc[-1] if loc else None
    model = _model_at(loc[:-1])
    if not isinstance(key, str) or model is None:
        return "unknown key"
    known = [field.alias or name for name, field in model.model_fields.items()]
    if issubclass(model, _SecretModel):
        known += [f"{name}_file" for name in model.secret_fields]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


# pydantic's wording for the common cases, in the "must be ..." voice of the other messages.
# Templates use the error's ctx (never its input, which may be a secret).
_TYPE_MESSAGES: dict[str, str] = {
    "missing": "required key is missing",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "path_type": "must be a path",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
}


def _validation_problems(error: ValidationError) -> list[_Problem]:
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        loc: Loc = tuple("from" if part == "from_" else part for part in detail["loc"])
        ctx: dict[str, Any] = detail.get("ctx") or {}
        kind = detail["type"]
        if kind == "secret_file":  # reported under x_file, not x
            loc = (*loc[:-1], str(ctx["key"]))
        if kind == "extra_forbidden":
            message = _unknown_key_message(loc)
        elif kind == "value_error":
            message = str(ctx.get("error", detail["msg"]))
        else:
            try:
                message = _TYPE_MESSAGES[kind].format_map(ctx)
            except KeyError:
                message = detail["msg"]
        problems.append(_Problem(loc, message))
    return problems


def _render(problem: _Problem, label: str | None, lines: Mapping[Loc, int]) -> tuple[int, str]:
    line = problem.line
    if line is None:
        for end in range(len(problem.loc), -1, -1):
            if problem.loc[:end] in lines:
                line = lines[problem.loc[:end]]
                break
    where = label if label is None or line is None else f"{label}:{line}"
    path = key_path(problem.loc)
    parts = [part for part in (where, path) if part]
    prefix = ": ".join(parts)
    text = f"{prefix}: {problem.message}" if prefix else problem.message
    return (line if line is not None else 1 << 30), text


def _under(loc: Loc, prefixes: set[Loc]) -> bool:
    return any(loc[: len(prefix)] == prefix for prefix in prefixes)


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load, substitute and validate the configuration; ``path=None`` is the zero-config.

    ``env`` (default ``os.environ``) supplies ``${VAR}``. Relative paths are resolved against
    the config file's directory (the cwd without a file). Raises :class:`ConfigError` listing
    every problem found.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if path is None:
        return _validate({}, None, Path.cwd(), None, {}, [], set())

    path = Path(path)
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{label}: the configuration file is not UTF-8 text"]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([f"{label}: cannot read the configuration file: {reason}"]) from None

    try:
        loader = Yaml12Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters at once
        raise ConfigError([_yaml_problem(label, exc)]) from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(label, exc)]) from None
    finally:
        loader.dispose()

    lines: dict[Loc, int] = {}
    problems: list[_Problem] = []
    if node is not None:
        lines[()] = node.start_mark.line + 1
        try:
            _index_lines(node, (), lines, problems)
        except _ShapeError as exc:
            raise ConfigError([f"{label}:{exc.line}: {key_path(exc.loc)}: {exc.message}"]) from None
    if data is None:
        data = {}  # an empty file (or only comments) is the zero-config
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else "single value"
        raise ConfigError(
            [f"{label}:{lines.get((), 1)}: the top level must be a mapping of keys, not a {kind}"]
        )
    substitution_problems: list[_Problem] = []
    data = _substitute(data, (), environ, substitution_problems)
    problems += substitution_problems
    unsubstituted = {problem.loc for problem in substitution_problems}
    absolute = Path(os.path.normpath(path.absolute()))
    return _validate(data, absolute, absolute.parent, label, lines, problems, unsubstituted)


def _validate(
    data: dict[str, Any],
    config_path: Path | None,
    config_dir: Path,
    label: str | None,
    lines: Mapping[Loc, int],
    problems: list[_Problem],
    unsubstituted: set[Loc],
) -> Config:
    config: Config | None = None
    try:
        config = Config.model_validate(
            data, context={"config_path": config_path, "config_dir": config_dir}
        )
    except ValidationError as exc:
        # A value whose ${VAR} failed is already reported; its knock-on errors would be noise.
        problems = problems + [
            problem
            for problem in _validation_problems(exc)
            if not _under(problem.loc, unsubstituted)
        ]
    if problems or config is None:
        rendered = sorted(
            (_render(problem, label, lines) for problem in problems), key=lambda item: item[0]
        )
        raise ConfigError([text for _, text in rendered])
    return config
