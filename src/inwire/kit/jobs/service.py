"""JobService: how a service submits, reads and cancels its jobs inside a request's session.

It never commits: the job row commits with the request (so a job is never started for a
request that failed), and the executor is nudged once that commit happens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from inwire.kit.api import ListQuery
from inwire.kit.db.base import utcnow
from inwire.kit.errors import Conflict, Invalid, NotFound
from inwire.kit.ids import new_id
from inwire.kit.jobs.models import (
    IDEMPOTENCY_KEY_MAX,
    Job,
    JobLogLine,
    JobStatus,
    JobTables,
)
from inwire.kit.jobs.registry import JobRegistry
from inwire.kit.jobs.repository import JobRepository

if TYPE_CHECKING:
    from inwire.kit.jobs.executor import Executor

#: Most attempts a job may be given.
MAX_ATTEMPTS_LIMIT = 20
#: Most log lines one read returns.
MAX_LOG_LINES = 1000


def _json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a JSON object", details=[{"field": what, "message": ""}])
    try:
        normal: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise Invalid(
            f"{what} is not JSON serializable", details=[{"field": what, "message": str(exc)}]
        ) from exc
    return normal


class JobService:
    """The job API of one service: its tables, the job types it runs, and its executor.

    Built in ``create_app`` and stored as ``app.state.jobs``; the executor is attached in
    the lifespan (``run_jobs``). Every method is scoped to one organization: another
    organization's job is "not found".
    """

    def __init__(self, tables: JobTables, registry: JobRegistry) -> None:
        self.tables = tables
        self.registry = registry
        self.executor: Executor | None = None

    def attach(self, executor: Executor | None) -> None:
        """Tell this service which executor to nudge when jobs are submitted or cancelled."""
        self.executor = executor

    def repository(self, session: AsyncSession, org_id: str) -> JobRepository:
        """The tenant-scoped repository over this service's job tables."""
        return JobRepository(session, self.tables, org_id)

    async def submit(
        self,
        session: AsyncSession,
        org_id: str,
        type: str,
        input: dict[str, Any],
        created_by: str,
        idempotency_key: str | None = None,
        max_attempts: int = 3,
    ) -> Job:
        """Queue a job of a registered ``type`` for the organization.

        With an ``idempotency_key``, a second submit with the same key in the same
        organization returns the first job instead of a new one; reusing the key for a
        different type or input is a Conflict.
        """
        if type not in self.registry:
            raise Invalid(
                f"Unknown job type {type!r}",
                details=[{"field": "type", "message": f"one of {', '.join(self.registry)}"}],
            )
        if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
            raise Invalid(
                f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}",
                details=[{"field": "max_attempts", "message": "out of range"}],
            )
        if idempotency_key is not None and not (
            0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX and idempotency_key.isprintable()
        ):
            raise Invalid(
                f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters",
                details=[{"field": "Idempotency-Key", "message": "invalid"}],
            )
        job_input = _json_object(input, "input")
        now = utcnow()
        values: dict[str, Any] = {
            "id": new_id("job"),
            "organization_id": org_id,
            "type": type,
            "input": job_input,
            "status": JobStatus.queued.value,
            "progress": 0.0,
            "progress_message": None,
            "result": None,
            "error": None,
            "attempts": 0,
            "max_attempts": max_attempts,
            "next_attempt_at": None,
            "heartbeat_at": None,
            "worker_id": None,
            "idempotency_key": idempotency_key,
            "created_by": created_by,
            "cancel_requested": False,
            "log_seq": 0,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "finished_at": None,
        }
        repo = self.repository(session, org_id)
        # Insert first and look for the earlier job only on a clash: the unique key decides
        # races between concurrent submits, and SQLite takes its write lock up front.
        if await repo.insert(values):
            self._nudge(session, "submit", values["id"])
            return Job.from_row(values)
        assert idempotency_key is not None
        existing = await repo.by_idempotency_key(idempotency_key)
        if existing is None:  # pragma: no cover - the clash was with a row since deleted
            raise Conflict("Idempotency-Key is in use; retry the request")
        if existing.type != type or existing.input != job_input:
            raise Conflict(
                "Idempotency-Key was already used for a different request",
                details=[{"field": "Idempotency-Key", "message": f"used by job {existing.id}"}],
                code="IDEMPOTENCY_KEY_REUSED",
            )
        return existing

    async def get(self, session: AsyncSession, org_id: str, job_id: str) -> Job:
        """The organization's job, or NotFound."""
        job = await self.repository(session, org_id).get(job_id)
        if job is None:
            raise NotFound(f"Job {job_id!r} not found")
        return job

    async def cancel(self, session: AsyncSession, org_id: str, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one as soon as its worker stops.

        Cancelling a cancelled job returns it; a succeeded or failed job is a Conflict.
        """
        repo = self.repository(session, org_id)
        now = utcnow()
        if not await repo.cancel_queued(job_id, now) and await repo.request_cancel(job_id, now):
            self._nudge(session, "cancel", job_id)
        job = await self.get(session, org_id, job_id)
        if job.status in (JobStatus.succeeded, JobStatus.failed):
            raise Conflict(
                f"Job {job_id!r} already {job.status.value}",
                details=[{"field": "status", "message": job.status.value}],
            )
        return job

    async def logs(
        self,
        session: AsyncSession,
        org_id: str,
        job_id: str,
        after_seq: int = 0,
        limit: int = MAX_LOG_LINES,
    ) -> Sequence[JobLogLine]:
        """The job's log lines after ``after_seq``, oldest first (NotFound for others' jobs)."""
        await self.get(session, org_id, job_id)
        limit = max(1, min(limit, MAX_LOG_LINES))
        return await self.repository(session, org_id).logs(job_id, max(0, after_seq), limit)

    async def list(
        self, session: AsyncSession, org_id: str, query: ListQuery
    ) -> tuple[Sequence[Job], int]:
        """One page of the organization's jobs; ``query.filters`` may hold status and type."""
        return await self.repository(session, org_id).page(query)

    def _nudge(self, session: AsyncSession, action: str, job_id: str) -> None:
        executor = self.executor
        if executor is None:
            return

        def after_commit(_session: Any) -> None:
            if action == "submit":
                executor.submit(job_id)
            else:
                executor.cancel(job_id)

        event.listen(session.sync_session, "after_commit", after_commit, once=True)
