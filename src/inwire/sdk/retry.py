"""When the SDK sends a request again, and how long it waits first.

429 (rate limited) and 503 (unavailable) mean the server did not do the work, so any
request, POST included, may be sent again (RFC 9110 §15.5.20 and §15.6.4, RFC 6585 §4);
a connection that fails before an answer is retried only for idempotent methods, because
a POST may have arrived. The wait is the server's ``Retry-After`` when it gives one
(delta-seconds or an HTTP date, RFC 9110 §10.2.3), else exponential backoff with jitter;
a wait longer than ``max_wait`` is not worth sleeping through, so the error is raised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from inwire.sdk.errors import InwireError, TooManyRequests, Unavailable, Unreachable

__all__ = ["IDEMPOTENT", "RetryPolicy", "parse_retry_after"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; ``RetryPolicy(max_retries=0)`` turns retries off."""

    max_retries: int = 3
    """Extra attempts after the first one."""
    backoff: float = 0.5
    """Seconds before the first retry without ``Retry-After``; doubles each time."""
    max_wait: float = 60.0
    """The longest single wait; a longer ``Retry-After`` raises the error at once."""

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff < 0 or self.max_wait < 0:
            raise ValueError("max_retries, backoff and max_wait must not be negative")

    def delay(self, error: InwireError, method: str, attempt: int) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, Unreachable):
            if method.upper() not in IDEMPOTENT:
                return None
        elif not isinstance(error, TooManyRequests | Unavailable) or error.status not in (429, 503):
            return None
        wait = parse_retry_after(error.headers.get("Retry-After"))
        if wait is None:
            wait = self.backoff * 2**attempt * random.uniform(0.5, 1.0)
        return wait if wait <= self.max_wait else None
