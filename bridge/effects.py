"""What every outbox effect's adapter raises when it fails: one error type, classified.

Each adapter (GitHub, Slack, email, SMS) decides whether its failure is worth retrying and
whether what it sent may have reached the far side; the outbox — the one retry mechanism —
schedules the retry, honouring ``retry_after``.
"""

from __future__ import annotations


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
