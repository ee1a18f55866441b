"""Executors run queued jobs; ``open_executor(url)`` picks one by the ``jobs_url`` setting.

The job row is the source of truth and every executor works from it: it claims due jobs
with a fenced ``UPDATE``, runs each attempt somewhere (``local``: a worker subprocess per
attempt; ``ray``: a Ray task per attempt, see ``ray_executor``; at most ``concurrency`` at a
time), and reaps attempts whose worker stopped heartbeating, whoever started them, so a
crash, a ``kill -9`` or a restart of the service ends in a retry or a clear failure.
``submit`` and ``cancel`` are only nudges that save a polling interval.

``QueueExecutor`` is that loop; an executor says only how an attempt is started, watched,
nudged and stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Generic,
    Protocol,
    TypedDict,
    TypeVar,
    Unpack,
    runtime_checkable,
)
from urllib.parse import urlsplit

from inwire.kit.db.base import utcnow
from inwire.kit.db.engine import Database
from inwire.kit.ids import new_id
from inwire.kit.jobs.models import Job, JobStatus
from inwire.kit.jobs.policy import JobPolicy
from inwire.kit.jobs.repository import JobRepository, PendingLine
from inwire.kit.jobs.service import JobService
from inwire.kit.jobs.worker import WorkerSpec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from inwire.kit.observability import ServiceMetrics

log = logging.getLogger("inwire.jobs")

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs a service's queued jobs. Built by ``open_executor``, started in the lifespan."""

    async def start(self) -> None:
        """Begin taking jobs from the queue."""
        ...

    async def stop(self) -> None:
        """Stop taking jobs; interrupt running attempts and return them to the queue."""
        ...

    def submit(self, job_id: str) -> None:
        """A job was queued (its row is committed): look at the queue soon."""
        ...

    def cancel(self, job_id: str) -> None:
        """A cancel was requested for a running job: pass it on soon."""
        ...


class UnsupportedExecutor(ValueError):
    """The ``jobs_url`` names an executor this installation cannot provide."""


class ExecutorOptions(TypedDict, total=False):
    """What every executor accepts besides its database and job service."""

    #: At most this many attempts of this executor run at once.
    concurrency: int
    policy: JobPolicy | None
    #: Fed the jobs-by-type-and-status gauge.
    metrics: ServiceMetrics | None
    #: The service's name, log level and format, for its workers' logs.
    service: str
    log_level: str
    log_json: bool
    #: The service's settings, handed to each job function as ``ctx.settings``.
    settings: Mapping[str, Any] | None


def open_executor(
    url: str, *, db: Database, jobs: JobService, **options: Unpack[ExecutorOptions]
) -> Executor:
    """The executor for ``url``: ``local`` (worker subprocesses of this service), or a Ray
    cluster: ``ray://host:port`` (Ray Client), ``ray:auto`` or ``ray:host:port`` (the
    cluster this machine is a node of; see ``ray_executor``).

    Any other scheme raises ``UnsupportedExecutor`` naming what is accepted, as does a Ray
    URL when Ray is not installed.
    """
    text = url.strip()
    scheme = urlsplit(text).scheme.lower() if ":" in text else text.lower()
    if scheme == "local":
        return LocalExecutor(db, jobs, **options)
    if scheme == "ray":
        # Imported here: the module (and Ray itself, on start) only when Ray is asked for.
        from inwire.kit.jobs.ray_executor import RayExecutor, ray_target

        return RayExecutor(db, jobs, ray_target(text), **options)
    raise UnsupportedExecutor(
        f"unknown jobs_url {url!r}: expected 'local' (worker subprocesses), "
        "'ray://host:port' (a Ray cluster through Ray Client) or 'ray:auto' "
        "(the Ray cluster this machine belongs to)"
    )


