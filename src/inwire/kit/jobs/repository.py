"""Every query on the job tables, for the API, the executor and the worker processes.

Each state change is one conditional ``UPDATE`` fenced on the state it expects (status, and
the worker that holds the job), so two replicas, a late worker and the reaper can race
without corrupting a job: whoever loses the race changes nothing. Statements that change a
job come first in their transaction, so SQLite takes its write lock before reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.jobs.models import (
    ERROR_MAX,
    LOG_LINE_MAX,
    MESSAGE_MAX,
    Job,
    JobLogLine,
    JobStatus,
    JobTables,
)
from inwire.kit.jobs.policy import JobPolicy

#: Fields a job list may be sorted by.
SORT_FIELDS: tuple[str, ...] = ("created_at", "updated_at", "finished_at", "type", "status")
#: Fields a job list may be filtered on (equality).
FILTER_FIELDS: tuple[str, ...] = ("status", "type")

#: A log line waiting to be stored: (time, level, text).
PendingLine = tuple[datetime, str, str]

_UNSCOPED = object()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters (with an ellipsis), or None."""
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


class JobRepository:
    """Queries on one service's job tables, scoped to one organization unless unscoped."""

    def __init__(
        self, session: AsyncSession, tables: JobTables, org_id: str | object | None = None
    ) -> None:
        if org_id is None:
            raise TypeError("pass org_id, or use JobRepository.unscoped() for platform work")
        self.session = session
        self.tables = tables
        self.jobs = tables.jobs
        self.org_id: str | None = None if org_id is _UNSCOPED else str(org_id)

    @classmethod
    def unscoped(cls, session: AsyncSession, tables: JobTables) -> JobRepository:
        """A repository over every organization's jobs: for executors and workers."""
        return cls(session, tables, _UNSCOPED)

    def _where(self, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
        if self.org_id is not None:
            conds = (self.jobs.c.organization_id == self.org_id, *conds)
        return and_(true(), *conds)

    def _select(self, *conds: ColumnElement[bool]) -> Select[Any]:
        return select(self.jobs).where(self._where(*conds))

    # -- reads --------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        """The job with this id in scope, or None."""
        row = (await self.session.execute(self._select(self.jobs.c.id == job_id))).first()
        return Job.from_row(row._mapping) if row is not None else None

    async def by_idempotency_key(self, key: str) -> Job | None:
        """The organization's job submitted with this idempotency key, or None."""
        stmt = self._select(self.jobs.c.idempotency_key == key)
        row = (await self.session.execute(stmt)).first()
        return Job.from_row(row._mapping) if row is not None else None

    async def page(self, query: ListQuery) -> tuple[list[Job], int]:
        """One page of jobs in scope, filtered by status/type and sorted as asked."""
        conds = [
            self.jobs.c[name] == value
            for name, value in query.filters.items()
            if name in FILTER_FIELDS
        ]
        stmt = self._select(*conds)
        total = await self.session.scalar(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        )
        sort = self.jobs.c[query.sort if query.sort in SORT_FIELDS else "created_at"]
        desc = query.order == "desc"
        order = [sort.desc() if desc else sort.asc()]
        order.append(self.jobs.c.id.desc() if desc else self.jobs.c.id.asc())
        rows = await self.session.execute(
            stmt.order_by(*order).offset(query.offset).limit(query.per_page)
        )
        return [Job.from_row(r._mapping) for r in rows], int(total or 0)

    async def logs(self, job_id: str, after_seq: int, limit: int) -> list[JobLogLine]:
        """Up to ``limit`` log lines of a job with ``seq > after_seq``, oldest first.

        The caller checks that the job is in scope first.
        """
        logs = self.tables.logs
        rows = await self.session.execute(
            select(logs.c.seq, logs.c.at, logs.c.level, logs.c.line)
            .where(logs.c.job_id == job_id, logs.c.seq > after_seq)
            .order_by(logs.c.seq)
            .limit(limit)
        )
        return [JobLogLine(seq=r.seq, at=r.at, level=r.level, line=r.line) for r in rows]

    async def counts(self) -> list[tuple[str, str, int]]:
        """(type, status, number of jobs) over the scope, for the metrics gauge."""
        rows = await self.session.execute(
            select(self.jobs.c.type, self.jobs.c.status, func.count())
            .where(self._where())
            .group_by(self.jobs.c.type, self.jobs.c.status)
        )
        return [(str(t), str(s), int(n)) for t, s, n in rows]

    async def by_ids(self, ids: Iterable[str]) -> list[Job]:
        """The jobs with these ids (those that exist)."""
        wanted = list(ids)
        if not wanted:
            return []
        rows = await self.session.execute(self._select(self.jobs.c.id.in_(wanted)))
        return [Job.from_row(r._mapping) for r in rows]

    # -- submit and cancel (request side) ------------------------------------------------

    async def insert(self, values: dict[str, Any]) -> bool:
        """Insert a job row; False when its idempotency key is taken in the organization."""
        try:
            # A savepoint keeps the request's transaction usable after the clash.
            async with self.session.begin_nested():
                await self.session.execute(insert(self.jobs).values(**values))
        except IntegrityError:
            if values.get("idempotency_key") is None:
                raise
            return False
        return True

    async def cancel_queued(self, job_id: str, now: datetime) -> bool:
        """Cancel a job that has not started (or waits for a retry); False if it is not queued."""
        result = await self.session.execute(
            update(self.jobs)
            .where(self._where(self.jobs.c.id == job_id, self._status(JobStatus.queued)))
            .values(
                status=JobStatus.cancelled.value,
                cancel_requested=True,
                next_attempt_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
        return _rowcount(result) > 0

    async def request_cancel(self, job_id: str, now: datetime) -> bool:
        """Ask a running job to stop; False if it is not running."""
        result = await self.session.execute(
            update(self.jobs)
            .where(self._where(self.jobs.c.id == job_id, self._status(JobStatus.running)))
            .values(cancel_requested=True, updated_at=now)
        )
        return _rowcount(result) > 0

    # -- executor side --------------------------------------------------------------------

    async def claimable(self, types: Sequence[str], now: datetime, limit: int) -> list[str]:
        """Ids of queued jobs of these types that are due, oldest first."""
        if not types or limit <= 0:
            return []
        due = or_(self.jobs.c.next_attempt_at.is_(None), self.jobs.c.next_attempt_at <= now)
        rows = await self.session.execute(
            select(self.jobs.c.id)
            .where(
                self._where(self._status(JobStatus.queued), self.jobs.c.type.in_(list(types)), due)
            )
            .order_by(self.jobs.c.created_at, self.jobs.c.id)
            .limit(limit)
        )
        return [str(r[0]) for r in rows]

    async def queued_count(self, types: Sequence[str]) -> int:
        """Queued jobs of these types, due or waiting for a retry."""
        total = await self.session.scalar(
            select(func.count()).where(
                self._where(self._status(JobStatus.queued), self.jobs.c.type.in_(list(types)))
            )
        )
        return int(total or 0)

    async def claim(self, job_id: str, worker_id: str, now: datetime) -> Job | None:
        """Take a queued job for ``worker_id`` (one more attempt); None if someone else did."""
        row = (
            await self.session.execute(
                update(self.jobs)
                .where(self._where(self.jobs.c.id == job_id, self._status(JobStatus.queued)))
                .values(
                    status=JobStatus.running.value,
                    worker_id=worker_id,
                    attempts=self.jobs.c.attempts + 1,
                    started_at=now,
                    # Equal to started_at until the worker's own first beat: the reaper
                    # gives a worker that has never beaten the longer start allowance.
                    heartbeat_at=now,
                    next_attempt_at=None,
                    progress=0.0,
                    updated_at=now,
                )
                .returning(*self.jobs.c)
            )
        ).first()
        return Job.from_row(row._mapping) if row is not None else None

    async def stale(self, now: datetime, policy: JobPolicy) -> list[Job]:
        """Running jobs whose worker stopped beating (or never started beating in time)."""
        c = self.jobs.c
        beat_cutoff = now - timedelta(seconds=policy.heartbeat_timeout)
        start_cutoff = now - timedelta(seconds=max(policy.start_timeout, policy.heartbeat_timeout))
        rows = await self.session.execute(
            self._select(
                self._status(JobStatus.running),
                or_(
                    c.heartbeat_at.is_(None),
                    and_(c.heartbeat_at < beat_cutoff, c.heartbeat_at != c.started_at),
                    c.heartbeat_at < start_cutoff,
                ),
            )
        )
        return [Job.from_row(r._mapping) for r in rows]

    async def end_attempt(
        self,
        job: Job,
        error: str,
        policy: JobPolicy,
        now: datetime,
        *,
        only_if_stale: bool = False,
        retry: bool = True,
    ) -> tuple[JobStatus, float] | None:
        """Close the current attempt of ``job`` as failed: cancelled if a cancel was asked,
        queued again after a backoff if attempts remain (and ``retry``), otherwise failed
        with ``error``.

        Fenced on the job still running under ``job.worker_id`` (and, with
        ``only_if_stale``, on its heartbeat not having moved). Returns the new status and
        the retry delay, or None when the job was no longer this attempt's to close.
        """
        fence = [self.jobs.c.id == job.id, self._status(JobStatus.running)]
        fence.append(
            self.jobs.c.worker_id.is_(None)
            if job.worker_id is None
            else self.jobs.c.worker_id == job.worker_id
        )
        if only_if_stale and job.heartbeat_at is not None:
            fence.append(self.jobs.c.heartbeat_at == job.heartbeat_at)
        error = clip(error, ERROR_MAX) or ""
        if await self._transition(
            [*fence, self.jobs.c.cancel_requested.is_(True)],
            status=JobStatus.cancelled.value,
            finished_at=now,
            updated_at=now,
        ):
            return JobStatus.cancelled, 0.0
        if retry and job.attempts < job.max_attempts:
            delay = policy.retry_delay(job.attempts)
            changed = await self._transition(
                fence,
                status=JobStatus.queued.value,
                worker_id=None,
                next_attempt_at=now + timedelta(seconds=delay),
                error=error,
                updated_at=now,
            )
            return (JobStatus.queued, delay) if changed else None
        changed = await self._transition(
            fence,
            status=JobStatus.failed.value,
            error=error,
            finished_at=now,
            updated_at=now,
        )
        return (JobStatus.failed, 0.0) if changed else None

    async def cancel_running(self, job_id: str, worker_id: str, now: datetime) -> bool:
        """Mark a running job cancelled (its worker is being stopped); False if it moved on."""
        return await self._transition(
            [
                self.jobs.c.id == job_id,
                self._status(JobStatus.running),
                self.jobs.c.worker_id == worker_id,
            ],
            status=JobStatus.cancelled.value,
            finished_at=now,
            updated_at=now,
        )

    async def release(self, job_id: str, worker_id: str, now: datetime) -> bool:
        """Put a running job back in the queue without counting the attempt (shutdown)."""
        return await self._transition(
            [
                self.jobs.c.id == job_id,
                self._status(JobStatus.running),
                self.jobs.c.worker_id == worker_id,
            ],
            status=JobStatus.queued.value,
            worker_id=None,
            attempts=self.jobs.c.attempts - 1,
            next_attempt_at=None,
            updated_at=now,
        )

    # -- worker side ----------------------------------------------------------------------

    async def beat(
        self,
        job_id: str,
        worker_id: str,
        now: datetime,
        *,
        progress: tuple[float, str | None] | None = None,
        lines: Sequence[PendingLine] = (),
    ) -> bool | None:
        """A worker's heartbeat, with its latest progress and new log lines.

        Returns whether a cancel was requested, or None when the job is no longer this
        worker's (reaped, cancelled or finished): the worker must then stop.
        """
        c = self.jobs.c
        values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
        if progress is not None:
            values["progress"] = progress[0]
            values["progress_message"] = clip(progress[1], MESSAGE_MAX)
        if lines:
            values["log_seq"] = c.log_seq + len(lines)
        row = (
            await self.session.execute(
                update(self.jobs)
                .where(
                    self._where(
                        c.id == job_id, self._status(JobStatus.running), c.worker_id == worker_id
                    )
                )
                .values(**values)
                .returning(c.log_seq, c.cancel_requested)
            )
        ).first()
        if row is None:
            return None
        if lines:
            await self._insert_lines(job_id, int(row.log_seq) - len(lines) + 1, lines)
        return bool(row.cancel_requested)

    async def append_logs(self, job_id: str, lines: Sequence[PendingLine]) -> None:
        """Add lines to a job's log whatever its state (the executor's own notes)."""
        if not lines:
            return
        c = self.jobs.c
        row = (
            await self.session.execute(
                update(self.jobs)
                .where(self._where(c.id == job_id))
                .values(log_seq=c.log_seq + len(lines))
                .returning(c.log_seq)
            )
        ).first()
        if row is not None:
            await self._insert_lines(job_id, int(row.log_seq) - len(lines) + 1, lines)

    async def succeed(
        self, job_id: str, worker_id: str, result: dict[str, Any] | None, now: datetime
    ) -> JobStatus | None:
        """Store the result and ``succeeded`` in one statement, unless a cancel was asked
        (then ``cancelled``, result dropped). None when the job is no longer this worker's.
        """
        c = self.jobs.c
        fence = [c.id == job_id, self._status(JobStatus.running), c.worker_id == worker_id]
        if await self._transition(
            [*fence, c.cancel_requested.is_(False)],
            status=JobStatus.succeeded.value,
            result=result,
            error=None,
            progress=1.0,
            finished_at=now,
            updated_at=now,
        ):
            return JobStatus.succeeded
        if await self._transition(
            fence, status=JobStatus.cancelled.value, finished_at=now, updated_at=now
        ):
            return JobStatus.cancelled
        return None

    # -- helpers --------------------------------------------------------------------------

    def _status(self, status: JobStatus) -> ColumnElement[bool]:
        return self.jobs.c.status == status.value

    async def _transition(self, fence: Sequence[ColumnElement[bool]], **values: Any) -> bool:
        result = await self.session.execute(
            update(self.jobs).where(self._where(*fence)).values(**values)
        )
        return _rowcount(result) > 0

    async def _insert_lines(self, job_id: str, first: int, lines: Sequence[PendingLine]) -> None:
        await self.session.execute(
            insert(self.tables.logs),
            [
                {
                    "job_id": job_id,
                    "seq": first + i,
                    "at": at,
                    "level": level,
                    "line": clip(text, LOG_LINE_MAX),
                }
                for i, (at, level, text) in enumerate(lines)
            ],
        )
