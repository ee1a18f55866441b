"""Sliding windows of request outcomes and latencies (canary health, autoscaling) and the
shadow comparison log; in memory, per deployment revision."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


@dataclass
class Window:
    """Requests of one revision: ``(time, error, latency seconds)``, oldest first."""

    keep_seconds: float = 600.0
    events: deque[tuple[float, bool, float]] = field(default_factory=deque)
    #: When the last request came (at first: when the window was made, so that a new
    #: deployment is not idle from its first moment).
    last_request: float = field(default_factory=time.monotonic)

    def add(self, error: bool, latency: float) -> None:
        """Count one request answered (or failed) in ``latency`` seconds."""
        now = time.monotonic()
        self.events.append((now, error, latency))
        self.last_request = now
        cutoff = now - self.keep_seconds
        while self.events and self.events[0][0] < cutoff:
            self.events.popleft()

    def recent(self, seconds: float) -> list[tuple[float, bool, float]]:
        """The requests of the last ``seconds``."""
        cutoff = time.monotonic() - seconds
        return [e for e in self.events if e[0] >= cutoff]

    def summary(self, seconds: float) -> tuple[int, float, float | None, float | None]:
        """``(requests, error rate, p50 ms, p99 ms)`` over the last ``seconds``."""
        recent = self.recent(seconds)
        if not recent:
            return 0, 0.0, None, None
        errors = sum(1 for _, e, _ in recent if e)
        latencies = [lat * 1000 for _, e, lat in recent if not e]
        return (
            len(recent),
            errors / len(recent),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )


@dataclass
class ShadowRecord:
    """One mirrored request: both answers' agreement and latencies."""

    rows: int
    agree: int
    diffs: list[float]
    primary_ms: float
    shadow_ms: float | None
    error: bool


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def compare(primary: Iterable[Any], shadow: Iterable[Any]) -> tuple[int, int, list[float]]:
    """``(rows, rows agreeing, absolute differences of numeric pairs)``."""
    rows = agree = 0
    diffs: list[float] = []
    for a, b in zip(primary, shadow, strict=False):
        rows += 1
        agree += int(a == b)
        x, y = _number(a), _number(b)
        if x is not None and y is not None:
            diffs.append(abs(x - y))
    return rows, agree, diffs


def shadow_summary(records: Sequence[ShadowRecord]) -> dict[str, Any]:
    """Agreement rate, mean absolute difference and both latencies' p50/p99."""
    ok = [r for r in records if not r.error]
    rows = sum(r.rows for r in ok)
    diffs = [d for r in ok for d in r.diffs]
    primary = [r.primary_ms for r in records]
    shadow = [r.shadow_ms for r in ok if r.shadow_ms is not None]
    return {
        "requests": len(records),
        "rows": rows,
        "shadow_errors": len(records) - len(ok),
        "agreement_rate": (sum(r.agree for r in ok) / rows) if rows else None,
        "mean_abs_diff": (sum(diffs) / len(diffs)) if diffs else None,
        "latency_ms": {
            "primary": {"p50": percentile(primary, 0.5), "p99": percentile(primary, 0.99)},
            "shadow": {"p50": percentile(shadow, 0.5), "p99": percentile(shadow, 0.99)},
        },
    }
