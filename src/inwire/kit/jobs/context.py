"""What a running job function sees: its identity, progress, log and cancel flag.

The context only buffers: the worker process that runs the function writes progress and
log lines to the service's database with its heartbeats, and sets the cancel flag when a
cancel request reaches it. Every method is cheap and thread-safe, so a job function may
call them as often as it likes, from any thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from inwire.kit.db.base import utcnow
from inwire.kit.jobs.repository import PendingLine


class JobCancelled(Exception):
    """Raised by ``JobContext.raise_if_cancelled``: the job stops and ends ``cancelled``."""


class JobFailed(Exception):
    """Raise from a job function to fail the job now, without retries.

    For errors a retry cannot fix (a malformed file, an invalid parameter): the job ends
    ``failed`` with this message as its error, whatever attempts remain.
    """


class JobContext:
    """The running job's handle: ``progress(fraction, message)``, ``log(line)``, ``cancelled()``.

    A job function cooperates with cancel by checking ``cancelled()`` (or calling
    ``raise_if_cancelled()``) between steps; one that does not is terminated after the
    executor's grace period. What it returns becomes the result only if it was not
    cancelled.
    """

    def __init__(
        self,
        *,
        job_id: str,
        organization_id: str,
        job_type: str,
        attempt: int,
        max_attempts: int,
        created_by: str,
        cancel_event: threading.Event | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.job_id = job_id
        self.organization_id = organization_id
        self.type = job_type
        #: 1 for the first attempt, 2 for the first retry, …
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.created_by = created_by
        #: The owning service's settings as JSON values (``SynthexSettings(**ctx.settings)``
        #: rebuilds them), so a job can open the service's database and object store.
        self.settings: Mapping[str, Any] = dict(settings or {})
        self._lock = threading.Lock()
        self._lines: list[PendingLine] = []
        self._progress: tuple[float, str | None] | None = None
        self._cancelled = cancel_event or threading.Event()

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the job is, from 0 to 1 (clamped), with an optional message."""
        value = float(fraction)
        if math.isnan(value):
            raise ValueError("progress must be a number between 0 and 1")
        with self._lock:
            self._progress = (min(1.0, max(0.0, value)), message)

    def log(self, line: Any, *, level: str = "info") -> None:
        """Append a line to the job's log (readable over the API while the job runs)."""
        text = str(line)
        stamp = utcnow()
        with self._lock:
            self._lines.extend((stamp, level, part) for part in text.splitlines() or [""])

    def cancelled(self) -> bool:
        """Whether someone asked to cancel this job; stop soon if so."""
        return self._cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise ``JobCancelled`` if a cancel was requested."""
        if self._cancelled.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancel; returns ``cancelled()``."""
        return self._cancelled.wait(timeout)

    # -- used by the worker that runs the job -----------------------------------------------

    def request_cancel(self) -> None:
        """Set the cancel flag (the worker calls this when a cancel request arrives)."""
        self._cancelled.set()

    def take(self) -> tuple[tuple[float, str | None] | None, list[PendingLine]]:
        """Everything reported since the last call: latest progress and new lines."""
        with self._lock:
            progress, lines = self._progress, self._lines
            self._progress, self._lines = None, []
        return progress, lines

    def put_back(self, progress: tuple[float, str | None] | None, lines: list[PendingLine]) -> None:
        """Return what ``take`` gave when it could not be stored, so nothing is lost."""
        with self._lock:
            if self._progress is None:
                self._progress = progress
            self._lines = lines + self._lines

    def note(self, line: str, *, level: str = "info", at: datetime | None = None) -> None:
        """A line from the worker itself (attempt started, failed, …)."""
        with self._lock:
            self._lines.append((at or utcnow(), level, line))
