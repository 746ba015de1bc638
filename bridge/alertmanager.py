"""The Alertmanager webhook payload (version 4): validation and conversion to the domain model.

Unknown fields are ignored (a field a newer Alertmanager adds must never become a 400, because
Alertmanager does not retry 4xx); known fields are checked strictly, since a wrong type means the
sender is not an Alertmanager.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, Strict, StrictStr, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from bridge.model import AlertSnapshot, Notification

Labels = dict[StrictStr, StrictStr]
# An RFC 3339 string (JSON has no time type); strict refuses a bare number read as Unix time.
StrictDatetime = Annotated[datetime, Strict()]
# Times the bridge can compute with (deadlines, durations); Go's zero time is "not ended".
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(3000, 1, 1, tzinfo=UTC)


class WebhookError(ValueError):
    """The body is not an Alertmanager v4 webhook; the message is safe to return to the sender."""


# Typed dicts rather than models: validated straight into dicts, which the conversion below
# reads once (a third faster than building model instances, on the webhook's hot path).
_CONFIG = ConfigDict(extra="ignore", hide_input_in_errors=True)


@with_config(_CONFIG)
class WebhookAlert(TypedDict):
    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: NotRequired[Labels]
    startsAt: StrictDatetime
    endsAt: NotRequired[StrictDatetime | None]
    generatorURL: NotRequired[StrictStr]
    fingerprint: NotRequired[StrictStr]


@with_config(_CONFIG)
class WebhookPayload(TypedDict):
    version: StrictStr
    receiver: StrictStr
    status: Literal["firing", "resolved"]
    alerts: Annotated[list[WebhookAlert], Field(min_length=1)]
    groupLabels: NotRequired[Labels]
    commonLabels: NotRequired[Labels]
    commonAnnotations: NotRequired[Labels]
    externalURL: NotRequired[StrictStr]
    groupKey: StrictStr
    # Alertmanager's is a uint64; anything larger is not from it (and no store could keep it).
    truncatedAlerts: NotRequired[Annotated[int, Field(ge=0, le=2**64 - 1, strict=True)]]


_PAYLOAD = TypeAdapter(WebhookPayload)


def labels_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit fingerprint for senders that leave ``fingerprint`` out.

    The canonical form is JSON of the sorted pairs, so no label text can imitate a separator.
    """
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _in_range(moment: datetime, field: str) -> datetime:
    """The moment in UTC, if the bridge can compute with it. In UTC: every time the engine
    compares then shares one tzinfo, which Python compares field by field (a sender's offset
    means two ``utcoffset`` calls per comparison)."""
    if not _EARLIEST <= moment < _LATEST:
        raise WebhookError(f"not an Alertmanager webhook: alerts.{field}: outside 1970..2999")
    return moment.astimezone(UTC)


def _starts_at(moment: datetime) -> datetime:
    return _in_range(_aware(moment), "startsAt")


def _ends_at(moment: datetime | None) -> datetime | None:
    # Alertmanager sends Go's zero time (0001-01-01T00:00:00Z) for "not ended".
    if moment is None or moment.year <= 1:
        return None
    return _in_range(_aware(moment), "endsAt")


def _describe(error: ValidationError) -> str:
    first = error.errors(include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse_webhook(body: bytes) -> Notification:
    """Validate a webhook body and return the notification; raise WebhookError otherwise."""
    try:
        payload = _PAYLOAD.validate_json(body)
    except ValidationError as error:
        kinds = {e["type"] for e in error.errors(include_input=False)}
        if kinds & {"json_invalid", "json_type"}:
            raise WebhookError("malformed JSON") from None
        raise WebhookError(f"not an Alertmanager webhook: {_describe(error)}") from None
    version = payload["version"]
    if version != "4":
        raise WebhookError(f"unsupported webhook version {version[:20]!r}; expected '4'")
    # The validated dicts are new and ours alone: the domain objects take them as they are.
    alerts = tuple(
        AlertSnapshot(
            fingerprint=a.get("fingerprint") or labels_fingerprint(a["labels"]),
            status=a["status"],
            labels=a["labels"],
            annotations=a.get("annotations", {}),
            starts_at=_starts_at(a["startsAt"]),
            ends_at=_ends_at(a.get("endsAt")),
            generator_url=a.get("generatorURL", ""),
        )
        for a in payload["alerts"]
    )
    return Notification(
        receiver=payload["receiver"],
        status=payload["status"],
        alerts=alerts,
        group_labels=payload.get("groupLabels", {}),
        common_labels=payload.get("commonLabels", {}),
        common_annotations=payload.get("commonAnnotations", {}),
        external_url=payload.get("externalURL", ""),
        group_key=payload["groupKey"],
        truncated_alerts=payload.get("truncatedAlerts", 0),
    )
