"""Timing rules of job execution: heartbeats, retries with backoff, grace periods."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class JobPolicy:
    """How often workers report, when a silent one counts as lost, and how retries wait.

    The defaults suit real work; tests shrink them to fractions of a second.
    """

    #: Seconds between a worker's heartbeats (each also tells it about cancel requests).
    heartbeat_interval: float = 2.0
    #: A running job whose worker has not beaten for this long is requeued or failed.
    heartbeat_timeout: float = 30.0
    #: Allowance for a new worker process to start and send its first heartbeat.
    start_timeout: float = 60.0
    #: Seconds between the executor's passes over the queue when nothing wakes it.
    poll_interval: float = 1.0
    #: Seconds between a worker's writes of buffered progress and log lines.
    flush_interval: float = 0.5
    #: Backoff before attempt n+1 is ``retry_base_delay * 2**(n-1)``, capped, minus jitter.
    retry_base_delay: float = 5.0
    retry_max_delay: float = 600.0
    #: Fraction of the delay taken off at random so retries of many jobs spread out.
    retry_jitter: float = 0.1
    #: After a cancel request, how long a running job may take to stop by itself before
    #: its worker process is terminated.
    cancel_grace: float = 10.0
    #: On shutdown, how long workers get after SIGTERM before SIGKILL.
    stop_grace: float = 5.0
    #: At most this many worker processes are started ahead of need while queued jobs wait
    #: (for a retry's backoff or a free slot), so they do not also wait for Python to start;
    #: none are kept when the queue is empty.
    warm_workers: int = 1
    #: Seconds between refreshes of the jobs-by-type-and-status gauge.
    metrics_interval: float = 15.0

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt after ``attempts`` failed ones.

        Exponential backoff with a little jitter (AWS Architecture Blog, "Exponential
        Backoff and Jitter", 2015), so jobs that failed together do not retry together.
        """
        exponent = min(max(attempts - 1, 0), 30)
        delay = min(self.retry_max_delay, self.retry_base_delay * float(2**exponent))
        return delay * (1.0 - self.retry_jitter * random.random())

    def as_dict(self) -> dict[str, Any]:
        """The policy as plain JSON values, for a worker process."""
        return asdict(self)
