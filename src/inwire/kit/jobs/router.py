"""The jobs API a service mounts, and the pieces of its own job-starting endpoints.

``jobs_router()`` gives ``GET /jobs``, ``GET /jobs/{id}``, ``GET /jobs/{id}/logs`` and
``POST /jobs/{id}/cancel`` over ``app.state.jobs``. An endpoint that starts a job takes
``JobsDep`` and ``IdempotencyKeyDep`` and answers 202 with ``JobOut``::

    @router.post("/generations", status_code=202)
    async def start_generation(
        body: GenerationIn, session: SessionDep, jobs: JobsDep, key: IdempotencyKeyDep,
        who: Annotated[Principal, require("datasets:create")],
    ) -> Item[JobOut]:
        \"\"\"Start generating a dataset.\"\"\"
        job = await jobs.submit(session, who.org, "synthex.generate", body.model_dump(),
                                who.subject, idempotency_key=key)
        return job_item(job)
"""

# No ``from __future__ import annotations`` here: FastAPI must see the route signatures'
# types, some of which are local to ``jobs_router``.
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel

from inwire.kit.api import APIRouter, Item, ListQuery, Page, WireModel, list_params
from inwire.kit.auth import Principal, require
from inwire.kit.db.engine import SessionDep
from inwire.kit.errors import Unavailable
from inwire.kit.jobs.models import IDEMPOTENCY_KEY_MAX, Job, JobStatus
from inwire.kit.jobs.repository import SORT_FIELDS
from inwire.kit.jobs.service import MAX_LOG_LINES, JobService


class JobOut(WireModel):
    """A job as the API shows it."""

    id: str
    type: str
    status: JobStatus
    progress: float
    progress_message: str | None
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    cancel_requested: bool
    idempotency_key: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobLogLineOut(WireModel):
    """One line of a job's log."""

    seq: int
    at: datetime
    level: str
    line: str


class JobLogsMeta(BaseModel):
    """Where a log read stopped: pass ``next_after_seq`` as ``after_seq`` to continue."""

    after_seq: int
    limit: int
    next_after_seq: int
    job_status: JobStatus


class JobLogs(BaseModel):
    """Envelope of a log read."""

    data: list[JobLogLineOut]
    meta: JobLogsMeta


def job_item(job: Job) -> Item[JobOut]:
    """The ``{"data": job}`` envelope of one job."""
    return Item[JobOut](data=JobOut.model_validate(job))


async def read_logs(
    session: SessionDep, jobs: JobService, org_id: str, job_id: str, after_seq: int, limit: int
) -> JobLogs:
    """One read of a job's log lines after ``after_seq``, with the job's status."""
    # Status first, lines second: a job seen finished has all its lines stored, so a
    # client that stops polling at a final status has missed nothing.
    job = await jobs.get(session, org_id, job_id)
    lines = await jobs.logs(session, org_id, job_id, after_seq, limit)
    return JobLogs(
        data=[JobLogLineOut.model_validate(line) for line in lines],
        meta=JobLogsMeta(
            after_seq=after_seq,
            limit=limit,
            next_after_seq=lines[-1].seq if lines else after_seq,
            job_status=job.status,
        ),
    )


async def get_jobs(request: Request) -> JobService:
    """The service's ``JobService`` (``app.state.jobs``)."""
    jobs = getattr(request.app.state, "jobs", None)
    if not isinstance(jobs, JobService):
        raise Unavailable("Jobs are not available in this service")
    return jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=IDEMPOTENCY_KEY_MAX,
            description="Repeat a request safely: the same key returns the job it started.",
        ),
    ] = None,
) -> str | None:
    """The optional ``Idempotency-Key`` header (IETF draft-ietf-httpapi-idempotency-key-header)."""
    return key


#: The ``Idempotency-Key`` of a POST that starts a job, or None.
IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]


def jobs_router(
    *, resource: str = "jobs", prefix: str = "/jobs", tags: Sequence[str] = ("jobs",)
) -> APIRouter:
    """Routes to list, read, follow and cancel the service's jobs.

    Reading needs ``<resource>:read``, cancelling ``<resource>:update``; every route is
    scoped to the caller's organization (another organization's job is a 404).
    """
    router = APIRouter(prefix=prefix, tags=list(tags))
    listing = list_params(SORT_FIELDS, filters={"status": JobStatus, "type": str})
    Reader = Annotated[Principal, require(f"{resource}:read")]
    Updater = Annotated[Principal, require(f"{resource}:update")]
    Listing = Annotated[ListQuery, Depends(listing)]

    @router.get("")
    async def list_jobs(
        query: Listing, session: SessionDep, jobs: JobsDep, who: Reader
    ) -> Page[JobOut]:
        """List the organization's jobs, newest first; filter by status and type."""
        rows, total = await jobs.list(session, who.org, query)
        return Page[JobOut].model_validate(
            query.page_of([JobOut.model_validate(j) for j in rows], total)
        )

    @router.get("/{job_id}")
    async def get_job(job_id: str, session: SessionDep, jobs: JobsDep, who: Reader) -> Item[JobOut]:
        """A job's status, progress, result or error."""
        return job_item(await jobs.get(session, who.org, job_id))

    @router.get("/{job_id}/logs")
    async def get_job_logs(
        job_id: str,
        session: SessionDep,
        jobs: JobsDep,
        who: Reader,
        after_seq: Annotated[int, Query(ge=0, description="Only lines after this one")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_LOG_LINES, description="Most lines")] = 500,
    ) -> JobLogs:
        """A job's log lines after ``after_seq``, oldest first; poll it while the job runs."""
        return await read_logs(session, jobs, who.org, job_id, after_seq, limit)

    @router.post("/{job_id}/cancel")
    async def cancel_job(
        job_id: str, session: SessionDep, jobs: JobsDep, who: Updater
    ) -> Item[JobOut]:
        """Cancel a job: at once if queued; a running job stops and ends ``cancelled``."""
        return job_item(await jobs.cancel(session, who.org, job_id))

    return router
