"""The incident state each issue carries, so a lost store can be rebuilt from GitHub.

Every issue body the bridge writes holds, inside its region, one hidden line
``<!-- incident-bridge:state=v1:<base64url of zlib'd JSON> -->`` with the incident as the store
keeps it (the store's own JSON codec), minus what changes without anything visible changing
(each alert's ``updated_at``), so it never causes an edit of its own. ``incident-bridge rebuild``
reads it back. Base64 cannot contain ``-->``, and alert text inside it is data, never Markdown.

The line is bounded: past ``MAX_CHARS`` resolved alerts are left out, then firing alerts beyond
as many as fit (``alerts_partial`` says so); the next notification of the group — Alertmanager
sends complete groups — fills the alerts in again. Past that (a group whose own labels or
annotations are huge), the group's free text is clipped, harder each time, until it fits
(``text_clipped``): an issue body never outgrows GitHub's 65,536 characters, whatever the
alerts say.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime
from typing import Any

import orjson

from bridge.model import Incident
from bridge.store import codec

PREFIX = "<!-- incident-bridge:state=v1:"
SUFFIX = " -->"
MAX_CHARS = 24_000  # of the 65,536 a body may have; the rest is the visible region and people's


class SnapshotError(ValueError):
    """A state line that is not ours, or damaged (an edit by hand)."""


def _encode(data: dict[str, Any]) -> str:
    packed = zlib.compress(orjson.dumps(data), 9)
    return PREFIX + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=") + SUFFIX


def state_line(incident: Incident) -> str:
    """The hidden state line for ``incident``'s issue, at most ``MAX_CHARS`` long."""
    data: dict[str, Any] = orjson.loads(codec.incident_to_json(incident))
    data["number"] = incident.number
    for alert in data["alerts"]:
        del alert["updated_at"]  # refreshed by repeats; carrying it would edit the issue
    line = _encode(data)
    if len(line) <= MAX_CHARS:
        return line
    data["alerts_partial"] = True
    data["alerts"] = [a for a in data["alerts"] if a["status"] == "firing"]
    keep = len(data["alerts"])
    while True:
        data["alerts"] = data["alerts"][:keep]
        line = _encode(data)
        if len(line) <= MAX_CHARS:
            return line
        if keep == 0:
            break
        keep //= 2
    data["text_clipped"] = True
    for chars, entries in _CLIPS:
        line = _encode(_clipped(data, chars, entries))
        if len(line) <= MAX_CHARS:
            break
    return line  # the last clip leaves none of the group's text: a few hundred characters


# How the group's free text is clipped, in turn, when the alerts alone do not make the line fit:
# (characters per string, entries per map). The last leaves nothing of it, so the line fits.
_CLIPS = ((1_000, 100), (200, 30), (60, 10), (0, 0))
_FREE_TEXT = ("receiver", "group_key", "summary", "priority_rule", "external_url")
_FREE_MAPS = ("group_labels", "common_labels", "common_annotations")


def _clipped(data: dict[str, Any], chars: int, entries: int) -> dict[str, Any]:
    """``data`` with the group's text clipped: each free-text field to ``chars`` characters,
    each label and annotation map to its first ``entries`` entries of that length."""
    out = dict(data)
    for field in _FREE_TEXT:
        if isinstance(out.get(field), str):
            out[field] = out[field][:chars]
    for field in _FREE_MAPS:
        items = list(out.get(field, {}).items())[:entries]
        out[field] = {str(k)[:chars]: str(v)[:chars] for k, v in items}
    return out


def find_state_line(body: str) -> str | None:
    """The state line in an issue body, if there is one."""
    start = body.find(PREFIX)
    if start < 0:
        return None
    end = body.find(SUFFIX, start + len(PREFIX))
    return body[start : end + len(SUFFIX)] if end >= 0 else None


def read_state_line(line: str, *, updated_at: datetime) -> Incident:
    """The incident a state line holds (``id`` unset: the store assigns it on restore).

    Alerts get ``updated_at`` (which the line leaves out) from the caller: when the issue was
    last written is as good as the bridge can know.
    """
    if not (line.startswith(PREFIX) and line.endswith(SUFFIX)):
        raise SnapshotError("not an incident-bridge state line")
    text = line[len(PREFIX) : -len(SUFFIX)]
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = orjson.loads(zlib.decompress(packed))
        number = int(data.pop("number"))
        data.pop("alerts_partial", None)
        data.pop("text_clipped", None)
        for alert in data["alerts"]:
            alert["updated_at"] = codec.ts(updated_at)
        incident = codec.incident_from_json(orjson.dumps(data).decode(), row_id=0, number=number)
    except (binascii.Error, zlib.error, orjson.JSONDecodeError, KeyError, TypeError) as error:
        raise SnapshotError(f"damaged state line: {type(error).__name__}") from None
    except ValueError as error:  # a bad priority, timestamp or number
        raise SnapshotError(f"damaged state line: {error}") from None
    incident.id = None
    return incident
