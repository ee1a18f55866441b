"""A circuit breaker per upstream (Nygard, *Release It!*, 2nd ed., ch. 5 "Circuit Breaker").

Closed: requests pass; ``failures`` consecutive failures (connection errors, timeouts) open
it. Open: requests are refused at once for ``open_seconds`` (503 naming the service), so a
dead service costs callers nothing and gets room to restart. Half-open: one trial request
passes; success closes the circuit, failure opens it again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.StrEnum):
    """Where a circuit is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one upstream and refuses calls while open."""

    def __init__(
        self,
        *,
        failures: int = 5,
        open_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.open_seconds = open_seconds
        self._clock = clock
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    def allow(self) -> bool:
        """Whether a request may go to the upstream now (reserves the half-open trial)."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            if self._clock() - self._opened_at < self.open_seconds:
                return False
            self.state = CircuitState.HALF_OPEN
            self._trial_running = False
        if self._trial_running:
            return False
        self._trial_running = True
        return True

    @property
    def retry_after(self) -> float:
        """Seconds until the open circuit lets a trial through (0 when not open)."""
        if self.state is not CircuitState.OPEN:
            return 1.0 if self.state is CircuitState.HALF_OPEN else 0.0
        return max(0.0, self.open_seconds - (self._clock() - self._opened_at))

    def success(self) -> None:
        """The upstream answered: close the circuit."""
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._trial_running = False

    def failure(self) -> None:
        """The upstream could not be reached or timed out."""
        self.failures += 1
        self._trial_running = False
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()

    def release(self) -> None:
        """A request that was allowed ended without telling either way (e.g. cancelled)."""
        self._trial_running = False