@asynccontextmanager
async def run_jobs(
    app: FastAPI, jobs: JobService | None = None, *, policy: JobPolicy | None = None
) -> AsyncIterator[Executor]:
    """Run the service's executor for the duration of its lifespan.

    Uses ``app.state.jobs`` (or ``jobs``, stored there), the app's database and the
    ``jobs_url`` / ``jobs_concurrency`` settings; feeds ``app.state.metrics`` if present.
    """
    service_jobs: JobService = jobs if jobs is not None else app.state.jobs
    app.state.jobs = service_jobs
    settings = app.state.settings
    executor = open_executor(
        settings.jobs_url,
        db=app.state.db,
        jobs=service_jobs,
        concurrency=settings.jobs_concurrency,
        policy=policy,
        metrics=getattr(app.state, "metrics", None),
        service=settings.service,
        log_level=settings.log_level,
        log_json=settings.log_json,
        settings=settings.model_dump(mode="json"),
    )
    await executor.start()
    service_jobs.attach(executor)
    try:
        yield executor
    finally:
        service_jobs.attach(None)
        await executor.stop()


class RunningAttempt:
    """An attempt an executor started and has not settled yet (a process, a Ray task…)."""

    def __init__(self, job_id: str, worker_id: str) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        #: When the cancel request was passed on (monotonic seconds).
        self.cancel_sent_at: float | None = None
        #: When the job was first seen no longer held by this attempt (monotonic seconds).
        self.gone_at: float | None = None

    @property
    def alive(self) -> bool:
        """Whether the attempt may still be running."""
        raise NotImplementedError

    def exit_reason(self) -> str:
        """Why an attempt that is no longer alive ended (for the job's log and error)."""
        raise NotImplementedError


W = TypeVar("W", bound=RunningAttempt)


