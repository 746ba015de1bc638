"""Key paths for problem messages: ``("stakeholders", 1, "phone")`` → ``stakeholders[1].phone``."""

from __future__ import annotations

from typing import TypeAlias

Loc: TypeAlias = tuple[str | int, ...]


def key_path(loc: Loc) -> str:
    """The dotted path of a pydantic-style location; pydantic's ``[key]`` marker is dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else part
    return text
