"""One attempt of one job, in its own process: ``python -m inwire.kit.jobs.worker``.

The executor claims a job, starts this module and writes a ``WorkerSpec`` as one JSON line
to its stdin (stdin, not argv, because the database URL may hold a password). The worker
opens its own connection to the service's database, heartbeats, stores progress and log
lines as the job function reports them, and ends the attempt: ``succeeded`` with the result
in one statement, or a retry/failure decision. Afterwards the stdin pipe carries ``cancel``
lines; end of file means the parent is gone, and the worker exits so that the parent's
successor can requeue the job once its heartbeat is stale.

``run_attempt(spec)`` is the whole job spec, so another executor (Ray) can run the same
function on a remote node.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import Any

from inwire.kit.db.base import new_metadata, utcnow
from inwire.kit.db.engine import Database
from inwire.kit.jobs.context import JobCancelled, JobContext, JobFailed
from inwire.kit.jobs.models import Job, JobStatus, job_tables
from inwire.kit.jobs.policy import JobPolicy
from inwire.kit.jobs.registry import JobResult, resolve
from inwire.kit.jobs.repository import JobRepository, PendingLine

log = logging.getLogger("inwire.jobs.worker")

#: Exit code when the parent disappeared (stdin closed) while the job ran.
EXIT_ORPHANED = 70
#: How often the final write is tried before the attempt is left to the reaper.
FINAL_WRITE_TRIES = 5


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to run one claimed attempt of a job."""

    job_id: str
    worker_id: str
    target: str
    database_url: str
    database_schema: str = ""
    jobs_table: str = "jobs"
    logs_table: str = "job_logs"
    policy: dict[str, Any] = field(default_factory=dict)
    service: str = "service"
    log_level: str = "INFO"
    log_json: bool = True
    sys_path: list[str] = field(default_factory=list)
    #: The service's settings (JSON values), for the job function as ``ctx.settings``.
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        """Parse what ``to_json`` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


def _error_text(exc: BaseException) -> str:
    # Only the exception's type and message reach the job record; the traceback goes to
    # the service's logs, never to the API.
    message = str(exc).strip()
    if isinstance(exc, JobFailed) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _check_result(value: Any) -> JobResult:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"job function returned {type(value).__name__}, expected a dict or None")
    try:
        checked: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job result is not JSON serializable: {exc}") from exc
    return checked


class _Attempt:
    """The running attempt: its context, its database and its heartbeat bookkeeping."""

    def __init__(self, spec: WorkerSpec, db: Database, cancel_event: threading.Event) -> None:
        self.spec = spec
        self.db = db
        self.tables = job_tables(
            new_metadata(), jobs_name=spec.jobs_table, logs_name=spec.logs_table
        )
        self.policy = JobPolicy(**spec.policy)
        self.cancel_event = cancel_event
        self.last_beat = 0.0
        self.lost = False

    def repo(self, session: Any) -> JobRepository:
        return JobRepository.unscoped(session, self.tables)

    async def load(self) -> Job | None:
        async with self.db.session() as session:
            job = await self.repo(session).get(self.spec.job_id)
        if job is None or job.status != JobStatus.running or job.worker_id != self.spec.worker_id:
            return None
        return job

    async def flush(self, ctx: JobContext, *, force: bool = False) -> None:
        """Store buffered progress and lines; heartbeat when due or when asked."""
        progress, lines = ctx.take()
        now = time.monotonic()
        idle = not progress and not lines
        if not force and idle and now - self.last_beat < self.policy.heartbeat_interval:
            return
        try:
            async with self.db.session() as session:
                cancel = await self.repo(session).beat(
                    self.spec.job_id, self.spec.worker_id, utcnow(), progress=progress, lines=lines
                )
        except Exception:
            log.warning("heartbeat of job %s failed", self.spec.job_id, exc_info=True)
            ctx.put_back(progress, lines)
            return
        self.last_beat = now
        if cancel is None:
            self.lost = True
        elif cancel:
            ctx.request_cancel()

    async def finish(self, job: Job, ctx: JobContext, outcome: BaseException | JobResult) -> None:
        """Close the attempt with its outcome, retrying the write a few times."""
        for attempt in range(1, FINAL_WRITE_TRIES + 1):
            try:
                await self._finish_once(job, ctx, outcome)
                return
            except Exception:
                log.warning(
                    "storing the outcome of job %s failed (try %d)",
                    job.id,
                    attempt,
                    exc_info=True,
                )
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        log.error("giving up storing the outcome of job %s; the reaper will requeue it", job.id)

    async def _finish_once(
        self, job: Job, ctx: JobContext, outcome: BaseException | JobResult
    ) -> None:
        await self.flush(ctx, force=True)
        if self.lost:
            return
        now = utcnow()
        notes: list[PendingLine] = []
        async with self.db.session() as session:
            repo = self.repo(session)
            if isinstance(outcome, BaseException):
                error = _error_text(outcome)
                ended = await repo.end_attempt(
                    job, error, self.policy, now, retry=not isinstance(outcome, JobFailed)
                )
                if ended is not None:
                    status, delay = ended
                    if status == JobStatus.cancelled:
                        notes.append((now, "info", "cancelled"))
                    elif status == JobStatus.queued:
                        notes.append(
                            (
                                now,
                                "error",
                                f"attempt {job.attempts} failed: {error}; "
                                f"retrying in {delay:.1f} s",
                            )
                        )
                    else:
                        notes.append(
                            (now, "error", f"failed after {job.attempts} attempts: {error}")
                        )
            else:
                status_done = await repo.succeed(job.id, self.spec.worker_id, outcome, now)
                if status_done == JobStatus.cancelled:
                    notes.append((now, "info", "cancelled; the result was discarded"))
                elif status_done == JobStatus.succeeded:
                    notes.append((now, "info", "succeeded"))
            await repo.append_logs(job.id, notes)


def _call(fn: Any, ctx: JobContext, job_input: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(ctx, job_input))
    value = fn(ctx, job_input)
    if inspect.isawaitable(value):

        async def wait(awaitable: Awaitable[Any]) -> Any:
            return await awaitable

        return asyncio.run(wait(value))
    return value


async def run_attempt(spec: WorkerSpec, cancel_event: threading.Event | None = None) -> int:
    """Run the claimed attempt ``spec`` names and store its outcome; returns an exit code."""
    db = Database(spec.database_url, schema=spec.database_schema)
    try:
        attempt = _Attempt(spec, db, cancel_event or threading.Event())
        job = await attempt.load()
        if job is None:
            log.warning(
                "job %s is not held by worker %s; nothing to do", spec.job_id, spec.worker_id
            )
            return 0
        ctx = JobContext(
            job_id=job.id,
            organization_id=job.organization_id,
            job_type=job.type,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            created_by=job.created_by,
            cancel_event=attempt.cancel_event,
            settings=spec.settings,
        )
        if job.cancel_requested:
            ctx.request_cancel()
        ctx.note(
            f"attempt {job.attempts} of {job.max_attempts} started on "
            f"{socket.gethostname()} (pid {os.getpid()})"
        )
        await attempt.flush(ctx, force=True)
        outcome = await _run_function(attempt, spec, job, ctx)
        if attempt.lost:
            log.warning("job %s was taken from worker %s; result dropped", job.id, spec.worker_id)
            return 0
        await attempt.finish(job, ctx, outcome)
        return 0
    finally:
        await db.dispose()


async def _run_function(
    attempt: _Attempt, spec: WorkerSpec, job: Job, ctx: JobContext
) -> BaseException | JobResult:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[BaseException | JobResult] = loop.create_future()

    def report(value: BaseException | JobResult) -> None:
        if not done.done():
            done.set_result(value)

    def body() -> None:
        outcome: BaseException | JobResult
        try:
            fn = resolve(spec.target)
            outcome = _check_result(_call(fn, ctx, dict(job.input)))
        except BaseException as exc:
            if not isinstance(exc, JobCancelled) or not ctx.cancelled():
                log.error(
                    "job %s (%s) attempt %d raised",
                    job.id,
                    job.type,
                    job.attempts,
                    exc_info=exc,
                    extra={"job_id": job.id, "job_type": job.type},
                )
            outcome = exc
        loop.call_soon_threadsafe(report, outcome)

    # A daemon thread: if the job is taken away or the parent vanishes, the process can
    # exit without waiting for a function that never checks for cancel.
    threading.Thread(target=body, name=f"job-{job.id}", daemon=True).start()
    tick = max(0.01, min(attempt.policy.flush_interval, attempt.policy.heartbeat_interval))
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout=tick)
        except TimeoutError:
            pass
        await attempt.flush(ctx)
        if attempt.lost:
            return None


def _watch_parent(cancel_event: threading.Event) -> None:
    """Read control lines from the parent; end of file means the parent died."""
    for line in sys.stdin:
        if line.strip() == "cancel":
            cancel_event.set()
    log.warning("executor went away; worker %d exits", os.getpid())
    os._exit(EXIT_ORPHANED)


def _preload() -> None:
    """Import what every attempt needs before the spec arrives (a warm worker waits here)."""
    import contextlib
    import importlib

    for name in (
        "inwire.kit.observability",
        "sqlalchemy.ext.asyncio",
        "sqlalchemy.dialects.sqlite.aiosqlite",
        "sqlalchemy.dialects.postgresql.asyncpg",
    ):
        with contextlib.suppress(ImportError):  # an optional driver may be missing
            importlib.import_module(name)


def main() -> None:
    """Entry point of a worker process: read the spec from stdin, run, exit.

    The executor may start a worker before it has a job for it (a warm worker): the
    imports are done by then, and end of file before a spec means "not needed, exit".
    """
    _preload()
    line = sys.stdin.readline()
    if not line.strip():
        return
    spec = WorkerSpec.from_json(line)
    for entry in reversed(spec.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from inwire.kit.observability import configure_logging

    configure_logging(spec.service, spec.log_level, spec.log_json)
    cancel_event = threading.Event()
    threading.Thread(target=_watch_parent, args=(cancel_event,), daemon=True).start()
    code = asyncio.run(run_attempt(spec, cancel_event))
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: a job function that ignored cancel may still hold its
    # thread, and nothing is left to clean up once the outcome is stored.
    os._exit(code)


if __name__ == "__main__":
    main()