class QueueExecutor(Generic[W]):
    """The loop every executor shares: claim, watch, cancel, reap, settle, all from the job row.

    One loop claims due jobs up to ``concurrency``, passes cancel requests on to its
    attempts (stopping those that do not end within ``policy.cancel_grace``), notices
    attempts that end without storing an outcome, and reaps jobs whose heartbeat is older
    than ``policy.heartbeat_timeout`` (from any replica, or from before a restart).

    A subclass starts an attempt (``_launch``) and stops one (``_kill``, ``_terminate``,
    ``_interrupt``); the optional hooks refresh attempt states (``_poll``), nudge a cancel
    (``_nudge_cancel``), open and close what the executor needs (``_open``, ``_close``) and
    tidy up after each pass (``_housekeep``).
    """

    #: What runs an attempt, for the job's log when one cannot be started.
    runner: ClassVar[str] = "a worker"

    def __init__(
        self,
        db: Database,
        jobs: JobService,
        *,
        concurrency: int = 2,
        policy: JobPolicy | None = None,
        metrics: ServiceMetrics | None = None,
        service: str = "service",
        log_level: str = "INFO",
        log_json: bool = True,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("jobs concurrency must be at least 1")
        self.db = db
        self.jobs = jobs
        self.concurrency = concurrency
        self.policy = policy or JobPolicy()
        self.metrics = metrics
        self.service = service
        self.log_level = log_level
        self.log_json = log_json
        #: The service's settings, handed to each job function as ``ctx.settings``.
        self.settings = dict(settings or {})
        #: Live and not yet settled attempts, by worker id.
        self.workers: dict[str, W] = {}
        self._waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._metrics_at = 0.0
        self._metric_labels: set[tuple[str, str]] = set()

    # -- Executor -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        await self._open()
        self._task = asyncio.create_task(self._run(), name="inwire-jobs-executor")

    async def stop(self) -> None:
        """Stop the loop, end running attempts and put their jobs back in the queue."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        workers = list(self.workers.values())
        self.workers.clear()
        try:
            await self._interrupt(workers)
            for w in workers:
                try:
                    async with self.db.session() as session:
                        repo = self._repo(session)
                        now = utcnow()
                        if await repo.release(w.job_id, w.worker_id, now):
                            await repo.append_logs(
                                w.job_id, [(now, "warning", "interrupted by shutdown; requeued")]
                            )
                except Exception:
                    log.exception("could not requeue job %s at shutdown", w.job_id)
        finally:
            await self._close()

    def submit(self, job_id: str) -> None:
        """Wake the loop: a job was queued."""
        self._poke()

    def cancel(self, job_id: str) -> None:
        """Wake the loop: a cancel was requested."""
        self._poke()

    # -- what an executor provides ----------------------------------------------------------

    async def _launch(self, job: Job, spec: WorkerSpec) -> W:
        """Start the claimed attempt ``spec`` describes; raise if it cannot be started."""
        raise NotImplementedError

    async def _kill(self, w: W) -> None:
        """Stop an attempt now, without waiting (it lost its job, or hangs)."""
        raise NotImplementedError

    async def _terminate(self, w: W) -> None:
        """Stop an attempt that ignored a cancel request (its job is already cancelled)."""
        await self._kill(w)

    async def _interrupt(self, workers: list[W]) -> None:
        """Stop these attempts at shutdown; their jobs are requeued afterwards."""
        for w in workers:
            await self._kill(w)

    async def _poll(self) -> None:
        """Refresh what ``alive`` and ``exit_reason`` report, before each pass."""

    async def _nudge_cancel(self, w: W) -> None:
        """Tell an attempt about its job's cancel request sooner than its next heartbeat."""

    async def _open(self) -> None:
        """Acquire what the executor needs, before the loop starts."""

    async def _close(self) -> None:
        """Release what ``_open`` acquired, after shutdown."""

    async def _housekeep(self) -> None:
        """Tidy up at the end of each pass."""

    # -- loop -----------------------------------------------------------------------------

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def _repo(self, session: Any) -> JobRepository:
        return JobRepository.unscoped(session, self.jobs.tables)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("jobs executor pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.policy.poll_interval)
            self._wake.clear()

    async def tick(self) -> None:
        """One pass: settle ended attempts, pass on cancels, reap, claim, refresh metrics."""
        await self._poll()
        await self._settle_exited()
        await self._watch_workers()
        await self._reap_stale()
        await self._claim()
        await self._housekeep()
        await self._refresh_metrics()

    async def _tx(self, work: Callable[[JobRepository], Coroutine[Any, Any, T]]) -> T:
        async with self.db.session() as session:
            return await work(self._repo(session))

    async def _end_attempt(
        self, job: Job, reason: str, *, only_if_stale: bool = False
    ) -> JobStatus | None:
        async def work(repo: JobRepository) -> JobStatus | None:
            now = utcnow()
            ended = await repo.end_attempt(
                job, reason, self.policy, now, only_if_stale=only_if_stale
            )
            if ended is None:
                return None
            status, delay = ended
            note: PendingLine
            if status == JobStatus.cancelled:
                note = (now, "warning", f"{reason}; cancelled as requested")
            elif status == JobStatus.queued:
                note = (
                    now,
                    "warning",
                    f"attempt {job.attempts} lost: {reason}; retrying in {delay:.1f} s",
                )
            else:
                note = (now, "error", f"failed after {job.attempts} attempts: {reason}")
            await repo.append_logs(job.id, [note])
            return status

        status = await self._tx(work)
        if status is not None:
            log.warning(
                "job %s attempt %d lost (%s): now %s",
                job.id,
                job.attempts,
                reason,
                status.value,
                extra={"job_id": job.id, "job_type": job.type},
            )
        return status

    async def _settle_exited(self) -> None:
        """Attempts that ended: if their job still runs under them, the attempt was lost."""
        exited = [w for w in self.workers.values() if not w.alive]
        if not exited:
            return
        jobs = {j.id: j for j in await self._tx(lambda r: r.by_ids(w.job_id for w in exited))}
        for w in exited:
            del self.workers[w.worker_id]
            job = jobs.get(w.job_id)
            if job is None or job.status != JobStatus.running or job.worker_id != w.worker_id:
                continue
            await self._end_attempt(job, w.exit_reason())

    async def _watch_workers(self) -> None:
        """Pass cancel requests on; stop attempts that ignore them or lost their job."""
        live = [w for w in self.workers.values() if w.alive]
        if not live:
            return
        jobs = {j.id: j for j in await self._tx(lambda r: r.by_ids(w.job_id for w in live))}
        now = time.monotonic()
        for w in live:
            job = jobs.get(w.job_id)
            if job is None or job.status != JobStatus.running or job.worker_id != w.worker_id:
                # The job ended or was taken away; a healthy worker exits by itself.
                if w.gone_at is None:
                    w.gone_at = now
                elif now - w.gone_at > self.policy.stop_grace:
                    await self._kill(w)
                continue
            if not job.cancel_requested:
                continue
            if w.cancel_sent_at is None:
                w.cancel_sent_at = now
                await self._nudge_cancel(w)
            elif now - w.cancel_sent_at > self.policy.cancel_grace:
                await self._force_cancel(w)

    async def _force_cancel(self, w: W) -> None:
        grace = self.policy.cancel_grace

        async def work(repo: JobRepository) -> bool:
            now = utcnow()
            done = await repo.cancel_running(w.job_id, w.worker_id, now)
            if done:
                note = f"did not stop within {grace:g} s of the cancel request; worker terminated"
                await repo.append_logs(w.job_id, [(now, "warning", note)])
            return done

        # Mark first, then stop the attempt: a late result from it is fenced out.
        await self._tx(work)
        await self._terminate(w)

    async def _reap_stale(self) -> None:
        now = utcnow()
        stale = await self._tx(lambda r: r.stale(now, self.policy))
        for job in stale:
            silent = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else 0.0
            started = job.heartbeat_at is not None and job.heartbeat_at != job.started_at
            reason = (
                f"worker stopped heartbeating (no heartbeat for {silent:.1f} s)"
                if started
                else f"worker did not start within {silent:.1f} s"
            )
            own = self.workers.get(job.worker_id or "")
            if await self._end_attempt(job, reason, only_if_stale=True) is None:
                continue
            if own is not None:
                # Hung (or stopped) but alive: it must not keep the slot or the job.
                await self._kill(own)

    async def _claim(self) -> None:
        types = self.jobs.registry.types
        if not types or self._stopping:
            return
        free = self.concurrency - len(self.workers)
        if free > 0:
            now = utcnow()
            ids = await self._tx(lambda r: r.claimable(types, now, free))
            await self._start_jobs(ids)
        self._waiting = await self._tx(lambda r: r.queued_count(types))

    async def _start_jobs(self, ids: list[str]) -> None:
        for job_id in ids:
            if self._stopping or len(self.workers) >= self.concurrency:
                return
            job = await self._claim_one(job_id)
            if job is None:
                continue
            try:
                w = await self._launch(job, self._spec(job))
            except Exception as exc:
                log.exception("could not start %s for job %s", self.runner, job.id)
                await self._end_attempt(job, f"could not start {self.runner}: {exc}")
                continue
            self.workers[w.worker_id] = w

    async def _claim_one(self, job_id: str) -> Job | None:
        worker_id = new_id("wrk")
        async with self.db.session() as session:
            return await self._repo(session).claim(job_id, worker_id, utcnow())

    def _spec(self, job: Job) -> WorkerSpec:
        """What the worker of the claimed ``job`` needs to run its attempt."""
        tables = self.jobs.tables
        return WorkerSpec(
            job_id=job.id,
            worker_id=job.worker_id or "",
            target=self.jobs.registry.target(job.type),
            database_url=self.db.url,
            database_schema=self.db.schema,
            jobs_table=tables.jobs.name,
            logs_table=tables.logs.name,
            policy=self.policy.as_dict(),
            service=self.service,
            log_level=self.log_level,
            log_json=self.log_json,
            sys_path=[p for p in sys.path if p],
            settings=self.settings,
        )

    async def _refresh_metrics(self) -> None:
        metrics = self.metrics
        if metrics is None or time.monotonic() - self._metrics_at < self.policy.metrics_interval:
            return
        self._metrics_at = time.monotonic()
        counts = await self._tx(lambda r: r.counts())
        seen: set[tuple[str, str]] = set()
        for job_type, status, n in counts:
            metrics.jobs.labels(metrics.service, job_type, status).set(n)
            seen.add((job_type, status))
        for job_type, status in self._metric_labels - seen:
            metrics.jobs.labels(metrics.service, job_type, status).set(0)
        self._metric_labels |= seen


class _Worker(RunningAttempt):
    """A worker process running one attempt."""

    def __init__(
        self, job_id: str, worker_id: str, process: asyncio.subprocess.Process, spawned: float
    ) -> None:
        super().__init__(job_id, worker_id)
        self.process = process
        self.spawned = spawned
        self.waiter: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def exit_reason(self) -> str:
        return _exit_reason(self.process.returncode or 0)

    def signal(self, sig: int) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def tell(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is None or not self.alive:
            return
        try:
            stdin.write(line.encode() + b"\n")
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {returncode}"


class LocalExecutor(QueueExecutor[_Worker]):
    """Runs each attempt in a fresh ``python -m inwire.kit.jobs.worker`` subprocess.

    Cancel requests reach a worker on its stdin at once (and with its next heartbeat);
    one that does not stop within ``policy.cancel_grace`` gets SIGTERM, then SIGKILL.
    Up to ``policy.warm_workers`` processes are started ahead of need while jobs wait.
    """

    runner = "a worker process"

    def __init__(self, db: Database, jobs: JobService, **options: Unpack[ExecutorOptions]) -> None:
        super().__init__(db, jobs, **options)
        self._spares: list[asyncio.subprocess.Process] = []
        self._retired: list[asyncio.subprocess.Process] = []

    # -- QueueExecutor ----------------------------------------------------------------------

    async def _launch(self, job: Job, spec: WorkerSpec) -> _Worker:
        process = await self._take_process()
        w = _Worker(job.id, spec.worker_id, process, spawned=time.monotonic())
        await w.tell(spec.to_json())
        w.waiter = asyncio.create_task(self._await_exit(w))
        log.info(
            "job %s attempt %d started in worker pid %d",
            job.id,
            job.attempts,
            process.pid,
            extra={"job_id": job.id, "job_type": job.type, "worker_id": spec.worker_id},
        )
        return w

    async def _kill(self, w: _Worker) -> None:
        w.signal(signal.SIGKILL)

    async def _terminate(self, w: _Worker) -> None:
        w.signal(signal.SIGTERM)
        await self._wait_exit([w], min(1.0, self.policy.stop_grace))
        w.signal(signal.SIGKILL)

    async def _interrupt(self, workers: list[_Worker]) -> None:
        await self._keep_warm()
        spares, self._retired = self._retired, []
        for w in workers:
            w.signal(signal.SIGTERM)
        await self._wait_exit(workers, self.policy.stop_grace)
        for w in workers:
            w.signal(signal.SIGKILL)
        await self._wait_exit(workers, self.policy.stop_grace)
        await self._wait_spares(spares)
        for w in workers:
            if w.waiter is not None:
                w.waiter.cancel()

    async def _nudge_cancel(self, w: _Worker) -> None:
        await w.tell("cancel")

    async def _housekeep(self) -> None:
        await self._keep_warm()

    # -- worker processes -------------------------------------------------------------------

    @staticmethod
    async def _start_process() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inwire.kit.jobs.worker",
            stdin=asyncio.subprocess.PIPE,
        )

    async def _take_process(self) -> asyncio.subprocess.Process:
        """A warm worker process if one is ready, else a new one."""
        while self._spares:
            process = self._spares.pop(0)
            if process.returncode is None:
                return process
        return await self._start_process()

    async def _keep_warm(self) -> None:
        """Keep up to ``policy.warm_workers`` idle workers while queued jobs wait, else none."""
        self._spares = [p for p in self._spares if p.returncode is None]
        self._retired = [p for p in self._retired if p.returncode is None]
        wanted = 0 if self._stopping else min(self.policy.warm_workers, self._waiting)
        while len(self._spares) > wanted:
            process = self._spares.pop()
            if process.stdin is not None:
                process.stdin.close()  # end of file before a spec: the worker exits
            self._retired.append(process)
        while len(self._spares) < wanted:
            self._spares.append(await self._start_process())

    async def _wait_spares(self, processes: list[asyncio.subprocess.Process]) -> None:
        waiting = [p.wait() for p in processes if p.returncode is None]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), timeout=self.policy.stop_grace)
        for process in processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def _await_exit(self, w: _Worker) -> None:
        await w.process.wait()
        self._poke()

    @staticmethod
    async def _wait_exit(workers: list[_Worker], seconds: float) -> None:
        pending = [w.process.wait() for w in workers if w.alive]
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*pending), timeout=seconds)

    # -- introspection ----------------------------------------------------------------------

    def worker_pids(self) -> dict[str, int]:
        """Process id of the live worker of each running job of this executor."""
        return {w.job_id: w.process.pid for w in self.workers.values() if w.alive}
