"""What every outbox effect's adapter raises when it fails: one error type, classified.

Each adapter (GitHub, Slack, email, SMS) decides whether its failure is worth retrying and
whether what it sent may have reached the far side; the outbox — the one retry mechanism —
schedules the retry, honouring ``retry_after``.
"""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime


class EffectError(Exception):
    """A failed outside call, classified by the adapter that made it."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after  # seconds the far side asked us to wait
        self.outcome_unknown = outcome_unknown  # the request may have been applied

    def redacted(self, secret: str, instead: str) -> EffectError:
        """The same error with ``secret`` (an address, a number a provider echoed back) in its
        message replaced by ``instead``: failures are shown in the issue timeline."""
        return EffectError(
            str(self).replace(secret, instead),
            retryable=self.retryable,
            status=self.status,
            retry_after=self.retry_after,
            outcome_unknown=self.outcome_unknown,
        )


def retry_after_seconds(value: object, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value — delta-seconds or an HTTP date, read at
    ``now`` (epoch seconds) — or None when there is none or it is nonsense (not a number, not a
    zoned date, infinite). Never negative. Every adapter reads the header here."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
