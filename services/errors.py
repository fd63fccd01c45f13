"""Errors as values: a kind, a message a finance person can read, and whether a retry can help.

The same object feeds the ledger, the CLI and the Slack error posts.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class ErrorKind(StrEnum):
    VALIDATION = "validation"
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    BAD_DATA = "bad_data"
    NOT_FOUND = "not_found"


# A request that failed so may have been acted on all the same (its answer was lost): what
# it made is looked for before it is sent again. Retrying them can help.
UNCERTAIN = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.UPSTREAM_UNAVAILABLE})


class ServiceError(Exception):
    """A failure the product explains to its user rather than a programming error."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = kind in UNCERTAIN if retryable is None else retryable
        # Set when the service takes nothing more before then (Xero's daily allowance spent).
        self.retry_after = retry_after

    @property
    def stops_the_run(self) -> bool:
        """Nothing more can be sent: the authorization is gone, or the service asked to wait.
        No item is failed for it; the run stops and resumes where it was."""
        return self.kind == ErrorKind.AUTH or self.retry_after is not None

    def __repr__(self) -> str:
        return f"ServiceError({self.kind.value!r}, {self.message!r}, retryable={self.retryable})"
