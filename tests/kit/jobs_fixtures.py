"""Job functions for the kit.jobs tests; worker subprocesses import them by path."""

import time
from pathlib import Path
from typing import Any

from inwire.kit.jobs.context import JobContext
from inwire.kit.jobs.policy import JobPolicy

#: Heartbeats, retries and grace periods in fractions of a second.
FAST_POLICY = JobPolicy(
    heartbeat_interval=0.2,
    heartbeat_timeout=2.0,
    start_timeout=30.0,
    poll_interval=0.1,
    flush_interval=0.1,
    retry_base_delay=0.4,
    retry_max_delay=2.0,
    cancel_grace=1.0,
    stop_grace=1.0,
    metrics_interval=0.2,
)


def report(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Log and report progress for ``steps`` steps, then wait for the ``release`` file."""
    steps = int(data.get("steps", 3))
    for i in range(1, steps + 1):
        ctx.log(f"step {i} of {steps}")
        ctx.progress(i / (steps + 1), f"step {i}")
    release = Path(data["release"])
    deadline = time.monotonic() + 30
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    ctx.log("released")
    return {"steps": steps, "attempt": ctx.attempt, "jobs_url": ctx.settings.get("jobs_url")}


def flaky(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Raise until attempt ``succeed_on``, then succeed."""
    if ctx.attempt < int(data["succeed_on"]):
        ctx.log(f"attempt {ctx.attempt} about to fail")
        raise ValueError(f"boom on attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


def refuses(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Fail for good: input that no retry can fix."""
    from inwire.kit.jobs.context import JobFailed

    raise JobFailed("the input cannot work")


def cooperative(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Work until cancelled, then return a partial result that must be discarded."""
    n = 0
    while not ctx.wait_cancelled(0.05):
        n += 1
        ctx.progress(min(0.9, n / 1000), "working")
    ctx.log("noticed the cancel request")
    return {"partial": True, "iterations": n}


def stubborn(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Ignore cancel requests (and everything else) for a long time."""
    ctx.log("ignoring cancel requests")
    time.sleep(60)
    return {"finished": True}


def slow_first_attempt(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """Hang on the first attempt (to be killed or frozen by the test); finish on retries."""
    if ctx.attempt == 1:
        ctx.log("first attempt: waiting to be killed")
        ctx.progress(0.5, "half way")
        time.sleep(60)
    return {"attempt": ctx.attempt}


async def quick_async(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    """An ``async def`` job function."""
    ctx.log("async job ran")
    return {"doubled": int(data.get("n", 1)) * 2}


def not_json(ctx: JobContext, data: dict[str, Any]) -> Any:
    """Return a result that cannot be stored."""
    return {"when": object()}


# -- the test service (built inside functions, so worker processes never run this) ----------


def build_app(inwire_settings: dict[str, Any], *, run_executor: bool) -> Any:
    """A small service with job tables, a job-starting endpoint and the jobs router."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from typing import Annotated

    from fastapi import FastAPI
    from pydantic import BaseModel, Field

    from inwire.kit.api import APIRouter, Item
    from inwire.kit.app import create_service_app
    from inwire.kit.auth import Principal, require
    from inwire.kit.db import SessionDep
    from inwire.kit.db.base import new_metadata
    from inwire.kit.jobs import (
        IdempotencyKeyDep,
        JobOut,
        JobRegistry,
        JobsDep,
        JobService,
        job_item,
        job_tables,
        jobs_router,
        run_jobs,
    )
    from inwire.kit.settings import ServiceSettings

    class JobsDemoSettings(ServiceSettings):
        service = "jobsdemo"
        model_config = {"env_prefix": "INWIRE_JOBSDEMO_"}  # noqa: RUF012

    class RunIn(BaseModel):
        type: str
        input: dict[str, Any] = Field(default_factory=dict)
        max_attempts: int = 3

    router = APIRouter()

    @router.post("/runs", status_code=202)
    async def start_run(
        body: RunIn,
        session: SessionDep,
        jobs: JobsDep,
        key: IdempotencyKeyDep,
        who: Annotated[Principal, require("jobs:create")],
    ) -> Item[JobOut]:
        """Start a job."""
        job = await jobs.submit(
            session,
            who.org,
            body.type,
            body.input,
            who.subject,
            idempotency_key=key,
            max_attempts=body.max_attempts,
        )
        return job_item(job)

    metadata = new_metadata()
    tables = job_tables(metadata)
    registry = JobRegistry(
        {
            "test.report": report,
            "test.flaky": flaky,
            "test.refuses": refuses,
            "test.cooperative": cooperative,
            "test.stubborn": stubborn,
            "test.slow_first": slow_first_attempt,
            "test.async": quick_async,
            "test.not_json": not_json,
        }
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        if not run_executor:
            yield
            return
        async with run_jobs(app, policy=FAST_POLICY):
            yield

    settings = JobsDemoSettings(**inwire_settings, jobs_concurrency=2)
    app = create_service_app(
        settings, title="Jobs demo", routers=[router, jobs_router()], lifespan=lifespan
    )
    app.state.jobs = JobService(tables, registry)
    return app


async def wait_job(
    client: Any,
    headers: dict[str, str],
    job_id: str,
    until: Any,
    *,
    wait: float = 60.0,
) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until ``until(job)`` holds; fail with the last state."""
    import asyncio

    deadline = time.monotonic() + wait
    while True:
        r = await client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()["data"]
        if until(job):
            return job
        if time.monotonic() > deadline:
            lines = await log_lines(client, headers, job_id)
            raise AssertionError(f"timed out waiting for job: {job}\nlogs: {lines}")
        await asyncio.sleep(0.05)


async def log_lines(client: Any, headers: dict[str, str], job_id: str) -> list[str]:
    """Every log line of a job, as text."""
    r = await client.get(f"/api/v1/jobs/{job_id}/logs", headers=headers)
    assert r.status_code == 200, r.text
    return [entry["line"] for entry in r.json()["data"]]


async def wait_log(
    client: Any, headers: dict[str, str], job_id: str, fragment: str, *, wait: float = 60.0
) -> list[str]:
    """Poll a job's log until a line contains ``fragment``."""
    import asyncio

    deadline = time.monotonic() + wait
    while True:
        lines = await log_lines(client, headers, job_id)
        if any(fragment in line for line in lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {fragment!r}: {lines}")
        await asyncio.sleep(0.05)


def worker_pid(lines: list[str]) -> int:
    """The pid a worker wrote in its 'attempt … started' line (the latest one)."""
    import re

    pids = [int(m.group(1)) for line in lines if (m := re.search(r"\(pid (\d+)\)", line))]
    assert pids, lines
    return pids[-1]
