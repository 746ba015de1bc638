"""Alert text made fit for people's screens: one line, no control or format characters.

Labels and annotations are whatever the alert's author (or an attacker who can set them) wrote;
the renderers each escape for their medium, and every one of them first flattens the text here.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE = ("Cc", "Cf", "Cs")  # control, format (zero-width, bidi), lone surrogates


def one_line(text: str, limit: int) -> str:
    """Alert text as a single line of at most ``limit`` characters, without control or format
    characters (ESC, NUL, zero-width and bidi controls), which the GitHub and SMS renderers
    leave out too: a right-to-left override would reorder what follows it in a subject."""
    flat = " ".join(text.split())
    if not flat.isprintable():  # the common case costs one check
        kept = (ch for ch in flat if unicodedata.category(ch) not in _INVISIBLE)
        flat = " ".join("".join(kept).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
