"""Durable jobs: the one way an Inwire service runs long work.

A service wires them in four places::

    # models.py — the tables live in the service's own metadata (and its migrations)
    JOB_TABLES = job_tables(SynthexBase.metadata)

    # app.py — in create_app
    registry = JobRegistry({"synthex.generate": generate_dataset})
    app = create_service_app(settings, routers=[..., jobs_router()], lifespan=lifespan)
    app.state.jobs = JobService(JOB_TABLES, registry)

    # the lifespan runs the executor chosen by settings.jobs_url: "local" (worker
    # subprocesses) or a Ray cluster ("ray://head:10001", "ray:auto"; see ray_executor)
    async with run_jobs(app):
        yield

    # an endpoint that starts a job
    job = await jobs.submit(session, who.org, "synthex.generate", body, who.subject,
                            idempotency_key=key)

Names are loaded on first use, so a worker process (``python -m inwire.kit.jobs.worker``)
does not import the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inwire.kit.jobs.context import JobCancelled, JobContext, JobFailed
    from inwire.kit.jobs.executor import (
        Executor,
        LocalExecutor,
        QueueExecutor,
        RunningAttempt,
        UnsupportedExecutor,
        open_executor,
        run_jobs,
    )
    from inwire.kit.jobs.models import Job, JobLogLine, JobStatus, JobTables, job_tables
    from inwire.kit.jobs.policy import JobPolicy
    from inwire.kit.jobs.ray_executor import RayExecutor, RayTarget
    from inwire.kit.jobs.registry import JobFunction, JobRegistry
    from inwire.kit.jobs.router import (
        IdempotencyKeyDep,
        JobOut,
        JobsDep,
        job_item,
        jobs_router,
    )
    from inwire.kit.jobs.service import JobService

_EXPORTS: dict[str, str] = {
    "JobCancelled": "context",
    "JobContext": "context",
    "JobFailed": "context",
    "Executor": "executor",
    "LocalExecutor": "executor",
    "QueueExecutor": "executor",
    "RunningAttempt": "executor",
    "UnsupportedExecutor": "executor",
    "open_executor": "executor",
    "run_jobs": "executor",
    "Job": "models",
    "JobLogLine": "models",
    "JobStatus": "models",
    "JobTables": "models",
    "job_tables": "models",
    "JobPolicy": "policy",
    "RayExecutor": "ray_executor",
    "RayTarget": "ray_executor",
    "JobFunction": "registry",
    "JobRegistry": "registry",
    "IdempotencyKeyDep": "router",
    "JobOut": "router",
    "JobsDep": "router",
    "job_item": "router",
    "jobs_router": "router",
    "JobService": "service",
}

__all__ = [
    "Executor",
    "IdempotencyKeyDep",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobFunction",
    "JobLogLine",
    "JobOut",
    "JobPolicy",
    "JobRegistry",
    "JobService",
    "JobStatus",
    "JobTables",
    "JobsDep",
    "LocalExecutor",
    "QueueExecutor",
    "RayExecutor",
    "RayTarget",
    "RunningAttempt",
    "UnsupportedExecutor",
    "job_item",
    "job_tables",
    "jobs_router",
    "open_executor",
    "run_jobs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
